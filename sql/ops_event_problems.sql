-- Outbox health, judged from the state the events left, never from the
-- order several orchestrators happened to apply them in.
--   psql "$DATABASE_URL" -f sql/ops_event_problems.sql

-- How far behind the orchestrator is.
SELECT count(*)        AS unprocessed,
       min(created_at) AS oldest_unprocessed
FROM portfolio_events
WHERE processed_at IS NULL;

-- Positions that are negative now: the host's ledger sells more than it
-- bought. Stored as the true sum (so a correction lands right) and counted
-- as not held.
SELECT portfolio_id, asset_id, quantity, updated_at
FROM holdings
WHERE quantity < 0
ORDER BY updated_at DESC
LIMIT 50;

-- Events marked with a reason: a value no purchase can have (NaN, an
-- infinite date), an inactive asset, a row the database refused.
SELECT id, op, transaction_id, created_at, processed_at, error
FROM portfolio_events
WHERE error IS NOT NULL
ORDER BY id DESC
LIMIT 50;

-- Host rows written before the schema refused them (their checks stay NOT
-- VALID until these are fixed or deleted).
SELECT id, portfolio_id, asset_id, side, quantity, price, executed_at
FROM portfolio_transactions
WHERE NOT (pricekeeper_usable_quantity(quantity)
           AND pricekeeper_usable_quantity(price)
           AND pricekeeper_usable_executed_at(executed_at))
ORDER BY id
LIMIT 50;
