-- Why a gap stays open: what the provider said when a backfill of those
-- sessions came back without them.
alter table price_gaps add column reason text;
