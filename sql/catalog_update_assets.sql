-- Listings already in `assets` ($1 the source): the name is the source's,
-- unless the built-in lists name the asset too (they are curated, and two
-- sources must not rename it back and forth every run); a provider
-- symbol is filled in only where none is set, only when it is not the one
-- pricekeeper derives anyway, and only for an asset no portfolio holds (a
-- change of what an asset is fetched by drops its history). Type, exchange and currency are never changed. An asset the
-- catalog itself deactivated when it vanished is active again; one the
-- host deactivated stays so. Rows that would not change are not written.
WITH known AS (
    SELECT a.id,
           s.name,
           s.yahoo_fill AS yahoo_symbol,
           s.binance_fill AS binance_symbol,
           s.coingecko_id,
           $1 <> 'builtin' AND EXISTS (
               SELECT 1 FROM catalog_listings l
               WHERE l.asset_id = a.id AND l.source = 'builtin' AND l.vanished_at IS NULL
           ) AS curated,
           a.id IN (SELECT asset_id FROM catalog_held_assets) AS held,
           NOT a.active AND EXISTS (
               SELECT 1 FROM catalog_listings l WHERE l.asset_id = a.id AND l.deactivated
           ) AS revive
    FROM catalog_stage s
    JOIN assets a ON a.symbol = s.symbol AND a.exchange = s.exchange
),
changed AS (
    UPDATE assets a
    SET name = CASE WHEN k.curated THEN a.name ELSE k.name END,
        yahoo_symbol = CASE WHEN k.held THEN a.yahoo_symbol
                            ELSE coalesce(a.yahoo_symbol, k.yahoo_symbol) END,
        binance_symbol = CASE WHEN k.held THEN a.binance_symbol
                              ELSE coalesce(a.binance_symbol, k.binance_symbol) END,
        coingecko_id = CASE WHEN k.held THEN a.coingecko_id
                            ELSE coalesce(a.coingecko_id, k.coingecko_id) END,
        active = a.active OR k.revive
    FROM known k
    WHERE a.id = k.id
      AND ((NOT k.curated AND a.name IS DISTINCT FROM k.name)
           OR k.revive
           OR (NOT k.held AND (   (a.yahoo_symbol IS NULL AND k.yahoo_symbol IS NOT NULL)
                               OR (a.binance_symbol IS NULL AND k.binance_symbol IS NOT NULL)
                               OR (a.coingecko_id IS NULL AND k.coingecko_id IS NOT NULL))))
    RETURNING k.revive
)
SELECT count(*), count(*) FILTER (WHERE revive) FROM changed
