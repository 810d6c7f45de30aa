//! The ops HTTP server against a real database in known states: each
//! endpoint's shape and status code when the queue is empty, busy,
//! failing, a provider cools down, the outbox lags, the schema is behind
//! or the database is gone; the admin actions with no, a wrong and the
//! right token.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{insert_stock, test_db};
use pricekeeper::ops::server::{self, OpsState};
use pricekeeper::ops::{HttpAddr, Thresholds};
use pricekeeper::providers::ProviderKind;
use pricekeeper::providers::rate_limit::Rate;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-admin-token-0123456789";

struct Ops {
    addr: SocketAddr,
    http: reqwest::Client,
    cancel: CancellationToken,
}

impl Drop for Ops {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn serve(pool: PgPool, token: Option<&str>) -> Ops {
    let args = {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            ops: pricekeeper::ops::OpsArgs,
        }
        let mut argv = vec!["x".to_owned()];
        if let Some(t) = token {
            argv.push(format!("--admin-token={t}"));
        }
        Cli::try_parse_from(argv).expect("ops args").ops
    };
    let state = OpsState {
        pool,
        thresholds: Thresholds::default(),
        rates: vec![
            (ProviderKind::Yahoo, Rate::per_hour(2000)),
            (ProviderKind::Binance, Rate::per_minute(1200)),
            (ProviderKind::CoinGecko, Rate::per_minute(10)),
        ],
        admin_token: args.admin_token,
        metrics: None,
        role: "worker",
        max_attempts: 5,
        started: std::time::Instant::now(),
    };
    let cancel = CancellationToken::new();
    let running = server::start(
        state,
        HttpAddr::On("127.0.0.1:0".parse().unwrap()),
        cancel.clone(),
    )
    .await
    .expect("start the ops server")
    .expect("not off");
    Ops {
        addr: running.addr,
        http: reqwest::Client::new(),
        cancel,
    }
}

