-- The identity of the assets whose bars a batch is about to store, locked
-- FOR SHARE until the batch commits (src/queue/transitions.rs). A job
-- fetched under the identity it was claimed with; if the host changed it
-- since, its bars are another series and are not stored. The lock orders
-- the two: an identity change waits for this batch, and its event then
-- drops what the batch stored (sql/events_reidentify.sql).
SELECT id, symbol, asset_type, exchange, currency, yahoo_symbol, binance_symbol, coingecko_id,
       active
FROM assets
WHERE id = ANY($1)
ORDER BY id
FOR SHARE
