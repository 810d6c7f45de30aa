-- A purchase (or a holder coming back) needs an asset's history from
-- $2 on: failed or cancelled jobs inside that stretch are queued again at
-- once, whatever their cool-off, with fresh attempts. Coverage counts
-- their ranges as held or queued, so nothing else would ever queue them.
-- A range with an active twin (the unique index) is left alone.
WITH wanted AS (
    SELECT asset_id, wanted_from
    FROM unnest($1::bigint[], $2::date[]) AS w (asset_id, wanted_from)
),
candidates AS (
    -- One job per range: the same range may have failed more than once.
    SELECT DISTINCT ON (q.asset_id, q.start_date, q.end_date) q.id
    FROM backfill_queue q
    JOIN wanted w ON w.asset_id = q.asset_id
    WHERE q.status IN ('failed', 'cancelled')
      AND q.end_date >= w.wanted_from
      AND NOT backfill_range_queued(q.asset_id, q.start_date, q.end_date)
    ORDER BY q.asset_id, q.start_date, q.end_date, q.id DESC
),
revived AS (
    UPDATE backfill_queue q
    SET status = 'pending',
        attempts = 0,
        retry_after = NULL,
        revive_after = NULL,
        error_message = format('queued again: a new purchase needs %s..%s (it had %s: %s)',
                               q.start_date, q.end_date, q.status, q.error_message),
        updated_at = now()
    FROM candidates c
    WHERE q.id = c.id
    RETURNING q.id
)
SELECT revived.id
FROM revived
CROSS JOIN LATERAL pricekeeper_wake_workers(revived.id) AS notified