impl Ops {
    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .expect("GET");
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> (u16, Value) {
        let (code, body) = self.get(path).await;
        (
            code,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
        )
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let mut r = self.http.post(format!("http://{}{path}", self.addr));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let r = r.send().await.expect("POST");
        let code = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            !text.to_lowercase().contains("sqlx") && !text.contains("SQLSTATE"),
            "{path}: an answer names the database: {text}"
        );
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn an_empty_database_is_healthy_and_every_endpoint_answers() {
    let db = test_db().await;
    let ops = serve(db.pool.clone(), None).await;

    let (code, live) = ops.json("/health").await;
    assert_eq!((code, live["status"].as_str()), (200, Some("ok")));
    let (code, ready) = ops.json("/health/ready").await;
    assert_eq!(
        (code, ready["status"].as_str()),
        (200, Some("ready")),
        "{ready}"
    );

    let (code, q) = ops.json("/health/queue").await;
    assert_eq!(code, 200, "{q}");
    assert_eq!(q["status"], "ok");
    assert_eq!(q["reasons"], serde_json::json!([]));
    for status in [
        "pending",
        "in_progress",
        "rate_limited",
        "completed",
        "failed",
        "cancelled",
    ] {
        assert_eq!(q["jobs"][status], 0, "{status}: {q}");
    }
    assert_eq!(q["due_now"], 0);
    assert!(q["oldest_due_age_seconds"].is_null());
    assert!(q["next_retry_after"].is_null());
    assert_eq!(q["last_hour"]["completed"], 0);
    assert!(q["last_hour"]["backfill_p95_seconds"].is_null());
    assert_eq!(q["outbox"]["unprocessed"], 0);
    assert!(q["daemon"]["leader"].is_null());

    let (code, s) = ops.json("/health/sources").await;
    assert_eq!(code, 200);
    let names: Vec<&str> = s["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["provider"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["yahoo", "binance", "coingecko"]);
    assert_eq!(s["sources"][0]["status"], "unused");
    assert_eq!(s["sources"][0]["budget"]["requests_per_minute"], 33.333);

    let (code, metrics) = ops.get("/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("pricekeeper_backfill_jobs{status=\"pending\"} 0"),
        "{metrics}"
    );

    let (code, page) = ops.get("/").await;
    assert_eq!(code, 200);
    assert!(page.contains("queue ok"), "{page}");
    assert!(page.contains("No failed jobs."), "{page}");

    let (code, missing) = ops.json("/nope").await;
    assert_eq!(
        (code, missing["error"].as_str()),
        (404, Some("no such route"))
    );
}

#[tokio::test]
async fn a_busy_queue_reports_counts_throughput_and_backfill_time() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "AAPL").await;
    exec(
        &db.pool,
        &format!(
            "INSERT INTO backfill_queue (asset_id, start_date, end_date, status, retry_after, created_at)
             VALUES ({asset}, '2024-01-01', '2024-01-31', 'pending', NULL, now() - interval '1 minute'),
                    ({asset}, '2024-02-01', '2024-02-29', 'pending', now() + interval '10 minutes', now()),
                    ({asset}, '2024-03-01', '2024-03-31', 'rate_limited', now() + interval '5 minutes', now());
             INSERT INTO backfill_queue (asset_id, start_date, end_date, status, locked_by, locked_until, attempts)
             VALUES ({asset}, '2024-04-01', '2024-04-30', 'in_progress', gen_random_uuid(), now() + interval '1 minute', 1);
             INSERT INTO backfill_queue (asset_id, start_date, end_date, status, started_at, completed_at)
             SELECT {asset}, d, d, 'completed', now() - interval '10 minutes' - g * interval '1 second',
                    now() - interval '10 minutes'
             FROM generate_series(1, 20) AS g, LATERAL (SELECT date '2023-01-01' + g AS d) AS x;"
        ),
    )
    .await;
    let ops = serve(db.pool.clone(), None).await;
    let (code, q) = ops.json("/health/queue").await;
    assert_eq!(code, 200, "{q}");
    assert_eq!(q["status"], "ok", "{q}");
    assert_eq!(q["jobs"]["pending"], 2);
    assert_eq!(q["jobs"]["rate_limited"], 1);
    assert_eq!(q["jobs"]["in_progress"], 1);
    assert_eq!(q["jobs"]["completed"], 20);
    assert_eq!(q["estimated"], serde_json::json!([]));
    assert_eq!(q["due_now"], 1);
    let waited = q["oldest_due_age_seconds"].as_f64().unwrap();
    assert!((55.0..120.0).contains(&waited), "{q}");
    assert!(q["next_retry_after"].is_string(), "{q}");
    assert_eq!(q["last_hour"]["completed"], 20);
    // Durations 1..=20 s: mean 10.5, p95 (interpolated) 19.05.
    assert_eq!(q["last_hour"]["backfill_avg_seconds"], 10.5);
    assert_eq!(q["last_hour"]["backfill_p95_seconds"], 19.1);

    let (_, metrics) = ops.get("/metrics").await;
    for line in [
        "pricekeeper_backfill_jobs{status=\"completed\"} 20",
        "pricekeeper_backfill_jobs{status=\"in_progress\"} 1",
        "pricekeeper_backfill_jobs_due 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[tokio::test]
async fn an_old_due_job_or_a_lagging_outbox_makes_the_queue_fail_with_503() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "MSFT").await;
    let ops = serve(db.pool.clone(), None).await;

    // Due for 20 minutes: degraded, still 200.
    exec(
        &db.pool,
        &format!(
            "INSERT INTO backfill_queue (asset_id, start_date, end_date, created_at)
             VALUES ({asset}, '2024-01-01', '2024-01-31', now() - interval '20 minutes')"
        ),
    )
    .await;
    let (code, q) = ops.json("/health/queue").await;
    assert_eq!((code, q["status"].as_str()), (200, Some("degraded")), "{q}");
    assert!(
        q["reasons"][0]
            .as_str()
            .unwrap()
            .contains("oldest due backfill job"),
        "{q}"
    );

    // Due for two hours: failing, 503.
    exec(
        &db.pool,
        "UPDATE backfill_queue SET created_at = now() - interval '2 hours'",
    )
    .await;
    let (code, q) = ops.json("/health/queue").await;
    assert_eq!((code, q["status"].as_str()), (503, Some("failing")), "{q}");

