-- Pins search_path on every function in pricekeeper's schema that has none.
-- Trigger functions run in the host application's session, whose
-- search_path does not name our schema: without this, the outbox trigger's
-- unqualified `portfolio_events` would not be found (or, worse, be the
-- host's own table of that name). Runs after every migration, so functions
-- added later are pinned too.
DO $$
DECLARE
    f regprocedure;
BEGIN
    -- Two processes migrating at once would update the same rows.
    PERFORM pg_advisory_xact_lock(hashtext('pricekeeper pin functions'));
    FOR f IN
        SELECT p.oid::regprocedure
        FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.prokind = 'f'
          AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c WHERE c LIKE 'search_path=%')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I', f, current_schema());
    END LOOP;
END
$$;
