-- What one process saw of each provider since its last flush
-- (src/queue/ledger.rs): counts are added, the latest success and error
-- kept; the counts also go to this minute's provider_minutes row. $8 is
-- the caller's clock (NULL: the database's). $9: empty answers since the
-- batch's last answer with data ($10, NULL: none in this batch); $11: why
-- the provider became unavailable for this deployment (the first reason
-- stays).
WITH d AS (
    SELECT *
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],
                $5::timestamptz[], $6::timestamptz[], $7::text[],
                $9::bigint[], $10::timestamptz[], $11::text[])
         AS d (provider, requests, rate_limited, errors, success_at, error_at, error,
               empty, data_at, unavailable)
),
minutes AS (
    INSERT INTO provider_minutes AS m (provider, minute, requests, rate_limited, errors)
    SELECT provider, date_trunc('minute', coalesce($8::timestamptz, now())),
           requests, rate_limited, errors
    FROM d
    WHERE requests + rate_limited + errors > 0
    ORDER BY provider
    ON CONFLICT (provider, minute) DO UPDATE
    SET requests = m.requests + excluded.requests,
        rate_limited = m.rate_limited + excluded.rate_limited,
        errors = m.errors + excluded.errors
)
INSERT INTO provider_state AS s
    (provider, requests_total, rate_limited_total, errors_total,
     last_success_at, last_error_at, last_error, updated_at,
     empty_streak, last_data_at, unavailable_since, unavailable_reason)
SELECT d.provider, d.requests, d.rate_limited, d.errors,
       d.success_at, d.error_at, d.error, coalesce($8::timestamptz, now()),
       least(d.empty, 2147483647)::integer, d.data_at,
       CASE WHEN d.unavailable IS NOT NULL THEN coalesce($8::timestamptz, now()) END,
       d.unavailable
FROM d
ORDER BY d.provider
ON CONFLICT (provider) DO UPDATE
SET requests_total = s.requests_total + excluded.requests_total,
    rate_limited_total = s.rate_limited_total + excluded.rate_limited_total,
    errors_total = s.errors_total + excluded.errors_total,
    last_success_at = greatest(s.last_success_at, excluded.last_success_at),
    -- A success once the last pause is over ends the refusal streak; one
    -- from a request that left before the refusal does not.
    consecutive_rate_limits = CASE
        WHEN excluded.last_success_at >= coalesce(s.cooldown_until, '-infinity') THEN 0
        ELSE s.consecutive_rate_limits
    END,
    last_error_at = greatest(s.last_error_at, excluded.last_error_at),
    last_error = CASE
        WHEN excluded.last_error_at > coalesce(s.last_error_at, '-infinity') THEN excluded.last_error
        ELSE s.last_error
    END,
    -- Data in this batch restarts the streak from the empties after it.
    empty_streak = CASE
        WHEN excluded.last_data_at IS NOT NULL THEN excluded.empty_streak
        ELSE least(s.empty_streak::bigint + excluded.empty_streak, 2147483647)::integer
    END,
    last_data_at = greatest(s.last_data_at, excluded.last_data_at),
    unavailable_since = coalesce(s.unavailable_since, excluded.unavailable_since),
    unavailable_reason = coalesce(s.unavailable_reason, excluded.unavailable_reason),
    updated_at = excluded.updated_at
