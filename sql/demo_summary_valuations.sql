-- Per portfolio and currency: holdings at the latest quotes and their cost.
SELECT portfolio_id::text,
       currency,
       round(market_value, 2)::text AS market_value,
       round(cost_basis, 2)::text   AS cost_basis
FROM portfolio_valuations
ORDER BY portfolio_id, currency;
