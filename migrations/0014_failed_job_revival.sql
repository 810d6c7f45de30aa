-- A failed job's range used to stay a hole in history for good: coverage in
-- tracked_assets said "held or queued", so no later buy queued it again.
-- Now a failed job comes back by itself after a cool-off that doubles each
-- round (PRICEKEEPER_FAILED_COOLOFF, PRICEKEEPER_FAILED_ROUNDS), and at once
-- when a new purchase needs its range.
--
-- failed_rounds: how many times the job has failed for good and been
--   queued again.
-- revive_after: when a failed job is queued again; NULL while the next
--   pass has not scheduled it yet, or once revivable is false.
-- revivable: false once the rounds are used up; it stays failed until a
--   purchase needs the range.
alter table backfill_queue
    add column failed_rounds integer not null default 0,
    add column revive_after timestamptz,
    add column revivable boolean not null default true;

create index backfill_queue_revival on backfill_queue (revive_after)
    where status = 'failed' and revivable;

-- 0012's op check, validated apart from the exclusive lock that added it.
alter table portfolio_events validate constraint portfolio_events_op_check;

-- Whether a range of an asset is queued in a job that is still alive: the
-- condition of backfill_queue_one_active, for statements that bring a
-- finished job back and must not make a twin.
create function backfill_range_queued(p_asset bigint, p_start date, p_end date) returns boolean
language sql stable parallel safe as $$
    select exists (
        select from backfill_queue
        where asset_id = p_asset
          and start_date = p_start
          and end_date = p_end
          and status in ('pending', 'in_progress', 'rate_limited'))
$$;
