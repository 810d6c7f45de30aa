-- The demo's catalog, written as a host application writes its own: US and
-- London stocks, an ETF, two coins Binance lists and one only CoinGecko
-- has. Provider symbols are left to pricekeeper's derivation (VOD on XLON
-- is VOD.L at Yahoo, BTC is BTCUSDT at Binance), except CoinGecko's id,
-- which is never derived.
INSERT INTO assets (symbol, asset_type, exchange, currency, name, coingecko_id) VALUES
    ('AAPL', 'stock',  'XNAS',   'USD', 'Apple Inc.',               NULL),
    ('NVDA', 'stock',  'XNAS',   'USD', 'NVIDIA Corporation',       NULL),
    ('MSFT', 'stock',  'XNAS',   'USD', 'Microsoft Corporation',    NULL),
    ('VOD',  'stock',  'XLON',   'GBP', 'Vodafone Group plc',       NULL),
    ('SPY',  'etf',    'ARCX',   'USD', 'SPDR S&P 500 ETF Trust',   NULL),
    ('BTC',  'crypto', 'CRYPTO', 'USD', 'Bitcoin',                  'bitcoin'),
    ('ETH',  'crypto', 'CRYPTO', 'USD', 'Ethereum',                 'ethereum'),
    ('XMR',  'crypto', 'CRYPTO', 'USD', 'Monero (not on Binance)',  'monero');
