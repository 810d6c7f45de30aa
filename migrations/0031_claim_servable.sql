-- Whether some provider of a job's chain that has a symbol for its asset is
-- not cooling down: the per-row condition of the claim (sql/queue_claim.sql)
-- while any provider cools, kept in one place now that the claim reads due
-- jobs in two ordered runs (never tried, then retries).
create function backfill_job_servable(
    job_asset_id    bigint,
    chain_providers text[],
    chain_types     asset_type[],
    cooling         text[]
) returns boolean
language sql stable parallel safe as $$
    select exists (
        select
        from assets a
        cross join unnest(chain_providers, chain_types) as chain (provider, asset_type)
        where a.id = job_asset_id
          and chain.asset_type = a.asset_type
          and provider_has_symbol(chain.provider, a.asset_type, a.symbol, a.currency,
                                  a.yahoo_symbol, a.binance_symbol, a.coingecko_id)
          and chain.provider <> all (cooling)
    )
$$;
