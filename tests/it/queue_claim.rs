//! Claiming: only due jobs, never one job by two workers, every job
//! completed exactly once however many workers drain the queue, and a claim
//! that reads only due rows.

use crate::common;
use crate::queue_common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use common::test_db;
use pricekeeper::queue::worker::JobBody;
use pricekeeper::queue::{ClaimedJob, Clock, Completion, Outcome, Worker};
use queue_common::*;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_racing_never_hold_the_same_job() {
    let db = test_db().await;
    let all: HashSet<i64> = insert_jobs(&db.pool, 3000).await.into_iter().collect();
    let a = bare_worker(&db.pool, 7, Clock::Database);
    let b = bare_worker(&db.pool, 7, Clock::Database);

    let race = |w: Worker<_>| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let jobs = w.claim(7).await.unwrap();
                if jobs.is_empty() {
                    return (w.id(), mine);
                }
                mine.extend(jobs.into_iter().map(|j| j.id.0));
            }
        })
    };
    let (ra, rb) = tokio::join!(race(a), race(b));
    let ((id_a, got_a), (id_b, got_b)) = (ra.unwrap(), rb.unwrap());

    let set_a: HashSet<i64> = got_a.iter().copied().collect();
    let set_b: HashSet<i64> = got_b.iter().copied().collect();
    assert_eq!(set_a.len(), got_a.len(), "worker a claimed a job twice");
    assert_eq!(set_b.len(), got_b.len(), "worker b claimed a job twice");
    assert!(set_a.is_disjoint(&set_b), "a job was held by both workers");
    assert_eq!(&set_a | &set_b, all);
    assert!(
        got_a.len() > 100 && got_b.len() > 100,
        "both took part: {} / {}",
        got_a.len(),
        got_b.len()
    );

    // The table agrees: each job in_progress, held by the worker that got it.
    let holders: Vec<(i64, uuid::Uuid, i32)> = sqlx::query_as(
        "SELECT id, locked_by, attempts FROM backfill_queue WHERE status = 'in_progress'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(holders.len(), all.len());
    for (id, by, attempts) in holders {
        let want = if set_a.contains(&id) { id_a.0 } else { id_b.0 };
        assert_eq!((by, attempts), (want, 1), "job {id}");
    }
}

/// Counts how often each job's body ran.
#[derive(Default, Clone)]
struct Counting {
    runs: Arc<Mutex<HashMap<i64, u32>>>,
}

#[async_trait]
impl JobBody for Counting {
    async fn run(&self, job: &ClaimedJob, _clock: &Clock) -> Outcome {
        *self.runs.lock().unwrap().entry(job.id.0).or_default() += 1;
        tokio::task::yield_now().await;
        Outcome::Complete(Completion::empty())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_workers_complete_ten_thousand_jobs_exactly_once() {
    let db = test_db().await;
    let jobs = insert_jobs(&db.pool, 10_000).await;
    let counting = Counting::default();
    let settings = settings(
        "http://127.0.0.1:9",
        &[
            "--concurrency=4",
            "--backfill-batch-size=10",
            "--poll-interval=50ms",
        ],
    );
    let cancel = CancellationToken::new();
    let mut workers = Vec::new();
    for _ in 0..8 {
        let w = Worker::new(db.pool.clone(), config(&settings), counting.clone());
        workers.push(tokio::spawn(w.run(cancel.clone())));
    }
    let pool = db.pool.clone();
    until("every job completed", || {
        let pool = pool.clone();
        async move { count_status(&pool, "completed").await == 10_000 }
    })
    .await;
    cancel.cancel();
    for w in workers {
        w.await.unwrap();
    }

    let runs = counting.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), jobs.len(), "every job ran");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    let odd: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM backfill_queue
         WHERE status <> 'completed' OR attempts <> 1 OR locked_by IS NOT NULL
            OR completed_at IS NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(odd, 0);
}

