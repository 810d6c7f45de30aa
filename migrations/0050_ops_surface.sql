-- What the ops surface (src/ops) reads at every scrape and what retention
-- deletes by, kept cheap however long the tables grow.
--
-- started_at: when the running attempt was claimed, so completed_at -
--   started_at is how long the backfill itself took (created_at would add
--   the time it waited in the queue).
alter table backfill_queue add column started_at timestamptz;

-- Completed jobs of the last hour (throughput, backfill time) and the
-- oldest completed ones (retention) are a range of this index: a scrape
-- never counts the million completed rows behind it.
create index backfill_queue_completed_at on backfill_queue (completed_at)
    where status = 'completed';

-- Failed jobs of the last hour and the latest failures on the status page.
create index backfill_queue_failed_at on backfill_queue (updated_at)
    where status = 'failed';

-- Cancelled jobs, for retention (they pile up like completed ones).
create index backfill_queue_cancelled_at on backfill_queue (updated_at)
    where status = 'cancelled';

-- The daemon's last tick is the newest finished slot.
create index daemon_slots_finished on daemon_slots (finished_at)
    where finished_at is not null;
