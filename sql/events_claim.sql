-- Claim the oldest unprocessed outbox rows. SKIP LOCKED lets several
-- orchestrators run at once: each takes rows no other one holds. The rows
-- stay locked until the applying transaction commits with processed_at set.
SELECT id,
       old_portfolio_id,
       old_asset_id,
       new_portfolio_id,
       new_asset_id,
       new_side,
       new_executed_at
FROM portfolio_events
WHERE processed_at IS NULL
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
