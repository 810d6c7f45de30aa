-- One daily bar per asset and trading date (src/queue/store.rs), run just
-- before the upsert of the same bars: a stored daily bar less than 12 hours
-- from an incoming one, at another instant, is the same trading date
-- stamped differently (Yahoo's live bar at its last trade time, a session
-- open moved by the provider) and gives way to it. Bars of neighbouring
-- trading dates are at least 23 hours apart, so none is touched.
DELETE FROM asset_prices p
USING unnest($1::bigint[], $2::timestamptz[]) AS r (asset_id, ts)
WHERE p.asset_id = r.asset_id
  AND p.interval = '1d'
  AND p.ts > r.ts - interval '12 hours'
  AND p.ts < r.ts + interval '12 hours'
  AND p.ts <> r.ts
