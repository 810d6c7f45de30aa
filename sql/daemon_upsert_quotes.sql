-- The latest price per asset. An older quote (a slow provider answering
-- after a newer one was stored) never replaces a newer one.
WITH q AS (
    INSERT INTO asset_quotes AS q (asset_id, price, currency, quoted_at, source, fetched_at)
    SELECT r.asset_id, r.price, r.currency, r.quoted_at, r.source, now()
    FROM unnest($1::bigint[], $2::numeric[], $3::text[], $4::timestamptz[], $5::text[])
         AS r (asset_id, price, currency, quoted_at, source)
    ON CONFLICT (asset_id) DO UPDATE
    SET price = excluded.price,
        currency = excluded.currency,
        quoted_at = excluded.quoted_at,
        source = excluded.source,
        fetched_at = excluded.fetched_at
    WHERE q.quoted_at <= excluded.quoted_at
    RETURNING asset_id
)
UPDATE tracked_assets t
SET last_price_update = now()
WHERE t.asset_id = ANY($1)
