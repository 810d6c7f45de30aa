-- Backfills completed and failed per hour over the last $1 hours, oldest
-- first, for the status page's chart (src/ops/page.rs). Each count is a
-- range of a partial index (backfill_queue_completed_at, _failed_at).
SELECT h.hour,
       (SELECT count(*) FROM backfill_queue q
        WHERE q.status = 'completed'
          AND q.completed_at >= h.hour AND q.completed_at < h.hour + interval '1 hour') AS completed,
       (SELECT count(*) FROM backfill_queue q
        WHERE q.status = 'failed'
          AND q.updated_at >= h.hour AND q.updated_at < h.hour + interval '1 hour') AS failed
FROM generate_series(date_trunc('hour', now()) - ($1 - 1) * interval '1 hour',
                     date_trunc('hour', now()),
                     interval '1 hour') AS h (hour)
ORDER BY h.hour