    // The job done, an outbox event unapplied for 20 minutes: failing too.
    exec(
        &db.pool,
        "UPDATE backfill_queue SET status = 'completed', completed_at = now()",
    )
    .await;
    exec(
        &db.pool,
        &format!(
            "INSERT INTO portfolio_events (op, transaction_id, new_portfolio_id, new_asset_id,
                                           new_side, new_quantity, new_executed_at, created_at)
             VALUES ('insert', 1, gen_random_uuid(), {asset}, 'buy', 1, now(),
                     now() - interval '20 minutes')"
        ),
    )
    .await;
    let (code, q) = ops.json("/health/queue").await;
    assert_eq!((code, q["status"].as_str()), (503, Some("failing")), "{q}");
    assert_eq!(q["outbox"]["unprocessed"], 1);
    assert!(
        q["outbox"]["oldest_age_seconds"].as_f64().unwrap() >= 1199.0,
        "{q}"
    );
    assert!(q["reasons"][0].as_str().unwrap().contains("outbox"), "{q}");
    let (_, metrics) = ops.get("/metrics").await;
    assert!(
        metrics.contains("pricekeeper_outbox_unprocessed_events 1"),
        "{metrics}"
    );

    // Failed jobs of the last hour.
    exec(&db.pool, "DELETE FROM portfolio_events").await;
    exec(
        &db.pool,
        &format!(
            "INSERT INTO backfill_queue (asset_id, start_date, end_date, status, error_message)
             VALUES ({asset}, '2023-01-01', '2023-01-31', 'failed', 'symbol not found')"
        ),
    )
    .await;
    let (code, q) = ops.json("/health/queue").await;
    assert_eq!((code, q["status"].as_str()), (200, Some("degraded")), "{q}");
    assert_eq!(q["last_hour"]["failed"], 1);
    let (_, page) = ops.get("/").await;
    assert!(page.contains("symbol not found"), "{page}");
}

#[tokio::test]
async fn a_provider_cooling_down_or_refusing_for_hours_shows_in_sources_and_metrics() {
    let db = test_db().await;
    exec(
        &db.pool,
        "INSERT INTO provider_state (provider, cooldown_until, consecutive_rate_limits,
                                     last_success_at, last_error_at, last_error,
                                     requests_total, rate_limited_total)
         VALUES ('yahoo', now() + interval '10 minutes', 1, now() - interval '5 minutes',
                 now() - interval '1 minute', 'HTTP 429: Too Many Requests', 40, 1),
                ('binance', now() + interval '20 minutes', 4, now() - interval '3 hours',
                 now() - interval '1 minute', 'HTTP 418: <b>banned</b>', 10, 4)",
    )
    .await;
    let ops = serve(db.pool.clone(), None).await;
    let (code, s) = ops.json("/health/sources").await;
    assert_eq!(code, 200);
    let yahoo = &s["sources"][0];
    assert_eq!(yahoo["provider"], "yahoo");
    assert_eq!(yahoo["status"], "cooling", "{s}");
    assert!(yahoo["cooling_until"].is_string());
    assert_eq!(yahoo["last_error"], "HTTP 429: Too Many Requests");
    assert_eq!(yahoo["rate_limited_total"], 1);
    assert!(yahoo["last_hour"]["requests"].is_u64());
    let binance = &s["sources"][1];
    assert_eq!(binance["status"], "failing", "{s}");
    assert_eq!(binance["budget"]["consecutive_rate_limits"], 4);
    assert_eq!(s["sources"][2]["status"], "unused");

    let (_, metrics) = ops.get("/metrics").await;
    for line in [
        "pricekeeper_provider_cooling{provider=\"yahoo\"} 1",
        "pricekeeper_provider_failing{provider=\"binance\"} 1",
        "pricekeeper_provider_failing{provider=\"yahoo\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    let (_, page) = ops.get("/").await;
    // The provider's own text, escaped.
    assert!(
        page.contains("HTTP 418: &lt;b&gt;banned&lt;/b&gt;"),
        "{page}"
    );
    assert!(!page.contains("<b>banned"), "{page}");
}

