-- Give failed backfill jobs a new set of attempts (src/ops/actions.rs): one
-- job ($1), the jobs of one asset ($2), or all (both NULL). The same rules
-- as sql/ops_retry_failed.sql: one job per range (its latest failure), and
-- none whose range is queued again meanwhile. Idle workers are woken.
WITH retried AS (
    UPDATE backfill_queue q
    SET status = 'pending',
        attempts = 0,
        retry_after = NULL,
        revive_after = NULL,
        error_message = 'retried by an operator after: ' || coalesce(q.error_message, 'failure'),
        updated_at = now()
    WHERE q.status = 'failed'
      AND ($1::bigint IS NULL OR q.id = $1)
      AND ($2::bigint IS NULL OR q.asset_id = $2)
      AND q.id = (
          SELECT max(f.id) FROM backfill_queue f
          WHERE f.asset_id = q.asset_id
            AND f.start_date = q.start_date
            AND f.end_date = q.end_date
            AND f.status = 'failed')
      AND NOT backfill_range_queued(q.asset_id, q.start_date, q.end_date)
    RETURNING q.id, q.asset_id, q.start_date, q.end_date
)
SELECT r.id, a.symbol, a.exchange, r.start_date, r.end_date, 'failed' AS was
FROM retried r
JOIN assets a ON a.id = r.asset_id
CROSS JOIN LATERAL pricekeeper_wake_workers(r.id) AS woken
ORDER BY r.id
