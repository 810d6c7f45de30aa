-- The first outbox event processed at or after $1 (src/ops/retention.rs).
-- Events are applied roughly in id order, so every processed event older
-- than the cut-off lies below this id; the batches then walk the primary
-- key below it instead of past a million recent events.
SELECT id FROM portfolio_events WHERE processed_at >= $1 ORDER BY id LIMIT 1
