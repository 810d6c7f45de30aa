-- Move jobs out of in_progress (src/queue/transitions.rs): one unnest row
-- per job, any mix of outcomes. The guard is the lease: the row must still
-- be in_progress and held by this worker ($1), on the same attempt it was
-- claimed with. A worker whose lease expired, and whose job was reclaimed
-- since, matches nothing and changes nothing. $2 is "now" (NULL: now()).
-- "Held by $1" implies in_progress (CHECK backfill_queue_held_iff_in_progress, migration 0007),
-- so the rows are found by primary key, never through a status index.
--
-- The transaction commits without waiting for its WAL to reach disk
-- (`async`, set for this transaction only): a database crash can forget
-- the last fraction of a second of outcomes, and with them the bars they
-- stored, and then those jobs simply run again when their leases run out.
-- Nothing is half-written, and nothing outside the database saw them. The
-- flush per batch was most of the write path's time (`bench ingest`).
UPDATE backfill_queue q
SET status        = t.status,
    attempts      = q.attempts - t.give_back::int,
    retry_after   = CASE
                        WHEN t.until IS NOT NULL THEN t.until
                        WHEN t.delay_ms IS NOT NULL
                            THEN coalesce($2::timestamptz, now()) + t.delay_ms * interval '1 millisecond'
                    END,
    error_message = t.message,
    provider      = coalesce(t.provider, q.provider),
    bars_stored   = coalesce(t.bars_stored, q.bars_stored),
    bars_rejected = coalesce(t.bars_rejected, q.bars_rejected),
    completed_at  = CASE WHEN t.status = 'completed' THEN coalesce($2::timestamptz, now()) END,
    locked_by     = NULL,
    locked_until  = NULL,
    updated_at    = coalesce($2::timestamptz, now())
FROM unnest($3::bigint[], $4::int[], $5::backfill_status[], $6::bigint[], $7::timestamptz[],
            $8::bool[], $9::text[], $10::text[], $11::int[], $12::int[])
     AS t (id, attempts, status, delay_ms, until, give_back, message, provider, bars_stored, bars_rejected),
     (SELECT set_config('synchronous_commit', 'off', true)) AS async (setting)
WHERE q.id = t.id
  AND async.setting = 'off'
  AND q.locked_by = $1
  AND q.attempts = t.attempts
RETURNING q.id
