//! The embedded PostgreSQL's start, connect, stop cycle in a temporary
//! directory, from the binaries installed on this machine: as root (the
//! server then runs as `postgres`) or as whoever runs the tests. Also a
//! stale `postmaster.pid`, a server shared by two users, a directory that
//! belongs to someone else, and a machine without server binaries.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pricekeeper::embedded_pg::{EmbeddedError, EmbeddedPg, Place};
use sqlx::{ConnectOptions, Connection};

/// A directory the server's user can reach, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("pk-embedded-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self(dir)
    }

    fn place(&self) -> Place {
        Place {
            bindir: None,
            dir: Some(self.0.join("pg")),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(place: &Place) -> EmbeddedPg {
    let place = place.clone();
    tokio::task::spawn_blocking(move || EmbeddedPg::start(&place))
        .await
        .unwrap()
        .expect("embedded PostgreSQL starts")
}

async fn select_one(pg: &EmbeddedPg) -> i32 {
    let mut conn = pg
        .connect_options("postgres")
        .connect()
        .await
        .expect("connect over the socket");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    one
}

fn running(dir: &Path) -> bool {
    dir.join("data/postmaster.pid").exists()
}

#[tokio::test]
async fn starts_connects_stops_and_keeps_its_data_between_runs() {
    let scratch = Scratch::new();
    let place = scratch.place();
    let dir = place.dir.clone().unwrap();

    let pg = start(&place).await;
    assert_eq!(select_one(&pg).await, 1);
    let mut conn = pg.connect_options("postgres").connect().await.unwrap();
    sqlx::raw_sql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    // No TCP: the server listens on its socket only.
    let listen: String = {
        let mut conn = pg.connect_options("postgres").connect().await.unwrap();
        sqlx::query_scalar("SHOW listen_addresses")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(listen, "");
    pg.stop();
    assert!(!running(&dir), "stopped");
    drop(pg);

    let again = start(&place).await;
    let mut conn = again.connect_options("postgres").connect().await.unwrap();
    let kept: i32 = sqlx::query_scalar("SELECT x FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept, 42);
    conn.close().await.unwrap();
    drop(again);
    assert!(!running(&dir), "stopped on drop");
}

#[tokio::test]
async fn a_stale_postmaster_pid_does_not_stop_the_start() {
    let scratch = Scratch::new();
    let place = scratch.place();
    let dir = place.dir.clone().unwrap();
    start(&place).await.stop();
    // As after a crash, with the PID since taken by another program (ours).
    std::fs::write(
        dir.join("data/postmaster.pid"),
        format!("{}\n{}\n", std::process::id(), dir.join("data").display()),
    )
    .unwrap();
    let pg = start(&place).await;
    assert_eq!(select_one(&pg).await, 1);
}

#[tokio::test]
async fn the_last_user_stops_the_server() {
    let scratch = Scratch::new();
    let place = scratch.place();
    let dir = place.dir.clone().unwrap();
    let first = start(&place).await;
    let second = start(&place).await;
    first.stop();
    assert!(running(&dir), "the second user still needs it");
    assert_eq!(select_one(&second).await, 1);
    second.stop();
    assert!(!running(&dir));
}

#[tokio::test]
async fn a_directory_of_another_user_is_refused_by_name() {
    // As root the server runs as postgres, so a root-owned directory is
    // someone else's; anyone else does not own /.
    let root_owned = Scratch::new();
    let dir = if nix::unistd::geteuid().is_root() {
        std::fs::create_dir(root_owned.0.join("pg")).unwrap();
        root_owned.0.join("pg")
    } else {
        PathBuf::from("/")
    };
    let place = Place {
        bindir: None,
        dir: Some(dir.clone()),
    };
    match tokio::task::spawn_blocking(move || EmbeddedPg::start(&place))
        .await
        .unwrap()
    {
        Err(e @ EmbeddedError::OwnedByOther { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&dir.display().to_string()), "{message}");
            assert!(message.contains("PRICEKEEPER_PG_DIR"), "{message}");
        }
        other => panic!("expected OwnedByOther, got {other:?}"),
    }
}

#[test]
fn without_server_binaries_one_message_says_how_to_get_them() {
    let place = Place {
        bindir: Some("/nonexistent/bin".into()),
        dir: None,
    };
    let message = EmbeddedPg::start(&place).unwrap_err().to_string();
    assert!(message.contains("apt-get install postgresql"), "{message}");
    assert!(message.contains("DATABASE_URL"), "{message}");
    assert!(message.contains("/nonexistent/bin"), "{message}");
}
