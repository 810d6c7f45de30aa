-- Store bars (src/queue/store.rs): one row per array element, keys unique
-- within the statement. A bar already stored with the same values is not
-- rewritten (no new row version, fetched_at kept), so re-running a range
-- changes nothing; a corrected bar (adj_close drifts after a dividend) is.
INSERT INTO asset_prices AS p
    (asset_id, interval, ts, open, high, low, close, adj_close, volume, currency, source, flags)
SELECT r.asset_id, r.interval, r.ts, r.open, r.high, r.low, r.close, r.adj_close, r.volume,
       r.currency, r.source,
       CASE WHEN r.flags = '' THEN '{}'::text[] ELSE string_to_array(r.flags, ',') END
FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::numeric[], $5::numeric[],
            $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::text[],
            $11::text[], $12::text[])
     AS r (asset_id, interval, ts, open, high, low, close, adj_close, volume, currency, source, flags)
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
