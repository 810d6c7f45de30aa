-- Values PostgreSQL accepts that no purchase can have. `executed_at =
-- 'infinity'` decoded into a panic in every orchestrator, a date before
-- 4713 BC gave a backfill start outside the date type, and NaN passed
-- `quantity > 0` (PostgreSQL sorts NaN above every number) and made a
-- holding that could never close. `< 'Infinity'` refuses NaN and both
-- infinities at once.
--
-- The checks are added NOT VALID: a host table written before them is not
-- scanned under an exclusive lock here. 0011 validates them separately.
--
-- The day of slack for future dates covers clocks and time zones of the
-- host; now() in a CHECK only ever loosens with time, so a row that passed
-- once keeps passing (an update, a dump and restore).

-- One definition of "usable", shared by these checks and the orchestrator,
-- which meets rows written before the checks existed.
create function pricekeeper_usable_quantity(q numeric) returns boolean
language sql immutable parallel safe as $$
    select q > '-Infinity'::numeric and q < 'Infinity'::numeric
$$;

create function pricekeeper_usable_executed_at(t timestamptz) returns boolean
language sql immutable parallel safe as $$
    select isfinite(t)
       and t >= '1900-01-01 00:00:00+00'::timestamptz
       and t < '10000-01-01 00:00:00+00'::timestamptz
$$;

alter table portfolio_transactions
    add constraint portfolio_transactions_quantity_finite
        check (pricekeeper_usable_quantity(quantity)) not valid,
    add constraint portfolio_transactions_price_finite
        check (pricekeeper_usable_quantity(price)) not valid,
    add constraint portfolio_transactions_executed_at_range
        check (pricekeeper_usable_executed_at(executed_at)
               and executed_at <= now() + interval '1 day') not valid;

-- Why an outbox event cannot be applied as written, or NULL. Events are
-- immutable, so this is a function of the row alone: a leg it calls
-- unusable is skipped when the row is inserted and again when it is
-- updated or deleted, and holdings stay the sum of the usable legs.
create function pricekeeper_event_problem(
    new_quantity    numeric,
    old_quantity    numeric,
    new_executed_at timestamptz
) returns text
language sql immutable parallel safe as $$
    select nullif(concat_ws('; ',
        case when new_quantity is not null and not pricekeeper_usable_quantity(new_quantity)
             then format('quantity %s is not a finite number: not applied to holdings', new_quantity) end,
        case when old_quantity is not null and not pricekeeper_usable_quantity(old_quantity)
             then format('the previous quantity %s was not a finite number: it was never applied, so nothing is undone',
                         old_quantity) end,
        case when new_executed_at is not null and not pricekeeper_usable_executed_at(new_executed_at)
             then format('executed_at %s is not a usable date: holdings updated, history planned as for a purchase today',
                         new_executed_at) end), '')
$$;
