-- A job is held (a worker and a lease end) exactly while it is in_progress.
-- So "locked_by = me" alone says "in_progress and mine", and the guarded
-- transitions (sql/queue_finish.sql, lease renewal) find their rows by
-- primary key. A condition on status there would let the planner walk every
-- in_progress entry of a status index instead: 15 ms instead of 1 ms per
-- batch with 50,000 jobs running, whenever the statistics predate them.
alter table backfill_queue
    add constraint backfill_queue_held_iff_in_progress
        check ((status = 'in_progress') = (locked_by is not null and locked_until is not null));
