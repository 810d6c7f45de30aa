-- Apply the claimed events to holdings and report, per touched position,
-- whether it was open before and is open after.
--
-- An event is "undo the old row, apply the new one": an insert has only a
-- new row, a delete only an old one, an update both. Holdings mirror the
-- sum of the host's transactions, so applying is commutative and several
-- orchestrators may apply events in any order and still agree.
--
-- `before` is derived as after - delta: ON CONFLICT DO UPDATE works on the
-- latest committed row under its lock, so that is exact even when another
-- orchestrator changed the row a moment ago.
WITH legs AS (
    SELECT old_portfolio_id AS portfolio_id,
           old_asset_id     AS asset_id,
           CASE old_side WHEN 'buy' THEN -old_quantity ELSE old_quantity END AS delta
    FROM portfolio_events
    WHERE id = ANY($1) AND old_asset_id IS NOT NULL
      -- A NaN or infinite quantity was never applied (see
      -- pricekeeper_event_problem): nothing to undo.
      AND pricekeeper_usable_quantity(old_quantity)
    UNION ALL
    SELECT new_portfolio_id,
           new_asset_id,
           CASE new_side WHEN 'buy' THEN new_quantity ELSE -new_quantity END
    FROM portfolio_events
    WHERE id = ANY($1) AND new_asset_id IS NOT NULL
      AND pricekeeper_usable_quantity(new_quantity)
),
deltas AS (
    SELECT portfolio_id, asset_id, sum(delta) AS delta
    FROM legs
    GROUP BY portfolio_id, asset_id
    HAVING sum(delta) <> 0
),
applied AS (
    INSERT INTO holdings (portfolio_id, asset_id, quantity)
    SELECT portfolio_id, asset_id, delta
    FROM deltas
    -- A fixed lock order keeps concurrent orchestrators from deadlocking.
    ORDER BY portfolio_id, asset_id
    ON CONFLICT (portfolio_id, asset_id) DO UPDATE
        SET quantity = holdings.quantity + excluded.quantity,
            updated_at = now()
    RETURNING portfolio_id, asset_id, quantity
)
SELECT a.portfolio_id,
       a.asset_id,
       a.quantity - d.delta > 0 AS was_open,
       a.quantity > 0           AS is_open,
       a.quantity::text         AS quantity
FROM applied a
JOIN deltas d USING (portfolio_id, asset_id)
