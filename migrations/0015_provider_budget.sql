-- A request budget per provider shared by every process using this
-- database: N workers behind one egress IP together stay within the
-- provider's allowance, instead of N times it.
--
-- It is a token bucket kept as one instant per provider (GCRA): `tat` is
-- when the bucket would be full again. Taking k tokens moves it k
-- emission intervals on; a request may go while `tat` is at most the
-- tolerance (the burst) ahead of now. Processes take small slices of
-- tokens (about a tenth of a second's worth) so a busy provider costs one
-- round trip per slice, not per request.
create table provider_budget (
    provider text        primary key,
    tat      timestamptz not null default now()
);

-- Takes up to `want` tokens of `provider`'s budget at the database's
-- clock: `granted` tokens now, or none and how long until one is free.
-- `every` is the time one token is worth, `tolerance` how far ahead of
-- now the bucket may run (the burst less one token). The caller's rate
-- decides both, so processes configured alike share one bucket.
create function pricekeeper_take_budget(
    p_provider text,
    p_want integer,
    p_every interval,
    p_tolerance interval,
    out granted integer,
    out wait interval
)
language plpgsql as $$
declare
    t    timestamptz := clock_timestamp();
    base timestamptz;
begin
    insert into provider_budget (provider, tat) values (p_provider, t)
    on conflict (provider) do nothing;
    -- The row lock serializes takers of one provider.
    select greatest(b.tat, t) into base
    from provider_budget b
    where b.provider = p_provider
    for update;
    granted := least(
        p_want,
        greatest(0, floor(extract(epoch from (t + p_tolerance - base))
                          / extract(epoch from p_every))::integer + 1)
    );
    if granted > 0 then
        update provider_budget
        set tat = base + granted * p_every
        where provider = p_provider;
        wait := interval '0';
    else
        wait := base - p_tolerance - t;
    end if;
end
$$;
