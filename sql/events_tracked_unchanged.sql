-- The tracked_assets rows events_track_assets.sql left unchanged (a buy by
-- a portfolio already holding the asset), in the shape it returns. A
-- statement of its own: its snapshot sees the latest committed coverage,
-- and the rows are locked by this transaction since that statement.
SELECT t.asset_id,
       t.tracking_users AS users_before,
       t.tracking_users AS users_after,
       t.history_from,
       t.history_to,
       a.active,
       a.symbol
FROM tracked_assets t
JOIN assets a ON a.id = t.asset_id
WHERE t.asset_id = ANY($1::bigint[])
