-- Store bars (src/queue/store/bars.rs) from the staging table, keys unique in
-- it. A bar already stored with the same values is not rewritten (no new
-- row version, fetched_at kept), so re-running a range changes nothing; a
-- corrected bar (adj_close drifts after a dividend) is.
INSERT INTO asset_prices AS p
    (asset_id, interval, ts, open, high, low, close, adj_close, volume, currency, source, flags)
SELECT asset_id, interval, ts, open, high, low, close, adj_close, volume, currency, source, flags
FROM pricekeeper_bars_stage
ORDER BY asset_id, interval, ts
ON CONFLICT (asset_id, interval, ts) DO UPDATE
SET open = excluded.open,
    high = excluded.high,
    low = excluded.low,
    close = excluded.close,
    adj_close = excluded.adj_close,
    volume = excluded.volume,
    currency = excluded.currency,
    source = excluded.source,
    flags = excluded.flags,
    fetched_at = excluded.fetched_at
WHERE (p.open, p.high, p.low, p.close, p.adj_close, p.volume, p.currency, p.source, p.flags)
      IS DISTINCT FROM
      (excluded.open, excluded.high, excluded.low, excluded.close, excluded.adj_close,
       excluded.volume, excluded.currency, excluded.source, excluded.flags)
