-- Issue 9: splits and dividends per asset, as the providers report them.
-- Yahoo's OHLC is split-adjusted as of the fetch, so bars stored before a
-- split are on the old scale; when a split newer than such bars is first
-- recorded, the worker queues a re-fetch of them (sql/queue_store_actions.sql).
create table corporate_actions (
    asset_id    bigint      not null references assets (id),
    kind        text        not null check (kind in ('split', 'dividend')),
    -- The provider's date of the action (ex-date), as an instant.
    ts          timestamptz not null,
    -- Splits: new shares per old ones (4:1 is 4 / 1); may be fractional.
    numerator   numeric,
    denominator numeric,
    -- Dividends: amount per share, in `currency`.
    amount      numeric,
    currency    text,
    source      text        not null,
    recorded_at timestamptz not null default now(),
    primary key (asset_id, kind, ts),
    check (kind <> 'split' or (numerator > 0 and denominator > 0)),
    check (kind <> 'dividend' or amount is not null)
);
