-- Every provider's shared state (src/ops/sources.rs): one row per provider
-- that has ever been called. $1: "now" (NULL: the database clock).
SELECT provider,
       cooldown_until,
       cooldown_until > coalesce($1::timestamptz, now()) AS cooling,
       consecutive_rate_limits,
       last_success_at,
       last_error_at,
       last_error,
       requests_total,
       errors_total,
       rate_limited_total
FROM provider_state
ORDER BY provider
