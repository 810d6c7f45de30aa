-- When a provider starts cooling down, the due jobs that no provider of
-- their chain can serve now are snoozed to the earliest end of a cooldown
-- (src/queue/cooldown.rs). Left due, every claim would read them one by one
-- and leave them: with 100,000 stock jobs behind a cooling Yahoo, a claim
-- cost 50 ms instead of 4. Snoozing uses no attempt, like a job's own
-- snooze. $1 is "now" (NULL: now()); $2/$3 the provider chains as
-- (provider, asset_type) pairs.
WITH cooling AS MATERIALIZED (
    SELECT coalesce(array_agg(provider), '{}') AS providers, min(cooldown_until) AS first_end
    FROM provider_state
    WHERE cooldown_until > coalesce($1::timestamptz, now())
),
blocked AS (
    SELECT q.id
    FROM backfill_queue q
    WHERE q.status IN ('pending', 'rate_limited')
      AND coalesce(q.retry_after, '-infinity') <= coalesce($1::timestamptz, now())
      AND NOT EXISTS (
          SELECT
          FROM assets a
          CROSS JOIN unnest($2::text[], $3::asset_type[]) AS chain (provider, asset_type)
          WHERE a.id = q.asset_id
            AND chain.asset_type = a.asset_type
            AND provider_has_symbol(chain.provider, a.asset_type, a.symbol, a.currency,
                                    a.yahoo_symbol, a.binance_symbol, a.coingecko_id)
            AND chain.provider <> ALL ((SELECT providers FROM cooling)::text[]))
    FOR UPDATE OF q SKIP LOCKED
)
UPDATE backfill_queue q
SET status = 'rate_limited',
    retry_after = (SELECT first_end FROM cooling),
    error_message = 'every provider of its chain is cooling down',
    updated_at = coalesce($1::timestamptz, now())
FROM blocked
WHERE q.id = blocked.id
  AND (SELECT first_end FROM cooling) IS NOT NULL
