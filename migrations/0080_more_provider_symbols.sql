-- Kraken, Coinbase and Frankfurter in provider_has_symbol, the SQL twin of
-- providers::symbol_for (a test keeps the two in agreement). None of them
-- has a catalog column: their symbols are always derived from the ticker
-- and the currency. The quote currencies are those mapping.rs lists.
create or replace function provider_has_symbol(
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
        when 'kraken' then
            btrim(symbol) <> ''
            and asset_type = 'crypto'
            and upper(coalesce(currency, 'USD'))
                in ('USD', 'EUR', 'GBP', 'CAD', 'JPY', 'CHF', 'AUD', 'USDT', 'USDC')
        when 'coinbase' then
            btrim(symbol) <> ''
            and asset_type = 'crypto'
            and upper(coalesce(currency, 'USD')) in ('USD', 'EUR', 'GBP', 'USDT', 'USDC')
        when 'frankfurter' then
            asset_type = 'forex'
            and length(regexp_replace(btrim(symbol), '[^A-Za-z]', '', 'g')) = 6
        else true
    end
$$;
