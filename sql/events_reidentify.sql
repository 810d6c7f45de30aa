-- An asset's identity changed (symbol, type, exchange, currency or a
-- provider symbol): the bars and quote stored so far belong to the old
-- one. Drop them and queue the held range again, so the two series are
-- never mixed. A job still running under the old identity stores nothing
-- (its completion re-reads the asset, see sql/queue_asset_identity.sql).
WITH changed AS (
    SELECT DISTINCT asset_id FROM unnest($1::bigint[]) AS c (asset_id)
),
dropped AS (
    DELETE FROM asset_prices p
    USING changed c
    WHERE p.asset_id = c.asset_id
    RETURNING p.asset_id
),
quotes AS (
    DELETE FROM asset_quotes q
    USING changed c
    WHERE q.asset_id = c.asset_id
),
jobs AS (
    INSERT INTO backfill_queue (asset_id, start_date, end_date, max_attempts)
    SELECT t.asset_id, t.history_from, t.history_to, $2
    FROM tracked_assets t
    JOIN changed c USING (asset_id)
    JOIN assets a ON a.id = t.asset_id
    WHERE a.active AND t.history_from IS NOT NULL AND t.history_to IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING id, asset_id
),
woken AS (
    SELECT jobs.asset_id, pricekeeper_wake_workers(jobs.id)
    FROM jobs
)
SELECT c.asset_id,
       (SELECT count(*) FROM dropped d WHERE d.asset_id = c.asset_id) AS bars_dropped,
       (SELECT count(*) FROM woken w WHERE w.asset_id = c.asset_id)   AS jobs_queued
FROM changed c
