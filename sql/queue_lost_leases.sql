-- Which of the jobs this worker believes it holds, as (id, attempts) pairs in
-- $2/$3, are no longer its own (src/queue/worker/leases.rs): the reaper
-- handed the job back and someone claimed it again, or it was finished
-- meanwhile. A row merely locked by another transaction (a renewal skipped
-- with SKIP LOCKED) is still ours and is not listed.
SELECT h.id
FROM unnest($2::bigint[], $3::int[]) AS h (id, attempts)
WHERE NOT EXISTS (
    SELECT
    FROM backfill_queue q
    WHERE q.id = h.id
      AND q.attempts = h.attempts
      AND q.locked_by = $1
)
