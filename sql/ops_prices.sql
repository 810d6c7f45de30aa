-- Stored daily bars of asset $1 whose start falls in [$2, $3) (UTC),
-- oldest first, at most $4 (src/commands/prices.rs).
SELECT ts, open, high, low, close, adj_close, volume, currency, source, flags
FROM asset_prices
WHERE asset_id = $1
  AND interval = '1d'
  AND ts >= $2
  AND ts < $3
ORDER BY ts
LIMIT $4
