-- Claim up to $3 due jobs for worker $1 under a lease of $4 milliseconds
-- (src/queue/claim.rs). $2 is "now" (NULL: the database's now()); $5/$6
-- are the provider chains as (provider, asset_type) pairs.
--
-- Jobs are taken in the order they became due: a never-tried job when it
-- was queued, a retry or a snoozed job at its retry_after. Both runs are
-- read in that order from backfill_queue_claim (never-tried jobs are its
-- '-infinity' prefix, ids growing with queueing time), at most $3 rows each,
-- and merged: a steady stream of new jobs can no longer starve due retries.
-- The chain condition is written out in both runs: as a SQL function it is
-- not inlined, and cost 100x more per row.
--
-- A claim commits without waiting for its WAL to reach disk (`async`, for
-- this statement's transaction only): if a database crash forgets it, the
-- jobs are due again and the claimer's later outcome matches nothing (the
-- lease guard of queue_finish.sql), so they just run again.
WITH async AS MATERIALIZED (
    SELECT set_config('synchronous_commit', 'off', true) AS setting
),
cooling AS MATERIALIZED (
    SELECT coalesce(array_agg(provider), '{}') AS providers
    FROM provider_state
    WHERE cooldown_until > coalesce($2::timestamptz, now())
),
never_tried AS (
    SELECT q.id, q.created_at AS due_at
    FROM backfill_queue q
    WHERE q.status IN ('pending', 'rate_limited')
      AND coalesce(q.retry_after, '-infinity') = '-infinity'
      AND ((SELECT cardinality(providers) FROM cooling) = 0
           OR cardinality($5::text[]) = 0
           -- Some provider of its chain that knows the asset is not cooling.
           OR EXISTS (
               SELECT
               FROM assets a
               CROSS JOIN unnest($5::text[], $6::asset_type[]) AS chain (provider, asset_type)
               WHERE a.id = q.asset_id
                 AND chain.asset_type = a.asset_type
                 AND provider_has_symbol(chain.provider, a.asset_type, a.symbol, a.currency,
                                         a.yahoo_symbol, a.binance_symbol, a.coingecko_id)
                 AND chain.provider <> ALL ((SELECT providers FROM cooling)::text[])))
    ORDER BY coalesce(q.retry_after, '-infinity'), q.id
    LIMIT $3
    FOR UPDATE OF q SKIP LOCKED
),
retries AS (
    SELECT q.id, q.retry_after AS due_at
    FROM backfill_queue q
    WHERE q.status IN ('pending', 'rate_limited')
      -- An index range: the scan stops at the first job not due yet.
      AND coalesce(q.retry_after, '-infinity') > '-infinity'
      AND coalesce(q.retry_after, '-infinity') <= coalesce($2::timestamptz, now())
      AND ((SELECT cardinality(providers) FROM cooling) = 0
           OR cardinality($5::text[]) = 0
           -- Some provider of its chain that knows the asset is not cooling.
           OR EXISTS (
               SELECT
               FROM assets a
               CROSS JOIN unnest($5::text[], $6::asset_type[]) AS chain (provider, asset_type)
               WHERE a.id = q.asset_id
                 AND chain.asset_type = a.asset_type
                 AND provider_has_symbol(chain.provider, a.asset_type, a.symbol, a.currency,
                                         a.yahoo_symbol, a.binance_symbol, a.coingecko_id)
                 AND chain.provider <> ALL ((SELECT providers FROM cooling)::text[])))
    ORDER BY coalesce(q.retry_after, '-infinity'), q.id
    LIMIT $3
    FOR UPDATE OF q SKIP LOCKED
),
due AS (
    -- The rows locked but not taken are let go when the statement ends.
    SELECT id
    FROM (SELECT * FROM never_tried UNION ALL SELECT * FROM retries) AS candidates
    ORDER BY due_at, id
    LIMIT $3
)
UPDATE backfill_queue q
SET status = 'in_progress',
    attempts = q.attempts + 1,
    locked_by = $1,
    locked_until = coalesce($2::timestamptz, now()) + $4 * interval '1 millisecond',
    started_at = coalesce($2::timestamptz, now()),
    updated_at = coalesce($2::timestamptz, now())
FROM due, assets a, async
WHERE q.id = due.id
  AND a.id = q.asset_id
  AND async.setting = 'off'
RETURNING q.id AS job_id, q.attempts, q.max_attempts, q.start_date, q.end_date,
          q.asset_id, a.symbol, a.asset_type, a.exchange, a.currency,
          a.yahoo_symbol, a.binance_symbol, a.coingecko_id, a.active