/// Binance refused for the deployment (451) and a provider answering empty
/// for every symbol are told apart from cooling and failing, in
/// /health/sources and on the status page.
#[tokio::test]
async fn an_unavailable_or_silently_empty_provider_shows_in_sources_and_on_the_page() {
    let db = test_db().await;
    exec(
        &db.pool,
        "INSERT INTO provider_state (provider, last_success_at, last_error_at, last_error,
                                     unavailable_since, unavailable_reason, empty_streak)
         VALUES ('binance', NULL, now() - interval '1 minute', 'HTTP 451: restricted',
                 now() - interval '1 day', 'HTTP 451: <i>restricted</i> location', 0),
                ('kraken', now() - interval '1 minute', NULL, NULL, NULL, NULL, 25)",
    )
    .await;
    let ops = serve(db.pool.clone(), None).await;
    let (code, s) = ops.json("/health/sources").await;
    assert_eq!(code, 200);
    let by_name = |name: &str| {
        s["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["provider"] == name)
            .unwrap()
            .clone()
    };
    let binance = by_name("binance");
    assert_eq!(binance["status"], "unavailable", "{s}");
    assert!(binance["unavailable_since"].is_string());
    assert_eq!(binance["problem"], "HTTP 451: <i>restricted</i> location");
    let kraken = by_name("kraken");
    assert_eq!(kraken["status"], "unhealthy", "{s}");
    assert_eq!(kraken["empty_answers_in_a_row"], 25);
    assert!(
        kraken["problem"]
            .as_str()
            .unwrap()
            .contains("the API may have changed")
    );

    let (_, page) = ops.get("/").await;
    for needle in [
        "badge unavailable",
        "badge unhealthy",
        "HTTP 451: &lt;i&gt;restricted&lt;/i&gt; location",
        "the API may have changed",
    ] {
        assert!(page.contains(needle), "{needle} not on the page:\n{page}");
    }
    assert!(!page.contains("<i>restricted"), "{page}");
}

#[tokio::test]
async fn readiness_fails_while_the_schema_is_behind() {
    let db = test_db().await;
    exec(&db.pool, "DELETE FROM _sqlx_migrations WHERE version = 50").await;
    let ops = serve(db.pool.clone(), None).await;
    let (code, ready) = ops.json("/health/ready").await;
    assert_eq!(code, 503, "{ready}");
    assert_eq!(ready["missing_migrations"], serde_json::json!([50]));
    assert!(
        ready["reason"]
            .as_str()
            .unwrap()
            .contains("pricekeeper migrate")
    );
}

