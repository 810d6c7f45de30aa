-- One retention batch (src/ops/retention.rs): outbox events processed
-- before $1 with an id below $3 (NULL: no bound), lowest ids first, at
-- most $2. Unprocessed events are never touched.
DELETE FROM portfolio_events e
USING (
    SELECT id
    FROM portfolio_events
    WHERE processed_at < $1
      AND ($3::bigint IS NULL OR id < $3)
    ORDER BY id
    LIMIT $2
) AS doomed
WHERE e.id = doomed.id
