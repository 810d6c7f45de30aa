-- Mark claimed events done, with the reason when one could not be applied
-- as written. Same transaction as their effects: exactly once.
UPDATE portfolio_events e
SET processed_at = now(),
    error = m.error
FROM unnest($1::bigint[], $2::text[]) AS m(id, error)
WHERE e.id = m.id
