-- Queue the stretches of daily history missing up to the last closed
-- session, extend the history the assets of $4 are known to hold, and wake
-- the workers. The unique index on active jobs makes a repeat a no-op.
WITH coverage AS (
    UPDATE tracked_assets t
    SET history_to = greatest(t.history_to, $5::date)
    WHERE t.asset_id = ANY($4)
),
jobs AS (
    INSERT INTO backfill_queue (asset_id, start_date, end_date, max_attempts)
    SELECT asset_id, start_date, end_date, $6
    FROM unnest($1::bigint[], $2::date[], $3::date[]) AS j (asset_id, start_date, end_date)
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT jobs.id
FROM jobs
CROSS JOIN LATERAL pricekeeper_wake_workers(jobs.id) AS notified
