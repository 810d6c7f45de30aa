-- Wakes idle workers when jobs are queued or become due. Every queueing
-- statement used to notify once per job with the job's id as payload, so a
-- batch of k jobs woke every worker process k times; workers never read
-- the payload. A constant payload is delivered once per transaction, so a
-- transaction wakes each worker once however many jobs it queued.
--
-- The job id is taken only so that a query calls this once per row it
-- returns (a lateral reference), and never when it returns none.
create function pricekeeper_wake_workers(job_id bigint) returns void
language sql volatile as $$
    select pg_notify('pricekeeper_jobs', 'due')
$$;
