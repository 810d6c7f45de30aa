-- Make waiting backfill jobs due now (src/ops/actions.rs): one job ($1),
-- the jobs of one asset ($2), or all (both NULL). A job behind a provider
-- cooldown is still left alone by the claim until some provider of its
-- chain can serve it. Idle workers are woken.
WITH woken AS (
    UPDATE backfill_queue q
    SET retry_after = now(),
        updated_at = now()
    FROM (SELECT id, status FROM backfill_queue
          WHERE status IN ('pending', 'rate_limited')
            AND retry_after > now()
            AND ($1::bigint IS NULL OR id = $1)
            AND ($2::bigint IS NULL OR asset_id = $2)
          FOR UPDATE) AS old
    WHERE q.id = old.id
    RETURNING q.id, q.asset_id, q.start_date, q.end_date, old.status::text AS was
)
SELECT w.id, a.symbol, a.exchange, w.start_date, w.end_date, w.was
FROM woken w
JOIN assets a ON a.id = w.asset_id
CROSS JOIN LATERAL pricekeeper_wake_workers(w.id) AS notified
ORDER BY w.id
