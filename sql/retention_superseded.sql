-- One retention batch (src/ops/retention.rs): failed backfill jobs that
-- failed before $1 and that a later job has since completed over their
-- whole range (superseded), at most $2. Any other failed job stays until
-- an operator retries or cancels it. Run before the completed jobs go, so
-- the job that superseded one is still there to say so.
DELETE FROM backfill_queue q
USING (
    SELECT f.id
    FROM backfill_queue f
    WHERE f.status = 'failed'
      AND f.updated_at < $1
      AND EXISTS (
          SELECT FROM backfill_queue c
          WHERE c.asset_id = f.asset_id
            AND c.status = 'completed'
            AND c.id > f.id
            AND c.start_date <= f.start_date
            AND c.end_date >= f.end_date)
    ORDER BY f.updated_at
    LIMIT $2
) AS doomed
WHERE q.id = doomed.id
