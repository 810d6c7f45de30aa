-- Extend the lease of role $1 held by $2 under term $3 by $4 seconds. Only
-- that holder and term, and only while it has not run out: a holder that
-- was paused past its lease must never extend a newer term.
UPDATE leader_leases
SET expires_at = clock_timestamp() + make_interval(secs => $4),
    renewed_at = clock_timestamp()
WHERE role = $1
  AND holder = $2
  AND term = $3
  AND expires_at > clock_timestamp()
RETURNING term
