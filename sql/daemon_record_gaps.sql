-- Record runs of sessions no provider could serve, with the reason.
INSERT INTO price_gaps (asset_id, interval, gap_from, gap_to, reason)
SELECT asset_id, '1d', gap_from, gap_to, reason
FROM unnest($1::bigint[], $2::date[], $3::date[], $4::text[]) AS g (asset_id, gap_from, gap_to, reason)
ON CONFLICT (asset_id, interval, gap_from, gap_to) DO NOTHING
