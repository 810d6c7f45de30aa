-- The demo's progress line: outbox events still to apply, backfill jobs by
-- status, retries (attempts beyond each job's first) and the rate limits
-- the providers answered.
SELECT (SELECT count(*) FROM portfolio_events WHERE processed_at IS NULL)   AS events_waiting,
       count(*) FILTER (WHERE status = 'pending')                           AS pending,
       count(*) FILTER (WHERE status = 'in_progress')                       AS running,
       count(*) FILTER (WHERE status = 'rate_limited')                      AS rate_limited,
       count(*) FILTER (WHERE status = 'completed')                         AS completed,
       count(*) FILTER (WHERE status IN ('failed', 'cancelled'))            AS failed,
       coalesce(sum(greatest(attempts - 1, 0)), 0)::bigint                  AS retries,
       (SELECT coalesce(sum(rate_limited_total), 0)::bigint FROM provider_state) AS rate_limits
FROM backfill_queue;