#[tokio::test]
async fn only_due_jobs_are_claimed_under_a_fresh_lease() {
    let db = test_db().await;
    let now = t0();
    let clock = Clock::manual(now);
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let mut ids = HashMap::new();
    for (name, status, retry_after_secs) in [
        ("new", "pending", None),
        ("retry_due", "pending", Some(-60)),
        ("retry_later", "pending", Some(60)),
        ("snoozed_due", "rate_limited", Some(-1)),
        ("snoozed_later", "rate_limited", Some(600)),
        ("done", "completed", None),
        ("failed", "failed", None),
    ] {
        let day = date("2024-01-01") + chrono::Days::new(ids.len() as u64);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO backfill_queue (asset_id, start_date, end_date, status, retry_after)
             VALUES ($1, $2, $2, $3::backfill_status, $4 + $5 * interval '1 second')
             RETURNING id",
        )
        .bind(asset)
        .bind(day)
        .bind(status)
        .bind(now)
        .bind(retry_after_secs.map(f64::from))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        ids.insert(name, id);
    }
    let worker = bare_worker(&db.pool, 100, clock.clone());
    let claimed: HashSet<i64> = worker
        .claim(100)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id.0)
        .collect();
    let want: HashSet<i64> = ["new", "retry_due", "snoozed_due"]
        .iter()
        .map(|n| ids[n])
        .collect();
    assert_eq!(claimed, want);
    for id in want {
        let row = job(&db.pool, id).await;
        assert_eq!(row.status, "in_progress");
        assert_eq!(row.attempts, 1);
        assert_eq!(row.locked_by, Some(worker.id().0));
        assert_eq!(row.locked_until, Some(now + chrono::Duration::seconds(60)));
    }

    // Time passes: the later ones become due, finished ones never do.
    clock.advance(Duration::from_secs(3600));
    let claimed: HashSet<i64> = worker
        .claim(100)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id.0)
        .collect();
    assert_eq!(
        claimed,
        HashSet::from([ids["retry_later"], ids["snoozed_later"]])
    );
    assert!(worker.claim(100).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_claim_reads_due_rows_through_its_index_not_finished_ones() {
    let db = test_db().await;
    insert_jobs(&db.pool, 20_000).await;
    sqlx::query(
        "UPDATE backfill_queue SET status = 'completed', completed_at = now() WHERE id % 1000 <> 0",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE backfill_queue")
        .execute(&db.pool)
        .await
        .unwrap();

    let plan = explain_claim(&db.pool).await;
    assert!(plan.contains("backfill_queue_claim"), "{plan}");
    assert!(!plan.contains("Seq Scan on backfill_queue"), "{plan}");

    let worker = bare_worker(&db.pool, 100, Clock::Database);
    assert_eq!(worker.claim(100).await.unwrap().len(), 20);
}

async fn explain_claim(pool: &PgPool) -> String {
    let sql = format!("EXPLAIN {}", include_str!("../../sql/queue_claim.sql"));
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(uuid::Uuid::new_v4())
        .bind(None::<DateTime<chrono::Utc>>)
        .bind(10_i64)
        .bind(60_000_i64)
        .bind(vec!["yahoo"])
        .bind(vec![pricekeeper::db::assets::AssetType::Stock])
        .fetch_all(pool)
        .await
        .unwrap();
    lines.join("\n")
}

#[tokio::test]
async fn due_retries_are_claimed_in_the_order_they_became_due_not_after_every_new_job() {
    let db = test_db().await;
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    // A retry that became due an hour ago, then a stream of jobs queued
    // since: the retry has waited longest and goes first.
    let retry: i64 = sqlx::query_scalar(
        "INSERT INTO backfill_queue (asset_id, start_date, end_date, attempts, retry_after)
         VALUES ($1, '2023-01-02', '2023-01-02', 1, now() - interval '1 hour') RETURNING id",
    )
    .bind(asset)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    insert_jobs(&db.pool, 50).await;
    let worker = bare_worker(&db.pool, 10, Clock::Database);
    let first = worker.claim(10).await.unwrap();
    assert_eq!(first.len(), 10);
    let ids: Vec<i64> = first.iter().map(|j| j.id.0).collect();
    assert!(
        ids.contains(&retry),
        "the retry waits behind new jobs: {ids:?}"
    );
    // The rest in queueing order.
    let next: Vec<i64> = worker
        .claim(10)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id.0)
        .collect();
    assert!(
        next.iter().all(|id| ids.iter().all(|first| first < id)),
        "{ids:?} then {next:?}"
    );
}

/// Claims and outcomes are bookkeeping a crash may forget (the jobs run
/// again): their transactions commit without waiting for the WAL flush,
/// and only theirs. Seen inside an explicit transaction, where the
/// statement's setting lasts until commit.
#[tokio::test]
async fn claims_and_outcomes_commit_without_waiting_for_the_disk() {
    use pricekeeper::queue::WorkerId;
    use pricekeeper::queue::claim::{ChainFilter, claim_jobs};
    use pricekeeper::queue::transitions::{Finished, finish_jobs};

    let db = test_db().await;
    insert_jobs(&db.pool, 3).await;
    async fn setting(conn: &mut sqlx::PgConnection) -> sqlx::Result<String> {
        sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(conn)
            .await
    }
    let worker = WorkerId::new();
    let mut tx = db.pool.begin().await.unwrap();
    assert_eq!(setting(&mut tx).await.unwrap(), "on");
    let jobs = claim_jobs(
        &mut *tx,
        worker,
        None,
        3,
        Duration::from_secs(60),
        &ChainFilter::default(),
    )
    .await
    .unwrap();
    assert_eq!(jobs.len(), 3);
    assert_eq!(setting(&mut tx).await.unwrap(), "off", "after the claim");
    tx.commit().await.unwrap();

    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(
        setting(&mut conn).await.unwrap(),
        "on",
        "only for that transaction"
    );
    let mut tx = db.pool.begin().await.unwrap();
    let finished: Vec<Finished> = jobs
        .into_iter()
        .map(|job| Finished {
            job,
            outcome: Outcome::Complete(Completion::empty()),
        })
        .collect();
    let written = finish_jobs(&mut tx, worker, None, &finished).await.unwrap();
    assert_eq!(written.applied.len(), 3);
    assert_eq!(setting(&mut tx).await.unwrap(), "off", "after the outcomes");
    tx.commit().await.unwrap();
    assert_eq!(count_status(&db.pool, "completed").await, 3);
}
