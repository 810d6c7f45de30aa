-- Add each asset's change in holders to its reference count, and return
-- what the backfill planner needs. Rows are created for assets that gained
-- a holder or a buy, and written only when their count changes;
-- last_tracked_at moves with each change while the asset has holders and
-- once more when the last one leaves.
--
-- Gains and losses go through separate statements because a row inserted
-- with a negative count would break the CHECK before ON CONFLICT is
-- considered. A loss always finds its row: the position it closes was
-- opened by an earlier, committed event.
WITH changes AS (
    SELECT asset_id, users_delta
    FROM unnest($1::bigint[], $2::integer[]) AS c(asset_id, users_delta)
),
gained AS (
    INSERT INTO tracked_assets AS t (asset_id, tracking_users)
    SELECT asset_id, users_delta
    FROM changes
    WHERE users_delta >= 0
    ORDER BY asset_id
    ON CONFLICT (asset_id) DO UPDATE
        SET tracking_users = t.tracking_users + excluded.tracking_users,
            last_tracked_at = CASE
                WHEN t.tracking_users + excluded.tracking_users > 0 THEN now()
                ELSE t.last_tracked_at
            END
        -- A buy by a portfolio that already holds the asset changes no
        -- count: no new row version. The row is still locked, and not
        -- returned: src/events/apply.rs reads it after this statement.
        WHERE excluded.tracking_users <> 0
    RETURNING asset_id, tracking_users, history_from, history_to
),
lost AS (
    UPDATE tracked_assets AS t
    SET tracking_users = t.tracking_users + c.users_delta,
        last_tracked_at = now()
    FROM changes c
    WHERE c.users_delta < 0 AND t.asset_id = c.asset_id
    RETURNING t.asset_id, t.tracking_users, t.history_from, t.history_to
),
tracked AS (
    SELECT * FROM gained
    UNION ALL
    SELECT * FROM lost
)
SELECT t.asset_id,
       t.tracking_users - c.users_delta AS users_before,
       t.tracking_users                 AS users_after,
       t.history_from,
       t.history_to,
       a.active,
       a.symbol
FROM tracked t
JOIN changes c USING (asset_id)
JOIN assets a ON a.id = t.asset_id
