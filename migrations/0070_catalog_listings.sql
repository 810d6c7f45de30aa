-- Issue 14: the asset catalog that `seed-catalog` (and the daemon's weekly
-- refresh) fills from Nasdaq Trader, CoinGecko/Binance and built-in lists.
--
-- `catalog_listings` records which source listed which asset. A symbol that
-- vanishes from a source is deactivated only by that source, and only when
-- no other source still lists it: an asset the host application added by
-- hand has no row here and is never touched. Rows are kept after the
-- symbol vanishes (`vanished_at`), so a reappearing symbol is recognised
-- and reactivated only when it was the catalog that deactivated it
-- (`deactivated`), never when the host did.

create table catalog_listings (
    asset_id      bigint      not null references assets (id) on delete cascade,
    source        text        not null check (source in ('nasdaq', 'coingecko', 'builtin')),
    first_seen_at timestamptz not null default now(),
    last_seen_at  timestamptz not null default now(),
    vanished_at   timestamptz,
    -- This source's vanishing is what set assets.active to false.
    deactivated   boolean     not null default false,
    primary key (asset_id, source)
);

-- The listings a source run compares against: its own, still listed.
create index catalog_listings_source on catalog_listings (source, asset_id);

-- IEX, where a few hundred US ETFs and stocks list (Nasdaq Trader's
-- exchange code V). On the NYSE calendar like every US equity venue.
insert into exchanges (mic, name, yahoo_suffix, country, currency)
values ('IEXG', 'Investors Exchange', '', 'US', 'USD')
on conflict (mic) do nothing;

-- Assets some portfolio holds, or may hold as soon as the orchestrator
-- applies an event already written: the catalog never deactivates these,
-- nor changes what they are fetched by (that would drop their history).
-- (No NULLs in it: `x IN (…, NULL)` is NULL, not false.)
create view catalog_held_assets as
    select asset_id from tracked_assets where tracking_users > 0
    union
    select asset_id from holdings where quantity > 0
    union
    select asset_id
    from portfolio_events,
         unnest(array[new_asset_id, old_asset_id]) as asset_id
    where processed_at is null and asset_id is not null;
