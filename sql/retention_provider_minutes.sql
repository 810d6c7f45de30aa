-- One retention batch (src/ops/retention.rs): per-minute provider counts
-- from before $1, at most $2 rows; /health/sources reads only the last
-- hour of them.
DELETE FROM provider_minutes m
USING (
    SELECT provider, minute
    FROM provider_minutes
    WHERE minute < $1
    LIMIT $2
) AS old
WHERE m.provider = old.provider
  AND m.minute = old.minute
