-- Kraken, Coinbase, Frankfurter, FMP and Alpha Vantage in provider_has_symbol, the SQL twin of
-- providers::symbol_for (a test keeps the two in agreement). None of them
-- has a catalog column: their symbols are always derived from the ticker
-- and the currency (FMP and Alpha Vantage: a US stock or ETF by its Yahoo
-- symbol without an exchange suffix; this function does not see the
-- exchange, so a listing whose suffix comes from its MIC alone counts here
-- and is refused by the provider). The quote currencies are mapping.rs's.
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
        when 'fmp' then
            asset_type in ('stock', 'etf')
            and coalesce(nullif(btrim(yahoo_symbol), ''), btrim(symbol)) <> ''
            and position('.' in coalesce(nullif(btrim(yahoo_symbol), ''), btrim(symbol))) = 0
        when 'alphavantage' then
            asset_type in ('stock', 'etf')
            and coalesce(nullif(btrim(yahoo_symbol), ''), btrim(symbol)) <> ''
            and position('.' in coalesce(nullif(btrim(yahoo_symbol), ''), btrim(symbol))) = 0
        else true
    end
$$;
