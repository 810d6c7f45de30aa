-- Requests, rate-limit answers and errors per provider and minute, from
-- every process (src/queue/ledger.rs writes them with provider_state), so
-- /health/sources can show the whole deployment's last hour, not one
-- process's. Kept two days by retention.
create table provider_minutes (
    provider     text        not null,
    minute       timestamptz not null,
    requests     bigint      not null default 0,
    rate_limited bigint      not null default 0,
    errors       bigint      not null default 0,
    primary key (provider, minute)
);
