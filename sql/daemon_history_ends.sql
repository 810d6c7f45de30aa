-- For each asset of $1: its last stored daily bar, and whether a backfill
-- for it is already waiting or running (then the workers will fill it).
SELECT a.asset_id,
       (SELECT max(p.ts) FROM asset_prices p
        WHERE p.asset_id = a.asset_id AND p.interval = '1d') AS last_bar,
       EXISTS (SELECT 1 FROM backfill_queue q
               WHERE q.asset_id = a.asset_id
                 AND q.status IN ('pending', 'in_progress', 'rate_limited')) AS queued
FROM unnest($1::bigint[]) AS a (asset_id)
