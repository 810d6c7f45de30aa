-- Give failed backfill jobs another full set of attempts, e.g. after a
-- provider outage outlasted MAX_BACKFILL_ATTEMPTS. Idle workers are woken.
-- A job whose range is queued again meanwhile is left alone.
--   psql "$DATABASE_URL" -f sql/ops_retry_failed.sql
WITH retried AS (
    UPDATE backfill_queue q
    SET status = 'pending',
        attempts = 0,
        retry_after = NULL,
        revive_after = NULL,
        error_message = 'retried by an operator after: ' || coalesce(q.error_message, 'failure'),
        updated_at = now()
    WHERE q.status = 'failed'
      -- One job per range: the latest failure.
      AND q.id = (
          SELECT max(f.id) FROM backfill_queue f
          WHERE f.asset_id = q.asset_id
            AND f.start_date = q.start_date
            AND f.end_date = q.end_date
            AND f.status = 'failed')
      AND NOT backfill_range_queued(q.asset_id, q.start_date, q.end_date)
    RETURNING q.id
)
SELECT count(*) AS retried
FROM retried
CROSS JOIN LATERAL pricekeeper_wake_workers(retried.id) AS woken;
