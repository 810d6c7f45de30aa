-- One retention batch (src/ops/retention.rs): completed backfill jobs that
-- finished before $1, oldest first, at most $2, through
-- backfill_queue_completed_at. Their rejected rows go with them (ON
-- DELETE CASCADE).
DELETE FROM backfill_queue q
USING (
    SELECT id
    FROM backfill_queue
    WHERE status = 'completed'
      AND completed_at < $1
    ORDER BY completed_at
    LIMIT $2
) AS doomed
WHERE q.id = doomed.id
