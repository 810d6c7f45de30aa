//! The database connections pricekeeper opens send without Nagle's delay
//! (see `db::nodelay`): the socket the server sees as the client has
//! TCP_NODELAY set.

use crate::common;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

/// TCP_NODELAY of this process's socket whose local port is `port`.
fn nodelay_of_local_port(port: u16) -> Option<bool> {
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<libc::c_int>() else {
            continue;
        };
        let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: valid pointers and lengths; a non-socket descriptor fails.
        let named = unsafe {
            libc::getsockname(
                fd,
                (&mut addr as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        if named != 0 || addr.ss_family != libc::AF_INET as libc::sa_family_t {
            continue;
        }
        // SAFETY: an AF_INET address was written.
        let v4 = unsafe { *(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
        if u16::from_be(v4.sin_port) != port {
            continue;
        }
        let mut on: libc::c_int = 0;
        let mut on_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as above.
        let got = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut on as *mut libc::c_int).cast(),
                &mut on_len,
            )
        };
        return (got == 0).then_some(on != 0);
    }
    None
}

#[tokio::test]
async fn database_connections_are_opened_with_tcp_nodelay() {
    let db = common::test_db().await;
    // Over TCP to 127.0.0.1, as the test server is reached.
    let options = PgConnectOptions::from_str(db.url())
        .unwrap()
        .host("127.0.0.1");
    let pool = pricekeeper::db::connect(&options, 1, Duration::from_secs(5))
        .await
        .unwrap();
    let port: i32 = sqlx::query_scalar("SELECT inet_client_port()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(nodelay_of_local_port(port as u16), Some(true));
}
