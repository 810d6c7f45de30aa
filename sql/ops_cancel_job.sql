-- Cancel backfill job $1 (src/ops/actions.rs) unless it already ended
-- (completed or cancelled). A running job's worker loses its lease: its
-- result is refused and its body stopped at the next heartbeat.
UPDATE backfill_queue q
SET status = 'cancelled',
    locked_by = NULL,
    locked_until = NULL,
    retry_after = NULL,
    revive_after = NULL,
    error_message = 'cancelled by an operator'
                    || coalesce(' after: ' || q.error_message, ''),
    updated_at = now()
FROM (SELECT id, status FROM backfill_queue
      WHERE id = $1 AND status IN ('pending', 'rate_limited', 'in_progress', 'failed')
      FOR UPDATE) AS old,
     assets a
WHERE q.id = old.id
  AND a.id = q.asset_id
RETURNING q.id, a.symbol, a.exchange, q.start_date, q.end_date, old.status::text AS was