#[tokio::test]
async fn with_the_database_gone_liveness_holds_and_the_rest_answer_503_at_once() {
    // A pool on a port nobody listens on.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let ops = serve(pool, None).await;
    assert_eq!(ops.get("/health").await.0, 200);
    let started = std::time::Instant::now();
    for path in [
        "/health/ready",
        "/health/queue",
        "/health/sources",
        "/metrics",
    ] {
        let (code, body) = ops.json(path).await;
        assert_eq!(code, 503, "{path}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with("the database"), "{path}: {body}");
    }
    let (code, page) = ops.get("/").await;
    assert_eq!(code, 503);
    assert!(page.contains("database unavailable"), "{page}");
    // Bounded by the server's own wait, not the pool's 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn admin_actions_are_off_without_a_token() {
    let db = test_db().await;
    let ops = serve(db.pool.clone(), None).await;
    let (code, _) = ops.post("/admin/jobs/1/retry", Some(TOKEN), None).await;
    assert_eq!(code, 404);
}

async fn job_status(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT status::text FROM backfill_queue WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_actions_need_the_right_token_and_change_only_what_they_say() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "NVDA").await;
    let failed: i64 = sqlx::query_scalar(
        "INSERT INTO backfill_queue (asset_id, start_date, end_date, status, attempts, error_message)
         VALUES ($1, '2024-01-01', '2024-01-31', 'failed', 5, 'HTTP 500') RETURNING id",
    )
    .bind(asset)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let pending: i64 = sqlx::query_scalar(
        "INSERT INTO backfill_queue (asset_id, start_date, end_date)
         VALUES ($1, '2024-02-01', '2024-02-29') RETURNING id",
    )
    .bind(asset)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let ops = serve(db.pool.clone(), Some(TOKEN)).await;
    let retry = format!("/admin/jobs/{failed}/retry");

    // No token, a wrong one, one that is a prefix, a non-bearer scheme.
    for token in [None, Some("wrong-token-0123456789"), Some("test-admin")] {
        let (code, body) = ops.post(&retry, token, None).await;
        assert_eq!(code, 401, "{token:?}: {body}");
    }
    let basic = ops
        .http
        .post(format!("http://{}{retry}", ops.addr))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);
    assert_eq!(
        job_status(&db.pool, failed).await,
        "failed",
        "nothing changed"
    );

    let (code, body) = ops.post(&retry, Some(TOKEN), None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["retried"][0]["id"], failed);
    assert_eq!(body["retried"][0]["symbol"], "NVDA");
    assert_eq!(job_status(&db.pool, failed).await, "pending");
    // Not failed any more: nothing to retry.
    assert_eq!(ops.post(&retry, Some(TOKEN), None).await.0, 404);

    let (code, body) = ops
        .post(&format!("/admin/jobs/{pending}/cancel"), Some(TOKEN), None)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["cancelled"]["was"], "pending");
    assert_eq!(job_status(&db.pool, pending).await, "cancelled");
    assert_eq!(
        ops.post(&format!("/admin/jobs/{pending}/cancel"), Some(TOKEN), None)
            .await
            .0,
        404
    );

    // Retry all failed jobs of an asset, by symbol.
    exec(
        &db.pool,
        &format!("UPDATE backfill_queue SET status = 'failed' WHERE id = {failed}"),
    )
    .await;
    let (code, body) = ops
        .post("/admin/assets/NVDA/retry", Some(TOKEN), None)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["retried"].as_array().unwrap().len(), 1);

    // Queue a backfill: new, then the same range again (kept, not twinned).
    let range = r#"{"from": "2020-01-01", "to": "2020-12-31"}"#;
    let (code, body) = ops
        .post(
            &format!("/admin/assets/{asset}/backfill"),
            Some(TOKEN),
            Some(range),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let queued = body["job"]["id"].as_i64().unwrap();
    let (code, body) = ops
        .post(
            "/admin/assets/NVDA/backfill?exchange=XNAS",
            Some(TOKEN),
            Some(range),
        )
        .await;
    assert_eq!(
        (code, body["job"]["id"].as_i64()),
        (200, Some(queued)),
        "{body}"
    );
    assert_eq!(body["job"]["created"], false);

    // Bad requests: each refused with our own message, nothing queued.
    let jobs_before: i64 = sqlx::query_scalar("SELECT count(*) FROM backfill_queue")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let huge = format!(
        r#"{{"from": "2020-01-01", "to": "2020-12-31", "x": "{}"}}"#,
        "a".repeat(1 << 20)
    );
    let cases: Vec<(String, Option<String>, u16)> = vec![
        (
            "/admin/assets/NVDA/backfill".into(),
            Some(r#"{"from": "2021-01-01", "to": "2020-01-01"}"#.into()),
            400,
        ),
        (
            "/admin/assets/NVDA/backfill".into(),
            Some(r#"{"from": "2020-01-01", "to": "2999-01-01"}"#.into()),
            400,
        ),
        (
            "/admin/assets/NVDA/backfill".into(),
            Some("not json".into()),
            400,
        ),
        (
            "/admin/assets/NVDA/backfill".into(),
            Some(r#"{"from": "2020-01-01"}"#.into()),
            422,
        ),
        ("/admin/assets/NVDA/backfill".into(), Some(huge), 413),
        (
            "/admin/assets/ZZZZ/backfill".into(),
            Some(range.into()),
            404,
        ),
        (
            "/admin/assets/NV%00DA/backfill".into(),
            Some(range.into()),
            400,
        ),
        ("/admin/assets/NV%1B%5B31mDA/retry".into(), None, 400),
        ("/admin/jobs/999999/retry".into(), None, 404),
    ];
    for (path, body, want) in cases {
        let (code, answer) = ops.post(&path, Some(TOKEN), body.as_deref()).await;
        assert_eq!(code, want, "{path}: {answer}");
    }
    let jobs_after: i64 = sqlx::query_scalar("SELECT count(*) FROM backfill_queue")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs_before, jobs_after);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = test_db().await;
    let ops = serve(db.pool.clone(), None).await;
    let mut slow = tokio::net::TcpStream::connect(ops.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Meanwhile everyone else is served.
    assert_eq!(ops.get("/health").await.0, 200);
    // The server closes the slow connection on its own (header deadline
    // 10 s): a read ends instead of waiting forever.
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(60), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the slow client was never dropped");
    // On a new connection: the first GET's idle keep-alive connection meets
    // the same 10 s header deadline at about this moment, and reusing it
    // races the server closing it (hyper: IncompleteMessage).
    let fresh = reqwest::Client::new()
        .get(format!("http://{}/health", ops.addr))
        .send()
        .await
        .expect("GET on a new connection");
    assert_eq!(fresh.status().as_u16(), 200);
}
