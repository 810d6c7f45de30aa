-- Claim up to $3 due jobs for worker $1 under a lease of $4 milliseconds
-- (src/queue/claim.rs). $2 is "now" (NULL: the database's now()); $5/$6
-- are the provider chains as (provider, asset_type) pairs.
WITH due AS (
    SELECT q.id
    FROM backfill_queue q
    WHERE q.status IN ('pending', 'rate_limited')
      -- An index condition on backfill_queue_claim: the scan stops at the
      -- first job that is not due yet.
      AND coalesce(q.retry_after, '-infinity') <= coalesce($2::timestamptz, now())
      AND (
          -- Evaluated once per statement: with no provider cooling down,
          -- every due job qualifies and assets is never read.
          NOT EXISTS (SELECT FROM provider_state
                      WHERE cooldown_until > coalesce($2::timestamptz, now()))
          OR cardinality($5::text[]) = 0
          -- Otherwise a job qualifies while some provider of its chain that
          -- knows the asset is not cooling down.
          OR EXISTS (
              SELECT
              FROM assets a
              CROSS JOIN unnest($5::text[], $6::asset_type[]) AS chain (provider, asset_type)
              WHERE a.id = q.asset_id
                AND chain.asset_type = a.asset_type
                AND provider_has_symbol(chain.provider, a.asset_type, a.symbol, a.currency,
                                        a.yahoo_symbol, a.binance_symbol, a.coingecko_id)
                AND chain.provider NOT IN (
                    SELECT provider FROM provider_state
                    WHERE cooldown_until > coalesce($2::timestamptz, now()))
          )
      )
    ORDER BY coalesce(q.retry_after, '-infinity'), q.id
    LIMIT $3
    FOR UPDATE OF q SKIP LOCKED
)
UPDATE backfill_queue q
SET status = 'in_progress',
    attempts = q.attempts + 1,
    locked_by = $1,
    locked_until = coalesce($2::timestamptz, now()) + $4 * interval '1 millisecond',
    updated_at = coalesce($2::timestamptz, now())
FROM due, assets a
WHERE q.id = due.id
  AND a.id = q.asset_id
RETURNING q.id AS job_id, q.attempts, q.max_attempts, q.start_date, q.end_date,
          q.asset_id, a.symbol, a.asset_type, a.exchange, a.currency,
          a.yahoo_symbol, a.binance_symbol, a.coingecko_id, a.active
