-- Claim up to $1 of the oldest unprocessed outbox rows with ids in
-- [$2, $3] (a batch: every id; isolating one event: just its own). SKIP LOCKED lets several orchestrators run at once:
-- each takes rows no other one holds. The rows stay locked until the
-- applying transaction commits with processed_at set.
--
-- Nothing here can fail to decode, whatever the host wrote before the
-- schema refused it: the purchase date is handed over only when it is a
-- usable date, and what is wrong with a row comes back as text.
SELECT id,
       op,
       new_asset_id,
       CASE WHEN new_side = 'buy' AND pricekeeper_usable_executed_at(new_executed_at)
            THEN (new_executed_at AT TIME ZONE 'UTC')::date
       END AS bought_on,
       pricekeeper_event_problem(new_quantity, old_quantity, new_executed_at) AS problem
FROM portfolio_events
WHERE processed_at IS NULL
  AND id BETWEEN $2 AND $3
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
