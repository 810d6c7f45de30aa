//! Graceful shutdown: no new claims, running jobs finish within the grace
//! period, the rest go back to `pending` without using an attempt, and
//! nothing is left `in_progress` — for the library's worker and for the
//! `pricekeeper worker` process under SIGTERM.

use crate::common;
use crate::queue_common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::test_db;
use pricekeeper::queue::worker::JobBody;
use pricekeeper::queue::{ClaimedJob, Clock, Completion, Outcome, Worker};
use queue_common::*;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// FAST jobs finish at once; SLOW ones finish when `finish` is notified
/// (the test does so after asking for shutdown); STUCK ones never finish.
#[derive(Clone, Default)]
struct Scripted {
    finish: Arc<Notify>,
}

#[async_trait]
impl JobBody for Scripted {
    async fn run(&self, job: &ClaimedJob, _clock: &Clock) -> Outcome {
        match job.asset.symbol.as_str() {
            "SLOW" => self.finish.notified().await,
            "STUCK" => std::future::pending().await,
            _ => {}
        }
        Outcome::Complete(Completion::empty())
    }
}

#[tokio::test]
async fn shutdown_finishes_what_it_can_within_the_grace_and_releases_the_rest() {
    let db = test_db().await;
    let mut ids = Vec::new();
    for (symbol, n) in [("SLOW", 2), ("STUCK", 2), ("FAST", 6)] {
        let asset = insert_asset(&db.pool, stock(symbol)).await;
        for i in 0..n {
            let day = date("2024-01-01") + chrono::Days::new(i);
            ids.push((symbol, insert_job(&db.pool, asset, day, day).await));
        }
    }
    let settings = settings(
        "http://127.0.0.1:9",
        &[
            "--concurrency=5",
            "--backfill-batch-size=4",
            "--shutdown-grace=500ms",
            "--poll-interval=50ms",
        ],
    );
    let body = Scripted::default();
    let worker = Worker::new(db.pool.clone(), config(&settings), body.clone());
    let cancel = CancellationToken::new();
    let running = tokio::spawn(worker.run(cancel.clone()));

    let pool = db.pool.clone();
    until("fast jobs done, slow and stuck ones running", || {
        let pool = pool.clone();
        async move {
            count_status(&pool, "completed").await == 6
                && count_status(&pool, "in_progress").await == 4
        }
    })
    .await;
    cancel.cancel();
    body.finish.notify_waiters();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops within its grace period")
        .unwrap();

    assert_eq!(count_status(&db.pool, "in_progress").await, 0);
    for (symbol, id) in ids {
        let row = job(&db.pool, id).await;
        match symbol {
            "STUCK" => {
                assert_eq!(
                    (row.status.as_str(), row.attempts, row.locked_by),
                    ("pending", 0, None)
                );
                assert!(
                    row.error_message
                        .unwrap()
                        .contains("handed back unfinished")
                );
            }
            _ => assert_eq!(
                (row.status.as_str(), row.attempts),
                ("completed", 1),
                "{symbol}"
            ),
        }
    }
}

#[tokio::test]
async fn the_worker_process_exits_0_on_sigterm_leaving_nothing_in_progress() {
    let db = test_db().await;
    // A provider that never answers in time: jobs are mid-request at SIGTERM.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&server)
        .await;
    let mut ids = Vec::new();
    for symbol in ["AAPL", "MSFT", "NVDA"] {
        let asset = insert_asset(&db.pool, stock(symbol)).await;
        ids.push(insert_job(&db.pool, asset, date("2024-01-02"), date("2024-12-31")).await);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
        // Any free port: tests run side by side.
        .env("PRICEKEEPER_HTTP_ADDR", "127.0.0.1:0")
        .args(["worker", "--concurrency=2", "--shutdown-grace=200ms"])
        .env("DATABASE_URL", db.url())
        .env("PRICEKEEPER_YAHOO_URL", server.uri())
        .env("PRICEKEEPER_HTTP_TIMEOUT", "60s")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pricekeeper worker");

    let pool = db.pool.clone();
    until("two jobs in progress", || {
        let pool = pool.clone();
        async move { count_status(&pool, "in_progress").await == 2 }
    })
    .await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut status = None;
    until("the worker to exit", || {
        status = child.try_wait().unwrap();
        std::future::ready(status.is_some())
    })
    .await;
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.unwrap().code(), Some(0), "{stderr}");
    assert!(stderr.contains("released unfinished jobs"), "{stderr}");

    assert_eq!(count_status(&db.pool, "in_progress").await, 0);
    for id in ids {
        let row = job(&db.pool, id).await;
        assert_eq!(
            (row.status.as_str(), row.attempts),
            ("pending", 0),
            "job {id}"
        );
    }
}

#[test]
fn worker_settings_are_checked_naming_the_variable() {
    for (var, value) in [
        ("PRICEKEEPER_JOB_LEASE", "soon"),
        ("PRICEKEEPER_JOB_LEASE", "0s"),
        ("PRICEKEEPER_CONCURRENCY", "0"),
        ("PRICEKEEPER_SHUTDOWN_GRACE", "forever"),
        ("RETRY_EXPONENTIAL_BASE", "0"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
            // Any free port: tests run side by side.
            .env("PRICEKEEPER_HTTP_ADDR", "127.0.0.1:0")
            .arg("worker")
            .env(var, value)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}
