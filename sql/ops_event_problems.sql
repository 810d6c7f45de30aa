-- Outbox health: how far behind the orchestrator is, and the events that
-- were marked with a reason (oversold positions, inactive assets, rows the
-- database refused), newest first.
--   psql "$DATABASE_URL" -f sql/ops_event_problems.sql
SELECT count(*)        AS unprocessed,
       min(created_at) AS oldest_unprocessed
FROM portfolio_events
WHERE processed_at IS NULL;

SELECT id, op, transaction_id, created_at, processed_at, error
FROM portfolio_events
WHERE error IS NOT NULL
ORDER BY id DESC
LIMIT 50;
