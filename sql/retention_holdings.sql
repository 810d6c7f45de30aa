-- One retention batch (src/ops/retention.rs): positions back at exactly
-- zero, last changed before $1, at most $2. A missing row and a zero row
-- mean the same to the orchestrator (it upserts the sum), so nothing is
-- lost; a row an orchestrator holds right now is skipped, and the delete
-- re-checks the quantity against the latest version of the row.
DELETE FROM holdings h
USING (
    SELECT portfolio_id, asset_id
    FROM holdings
    WHERE quantity = 0
      AND updated_at < $1
    LIMIT $2
    FOR UPDATE SKIP LOCKED
) AS doomed
WHERE h.portfolio_id = doomed.portfolio_id
  AND h.asset_id = doomed.asset_id
  AND h.quantity = 0
