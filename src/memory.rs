//! Process-wide memory settings, applied once at start, before any thread.

/// Makes glibc's malloc keep one arena for every thread, unless the
/// operator chose otherwise with `MALLOC_ARENA_MAX`.
///
/// By default glibc gives threads that allocate at once arenas of their own
/// (up to eight per core), and memory freed into one arena is not reused by
/// the others: the worker's job bodies run on every runtime thread, so each
/// arena grows to the peak of what ran on it. One arena cut the peak RSS of
/// a real drain at concurrency 256 from 76 to 61 MB (`bench queue`) at the
/// same drain rate; per-thread caches still spare most allocations the
/// arena's lock. Must run before the runtime starts its threads: a thread
/// keeps the arena it first allocated from.
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called while
        // the process has one thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}
