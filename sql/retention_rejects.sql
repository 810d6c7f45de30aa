-- One retention batch (src/ops/retention.rs): rejected provider rows
-- recorded before $1 among the $2 lowest ids. Ids grow with recorded_at,
-- so the lowest ids are the oldest rows and a batch that finds them young
-- ends the pass after reading $2 index entries, never the whole table.
-- Rows of deleted jobs are already gone with them (ON DELETE CASCADE).
DELETE FROM backfill_rejects r
USING (
    SELECT id
    FROM backfill_rejects
    ORDER BY id
    LIMIT $2
) AS lowest
WHERE r.id = lowest.id
  AND r.recorded_at < $1
