-- Two writes that changed what pricekeeper should hold without an event:
--
-- * TRUNCATE portfolio_transactions fires no row trigger, so holdings and
--   reference counts stayed forever. A statement trigger, before the rows
--   go, appends a 'delete' event for each of them: a truncate is exactly
--   "every row deleted", applied like any delete (commutative, exactly
--   once), at a cost proportional to the rows truncated.
--
-- * A change of an asset's identity (its symbol, type, exchange, currency
--   or a provider symbol) means the stored bars are another instrument's,
--   or in another currency. It becomes a 'reidentify' event: the
--   orchestrator drops the asset's bars and queues the held range again,
--   so two series are never mixed.

alter table portfolio_events
    alter column transaction_id drop not null,
    -- What changed, for a 'reidentify' event.
    add column detail text,
    drop constraint portfolio_events_op_check,
    add constraint portfolio_events_op_check
        check (op in ('insert', 'update', 'delete', 'reidentify')) not valid;

create function portfolio_transactions_emit_truncate() returns trigger
language plpgsql as $$
begin
    insert into portfolio_events
        (op, transaction_id,
         old_portfolio_id, old_asset_id, old_side, old_quantity, old_executed_at)
    select 'delete', id, portfolio_id, asset_id, side, quantity, executed_at
    from portfolio_transactions;
    -- The payload is only a wake-up; the same one again in this
    -- transaction adds nothing.
    perform pg_notify('pricekeeper_events', 'changed');
    return null;
end
$$;

create trigger portfolio_transactions_truncate_events
    before truncate on portfolio_transactions
    for each statement execute function portfolio_transactions_emit_truncate();

create function assets_emit_identity_event() returns trigger
language plpgsql as $$
begin
    insert into portfolio_events (op, new_asset_id, detail)
    values ('reidentify', new.id,
            concat_ws(', ',
                case when old.symbol is distinct from new.symbol
                     then format('symbol %s → %s', old.symbol, new.symbol) end,
                case when old.asset_type is distinct from new.asset_type
                     then format('asset_type %s → %s', old.asset_type, new.asset_type) end,
                case when old.exchange is distinct from new.exchange
                     then format('exchange %s → %s', old.exchange, new.exchange) end,
                case when old.currency is distinct from new.currency
                     then format('currency %s → %s', old.currency, new.currency) end,
                case when old.yahoo_symbol is distinct from new.yahoo_symbol
                     then format('yahoo_symbol %s → %s', old.yahoo_symbol, new.yahoo_symbol) end,
                case when old.binance_symbol is distinct from new.binance_symbol
                     then format('binance_symbol %s → %s', old.binance_symbol, new.binance_symbol) end,
                case when old.coingecko_id is distinct from new.coingecko_id
                     then format('coingecko_id %s → %s', old.coingecko_id, new.coingecko_id) end));
    perform pg_notify('pricekeeper_events', 'changed');
    return null;
end
$$;

-- What names the instrument to the providers, as the catalog rules compare
-- it: case and surrounding spaces, or '' for "none", are not a change (so
-- normalising a legacy lowercase row does not drop its history).
create function asset_identity(a assets) returns text[]
language sql immutable parallel safe as $$
    select array[upper(btrim(a.symbol)), a.asset_type::text, upper(btrim(a.exchange)),
                 nullif(upper(btrim(a.currency)), ''), nullif(upper(btrim(a.yahoo_symbol)), ''),
                 nullif(upper(btrim(a.binance_symbol)), ''), nullif(lower(btrim(a.coingecko_id)), '')]
$$;

create trigger assets_identity_event
    after update on assets
    for each row
    when (asset_identity(old) is distinct from asset_identity(new))
    execute function assets_emit_identity_event();
