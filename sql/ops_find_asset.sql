-- Assets named $1 (as written, or upper-cased as the catalog stores
-- symbols), on exchange $2 when given (src/ops/actions.rs).
SELECT id, symbol, exchange, asset_type::text AS asset_type, currency, active
FROM assets
WHERE symbol IN (btrim($1), upper(btrim($1)))
  AND ($2::text IS NULL OR exchange = upper(btrim($2)))
ORDER BY exchange
LIMIT 20
