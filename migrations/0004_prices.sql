-- Price storage. asset_prices is range-partitioned by year on the bar's
-- start; partitions are created on demand by ensure_asset_prices_partition.
-- There is deliberately no default partition: attaching a new year to a
-- table with a default partition would scan it.

create table asset_prices (
    asset_id   bigint      not null,
    interval   text        not null default '1d',
    -- Bar start, UTC instant.
    ts         timestamptz not null,
    open       numeric,
    high       numeric,
    low        numeric,
    close      numeric     not null,
    adj_close  numeric,
    volume     numeric,
    currency   text,
    source     text        not null,
    -- Quality flags, e.g. 'spike' for a close-to-close move over 50%.
    flags      text[]      not null default '{}',
    fetched_at timestamptz not null default now(),
    primary key (asset_id, interval, ts)
) partition by range (ts);

-- Creates the partition for one calendar year (UTC) when it is missing and
-- returns its name. Safe to call concurrently from many workers.
create function ensure_asset_prices_partition(p_year integer) returns text
language plpgsql as $$
declare
    part text := format('asset_prices_y%s', p_year);
begin
    if to_regclass(part) is not null then
        return part;
    end if;
    -- Concurrent creators of the same year: the losers find it made
    -- (duplicate_table, or unique_violation on the catalog in a close race).
    begin
        execute format(
            'create table %I partition of asset_prices for values from (%L) to (%L)',
            part,
            make_timestamptz(p_year, 1, 1, 0, 0, 0, 'UTC'),
            make_timestamptz(p_year + 1, 1, 1, 0, 0, 0, 'UTC'));
    exception when duplicate_table or unique_violation then
        null;
    end;
    return part;
end
$$;

-- Every partition a range of bar starts needs.
create function ensure_asset_prices_partitions(p_from timestamptz, p_to timestamptz) returns void
language sql as $$
    select ensure_asset_prices_partition(y)
    from generate_series(extract(year from p_from at time zone 'UTC')::integer,
                         extract(year from p_to at time zone 'UTC')::integer) as y;
$$;

-- Latest quote per asset, written by the daemon.
create table asset_quotes (
    asset_id   bigint primary key references assets (id),
    price      numeric     not null,
    currency   text,
    quoted_at  timestamptz not null,
    source     text        not null,
    fetched_at timestamptz not null default now()
);

-- The design document's portfolio performance cache.
create table portfolio_valuations (
    portfolio_id uuid        not null,
    currency     text        not null,
    market_value numeric     not null,
    cost_basis   numeric     not null,
    valued_at    timestamptz not null,
    primary key (portfolio_id, currency)
);

-- Missing dates found in stored history, kept for transparency.
create table price_gaps (
    id          bigint generated always as identity primary key,
    asset_id    bigint      not null references assets (id),
    interval    text        not null default '1d',
    gap_from    date        not null,
    gap_to      date        not null,
    detected_at timestamptz not null default now(),
    resolved_at timestamptz,
    unique (asset_id, interval, gap_from, gap_to)
);
