-- One retention batch (src/ops/retention.rs): cancelled backfill jobs
-- last changed before $1, oldest first, at most $2, through
-- backfill_queue_cancelled_at.
DELETE FROM backfill_queue q
USING (
    SELECT id
    FROM backfill_queue
    WHERE status = 'cancelled'
      AND updated_at < $1
    ORDER BY updated_at
    LIMIT $2
) AS doomed
WHERE q.id = doomed.id
