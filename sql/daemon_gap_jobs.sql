-- For runs of missing sessions ($1 asset, $2 first, $3 last): the newest
-- backfill that covered the run, if any: its status and why it ended as it
-- did. An active one will fill the run; a finished one that left it empty
-- means the provider cannot serve it.
SELECT r.asset_id, r.gap_from, r.gap_to, q.status::text, q.error_message, q.provider,
       EXISTS (SELECT 1 FROM price_gaps g
               WHERE g.asset_id = r.asset_id AND g.interval = '1d'
                 AND g.gap_from = r.gap_from AND g.gap_to = r.gap_to) AS recorded
FROM unnest($1::bigint[], $2::date[], $3::date[]) AS r (asset_id, gap_from, gap_to)
LEFT JOIN LATERAL (
    SELECT status, error_message, provider
    FROM backfill_queue q
    WHERE q.asset_id = r.asset_id
      AND q.start_date <= r.gap_from
      AND q.end_date >= r.gap_to
    ORDER BY q.id DESC
    LIMIT 1
) q ON true
