-- Keep the reason beside each event that could not be applied as written.
UPDATE portfolio_events e
SET error = m.error
FROM unnest($1::bigint[], $2::text[]) AS m(id, error)
WHERE e.id = m.id
