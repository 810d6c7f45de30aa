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
       rate_limited_total,
       unavailable_since,
       unavailable_reason,
       empty_streak,
       last_data_at,
       -- How far the shared request budget (migration 0015) is spent
       -- ahead of now: 0 when a whole burst may go at once.
       greatest(0, extract(epoch FROM b.tat - coalesce($1::timestamptz, now())))::float8
           AS budget_ahead_s,
       -- The last hour, from every process.
       coalesce(h.requests, 0) AS hour_requests,
       coalesce(h.rate_limited, 0) AS hour_rate_limited,
       coalesce(h.errors, 0) AS hour_errors
FROM provider_state
LEFT JOIN provider_budget b USING (provider)
LEFT JOIN LATERAL (
    SELECT sum(m.requests)::bigint AS requests,
           sum(m.rate_limited)::bigint AS rate_limited,
           sum(m.errors)::bigint AS errors
    FROM provider_minutes m
    WHERE m.provider = provider_state.provider
      AND m.minute > coalesce($1::timestamptz, now()) - interval '1 hour'
) h ON true
ORDER BY provider
