//! Issue 8, the queue side: a database hiccup never fails fetched work, a
//! failed range never stays a silent hole, an inactive asset is never
//! fetched, and a corrected provider symbol never mixes two series.

use crate::common;
use crate::events_common;
use crate::queue_common;

use std::time::Duration;

use async_trait::async_trait;
use common::test_db;
use events_common::{orchestrator, trade};
use pricekeeper::queue::reaper::{Revival, revive_failed};
use pricekeeper::queue::worker::JobBody;
use pricekeeper::queue::{ClaimedJob, Clock, Outcome, Worker};
use queue_common::*;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Makes the database refuse the next completions with errors that are
/// nobody's fault: an administrator's shutdown, a lock timeout, a full disk.
async fn hiccup_on_completion(pool: &PgPool) {
    for sql in [
        "CREATE SEQUENCE hiccups",
        "CREATE FUNCTION hiccup() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             -- nextval is not rolled back with the failed statement.
             CASE nextval('hiccups')
                 WHEN 1 THEN RAISE EXCEPTION 'terminating connection due to administrator command'
                                 USING ERRCODE = '57P01';
                 WHEN 2 THEN RAISE EXCEPTION 'canceling statement due to lock timeout'
                                 USING ERRCODE = '55P03';
                 WHEN 3 THEN RAISE EXCEPTION 'could not extend file: No space left on device'
                                 USING ERRCODE = '53100';
                 ELSE NULL;
             END CASE;
             RETURN NEW;
         END $$",
        "CREATE TRIGGER hiccup BEFORE UPDATE ON backfill_queue FOR EACH ROW
         WHEN (NEW.status = 'completed') EXECUTE FUNCTION hiccup()",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
}

#[tokio::test]
async fn a_database_hiccup_while_writing_a_result_retries_instead_of_failing_the_job() {
    let db = test_db().await;
    hiccup_on_completion(&db.pool).await;
    let asset = insert_asset(&db.pool, stock("HICCUP")).await;
    let id = insert_job(&db.pool, asset, date("2024-01-02"), date("2024-12-31")).await;
    let worker = bare_worker(&db.pool, 10, Clock::Database);
    let cancel = CancellationToken::new();
    let running = tokio::spawn(worker.run(cancel.clone()));

    until("the job to end", || async {
        matches!(
            job(&db.pool, id).await.status.as_str(),
            "completed" | "failed"
        )
    })
    .await;
    cancel.cancel();
    running.await.unwrap();
    let row = job(&db.pool, id).await;
    assert_eq!(
        (row.status.as_str(), row.attempts),
        ("completed", 1),
        "{:?}",
        row.error_message
    );
}

/// A body whose every run fails for good (an unknown symbol, say).
struct AlwaysFails;

#[async_trait]
impl JobBody for AlwaysFails {
    async fn run(&self, _job: &ClaimedJob, _clock: &Clock) -> Outcome {
        Outcome::Fail {
            reason: "no provider can serve it".into(),
            provider: None,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Revivable {
    status: String,
    attempts: i32,
    failed_rounds: i32,
    revive_after: Option<chrono::DateTime<chrono::Utc>>,
    revivable: bool,
    error_message: Option<String>,
}

async fn revivable(pool: &PgPool, id: i64) -> Revivable {
    sqlx::query_as(
        "SELECT status::text, attempts, failed_rounds, revive_after, revivable, error_message
         FROM backfill_queue WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_failed_range_is_queued_again_after_a_cooloff_that_doubles_each_round() {
    let db = test_db().await;
    let clock = Clock::manual(t0());
    let settings = settings("http://127.0.0.1:9", &[]);
    let worker = Worker::with_clock(
        db.pool.clone(),
        config(&settings),
        AlwaysFails,
        clock.clone(),
    );
    let revival = Revival {
        cooloff: Duration::from_secs(6 * 3600),
        rounds: 2,
    };
    let revive = || async {
        revive_failed(&db.pool, clock.sql(), revival, 100)
            .await
            .unwrap()
    };
    let asset = insert_asset(&db.pool, stock("HOLE")).await;
    let id = insert_job(&db.pool, asset, date("2024-01-02"), date("2024-12-31")).await;

    let mut failed_at = t0();
    for (round, cooloff_hours) in [(1, 6), (2, 12)] {
        worker.process_next().await.unwrap();
        assert!(revive().await.is_empty(), "scheduled, not due yet");
        let row = revivable(&db.pool, id).await;
        assert_eq!(row.status, "failed");
        let due = failed_at + chrono::Duration::hours(cooloff_hours);
        assert_eq!(
            row.revive_after,
            Some(due),
            "round {round}: visible to operators"
        );

        clock.set(due - chrono::Duration::seconds(1));
        assert!(revive().await.is_empty());
        clock.set(due);
        assert_eq!(revive().await.len(), 1);
        let row = revivable(&db.pool, id).await;
        assert_eq!(
            (row.status.as_str(), row.attempts, row.failed_rounds),
            ("pending", 0, round)
        );
        let message = row.error_message.unwrap();
        assert!(
            message.starts_with(&format!(
                "queued again after a cool-off (round {round} of 2)"
            )),
            "{message}"
        );
        failed_at = due;
    }

    // Out of rounds: it stays failed, and says so.
    worker.process_next().await.unwrap();
    revive().await;
    clock.advance(Duration::from_secs(365 * 86_400));
    assert!(revive().await.is_empty());
    let row = revivable(&db.pool, id).await;
    assert_eq!((row.status.as_str(), row.revivable), ("failed", false));
    assert!(
        row.error_message
            .unwrap()
            .contains("not queued again by itself after 2 rounds")
    );
}

#[tokio::test]
async fn a_new_purchase_queues_a_failed_range_again_at_once() {
    let db = test_db().await;
    let asset = insert_asset(&db.pool, stock("AGAIN")).await;
    trade(
        &db.pool,
        Uuid::new_v4(),
        asset,
        "buy",
        1,
        "2026-01-02T15:00:00Z",
    )
    .await;
    orchestrator(&db).drain().await.unwrap();
    let id: i64 = sqlx::query_scalar(
        "UPDATE backfill_queue SET status = 'failed', attempts = 5, error_message = 'HTTP 503'
         WHERE asset_id = $1 RETURNING id",
    )
    .bind(asset)
    .fetch_one(&db.pool)
    .await
    .unwrap();

    // Another portfolio buys inside the covered stretch: nothing new to
    // plan, but the failed range is needed again.
    trade(
        &db.pool,
        Uuid::new_v4(),
        asset,
        "buy",
        1,
        "2026-03-02T15:00:00Z",
    )
    .await;
    let applied = orchestrator(&db).drain().await.unwrap();
    assert_eq!(applied.jobs_queued, 1);
    let row = revivable(&db.pool, id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 0));
    let message = row.error_message.unwrap();
    assert!(
        message.starts_with("queued again: a new purchase needs"),
        "{message}"
    );
    assert!(message.contains("HTTP 503"), "{message}");
}

#[tokio::test]
async fn a_job_for_an_asset_made_inactive_ends_cancelled_without_a_provider_call() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let asset = insert_asset(&db.pool, stock("GONE")).await;
    let id = insert_job(&db.pool, asset, date("2024-01-02"), date("2024-12-31")).await;
    sqlx::query("UPDATE assets SET active = false WHERE id = $1")
        .bind(asset)
        .execute(&db.pool)
        .await
        .unwrap();
    backfill_worker(&db.pool, &settings(&server.uri(), &[]), Clock::Database)
        .process_next()
        .await
        .unwrap();

    let row = job(&db.pool, id).await;
    assert_eq!(row.status, "cancelled");
    assert!(
        row.error_message
            .unwrap()
            .contains("is inactive: not fetched")
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    // Cancelled is final for the cool-off rounds too.
    let revived = revive_failed(
        &db.pool,
        None,
        Revival {
            cooloff: Duration::from_secs(1),
            rounds: 4,
        },
        10,
    )
    .await
    .unwrap();
    assert!(revived.is_empty());
}

/// A Yahoo chart for `symbol` in `currency`, one bar per weekday.
fn chart_in(symbol: &str, currency: &str, from: &str, to: &str) -> (usize, ResponseTemplate) {
    let days = weekdays(date(from), date(to));
    let mut body = yahoo_chart(symbol, &days, &series(days.len()));
    body["chart"]["result"][0]["meta"]["currency"] = currency.into();
    (days.len(), ResponseTemplate::new(200).set_body_json(body))
}

async fn answer(server: &MockServer, symbol: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/v8/finance/chart/{symbol}")))
        .respond_with(response)
        .mount(server)
        .await;
}

/// (currency, source) of every stored bar of `asset`, with their count.
async fn series_of(pool: &PgPool, asset: i64) -> Vec<(Option<String>, i64)> {
    sqlx::query_as(
        "SELECT currency, count(*) FROM asset_prices WHERE asset_id = $1
         GROUP BY currency ORDER BY currency",
    )
    .bind(asset)
    .fetch_all(pool)
    .await
    .unwrap()
}

const VOD_L: &str = "UPDATE assets SET exchange = 'XLON', currency = 'GBP', yahoo_symbol = 'VOD.L'
                     WHERE id = $1";

#[tokio::test]
async fn a_corrected_provider_symbol_replaces_the_stored_series() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let (from, to) = ("2024-01-02", "2024-12-31");
    let (n, us) = chart_in("VOD", "USD", from, to);
    answer(&server, "VOD", us).await;
    let (_, london) = chart_in("VOD.L", "GBP", from, to);
    answer(&server, "VOD.L", london).await;
    let asset = insert_asset(&db.pool, stock("VOD")).await;
    sqlx::query(
        "INSERT INTO tracked_assets (asset_id, tracking_users, history_from, history_to)
         VALUES ($1, 1, $2, $3)",
    )
    .bind(asset)
    .bind(date(from))
    .bind(date(to))
    .execute(&db.pool)
    .await
    .unwrap();
    insert_job(&db.pool, asset, date(from), date(to)).await;
    let worker = backfill_worker(&db.pool, &settings(&server.uri(), &[]), Clock::Database);
    worker.process_next().await.unwrap();
    assert_eq!(
        series_of(&db.pool, asset).await,
        vec![(Some("USD".into()), n as i64)]
    );

    // The host corrects the listing: an event, applied like a transaction.
    sqlx::query(VOD_L)
        .bind(asset)
        .execute(&db.pool)
        .await
        .unwrap();
    let applied = orchestrator(&db).drain().await.unwrap();
    assert_eq!((applied.events, applied.jobs_queued), (1, 1));
    assert!(
        series_of(&db.pool, asset).await.is_empty(),
        "the old series is gone"
    );
    worker.process_next().await.unwrap();
    assert_eq!(
        series_of(&db.pool, asset).await,
        vec![(Some("GBP".into()), n as i64)],
        "one series, the new one"
    );
}

#[tokio::test]
async fn a_result_fetched_under_an_identity_changed_meanwhile_is_not_stored() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let (_, us) = chart_in("VOD", "USD", "2024-01-02", "2024-12-31");
    answer(&server, "VOD", us).await;
    let asset = insert_asset(&db.pool, stock("VOD")).await;
    let id = insert_job(&db.pool, asset, date("2024-01-02"), date("2024-12-31")).await;
    let worker = backfill_worker(&db.pool, &settings(&server.uri(), &[]), Clock::Database);

    let claimed = worker.claim(1).await.unwrap();
    let outcome = worker.run_body(&claimed[0]).await;
    assert!(matches!(outcome, Outcome::Complete(_)));
    // The host corrects the asset while the fetch was in flight.
    sqlx::query(VOD_L)
        .bind(asset)
        .execute(&db.pool)
        .await
        .unwrap();
    let finished = pricekeeper::queue::transitions::Finished {
        job: claimed[0].clone(),
        outcome,
    };
    worker.finish(vec![finished]).await.unwrap();

    assert!(
        series_of(&db.pool, asset).await.is_empty(),
        "nothing of the old listing"
    );
    let row = job(&db.pool, id).await;
    assert_eq!(
        (row.status.as_str(), row.attempts),
        ("pending", 0),
        "fetched again"
    );
    assert!(row.error_message.unwrap().contains("identity changed"));
}

#[tokio::test]
async fn normalising_a_legacy_lowercase_asset_is_not_an_identity_change() {
    let db = test_db().await;
    // A row written before the catalog rules upper-cased symbols.
    sqlx::query("ALTER TABLE assets DISABLE TRIGGER assets_normalize")
        .execute(&db.pool)
        .await
        .unwrap();
    let asset = insert_asset(
        &db.pool,
        NewAsset {
            currency: Some(" usd"),
            ..stock("legacy")
        },
    )
    .await;
    sqlx::query("ALTER TABLE assets ENABLE TRIGGER assets_normalize")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE assets SET name = 'Legacy Inc.' WHERE id = $1")
        .bind(asset)
        .execute(&db.pool)
        .await
        .unwrap();
    let (symbol, events): (String, i64) = sqlx::query_as(
        "SELECT (SELECT symbol FROM assets WHERE id = $1),
                (SELECT count(*) FROM portfolio_events WHERE op = 'reidentify')",
    )
    .bind(asset)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((symbol.as_str(), events), ("LEGACY", 0));
}
