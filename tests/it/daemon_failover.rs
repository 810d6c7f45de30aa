//! Two daemon processes against one database: only the leader acts, a
//! killed leader is replaced within its lease, and a frozen one writes
//! nothing once it wakes. Through the binary, with real signals.

use crate::common;
use crate::daemon_common;

use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{eventually, eventually_some, test_db};
use daemon_common::{Market, asset, hold};
use tokio::process::{Child, Command};
use uuid::Uuid;
use wiremock::MockServer;

const LEASE: &str = "2s";

fn daemon(db_url: &str, market: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
        // Any free port: tests run side by side.
        .env("PRICEKEEPER_HTTP_ADDR", "127.0.0.1:0")
        .args(["daemon", "--cron", "* * * * * *"])
        .env("DATABASE_URL", db_url)
        .env("PRICEKEEPER_BINANCE_URL", market)
        .env("PRICEKEEPER_YAHOO_URL", market)
        .env("PRICEKEEPER_COINGECKO_URL", market)
        .env("PRICEKEEPER_DAEMON_LEASE", LEASE)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start daemon")
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn leader(pool: &sqlx::PgPool) -> Option<Uuid> {
    sqlx::query_scalar("SELECT holder FROM leader_leases WHERE role = 'daemon'")
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn slots_by(pool: &sqlx::PgPool, holder: Uuid, after: DateTime<Utc>) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM daemon_slots WHERE holder = $1 AND claimed_at > $2")
        .bind(holder)
        .bind(after)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn now(pool: &sqlx::PgPool) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A database with one held coin and a market that prices it.
async fn setup() -> (common::TestDb, MockServer) {
    let db = test_db().await;
    let server = MockServer::start().await;
    let market = Market::default();
    market.set("BTCUSDT", 80000.0, Utc::now());
    market.mount(&server).await;
    let btc = asset(
        &db.pool,
        "BTC",
        "crypto",
        "CRYPTO",
        "USD",
        (None, Some("BTCUSDT"), None),
    )
    .await;
    hold(&db.pool, Uuid::new_v4(), btc, "1", "40000").await;
    (db, server)
}

#[tokio::test]
async fn only_the_leader_acts_and_a_killed_leader_is_replaced_within_the_lease() {
    let (db, server) = setup().await;
    let mut first = daemon(db.url(), &server.uri());
    let a = eventually_some(Duration::from_secs(20), "a leader", || leader(&db.pool)).await;
    let second = daemon(db.url(), &server.uri());
    let since = now(&db.pool).await;
    eventually(
        Duration::from_secs(20),
        "four slots after the standby started",
        || async { slots_by(&db.pool, a, since).await >= 4 },
    )
    .await;
    let others: i64 = sqlx::query_scalar("SELECT count(*) FROM daemon_slots WHERE holder <> $1")
        .bind(a)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(others, 0, "the standby never ran a slot");

    first.start_kill().unwrap(); // SIGKILL: no resignation
    let _ = first.wait().await;
    let killed = tokio::time::Instant::now();
    let b = eventually_some(Duration::from_secs(20), "a new leader", || async {
        leader(&db.pool).await.filter(|h| *h != a)
    })
    .await;
    let since = now(&db.pool).await;
    eventually(
        Duration::from_secs(20),
        "the new leader ticking",
        || async { slots_by(&db.pool, b, since).await >= 1 },
    )
    .await;
    let handed_over = killed.elapsed();
    // The lease (2 s) plus a renewal round (a third of it) plus a tick.
    assert!(handed_over < Duration::from_secs(5), "took {handed_over:?}");
    drop(second);
}

#[tokio::test]
async fn a_paused_leader_writes_nothing_after_it_resumes() {
    let (db, server) = setup().await;
    let first = daemon(db.url(), &server.uri());
    let a = eventually_some(Duration::from_secs(20), "a leader", || leader(&db.pool)).await;
    let _second = daemon(db.url(), &server.uri());

    signal(&first, "-STOP");
    let b = eventually_some(Duration::from_secs(20), "a take-over", || async {
        leader(&db.pool).await.filter(|h| *h != a)
    })
    .await;
    let taken_over = now(&db.pool).await;
    signal(&first, "-CONT");
    // Several ticks of the new leader while the old one is awake again.
    eventually(Duration::from_secs(20), "ticks after the pause", || async {
        slots_by(&db.pool, b, taken_over).await >= 4
    })
    .await;
    assert_eq!(
        slots_by(&db.pool, a, taken_over).await,
        0,
        "the old leader wrote after resuming"
    );
    assert_eq!(leader(&db.pool).await, Some(b), "nor took the lease back");
}
