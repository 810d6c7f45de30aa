-- A job for an asset the host made inactive ends without a provider call as
-- 'cancelled'. On its own: a new enum value cannot be used in the
-- transaction that adds it.
alter type backfill_status add value if not exists 'cancelled';
