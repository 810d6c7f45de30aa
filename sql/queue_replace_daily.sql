-- One daily bar per asset and trading date (src/queue/store/bars.rs), run just
-- before the upsert of the staged bars: a stored daily bar less than 12
-- hours from an incoming one, at another instant, is the same trading date
-- stamped differently (Yahoo's live bar at its last trade time, a session
-- open moved by the provider) and gives way to it. Bars of neighbouring
-- trading dates are at least 23 hours apart, so none is touched.
--
-- One index range scan per asset over the span of its incoming bars, not
-- one probe per bar: a first backfill finds nothing at all.
DELETE FROM asset_prices p
USING (
    SELECT asset_id, min(ts) AS first_ts, max(ts) AS last_ts
    FROM pricekeeper_bars_stage
    WHERE interval = '1d'
    GROUP BY asset_id
) span
WHERE p.asset_id = span.asset_id
  AND p.interval = '1d'
  AND p.ts > span.first_ts - interval '12 hours'
  AND p.ts < span.last_ts + interval '12 hours'
  AND NOT EXISTS (
      SELECT 1 FROM pricekeeper_bars_stage s
      WHERE s.asset_id = p.asset_id AND s.interval = '1d' AND s.ts = p.ts
  )
  AND EXISTS (
      SELECT 1 FROM pricekeeper_bars_stage s
      WHERE s.asset_id = p.asset_id
        AND s.interval = '1d'
        AND s.ts > p.ts - interval '12 hours'
        AND s.ts < p.ts + interval '12 hours'
  )
