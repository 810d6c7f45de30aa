-- Issue 9: the right instrument. The exchanges pricekeeper knows (the
-- twin of src/exchanges.rs; a test keeps them equal), and rules on what
-- the host application writes into `assets`:
--   * symbols and MICs are upper-cased (provider symbols too, CoinGecko ids
--     lower-cased) so `aapl`/`xnas` is not a second AAPL;
--   * a symbol is 1-64 printable ASCII characters without space, ',' or '%',
--     and not '.' or '..' (URL parsing would silently change it into
--     another instrument's symbol);
--   * `exchange` must be a known MIC (or CRYPTO / FX).
-- The checks are added NOT VALID, so existing rows are not scanned under
-- the ACCESS EXCLUSIVE lock this statement takes; 0021 validates them
-- under a weaker lock.

create table exchanges (
    mic          text primary key,
    name         text not null,
    -- Appended to a ticker for Yahoo ('.L'); '' for US venues and futures.
    yahoo_suffix text not null default '',
    country      text,
    currency     text
);

insert into exchanges (mic, name, yahoo_suffix, country, currency) values
    ('XNYS', 'New York Stock Exchange', '', 'US', 'USD'),
    ('XNAS', 'Nasdaq', '', 'US', 'USD'),
    ('XASE', 'NYSE American', '', 'US', 'USD'),
    ('ARCX', 'NYSE Arca', '', 'US', 'USD'),
    ('BATS', 'Cboe BZX', '', 'US', 'USD'),
    ('OTCM', 'OTC Markets', '', 'US', 'USD'),
    ('XCME', 'Chicago Mercantile Exchange', '', 'US', 'USD'),
    ('XCBT', 'Chicago Board of Trade', '', 'US', 'USD'),
    ('XNYM', 'New York Mercantile Exchange', '', 'US', 'USD'),
    ('XCEC', 'COMEX', '', 'US', 'USD'),
    ('XTSE', 'Toronto Stock Exchange', '.TO', 'CA', 'CAD'),
    ('XTSX', 'TSX Venture Exchange', '.V', 'CA', 'CAD'),
    ('BVMF', 'B3 (São Paulo)', '.SA', 'BR', 'BRL'),
    ('XMEX', 'Bolsa Mexicana de Valores', '.MX', 'MX', 'MXN'),
    ('XLON', 'London Stock Exchange', '.L', 'GB', 'GBP'),
    ('XETR', 'Xetra', '.DE', 'DE', 'EUR'),
    ('XFRA', 'Frankfurt Stock Exchange', '.F', 'DE', 'EUR'),
    ('XPAR', 'Euronext Paris', '.PA', 'FR', 'EUR'),
    ('XAMS', 'Euronext Amsterdam', '.AS', 'NL', 'EUR'),
    ('XBRU', 'Euronext Brussels', '.BR', 'BE', 'EUR'),
    ('XLIS', 'Euronext Lisbon', '.LS', 'PT', 'EUR'),
    ('XDUB', 'Euronext Dublin', '.IR', 'IE', 'EUR'),
    ('XMIL', 'Borsa Italiana', '.MI', 'IT', 'EUR'),
    ('XMAD', 'Bolsa de Madrid', '.MC', 'ES', 'EUR'),
    ('XSWX', 'SIX Swiss Exchange', '.SW', 'CH', 'CHF'),
    ('XWBO', 'Wiener Börse', '.VI', 'AT', 'EUR'),
    ('XSTO', 'Nasdaq Stockholm', '.ST', 'SE', 'SEK'),
    ('XHEL', 'Nasdaq Helsinki', '.HE', 'FI', 'EUR'),
    ('XCSE', 'Nasdaq Copenhagen', '.CO', 'DK', 'DKK'),
    ('XOSL', 'Oslo Børs', '.OL', 'NO', 'NOK'),
    ('XWAR', 'Warsaw Stock Exchange', '.WA', 'PL', 'PLN'),
    ('XIST', 'Borsa Istanbul', '.IS', 'TR', 'TRY'),
    ('XHKG', 'Hong Kong Stock Exchange', '.HK', 'HK', 'HKD'),
    ('XTKS', 'Tokyo Stock Exchange', '.T', 'JP', 'JPY'),
    ('XASX', 'Australian Securities Exchange', '.AX', 'AU', 'AUD'),
    ('XNZE', 'New Zealand Exchange', '.NZ', 'NZ', 'NZD'),
    ('XSES', 'Singapore Exchange', '.SI', 'SG', 'SGD'),
    ('XKRX', 'Korea Exchange', '.KS', 'KR', 'KRW'),
    ('XTAI', 'Taiwan Stock Exchange', '.TW', 'TW', 'TWD'),
    ('XSHG', 'Shanghai Stock Exchange', '.SS', 'CN', 'CNY'),
    ('XSHE', 'Shenzhen Stock Exchange', '.SZ', 'CN', 'CNY'),
    ('XBOM', 'BSE (Bombay)', '.BO', 'IN', 'INR'),
    ('XNSE', 'National Stock Exchange of India', '.NS', 'IN', 'INR'),
    ('XTAE', 'Tel Aviv Stock Exchange', '.TA', 'IL', 'ILS'),
    ('XJSE', 'Johannesburg Stock Exchange', '.JO', 'ZA', 'ZAR'),
    ('CRYPTO', 'Crypto venues (Binance, CoinGecko)', '', null, null),
    ('FX', 'Foreign exchange', '', null, null);

create function symbol_is_valid(s text) returns boolean
language sql immutable parallel safe as $$
    select s is null
        or (s ~ '^[!-~]{1,64}$'
            and s !~ '[,%]'
            and s not in ('.', '..'))
$$;

-- Normalizes before the checks and the unique (symbol, exchange) key see
-- the row. btrim() removes spaces only: a tab or newline stays and is
-- refused by the check. A blank provider symbol means "derive it".
create function assets_normalize() returns trigger
language plpgsql as $$
begin
    new.symbol := upper(btrim(new.symbol));
    new.exchange := upper(btrim(new.exchange));
    new.currency := nullif(upper(btrim(new.currency)), '');
    new.yahoo_symbol := nullif(upper(btrim(new.yahoo_symbol)), '');
    new.binance_symbol := nullif(upper(btrim(new.binance_symbol)), '');
    new.coingecko_id := nullif(lower(btrim(new.coingecko_id)), '');
    return new;
end
$$;

create trigger assets_normalize
    before insert or update on assets
    for each row execute function assets_normalize();

alter table assets
    add constraint assets_symbol_valid check (symbol_is_valid(symbol)) not valid,
    add constraint assets_yahoo_symbol_valid check (symbol_is_valid(yahoo_symbol)) not valid,
    add constraint assets_binance_symbol_valid check (symbol_is_valid(binance_symbol)) not valid,
    add constraint assets_coingecko_id_valid check (symbol_is_valid(coingecko_id)) not valid,
    add constraint assets_exchange_known foreign key (exchange) references exchanges (mic) not valid;
