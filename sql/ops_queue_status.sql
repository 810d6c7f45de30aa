-- Backfill queue at a glance: jobs per status, the oldest waiting, the next
-- retry, leases that have run out (a crashed or frozen worker), and failed
-- jobs still to be queued again after their cool-off (and the next one).
--   psql "$DATABASE_URL" -f sql/ops_queue_status.sql
SELECT status::text AS status,
       count(*)                                             AS jobs,
       min(created_at)                                      AS oldest,
       min(retry_after) FILTER (WHERE retry_after > now())  AS next_retry,
       count(*) FILTER (WHERE status = 'in_progress'
                          AND locked_until < now())         AS expired_leases,
       count(*) FILTER (WHERE status = 'failed' AND revivable) AS to_revive,
       min(revive_after) FILTER (WHERE status = 'failed' AND revivable) AS next_revival
FROM backfill_queue
GROUP BY status
ORDER BY status;
