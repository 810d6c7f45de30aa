-- Take the lease for $1 (role) as $2 (holder) for $3 seconds when nobody
-- holds it or the holder's lease has run out by the database clock. A new
-- term is drawn each time (the sequence skips numbers; only order matters).
-- Returns nothing when someone else holds a live lease.
INSERT INTO leader_leases AS l (role, holder, term, expires_at)
VALUES ($1, $2, nextval('leader_terms'), clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (role) DO UPDATE
SET holder      = excluded.holder,
    term        = excluded.term,
    acquired_at = clock_timestamp(),
    renewed_at  = clock_timestamp(),
    expires_at  = excluded.expires_at
WHERE l.expires_at <= clock_timestamp()
RETURNING term
