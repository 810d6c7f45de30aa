-- The assets the daemon refreshes: held by at least one portfolio, active.
SELECT a.id, a.symbol, a.asset_type, a.exchange, a.currency,
       a.yahoo_symbol, a.binance_symbol, a.coingecko_id, a.active
FROM tracked_assets t
JOIN assets a ON a.id = t.asset_id
WHERE t.tracking_users > 0
  AND a.active
ORDER BY a.id
