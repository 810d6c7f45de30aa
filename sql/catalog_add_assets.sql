-- Listings the catalog does not have yet. A row the host application
-- writes meanwhile wins (DO NOTHING); the update below then sees it.
WITH added AS (
    INSERT INTO assets
        (symbol, asset_type, exchange, currency, name, yahoo_symbol, binance_symbol, coingecko_id)
    SELECT symbol, asset_type, exchange, currency, name, yahoo_symbol, binance_symbol, coingecko_id
    FROM catalog_stage
    ON CONFLICT (symbol, exchange) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM added
