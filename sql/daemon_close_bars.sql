-- The day's bar from the price taken right after the session closed: the
-- close only (a quote carries no open, high or low). A bar already stored
-- (e.g. a full one from a backfill) is kept; a later backfill of the day
-- replaces this one with the provider's full bar.
INSERT INTO asset_prices (asset_id, interval, ts, close, currency, source, flags)
SELECT r.asset_id, '1d', r.ts, r.close, r.currency, r.source, '{closing_quote}'
FROM unnest($1::bigint[], $2::timestamptz[], $3::numeric[], $4::text[], $5::text[])
     AS r (asset_id, ts, close, currency, source)
ON CONFLICT (asset_id, interval, ts) DO NOTHING
