-- One source's listings, staged for the statements that apply them. Gone
-- with the transaction, so a dry run (rolled back) or a failed run leaves
-- nothing behind.
CREATE TEMP TABLE catalog_stage (
    symbol         text       NOT NULL,
    asset_type     asset_type NOT NULL,
    exchange       text       NOT NULL,
    currency       text       NOT NULL,
    name           text       NOT NULL,
    yahoo_symbol   text,
    binance_symbol text,
    coingecko_id   text,
    -- What an update may fill in: the provider symbol, unless it is the
    -- one pricekeeper derives anyway (setting it would be an identity
    -- change that drops the asset's stored history for nothing).
    yahoo_fill     text,
    binance_fill   text,
    PRIMARY KEY (symbol, exchange)
) ON COMMIT DROP
