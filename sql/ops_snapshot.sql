-- Everything the ops surface shows about the queue, the outbox, the
-- tracked assets, the daemon and the providers, in one statement
-- (src/ops/snapshot.rs). $1: "now" (NULL: the database clock). $2: a status
-- the planner believes holds more rows than this is estimated from the
-- table statistics instead of counted, so a scrape never counts the
-- million completed jobs (the estimate is flagged).
--
-- Every other part is a range of a partial index: the claim index for due
-- and waiting jobs, backfill_queue_completed_at and _failed_at for the last
-- hour, portfolio_events_unprocessed for the outbox lag.
WITH clock AS (
    SELECT coalesce($1::timestamptz, now()) AS now
),
estimates AS (
    SELECT v.status, round(v.freq * greatest(c.reltuples, 0))::bigint AS rows
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_stats s ON s.schemaname = n.nspname
                   AND s.tablename = c.relname
                   AND s.attname = 'status'
    CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[], s.most_common_freqs)
        AS v (status, freq)
    WHERE c.oid = 'backfill_queue'::regclass
),
counts AS (
    SELECT st::text AS status,
           coalesce(e.rows, 0) > $2 AS estimated,
           CASE WHEN coalesce(e.rows, 0) > $2 THEN e.rows
                ELSE (SELECT count(*) FROM backfill_queue q WHERE q.status = st)
           END AS jobs
    FROM unnest(enum_range(NULL::backfill_status)) AS st
    LEFT JOIN estimates e ON e.status = st::text
),
last_hour AS (
    SELECT count(*) AS completed,
           avg(extract(epoch FROM q.completed_at - q.started_at))::float8 AS avg_seconds,
           (percentile_cont(0.95) WITHIN GROUP
               (ORDER BY extract(epoch FROM q.completed_at - q.started_at)))::float8 AS p95_seconds
    FROM backfill_queue q, clock
    WHERE q.status = 'completed'
      AND q.completed_at > clock.now - interval '1 hour'
)
SELECT
    (SELECT now FROM clock) AS now,
    (SELECT jsonb_object_agg(status, jobs) FROM counts) AS jobs,
    (SELECT coalesce(array_agg(status ORDER BY status), '{}') FROM counts WHERE estimated)
        AS estimated,
    (SELECT count(*)
     FROM backfill_queue q, clock
     WHERE q.status IN ('pending', 'rate_limited')
       AND coalesce(q.retry_after, '-infinity') <= clock.now) AS due_now,
    -- Due since: a never-tried job since it was queued, a retry since its
    -- retry_after. The first row of each run of the claim index.
    least(
        (SELECT q.created_at
         FROM backfill_queue q
         WHERE q.status IN ('pending', 'rate_limited')
           AND coalesce(q.retry_after, '-infinity') = '-infinity'
         ORDER BY coalesce(q.retry_after, '-infinity'), q.id
         LIMIT 1),
        (SELECT q.retry_after
         FROM backfill_queue q, clock
         WHERE q.status IN ('pending', 'rate_limited')
           AND coalesce(q.retry_after, '-infinity') > '-infinity'
           AND coalesce(q.retry_after, '-infinity') <= clock.now
         ORDER BY coalesce(q.retry_after, '-infinity'), q.id
         LIMIT 1)) AS oldest_due_since,
    (SELECT q.retry_after
     FROM backfill_queue q, clock
     WHERE q.status IN ('pending', 'rate_limited')
       AND coalesce(q.retry_after, '-infinity') > clock.now
     ORDER BY coalesce(q.retry_after, '-infinity'), q.id
     LIMIT 1) AS next_retry_after,
    (SELECT count(*)
     FROM backfill_queue q, clock
     WHERE q.status = 'in_progress' AND q.locked_until < clock.now) AS expired_leases,
    (SELECT completed FROM last_hour) AS completed_last_hour,
    (SELECT avg_seconds FROM last_hour) AS backfill_avg_seconds,
    (SELECT p95_seconds FROM last_hour) AS backfill_p95_seconds,
    (SELECT count(*)
     FROM backfill_queue q, clock
     WHERE q.status = 'failed' AND q.updated_at > clock.now - interval '1 hour')
        AS failed_last_hour,
    (SELECT count(*) FROM portfolio_events WHERE processed_at IS NULL) AS outbox_unprocessed,
    (SELECT e.created_at
     FROM portfolio_events e
     WHERE e.processed_at IS NULL
     ORDER BY e.id
     LIMIT 1) AS outbox_oldest,
    (SELECT count(*) FROM tracked_assets WHERE tracking_users > 0) AS tracked_assets,
    l.holder AS daemon_holder,
    l.term AS daemon_term,
    l.renewed_at AS daemon_renewed_at,
    (SELECT max(finished_at) FROM daemon_slots WHERE finished_at IS NOT NULL)
        AS daemon_last_tick
FROM clock
LEFT JOIN leader_leases l ON l.role = 'daemon' AND l.expires_at > clock.now
