-- The outbox. A trigger on portfolio_transactions appends one row per
-- insert, update or delete, in the writer's own transaction, and wakes
-- listeners with pg_notify. The row is the truth; the notification is only a
-- wake-up, so a listener that was down loses nothing (it catches up from the
-- unprocessed rows).

create table portfolio_events (
    id              bigint generated always as identity primary key,
    op              text        not null check (op in ('insert', 'update', 'delete')),
    transaction_id  bigint      not null,
    -- The transaction as it was before (update, delete) and after (insert,
    -- update): applying an event is "undo old, apply new".
    old_portfolio_id uuid,
    old_asset_id     bigint,
    old_side         text,
    old_quantity     numeric,
    old_executed_at  timestamptz,
    new_portfolio_id uuid,
    new_asset_id     bigint,
    new_side         text,
    new_quantity     numeric,
    new_executed_at  timestamptz,
    created_at      timestamptz not null default now(),
    -- Set by the orchestrator in the same transaction as the event's effects.
    processed_at    timestamptz,
    -- Why the event could not be applied (null when it was); such an event is
    -- still marked processed so it is never retried forever.
    error           text
);

-- The orchestrator's claim scans only what is left to do.
create index portfolio_events_unprocessed on portfolio_events (id) where processed_at is null;

create function portfolio_transactions_emit_event() returns trigger
language plpgsql as $$
declare
    event_id bigint;
begin
    if tg_op = 'INSERT' then
        insert into portfolio_events
            (op, transaction_id,
             new_portfolio_id, new_asset_id, new_side, new_quantity, new_executed_at)
        values
            ('insert', new.id,
             new.portfolio_id, new.asset_id, new.side, new.quantity, new.executed_at)
        returning id into event_id;
    elsif tg_op = 'UPDATE' then
        insert into portfolio_events
            (op, transaction_id,
             old_portfolio_id, old_asset_id, old_side, old_quantity, old_executed_at,
             new_portfolio_id, new_asset_id, new_side, new_quantity, new_executed_at)
        values
            ('update', new.id,
             old.portfolio_id, old.asset_id, old.side, old.quantity, old.executed_at,
             new.portfolio_id, new.asset_id, new.side, new.quantity, new.executed_at)
        returning id into event_id;
    else
        insert into portfolio_events
            (op, transaction_id,
             old_portfolio_id, old_asset_id, old_side, old_quantity, old_executed_at)
        values
            ('delete', old.id,
             old.portfolio_id, old.asset_id, old.side, old.quantity, old.executed_at)
        returning id into event_id;
    end if;

    -- Delivered only if the writer commits, together with the row above.
    perform pg_notify('pricekeeper_events', event_id::text);
    return null;
end
$$;

create trigger portfolio_transactions_event
    after insert or update or delete on portfolio_transactions
    for each row execute function portfolio_transactions_emit_event();
