-- Validates 0020's checks on rows written before them, under SHARE UPDATE
-- EXCLUSIVE (reads and writes of `assets` go on meanwhile). A row that
-- breaks a rule does not stop the migration: the constraint stays NOT
-- VALID (still enforced on every new write), a warning names it, and the
-- worker refuses such an asset's jobs with the reason.
do $$
declare
    c text;
begin
    foreach c in array array['assets_symbol_valid', 'assets_yahoo_symbol_valid',
                             'assets_binance_symbol_valid', 'assets_coingecko_id_valid',
                             'assets_exchange_known'] loop
        begin
            execute format('alter table assets validate constraint %I', c);
        exception when check_violation or foreign_key_violation then
            raise warning 'assets: existing rows break %; it stays NOT VALID (enforced for new writes): %',
                c, sqlerrm;
        end;
    end loop;
end
$$;
