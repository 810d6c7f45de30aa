-- The host application's contract: it writes `assets` and
-- `portfolio_transactions`; everything else is pricekeeper's.

create type asset_type as enum ('stock', 'etf', 'crypto', 'commodity', 'forex', 'bond');

create table assets (
    id             bigint generated always as identity primary key,
    symbol         text        not null,
    asset_type     asset_type  not null,
    -- ISO 10383 MIC (XNYS, XNAS, XLON, XETR, XCME, ...) or CRYPTO / FX.
    exchange       text        not null,
    currency       text,
    name           text,
    yahoo_symbol   text,
    binance_symbol text,
    coingecko_id   text,
    active         boolean     not null default true,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    unique (symbol, exchange)
);

create function set_updated_at() returns trigger
language plpgsql as $$
begin
    new.updated_at := now();
    return new;
end
$$;

create trigger assets_updated_at
    before update on assets
    for each row execute function set_updated_at();

-- `side` is text with a CHECK rather than an enum so that a host writing
-- 'hold' gets a plain check_violation (23514), like every other bad value.
create table portfolio_transactions (
    id           bigint generated always as identity primary key,
    portfolio_id uuid        not null,
    asset_id     bigint      not null references assets (id),
    side         text        not null check (side in ('buy', 'sell')),
    quantity     numeric     not null check (quantity > 0),
    price        numeric     not null check (price >= 0),
    executed_at  timestamptz not null,
    created_at   timestamptz not null default now()
);

create index portfolio_transactions_asset on portfolio_transactions (asset_id);
create index portfolio_transactions_portfolio on portfolio_transactions (portfolio_id, asset_id);
