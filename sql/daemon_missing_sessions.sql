-- Sessions ($2 dates, $3 bar starts) inside each asset's held history
-- ([history_from, history_to]) that have no stored daily bar. $1: the
-- assets of one calendar; $4: its time zone (a bar belongs to the session
-- of its local date).
WITH s AS (
    SELECT day, ts FROM unnest($2::date[], $3::timestamptz[]) AS s (day, ts)
)
SELECT t.asset_id, s.day
FROM tracked_assets t
JOIN s ON s.day BETWEEN t.history_from AND t.history_to
WHERE t.asset_id = ANY($1)
  AND NOT EXISTS (
      SELECT 1 FROM asset_prices p
      WHERE p.asset_id = t.asset_id
        AND p.interval = '1d'
        AND p.ts >= s.ts - interval '1 day'
        AND p.ts < s.ts + interval '1 day'
        AND (p.ts AT TIME ZONE $4)::date = s.day)
ORDER BY t.asset_id, s.day
