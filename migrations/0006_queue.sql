-- What the backfill workers need beyond 0003: a claim index that stops at
-- the first job not due yet, the outcome of a completed job, the rows a
-- provider sent that failed validation, and the symbol rule the claim uses
-- to skip jobs whose every provider is cooling down.

-- Due rows in the order a claim takes them: never-tried jobs (retry_after
-- null) first, then by due time. Only pending and rate_limited rows are in
-- it, so finished jobs never slow a claim, and coalesce() makes "due" an
-- index condition: a claim stops at the first row that is not due yet
-- instead of filtering every snoozed row.
create index backfill_queue_claim
    on backfill_queue ((coalesce(retry_after, '-infinity'::timestamptz)), id)
    where status in ('pending', 'rate_limited');

alter table backfill_queue
    add column bars_stored   integer,
    add column bars_rejected integer;

-- Rows a provider sent for a job that broke a validation rule (price <= 0,
-- low above open, ...). Valid rows of the same answer are stored; these are
-- kept so an operator can see what was left out and why.
create table backfill_rejects (
    id          bigint generated always as identity primary key,
    job_id      bigint      not null references backfill_queue (id) on delete cascade,
    asset_id    bigint      not null references assets (id),
    provider    text        not null,
    ts          timestamptz not null,
    reason      text        not null,
    recorded_at timestamptz not null default now()
);

create index backfill_rejects_job on backfill_rejects (job_id);

-- Whether `provider` has a symbol for an asset: the SQL twin of
-- providers::symbol_for (a test keeps the two in agreement). The claim uses
-- it only while some provider is cooling down, to leave jobs whose whole
-- chain is paused where they are.
create function provider_has_symbol(
    provider       text,
    asset_type     asset_type,
    symbol         text,
    currency       text,
    yahoo_symbol   text,
    binance_symbol text,
    coingecko_id   text
) returns boolean
language sql immutable parallel safe as $$
    select case provider
        when 'yahoo' then
            nullif(btrim(yahoo_symbol), '') is not null
            or (btrim(symbol) <> ''
                and (asset_type <> 'forex'
                     or length(regexp_replace(btrim(symbol), '[^A-Za-z]', '', 'g')) = 6))
        when 'binance' then
            nullif(btrim(binance_symbol), '') is not null
            or (btrim(symbol) <> ''
                and asset_type = 'crypto'
                and upper(coalesce(currency, 'USD')) in ('USD', 'USDT'))
        when 'coingecko' then
            nullif(btrim(coingecko_id), '') is not null
        else true
    end
$$;
