-- What the orchestrator derives from events, and the backfill queue.

-- Position per (portfolio, asset), kept from events: buys add, sells subtract.
create table holdings (
    portfolio_id uuid        not null,
    asset_id     bigint      not null references assets (id),
    quantity     numeric     not null,
    updated_at   timestamptz not null default now(),
    primary key (portfolio_id, asset_id)
);

create table tracked_assets (
    asset_id          bigint primary key references assets (id),
    -- When the asset first gained a holder.
    first_tracked_at  timestamptz not null default now(),
    -- The last time an event left it with at least one holder (or, once
    -- untracked, the moment the last holder left).
    last_tracked_at   timestamptz not null default now(),
    -- Number of portfolios with a positive position.
    tracking_users    integer     not null default 0 check (tracking_users >= 0),
    last_price_update timestamptz,
    -- Daily history held or queued: [history_from, history_to].
    history_from      date,
    history_to        date
);

create index tracked_assets_active on tracked_assets (last_tracked_at) where tracking_users > 0;

create type backfill_status as enum ('pending', 'in_progress', 'rate_limited', 'completed', 'failed');

create table backfill_queue (
    id            bigint generated always as identity primary key,
    asset_id      bigint          not null references assets (id),
    start_date    date            not null,
    end_date      date            not null,
    status        backfill_status not null default 'pending',
    retry_after   timestamptz,
    attempts      integer         not null default 0,
    max_attempts  integer         not null default 5,
    error_message text,
    -- The lease: which worker process holds the job and until when.
    locked_by     uuid,
    locked_until  timestamptz,
    -- The provider that served (or last refused) the job.
    provider      text,
    created_at    timestamptz     not null default now(),
    updated_at    timestamptz     not null default now(),
    completed_at  timestamptz,
    check (start_date <= end_date)
);

create index backfill_queue_status_retry on backfill_queue (status, retry_after);
create index backfill_queue_asset_status on backfill_queue (asset_id, status);
-- The claim reads only jobs that can still run, so finished rows never slow it.
create index backfill_queue_due on backfill_queue (retry_after nulls first, id)
    where status in ('pending', 'rate_limited');
-- The reaper looks for expired leases.
create index backfill_queue_leases on backfill_queue (locked_until) where status = 'in_progress';
-- Never two active jobs for the same asset and range.
create unique index backfill_queue_one_active on backfill_queue (asset_id, start_date, end_date)
    where status in ('pending', 'in_progress', 'rate_limited');

-- Shared across every worker on every machine: a provider that answered 429
-- is paused for all of them until cooldown_until.
create table provider_state (
    provider                text primary key,
    cooldown_until          timestamptz,
    -- 429s in a row; drives the 5 -> 10 -> 20 -> 40 min backoff.
    consecutive_rate_limits integer     not null default 0,
    last_success_at         timestamptz,
    last_error_at           timestamptz,
    last_error              text,
    requests_total          bigint      not null default 0,
    errors_total            bigint      not null default 0,
    rate_limited_total      bigint      not null default 0,
    updated_at              timestamptz not null default now()
);
