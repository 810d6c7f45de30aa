-- The portfolio performance cache for every portfolio holding one of $1:
-- per currency, the holdings at their latest quotes, the cost basis at the
-- average buy price, and valued_at = the oldest quote used (how stale the
-- value may be). Holdings without a quote yet are left out.
WITH touched AS (
    SELECT DISTINCT portfolio_id
    FROM holdings
    WHERE asset_id = ANY($1)
),
cost AS (
    SELECT t.portfolio_id, t.asset_id,
           sum(t.price * t.quantity) / nullif(sum(t.quantity), 0) AS avg_price
    FROM portfolio_transactions t
    JOIN touched USING (portfolio_id)
    WHERE t.side = 'buy'
    GROUP BY t.portfolio_id, t.asset_id
),
valued AS (
    SELECT h.portfolio_id,
           coalesce(q.currency, a.currency, 'USD') AS currency,
           sum(h.quantity * q.price) AS market_value,
           sum(h.quantity * coalesce(c.avg_price, 0)) AS cost_basis,
           min(q.quoted_at) AS valued_at
    FROM holdings h
    JOIN touched USING (portfolio_id)
    JOIN asset_quotes q ON q.asset_id = h.asset_id
    JOIN assets a ON a.id = h.asset_id
    LEFT JOIN cost c ON c.portfolio_id = h.portfolio_id AND c.asset_id = h.asset_id
    WHERE h.quantity > 0
    GROUP BY h.portfolio_id, coalesce(q.currency, a.currency, 'USD')
),
gone AS (
    -- A currency a portfolio no longer holds anything in.
    DELETE FROM portfolio_valuations v
    USING touched
    WHERE v.portfolio_id = touched.portfolio_id
      AND NOT EXISTS (SELECT 1 FROM valued
                      WHERE valued.portfolio_id = v.portfolio_id
                        AND valued.currency = v.currency)
)
INSERT INTO portfolio_valuations AS v (portfolio_id, currency, market_value, cost_basis, valued_at)
SELECT portfolio_id, currency, market_value, cost_basis, valued_at
FROM valued
ON CONFLICT (portfolio_id, currency) DO UPDATE
SET market_value = excluded.market_value,
    cost_basis = excluded.cost_basis,
    valued_at = excluded.valued_at
