-- Backfill queue at a glance: jobs per status, the oldest waiting, the next
-- retry, and leases that have run out (a crashed or frozen worker).
--   psql "$DATABASE_URL" -f sql/ops_queue_status.sql
SELECT status::text AS status,
       count(*)                                             AS jobs,
       min(created_at)                                      AS oldest,
       min(retry_after) FILTER (WHERE retry_after > now())  AS next_retry,
       count(*) FILTER (WHERE status = 'in_progress'
                          AND locked_until < now())         AS expired_leases
FROM backfill_queue
GROUP BY status
ORDER BY status;
