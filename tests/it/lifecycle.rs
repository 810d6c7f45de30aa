//! Stopping and starving: a shutdown waits for one event batch, never the
//! backlog; a second signal exits at once; a shutdown with the database gone
//! is still bounded; a job whose lease was lost stops running here; a pool
//! of two connections still does the work.

use crate::common;
use crate::queue_common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{eventually, test_db};
use pricekeeper::events::orchestrator::Orchestrator;
use pricekeeper::queue::reaper::reap_expired;
use pricekeeper::queue::worker::{JobBody, NoOp};
use pricekeeper::queue::{ClaimedJob, Clock, Outcome, Worker};
use queue_common::*;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const DEADLINE: Duration = Duration::from_secs(20);

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn sigterm_stops_the_orchestrator_between_batches_not_after_the_backlog() {
    let db = test_db().await;
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    // 20,000 events: one buy per portfolio.
    sqlx::query(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         SELECT gen_random_uuid(), $1, 'buy', 1, 10, '2024-06-03T15:00:00Z'
         FROM generate_series(1, 20000)",
    )
    .bind(asset)
    .execute(&db.pool)
    .await
    .unwrap();
    let settings = common::settings(&["--event-batch-size=20", "--poll-interval=10s"]);
    let cancel = CancellationToken::new();
    let running = tokio::spawn(Orchestrator::new(db.pool.clone(), &settings).run(cancel.clone()));
    eventually(DEADLINE, "a few batches applied", || {
        let pool = db.pool.clone();
        async move {
            count(
                &pool,
                "SELECT count(*) FROM portfolio_events WHERE processed_at IS NOT NULL",
            )
            .await
                >= 100
        }
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(DEADLINE, running)
        .await
        .expect("the orchestrator stops")
        .unwrap();
    let left = count(
        &db.pool,
        "SELECT count(*) FROM portfolio_events WHERE processed_at IS NULL",
    )
    .await;
    assert!(
        left > 10_000,
        "the backlog stays in the outbox for the next start; only {left} events were left"
    );
}

/// Runs forever, counting its turns: a job paging its provider.
#[derive(Clone, Default)]
struct Paging {
    turns: Arc<AtomicU64>,
}

#[async_trait]
impl JobBody for Paging {
    async fn run(&self, _job: &ClaimedJob, _clock: &Clock) -> Outcome {
        loop {
            self.turns.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_stops_the_job_body() {
    let db = test_db().await;
    let clock = Clock::manual(t0());
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let id = insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-08")).await;
    let settings = settings("http://127.0.0.1:9", &["--lease=60s"]);
    let body = Paging::default();
    let first = Worker::with_clock(
        db.pool.clone(),
        config(&settings),
        body.clone(),
        clock.clone(),
    );
    let claimed = first.claim(1).await.unwrap().remove(0);
    let running = {
        let first = first.clone();
        tokio::spawn(async move { first.run_body(&claimed).await })
    };

    // The first worker froze past its lease; the job went to another one.
    clock.advance(Duration::from_secs(120));
    reap_expired(&db.pool, clock.sql(), 100).await.unwrap();
    let second = bare_worker(&db.pool, 1, clock.clone());
    assert_eq!(second.claim(1).await.unwrap()[0].id.0, id);

    // Its next heartbeat finds the lease gone and stops the body.
    assert!(first.heartbeat().await.unwrap().is_empty());
    let outcome = tokio::time::timeout(DEADLINE, running)
        .await
        .expect("the body is cancelled, not left running until its deadline")
        .unwrap();
    assert!(
        matches!(&outcome, Outcome::Release { reason } if reason.contains("lease was lost")),
        "{outcome:?}"
    );
    let turns = body.turns.load(Ordering::Relaxed);
    tokio::task::yield_now().await;
    assert_eq!(
        body.turns.load(Ordering::Relaxed),
        turns,
        "nothing runs any more"
    );
    assert_eq!(
        job(&db.pool, id).await.status,
        "in_progress",
        "the second worker keeps it"
    );
}

#[tokio::test]
async fn a_renewal_skipped_behind_a_row_lock_does_not_cancel_the_body() {
    let db = test_db().await;
    let clock = Clock::manual(t0());
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let id = insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-08")).await;
    let settings = settings("http://127.0.0.1:9", &["--lease=60s"]);
    let body = Paging::default();
    let worker = Worker::with_clock(db.pool.clone(), config(&settings), body.clone(), clock);
    let claimed = worker.claim(1).await.unwrap().remove(0);
    let running = {
        let worker = worker.clone();
        tokio::spawn(async move { worker.run_body(&claimed).await })
    };
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM backfill_queue WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(
        worker.heartbeat().await.unwrap().is_empty(),
        "skipped, locked"
    );
    tx.rollback().await.unwrap();
    let before = body.turns.load(Ordering::Relaxed);
    eventually(DEADLINE, "the body keeps running", || {
        let turns = body.turns.clone();
        async move { turns.load(Ordering::Relaxed) > before + 2 }
    })
    .await;
    assert!(!running.is_finished());
    running.abort();
}

/// A TCP relay to PostgreSQL that a test can cut: every open connection is
/// dropped and new ones are refused, as when the database host goes away.
struct Relay {
    port: u16,
    tasks: JoinSet<()>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut pipes = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                pipes.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { port, tasks }
    }

    async fn cut(mut self) {
        self.tasks.shutdown().await;
    }
}

/// Never finishes: a job stuck at shutdown.
struct Stuck;

#[async_trait]
impl JobBody for Stuck {
    async fn run(&self, _job: &ClaimedJob, _clock: &Clock) -> Outcome {
        std::future::pending().await
    }
}

#[tokio::test]
async fn shutdown_is_bounded_when_the_database_goes_away() {
    let db = test_db().await;
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-08")).await;
    let direct = url::Url::parse(db.url()).unwrap();
    let relay = Relay::start(format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5432)
    ))
    .await;
    let mut relayed = direct.clone();
    relayed.set_host(Some("127.0.0.1")).unwrap();
    relayed.set_port(Some(relay.port)).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(relayed.as_str())
        .await
        .unwrap();
    let settings = settings(
        "http://127.0.0.1:9",
        &["--shutdown-grace=200ms", "--poll-interval=50ms"],
    );
    let worker = Worker::new(pool, config(&settings), Stuck);
    let cancel = CancellationToken::new();
    let running = tokio::spawn(worker.run(cancel.clone()));
    eventually(DEADLINE, "the job running", || {
        let pool = db.pool.clone();
        async move { count_status(&pool, "in_progress").await == 1 }
    })
    .await;

    relay.cut().await;
    cancel.cancel();
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("the grace plus the final writes bound the shutdown")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(15));
    // The reaper hands the job back once its lease runs out.
    assert_eq!(count_status(&db.pool, "in_progress").await, 1);
}

#[tokio::test]
async fn a_pool_of_two_connections_still_applies_events_and_runs_jobs() {
    let db = test_db().await;
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let settings = settings(
        "http://127.0.0.1:9",
        &["--db-max-connections=2", "--poll-interval=30s"],
    );
    let pool = PgPoolOptions::new()
        .max_connections(settings.db.db_max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect(db.url())
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(Orchestrator::new(pool.clone(), &settings).run(cancel.clone()));
    tasks.spawn(Worker::new(pool.clone(), config(&settings), NoOp).run(cancel.clone()));
    eventually(DEADLINE, "both listeners up", || {
        let pool = db.pool.clone();
        async move {
            count(
                &pool,
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
            .await
                == 2
        }
    })
    .await;
    sqlx::query(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         VALUES (gen_random_uuid(), $1, 'buy', 1, 10, now() - interval '1 day')",
    )
    .bind(asset)
    .execute(&db.pool)
    .await
    .unwrap();
    // Within seconds, not after a 30 s wait for a connection.
    eventually(Duration::from_secs(10), "the backfill completed", || {
        let pool = db.pool.clone();
        async move { count_status(&pool, "completed").await == 1 }
    })
    .await;
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
}

#[tokio::test]
async fn a_second_signal_exits_at_once_naming_the_jobs_in_progress() {
    let db = test_db().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&server)
        .await;
    for symbol in ["AAPL", "MSFT"] {
        let asset = insert_asset(&db.pool, stock(symbol)).await;
        insert_job(&db.pool, asset, date("2024-01-02"), date("2024-12-31")).await;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
        // Any free port: tests run side by side.
        .env("PRICEKEEPER_HTTP_ADDR", "127.0.0.1:0")
        .args(["worker", "--concurrency=2", "--shutdown-grace=60s"])
        .env("DATABASE_URL", db.url())
        .env("PRICEKEEPER_YAHOO_URL", server.uri())
        .env("PRICEKEEPER_HTTP_TIMEOUT", "60s")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pricekeeper worker");
    // stderr, read as it comes (the second signal must follow the first
    // one's handling, or the two may arrive as one).
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let log = log.clone();
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    eventually(DEADLINE, "two jobs in progress", || {
        let pool = db.pool.clone();
        async move { count_status(&pool, "in_progress").await == 2 }
    })
    .await;
    let term = || {
        assert!(
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    term();
    eventually(DEADLINE, "the first signal handled", || {
        std::future::ready(log.lock().unwrap().contains("shutdown requested"))
    })
    .await;
    // The first signal waits for the running jobs (up to 60 s); the second
    // does not.
    term();
    let mut status = None;
    eventually(Duration::from_secs(10), "the worker to exit", || {
        status = child.try_wait().unwrap();
        std::future::ready(status.is_some())
    })
    .await;
    reader.join().unwrap();
    let stderr = log.lock().unwrap().clone();
    assert_eq!(status.unwrap().code(), Some(128 + 15), "{stderr}");
    assert!(stderr.contains("second signal"), "{stderr}");
    assert!(stderr.contains("2 backfill jobs held"), "{stderr}");
}
