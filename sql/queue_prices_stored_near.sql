-- Whether any bar is already stored near the incoming ones (src/queue/store/bars.rs):
-- one index range scan per asset and interval over the span of its
-- incoming bars, widened by 12 hours for daily bars (the same-date rule of
-- queue_replace_daily.sql). When none is, the bars can be copied straight
-- into asset_prices: there is nothing to update and nothing to replace.
SELECT EXISTS (
    SELECT 1
    FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::timestamptz[])
         AS span (asset_id, interval, first_ts, last_ts)
    WHERE EXISTS (
        SELECT 1 FROM asset_prices p
        WHERE p.asset_id = span.asset_id
          AND p.interval = span.interval
          AND p.ts > span.first_ts - CASE WHEN span.interval = '1d' THEN interval '12 hours' ELSE interval '0' END
          AND p.ts < span.last_ts + CASE WHEN span.interval = '1d' THEN interval '12 hours' ELSE interval '0' END
    )
)
