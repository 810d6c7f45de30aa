-- Which assets source $1 lists now: seen again, or listed again after
-- they vanished. An asset listed again is the catalog's to deactivate
-- anew: the other sources' marks of having deactivated it are cleared
-- (so a later deactivation by the host is never undone by a revival).
WITH listed AS (
    SELECT a.id
    FROM catalog_stage s
    JOIN assets a ON a.symbol = s.symbol AND a.exchange = s.exchange
),
cleared AS (
    UPDATE catalog_listings
    SET deactivated = false
    WHERE source <> $1 AND deactivated AND asset_id IN (SELECT id FROM listed)
    RETURNING 1
)
INSERT INTO catalog_listings AS l (asset_id, source)
SELECT id, $1 FROM listed
ON CONFLICT (asset_id, source) DO UPDATE
SET last_seen_at = now(),
    vanished_at = NULL,
    deactivated = false
