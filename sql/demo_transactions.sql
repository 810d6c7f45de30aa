-- Three portfolios' buys and sells, as a host application writes them.
-- Each insert fires the outbox trigger; nothing else is needed to start
-- tracking an asset and fetching its history. Carol sells all her BTC, so
-- BTC ends with one holder, not two.
WITH portfolio (name, id) AS (VALUES
        ('alice', '00000000-0000-4000-8000-00000000a11c'::uuid),
        ('bob',   '00000000-0000-4000-8000-000000000b0b'::uuid),
        ('carol', '00000000-0000-4000-8000-0000000ca201'::uuid)),
     trade (who, symbol, side, quantity, price, days_ago) AS (VALUES
        ('alice', 'AAPL', 'buy',    10,  188.20, 120),
        ('alice', 'VOD',  'buy',   500,    0.71,  90),
        ('alice', 'SPY',  'buy',     5,  512.40,  75),
        ('alice', 'BTC',  'buy',  0.10, 61250.00,  60),
        ('bob',   'AAPL', 'buy',     5,  190.05, 100),
        ('bob',   'NVDA', 'buy',    20,  118.90,  80),
        ('bob',   'ETH',  'buy',     2,  3010.00,  70),
        ('bob',   'XMR',  'buy',    15,   160.00,  45),
        ('carol', 'MSFT', 'buy',     8,  421.10,  95),
        ('carol', 'SPY',  'buy',     3,  515.00,  50),
        ('carol', 'BTC',  'buy',  0.05, 60100.00,  40),
        ('carol', 'BTC',  'sell', 0.05, 63400.00,  10))
INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
SELECT p.id, a.id, t.side, t.quantity, t.price, now() - make_interval(days => t.days_ago)
FROM trade t
JOIN portfolio p ON p.name = t.who
JOIN assets a ON a.symbol = t.symbol;
