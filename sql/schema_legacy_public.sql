-- Whether this database holds an installation from before pricekeeper had
-- its own schema: its migrations table in public and none in $1.
SELECT to_regclass('public._sqlx_migrations') IS NOT NULL
   AND to_regclass(format('%I._sqlx_migrations', $1)) IS NULL
   AND EXISTS (SELECT 1 FROM pg_class WHERE relname = 'portfolio_events'
                                       AND relnamespace = 'public'::regnamespace);
