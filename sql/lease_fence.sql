-- The fence of a leader's write transaction: the lease row of role $1, if
-- $2 still holds it under term $3 and it has not run out. FOR SHARE makes a
-- standby's take-over wait until this transaction ends, so the writes
-- behind the fence commit before any newer term begins.
SELECT term
FROM leader_leases
WHERE role = $1
  AND holder = $2
  AND term = $3
  AND expires_at > clock_timestamp()
FOR SHARE
