-- All of a source's listings in one statement, one array per column
-- (the type as text: no per-connection lookup of the enum's array type).
INSERT INTO catalog_stage
    (symbol, asset_type, exchange, currency, name, yahoo_symbol, binance_symbol, coingecko_id,
     yahoo_fill, binance_fill)
SELECT *
FROM unnest($1::text[], $2::text[]::asset_type[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
