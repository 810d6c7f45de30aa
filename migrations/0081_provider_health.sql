-- What makes a provider unusable beyond rate limits (src/queue/ledger.rs
-- writes these with the rest of provider_state; /health/sources and the
-- status page read them):
-- * unavailable_since/_reason: refused for good for this deployment
--   (Binance's 451 from a restricted location, on both its hosts). Kept
--   across restarts; every process reads it back and stops asking. Clear
--   both columns after moving the deployment.
-- * empty_streak/last_data_at: answers that were well-formed but held no
--   data, in a row across every symbol, and when data last came. A long
--   streak is an API that changed silently, not thousands of unknown
--   symbols.
alter table provider_state
    add column unavailable_since  timestamptz,
    add column unavailable_reason text,
    add column empty_streak       integer not null default 0,
    add column last_data_at       timestamptz;
