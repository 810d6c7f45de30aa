-- Record the splits and dividends of completed jobs (src/queue/store/mod.rs)
-- and put stored bars back on one scale: daily bars dated before a split
-- seen here for the first time, and fetched before that split took effect,
-- are on the old scale (Yahoo adjusts OHLC as of the fetch). Their range is
-- queued again; the re-fetch overwrites them with adjusted values. Returns
-- the ids of the jobs queued.
WITH incoming AS (
    SELECT DISTINCT ON (asset_id, kind, ts) *
    FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::numeric[], $5::numeric[],
                $6::numeric[], $7::text[], $8::text[])
         AS a (asset_id, kind, ts, numerator, denominator, amount, currency, source)
    ORDER BY asset_id, kind, ts
),
recorded AS (
    INSERT INTO corporate_actions (asset_id, kind, ts, numerator, denominator, amount, currency, source)
    SELECT asset_id, kind, ts, numerator, denominator, amount, currency, source
    FROM incoming
    ON CONFLICT (asset_id, kind, ts) DO NOTHING
    RETURNING asset_id, kind, ts
),
stale AS (
    SELECT s.asset_id,
           min(p.ts AT TIME ZONE 'UTC')::date AS start_date,
           max(p.ts AT TIME ZONE 'UTC')::date AS end_date
    FROM recorded s
    JOIN asset_prices p
      ON p.asset_id = s.asset_id
     AND p.interval = '1d'
     AND p.ts < s.ts
     AND p.fetched_at < s.ts
    WHERE s.kind = 'split'
    GROUP BY s.asset_id
),
queued AS (
    INSERT INTO backfill_queue (asset_id, start_date, end_date)
    SELECT asset_id, start_date, end_date FROM stale
    ON CONFLICT (asset_id, start_date, end_date)
        WHERE status IN ('pending', 'in_progress', 'rate_limited')
        DO NOTHING
    RETURNING id
)
SELECT id, pricekeeper_wake_workers(id) IS NULL AS notified
FROM queued
