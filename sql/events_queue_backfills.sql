-- Record the history now held or queued, queue the missing ranges, and wake
-- idle workers. The partial unique index on active jobs makes a duplicate a
-- no-op, so two orchestrators never queue the same range twice.
WITH coverage AS (
    UPDATE tracked_assets t
    SET history_from = c.history_from,
        history_to = c.history_to
    FROM unnest($1::bigint[], $2::date[], $3::date[]) AS c(asset_id, history_from, history_to)
    WHERE t.asset_id = c.asset_id
),
jobs AS (
    INSERT INTO backfill_queue (asset_id, start_date, end_date, max_attempts)
    SELECT asset_id, start_date, end_date, $7
    FROM unnest($4::bigint[], $5::date[], $6::date[]) AS j(asset_id, start_date, end_date)
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT jobs.id
FROM jobs
CROSS JOIN LATERAL pricekeeper_wake_workers(jobs.id) AS notified
