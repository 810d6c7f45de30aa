-- One active daemon: a leader lease per role, judged by the database clock,
-- and the tick slots the leader claims so that no slot runs twice, even
-- across a hand-over. No advisory locks: they break behind
-- transaction-mode poolers and vanish with a recycled connection.

-- Every acquisition gets a new, larger term; writes are fenced by it.
create sequence leader_terms;

create table leader_leases (
    role        text        primary key,
    holder      uuid        not null,
    term        bigint      not null,
    acquired_at timestamptz not null default now(),
    renewed_at  timestamptz not null default now(),
    expires_at  timestamptz not null
);

-- A slot is one scheduled tick (kind 'refresh') or one session close
-- (kind 'close:<calendar>'); the first leader to insert it runs it.
create table daemon_slots (
    kind        text        not null,
    slot        timestamptz not null,
    term        bigint      not null,
    holder      uuid        not null,
    claimed_at  timestamptz not null default now(),
    finished_at timestamptz,
    -- What the tick did: counts per provider, skipped assets, errors.
    summary     jsonb,
    primary key (kind, slot)
);
