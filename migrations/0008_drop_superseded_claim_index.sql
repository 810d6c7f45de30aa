-- backfill_queue_due (0003) was superseded by backfill_queue_claim (0006):
-- no query orders by retry_after NULLS FIRST any more, yet every claim,
-- finish and reap kept writing it.
drop index backfill_queue_due;
