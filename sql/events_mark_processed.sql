-- Mark claimed events done. Same transaction as their effects: exactly once.
UPDATE portfolio_events
SET processed_at = now()
WHERE id = ANY($1)
