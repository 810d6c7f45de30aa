//! `pricekeeper demo` end to end through the binary: on a running server
//! (twice: a second run starts afresh), on the embedded PostgreSQL, and as
//! a normal user where the machine has one. The summary's numbers are
//! checked against the tables.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use sqlx::PgPool;

const BIN: &str = env!("CARGO_BIN_EXE_pricekeeper");

/// Holders per symbol after the demo's trades (Carol sold her BTC).
const HOLDERS: &[(&str, i32)] = &[
    ("AAPL", 2),
    ("NVDA", 1),
    ("MSFT", 1),
    ("VOD", 1),
    ("SPY", 2),
    ("BTC", 1),
    ("ETH", 1),
    ("XMR", 1),
];

/// A summary row: symbol, holders, bars.
type AssetRow = (String, i32, i64);

fn demo(envs: &[(&str, &str)]) -> (Output, Duration) {
    let mut command = std::process::Command::new(BIN);
    command
        .arg("demo")
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .envs(envs.iter().copied());
    let started = Instant::now();
    let out = command.output().expect("run the demo");
    (out, started.elapsed())
}

fn assert_ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SIMULATED market"), "{stdout}");
    // stdout is a pipe here: plain lines, no escape codes.
    assert!(!stdout.contains('\u{1b}'), "{stdout}");
    stdout
}

/// The rows of the summary's asset table.
fn summary_assets(stdout: &str) -> Vec<AssetRow> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("Tracked assets"))
        .skip(2)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (
                cols[0].to_owned(),
                cols[2].parse().unwrap(),
                cols[3].parse().unwrap(),
            )
        })
        .collect()
}

/// `(completed, failed, retries, rate limits)` from the summary.
fn summary_jobs(stdout: &str) -> (i64, i64, i64, i64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Backfill jobs:"))
        .expect("jobs line");
    let numbers: Vec<i64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers[0], numbers[1], numbers[2], numbers[3])
}

/// `(portfolio id, currency, value, cost)` from the summary.
fn summary_valuations(stdout: &str) -> Vec<(String, String, String, String)> {
    stdout
        .lines()
        .filter(|l| l.contains(" value ") && l.contains(" cost "))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[1].into(), c[2].into(), c[4].into(), c[6].into())
        })
        .collect()
}

async fn check_against_tables(stdout: &str, pool: &PgPool) {
    let rows: Vec<AssetRow> = sqlx::query_as(
        "SELECT a.symbol, coalesce(t.tracking_users, 0),
                (SELECT count(*) FROM asset_prices p WHERE p.asset_id = a.id AND p.interval = '1d')
         FROM assets a LEFT JOIN tracked_assets t ON t.asset_id = a.id ORDER BY a.id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(summary_assets(stdout), rows);
    for (symbol, holders, bars) in &rows {
        let want = HOLDERS.iter().find(|(s, _)| s == symbol).unwrap().1;
        assert_eq!(*holders, want, "{symbol}");
        assert!(*bars > 250, "{symbol}: {bars} bars");
    }

    let jobs: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'completed'),
                count(*) FILTER (WHERE status IN ('failed', 'cancelled')),
                coalesce(sum(greatest(attempts - 1, 0)), 0)::bigint,
                (SELECT coalesce(sum(rate_limited_total), 0)::bigint FROM provider_state)
         FROM backfill_queue",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(summary_jobs(stdout), jobs);
    assert_eq!(jobs.1, 0, "no job failed");
    // The market refuses two requests with a 429 on purpose.
    assert_eq!(jobs.3, 2, "rate limits taken");

    let valuations: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT portfolio_id::text, currency, round(market_value, 2)::text, round(cost_basis, 2)::text
         FROM portfolio_valuations ORDER BY portfolio_id, currency",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(summary_valuations(stdout), valuations);
    assert_eq!(
        valuations.len(),
        4,
        "alice holds GBP and USD, bob and carol USD"
    );
}

#[tokio::test]
async fn demo_on_a_running_server_twice_matches_its_tables() {
    let (url, name) = common::unused_database_url().await;
    for run in 1..=2 {
        let (out, took) = demo(&[("DATABASE_URL", &url), ("PRICEKEEPER_DEMO_DATABASE", &name)]);
        let stdout = assert_ok(&out);
        assert!(took < Duration::from_secs(60), "run {run} took {took:?}");
        let pool = PgPool::connect(&url).await.unwrap();
        check_against_tables(&stdout, &pool).await;
        pool.close().await;
    }
    common::drop_database(&name).await;
}

/// A directory for the embedded server, reachable and owned as needed.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("pk-demo-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn demo_on_the_embedded_server_without_a_database_url() {
    let scratch = Scratch::new();
    let dir = scratch.0.join("pg");
    let (out, took) = demo(&[
        ("PRICEKEEPER_EMBEDDED_PG", "always"),
        ("PRICEKEEPER_PG_DIR", dir.to_str().unwrap()),
    ]);
    let stdout = assert_ok(&out);
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(stdout.contains("embedded PostgreSQL"), "{stdout}");
    let rows = summary_assets(&stdout);
    let holders: Vec<(&str, i32)> = rows.iter().map(|(s, h, _)| (s.as_str(), *h)).collect();
    assert_eq!(holders, HOLDERS);
    assert!(
        !dir.join("data/postmaster.pid").exists(),
        "the server was stopped"
    );
}

#[test]
fn demo_as_a_normal_user_on_its_own_embedded_server() {
    if !nix::unistd::geteuid().is_root() {
        // The run above already was one.
        return;
    }
    let Ok(Some(user)) = nix::unistd::User::from_name("postgres") else {
        eprintln!("skipped: no postgres user to run as");
        return;
    };
    let scratch = Scratch::new();
    nix::unistd::chown(&scratch.0, Some(user.uid), Some(user.gid)).unwrap();
    let dir = scratch.0.join("pg");
    let out = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--", BIN, "demo"])
        .env_remove("DATABASE_URL")
        .env("PRICEKEEPER_EMBEDDED_PG", "always")
        .env("PRICEKEEPER_PG_DIR", &dir)
        .current_dir("/")
        .output()
        .unwrap();
    let stdout = assert_ok(&out);
    assert_eq!(summary_assets(&stdout).len(), HOLDERS.len(), "{stdout}");
    assert!(
        !dir.join("data/postmaster.pid").exists(),
        "the server was stopped"
    );
}

#[tokio::test]
async fn keep_running_applies_the_users_own_transactions_until_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let (url, name) = common::unused_database_url().await;
    let mut child = tokio::process::Command::new(BIN)
        .args(["demo", "--keep-running"])
        .env("DATABASE_URL", &url)
        .env("PRICEKEEPER_DEMO_DATABASE", &name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut psql = None;
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.trim_start().starts_with("psql \"") && line.contains("INSERT INTO") {
                psql = Some(line);
                break;
            }
        }
    })
    .await
    .expect("the demo prints its psql line within 60 s");
    // The line it prints is one the user can run as is.
    let line = psql.expect("a psql line to insert with");
    let status = std::process::Command::new("sh")
        .args(["-c", &line])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{line}");

    let pool = PgPool::connect(&url).await.unwrap();
    common::eventually(Duration::from_secs(60), "NVDA to gain its second holder", || async {
        let holders: Option<i32> = sqlx::query_scalar(
            "SELECT tracking_users FROM tracked_assets JOIN assets a ON a.id = asset_id WHERE a.symbol = 'NVDA'",
        )
        .fetch_optional(&pool)
        .await
        .unwrap();
        holders == Some(2)
    })
    .await;
    pool.close().await;

    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the demo stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    common::drop_database(&name).await;
}
