//! TCP_NODELAY on every database connection.
//!
//! sqlx 0.9.0 stopped disabling Nagle's algorithm on its sockets (sqlx
//! issue 4335; the fix, PR 4336, is merged but not released). A message
//! that leaves in two writes then waits for the server's delayed ACK, 40 ms
//! on Linux. Over TLS, where each flush is several records, a bare drain at
//! concurrency 256 fell from 44,000 to 5,500 jobs/s (`bench queue`).
//!
//! sqlx gives no access to its socket, so once a connection is up this
//! sets the option on every socket of the process: on the new connection
//! among them, and harmlessly on the rest (the HTTP clients and servers
//! set it anyway; a socket that is not TCP refuses it). Remove once sqlx
//! sets it again.

use sqlx::postgres::PgPoolOptions;

/// Pool options whose connections send without Nagle's delay.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new().after_connect(|_, _| {
        Box::pin(async {
            set_on_every_socket();
            Ok(())
        })
    })
}

/// Sets TCP_NODELAY on each socket this process holds. Not Linux: nothing.
pub fn set_on_every_socket() {
    #[cfg(target_os = "linux")]
    {
        let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        for entry in fds.flatten() {
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<libc::c_int>() else {
                continue;
            };
            let is_socket = std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
            if !is_socket {
                continue;
            }
            let on: libc::c_int = 1;
            // SAFETY: a plain setsockopt with a valid pointer and length.
            // Should the descriptor have been closed and reused since it was
            // listed, the call fails (not a socket) or sets the option on
            // another socket of ours, which does no harm.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}
