-- Failed jobs come back by themselves (src/queue/reaper.rs): a job that
-- failed is scheduled $2 ms after it failed, doubled for each round it has
-- already had, while fewer than $3 rounds were used; once they are, it
-- stays failed (revivable = false) until a purchase needs its range
-- (sql/events_revive_jobs.sql). Due jobs of active assets go back to
-- pending with fresh attempts, at most $4 per call. $1 is "now" (NULL:
-- now()).
--
-- Rows scheduled by this statement are revived by a later one: the CTEs
-- share one snapshot, and the two updates touch disjoint rows.
WITH scheduled AS (
    UPDATE backfill_queue q
    SET revive_after = CASE WHEN q.failed_rounds < $3
                            THEN q.updated_at + $2 * interval '1 millisecond' * power(2, q.failed_rounds)
                       END,
        revivable = q.failed_rounds < $3,
        error_message = CASE WHEN q.failed_rounds < $3 THEN q.error_message
                             ELSE format('%s (not queued again by itself after %s rounds; '
                                         'a purchase that needs this range queues it)',
                                         q.error_message, q.failed_rounds)
                        END
    WHERE q.status = 'failed'
      AND q.revivable
      AND q.revive_after IS NULL
    RETURNING q.id
),
due AS (
    SELECT q.id
    FROM backfill_queue q
    JOIN assets a ON a.id = q.asset_id
    WHERE q.status = 'failed'
      AND q.revivable
      AND q.revive_after <= coalesce($1::timestamptz, now())
      AND a.active
      -- Never two active jobs for one range (backfill_queue_one_active):
      -- skip a range that is queued again already, and revive only the
      -- newest failed job of a range.
      AND NOT backfill_range_queued(q.asset_id, q.start_date, q.end_date)
      AND NOT EXISTS (
          SELECT FROM backfill_queue newer
          WHERE newer.asset_id = q.asset_id
            AND newer.start_date = q.start_date
            AND newer.end_date = q.end_date
            AND newer.id > q.id)
    ORDER BY q.revive_after
    LIMIT $4
    FOR UPDATE OF q SKIP LOCKED
),
revived AS (
    UPDATE backfill_queue q
    SET status = 'pending',
        attempts = 0,
        failed_rounds = q.failed_rounds + 1,
        retry_after = NULL,
        revive_after = NULL,
        error_message = format('queued again after a cool-off (round %s of %s); it had failed: %s',
                               q.failed_rounds + 1, $3, q.error_message),
        updated_at = coalesce($1::timestamptz, now())
    FROM due
    WHERE q.id = due.id
    RETURNING q.id
)
SELECT revived.id
FROM revived
CROSS JOIN LATERAL pricekeeper_wake_workers(revived.id) AS woken
