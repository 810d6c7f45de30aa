-- The outbox trigger wakes listeners once per transaction, not once per row.
--
-- A notifying transaction holds PostgreSQL's cluster-wide notify queue lock
-- from its first pg_notify until it commits, so every notification costs the
-- host's writes throughput. A constant payload is de-duplicated within a
-- transaction by PostgreSQL itself: however many rows a transaction writes,
-- listeners get one wake-up, and they read the outbox rows anyway (the
-- payload was only ever a hint).
create or replace function portfolio_transactions_emit_event() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into portfolio_events
            (op, transaction_id,
             new_portfolio_id, new_asset_id, new_side, new_quantity, new_executed_at)
        values
            ('insert', new.id,
             new.portfolio_id, new.asset_id, new.side, new.quantity, new.executed_at);
    elsif tg_op = 'UPDATE' then
        insert into portfolio_events
            (op, transaction_id,
             old_portfolio_id, old_asset_id, old_side, old_quantity, old_executed_at,
             new_portfolio_id, new_asset_id, new_side, new_quantity, new_executed_at)
        values
            ('update', new.id,
             old.portfolio_id, old.asset_id, old.side, old.quantity, old.executed_at,
             new.portfolio_id, new.asset_id, new.side, new.quantity, new.executed_at);
    else
        insert into portfolio_events
            (op, transaction_id,
             old_portfolio_id, old_asset_id, old_side, old_quantity, old_executed_at)
        values
            ('delete', old.id,
             old.portfolio_id, old.asset_id, old.side, old.quantity, old.executed_at);
    end if;

    -- Delivered only if the writer commits, together with the row above;
    -- the same payload again in this transaction adds nothing.
    perform pg_notify('pricekeeper_events', 'changed');
    return null;
end
$$;
