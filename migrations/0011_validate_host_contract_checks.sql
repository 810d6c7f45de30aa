-- Validates 0010's checks. VALIDATE takes a lock that lets the host keep
-- writing. A table that already holds a row the checks refuse keeps the
-- check NOT VALID (new rows are still checked) and says so, rather than
-- stopping every pricekeeper process from starting: such rows are listed by
-- sql/ops_event_problems.sql, and their events are flagged, not applied.
do $$
declare
    c text;
begin
    foreach c in array array['portfolio_transactions_quantity_finite',
                             'portfolio_transactions_price_finite',
                             'portfolio_transactions_executed_at_range'] loop
        begin
            execute format('alter table portfolio_transactions validate constraint %I', c);
        exception when check_violation then
            raise warning 'portfolio_transactions holds rows that break %; the check stays NOT VALID '
                          '(new rows are checked). See sql/ops_event_problems.sql.', c;
        end;
    end loop;
end
$$;
