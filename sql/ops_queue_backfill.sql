-- Queue a backfill of asset $1 from $2 to $3 with $4 attempts
-- (src/ops/actions.rs). A job for the same range that is still alive is
-- kept instead (no twin): its id is returned with created = false.
WITH inserted AS (
    INSERT INTO backfill_queue (asset_id, start_date, end_date, max_attempts)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (asset_id, start_date, end_date)
        WHERE status IN ('pending', 'in_progress', 'rate_limited')
        DO NOTHING
    RETURNING id
),
chosen AS (
    SELECT id, true AS created FROM inserted
    UNION ALL
    SELECT id, false FROM backfill_queue
    WHERE asset_id = $1 AND start_date = $2 AND end_date = $3
      AND status IN ('pending', 'in_progress', 'rate_limited')
      AND NOT EXISTS (SELECT FROM inserted)
)
SELECT c.id, c.created
FROM chosen c
CROSS JOIN LATERAL pricekeeper_wake_workers(c.id) AS woken
LIMIT 1
