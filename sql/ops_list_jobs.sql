-- Backfill jobs with their asset and reason, newest change first
-- (src/ops/actions.rs). $1: statuses to show; $2: one asset or NULL;
-- $3: at most this many.
SELECT q.id, a.symbol, a.exchange, q.status::text AS status, q.start_date, q.end_date,
       q.attempts, q.max_attempts, q.provider, q.error_message, q.retry_after, q.updated_at
FROM backfill_queue q
JOIN assets a ON a.id = q.asset_id
WHERE q.status = ANY($1::text[]::backfill_status[])
  AND ($2::bigint IS NULL OR q.asset_id = $2)
ORDER BY q.updated_at DESC, q.id DESC
LIMIT $3
