-- The staging table of the bar write path (src/queue/store/bars.rs): filled by
-- COPY, read by queue_replace_daily.sql and queue_upsert_prices.sql,
-- emptied at commit. Sent as one simple query; the setting keeps the
-- "already exists" notice of every later batch out of the logs.
SET LOCAL client_min_messages = warning;
CREATE TEMP TABLE IF NOT EXISTS pricekeeper_bars_stage (
    LIKE asset_prices INCLUDING DEFAULTS,
    -- For the same-date cleanup's lookups when bars are already stored.
    PRIMARY KEY (asset_id, interval, ts)
) ON COMMIT DELETE ROWS;
-- Empty already, unless an earlier write in this same transaction used it.
DELETE FROM pricekeeper_bars_stage;
