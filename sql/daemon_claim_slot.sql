-- Claim one tick slot ($1 kind, $2 slot time) for term $3 of holder $4.
-- The first claim wins; a slot is never run twice, even by a new leader.
INSERT INTO daemon_slots (kind, slot, term, holder)
VALUES ($1, $2, $3, $4)
ON CONFLICT (kind, slot) DO NOTHING
RETURNING slot
