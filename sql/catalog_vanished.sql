-- Assets source $1 listed before and lists no more. Each is deactivated
-- when it is active, no portfolio holds it and no other source still
-- lists it; otherwise its listing is marked vanished and it is looked at
-- again on the next run (a held asset is reported, every run, until it is
-- sold). Deleting is never done: its history stays.
WITH gone AS (
    SELECT l.asset_id,
           a.symbol,
           a.exchange,
           a.active,
           a.id IN (SELECT asset_id FROM catalog_held_assets) AS held,
           EXISTS (
               SELECT 1 FROM catalog_listings o
               WHERE o.asset_id = l.asset_id AND o.source <> $1 AND o.vanished_at IS NULL
           ) AS listed_elsewhere
    FROM catalog_listings l
    JOIN assets a ON a.id = l.asset_id
    WHERE l.source = $1
      AND NOT l.deactivated
      AND NOT EXISTS (
          SELECT 1 FROM catalog_stage s WHERE s.symbol = a.symbol AND s.exchange = a.exchange
      )
),
marked AS (
    UPDATE catalog_listings l
    SET vanished_at = coalesce(l.vanished_at, now()),
        deactivated = g.active AND NOT g.held AND NOT g.listed_elsewhere
    FROM gone g
    WHERE l.asset_id = g.asset_id AND l.source = $1
    RETURNING l.asset_id, l.deactivated
),
deactivated AS (
    UPDATE assets a
    SET active = false
    FROM marked m
    WHERE a.id = m.asset_id AND m.deactivated
    RETURNING a.id
)
SELECT g.symbol, g.exchange, g.held, g.active, g.listed_elsewhere,
       g.asset_id IN (SELECT id FROM deactivated) AS deactivated
FROM gone g
ORDER BY g.symbol, g.exchange
