-- Per asset of the catalog: holders (tracked_assets' reference count),
-- daily bars stored and their span, who served them, the latest quote,
-- and the splits and dividends recorded.
SELECT a.symbol,
       a.exchange,
       coalesce(t.tracking_users, 0)                                        AS holders,
       count(p.ts)                                                          AS bars,
       min(p.ts)::date                                                      AS first_bar,
       max(p.ts)::date                                                      AS last_bar,
       coalesce(string_agg(DISTINCT p.source, ','), '')                     AS sources,
       q.price::text                                                        AS quote,
       q.currency                                                           AS quote_currency,
       (SELECT count(*) FROM corporate_actions c WHERE c.asset_id = a.id)   AS actions
FROM assets a
LEFT JOIN tracked_assets t ON t.asset_id = a.id
LEFT JOIN asset_prices p ON p.asset_id = a.id AND p.interval = '1d'
LEFT JOIN asset_quotes q ON q.asset_id = a.id
GROUP BY a.id, a.symbol, a.exchange, t.tracking_users, q.price, q.currency
ORDER BY a.id;
