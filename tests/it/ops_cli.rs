//! The ops surface through the binary: a worker on a free port serves
//! the endpoints while it backfills from a Yahoo-shaped local server;
//! `/metrics` passes `promtool check metrics` with its histogram buckets;
//! the status page is rendered by headless Chromium and read as a person
//! would; SIGTERM stops it with exit 0. Then `status`, `prices` and `jobs`
//! against the same database, and bad ops settings at start.

use crate::common;
use crate::queue_common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Months, Utc};
use common::{eventually, eventually_some, test_db};
use queue_common::{series, weekdays, yahoo_chart};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DEADLINE: Duration = Duration::from_secs(60);
const TOKEN: &str = "cli-admin-token-0123456789";

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pricekeeper"));
    cmd.env("NO_COLOR", "1").kill_on_drop(true);
    cmd
}

/// A tool a test needs, or a failure that names the Debian package.
pub(crate) fn tool(name: &str, package: &str) -> String {
    match std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => panic!("`{name}` is not installed: apt-get install -y {package} (.ci/run does)"),
    }
}

pub(crate) async fn promtool_check(text: &str) {
    let promtool = tool("promtool", "prometheus");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The page as Chromium renders it: its DOM after load, and a screenshot
/// kept under target/test-artifacts/.
async fn chromium(url: &str) -> String {
    let chromium = tool("chromium", "chromium");
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let profile = tempdir();
    let common = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--no-first-run".to_owned(),
        format!("--user-data-dir={profile}"),
        "--window-size=1100,1400".to_owned(),
    ];
    let out = tokio::time::timeout(
        DEADLINE,
        Command::new(&chromium)
            .args(&common)
            .arg(format!("--screenshot={}", shot.display()))
            .arg(url)
            .output(),
    )
    .await
    .expect("chromium screenshot in time")
    .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::metadata(&shot).expect("a screenshot").len();
    assert!(png > 10_000, "a blank screenshot? {png} bytes");
    let out = tokio::time::timeout(
        DEADLINE,
        Command::new(&chromium)
            .args(&common)
            .arg("--dump-dom")
            .arg(url)
            .output(),
    )
    .await
    .expect("chromium dump in time")
    .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tempdir() -> String {
    let dir = std::env::temp_dir().join(format!("pk-chromium-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.display().to_string()
}

/// Text a person reads in an element: tags dropped, whitespace collapsed.
fn text_of(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id}"));
    let open = html[..start].rfind('<').unwrap();
    let tag: String = html[open + 1..]
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect();
    let end = html[start..]
        .find(&format!("</{tag}>"))
        .map_or(html.len(), |i| start + i);
    let mut text = String::new();
    let mut in_tag = false;
    for c in html[open..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    // What a reader sees of the serialized DOM's entities.
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn a_worker_serves_health_metrics_page_and_admin_then_stops_on_sigterm() {
    let db = test_db().await;
    let yahoo = MockServer::start().await;
    let asset: i64 = sqlx::query_scalar(
        "INSERT INTO assets (symbol, asset_type, exchange, currency, yahoo_symbol)
         VALUES ('AAPL', 'stock', 'XNAS', 'USD', 'AAPL') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let bought = Utc::now().date_naive() - Months::new(1);
    let days = weekdays(
        bought - Months::new(12),
        Utc::now().date_naive() - chrono::Days::new(2),
    );
    Mock::given(method("GET"))
        .and(path("/v8/finance/chart/AAPL"))
        .respond_with(ResponseTemplate::new(200).set_body_json(yahoo_chart(
            "AAPL",
            &days,
            &series(days.len()),
        )))
        .mount(&yahoo)
        .await;

    let mut worker = bin()
        .args(["worker", "--http-addr", "127.0.0.1:0"])
        .env("DATABASE_URL", db.url())
        .env("PRICEKEEPER_YAHOO_URL", yahoo.uri())
        .env("PRICEKEEPER_ADMIN_TOKEN", TOKEN)
        .env("PRICEKEEPER_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let log = log.clone();
        let mut lines = tokio::io::BufReader::new(worker.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    let addr: String = eventually_some(DEADLINE, "the ops server's address in the log", || {
        let found = log.lock().unwrap().lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"]
                .as_str()?
                .starts_with("ops HTTP server listening"))
            .then(|| v["addr"].as_str().map(str::to_owned))?
        });
        std::future::ready(found)
    })
    .await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    sqlx::query(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         VALUES (gen_random_uuid(), $1, 'buy', 10, 187.5, $2::date + time '15:00')",
    )
    .bind(asset)
    .bind(bought)
    .execute(&db.pool)
    .await
    .unwrap();
    eventually(DEADLINE, "the backfill to complete", || async {
        let done: Option<String> =
            sqlx::query_scalar("SELECT status::text FROM backfill_queue WHERE asset_id = $1")
                .bind(asset)
                .fetch_optional(&db.pool)
                .await
                .unwrap();
        done.as_deref() == Some("completed")
    })
    .await;

    // The finished job's line, for people.
    let done_line = eventually_some(DEADLINE, "the job's info line", || {
        let line = log
            .lock()
            .unwrap()
            .lines()
            .find(|l| l.contains("backfill done"))
            .map(str::to_owned);
        std::future::ready(line)
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&done_line).unwrap();
    assert_eq!(v["level"], "INFO", "{done_line}");
    assert_eq!(v["asset"], "AAPL", "{done_line}");
    assert_eq!(v["provider"], "yahoo", "{done_line}");
    assert!(v["bars"].as_u64().unwrap() > 200, "{done_line}");
    assert!(v["took"].as_str().unwrap().ends_with('s'), "{done_line}");

    let get = |p: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http.get(format!("{base}{p}")).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/health").await.0, 200);
    assert_eq!(get("/health/ready").await.0, 200);
    let (code, queue) = get("/health/queue").await;
    assert_eq!(code, 200, "{queue}");
    let queue: serde_json::Value = serde_json::from_str(&queue).unwrap();
    assert_eq!(queue["jobs"]["completed"], 1, "{queue}");
    assert_eq!(queue["last_hour"]["completed"], 1, "{queue}");
    assert!(
        queue["last_hour"]["backfill_p95_seconds"].is_number(),
        "{queue}"
    );
    assert_eq!(queue["tracked_assets"], 1);
    let (_, sources) = get("/health/sources").await;
    let sources: serde_json::Value = serde_json::from_str(&sources).unwrap();
    assert_eq!(sources["sources"][0]["status"], "ok", "{sources}");
    assert!(
        sources["sources"][0]["last_hour"]["requests"]
            .as_u64()
            .unwrap()
            >= 1,
        "{sources}"
    );

    let (code, metrics) = get("/metrics").await;
    assert_eq!(code, 200);
    promtool_check(&metrics).await;
    for needle in [
        "pricekeeper_backfill_duration_seconds_bucket{outcome=\"completed\",le=\"0.5\"}",
        "pricekeeper_backfill_duration_seconds_bucket{outcome=\"completed\",le=\"+Inf\"} 1",
        "pricekeeper_provider_request_duration_seconds_bucket{provider=\"yahoo\",le=\"0.05\"}",
        "pricekeeper_provider_requests_total{provider=\"yahoo\",outcome=\"ok\"}",
        "pricekeeper_backfill_jobs_finished_total{outcome=\"completed\"} 1",
        "pricekeeper_backfill_jobs{status=\"completed\"} 1",
        "pricekeeper_events_applied_total 1",
        "pricekeeper_tracked_assets 1",
        "pricekeeper_daemon_last_tick_age_seconds",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
    for line in metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("pricekeeper_"), "unprefixed: {line}");
        assert!(!line.contains("AAPL"), "a per-symbol label: {line}");
    }

    // A failed job and a cooling provider, then the page as a person sees it.
    sqlx::query(
        "INSERT INTO backfill_queue (asset_id, start_date, end_date, status, error_message, provider)
         VALUES ($1, '2019-01-01', '2019-12-31', 'failed', 'Yahoo has no data for 2019 <script>x</script>', 'yahoo');
         ",
    )
    .bind(asset)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE provider_state SET cooldown_until = now() + interval '10 minutes',
                last_error_at = now(), last_error = 'HTTP 429: Too Many Requests'
         WHERE provider = 'yahoo'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let dom = chromium(&format!("{base}/")).await;
    let title = text_of(&dom, "queue-status");
    assert_eq!(title, "queue degraded", "{dom}");
    let queue_table = text_of(&dom, "queue");
    assert!(queue_table.contains("completed 1"), "{queue_table}");
    assert!(queue_table.contains("failed 1"), "{queue_table}");
    let providers = text_of(&dom, "providers");
    assert!(providers.contains("yahoo cooling"), "{providers}");
    assert!(
        providers.contains("HTTP 429: Too Many Requests"),
        "{providers}"
    );
    let failures = text_of(&dom, "failures");
    assert!(failures.contains("AAPL XNAS"), "{failures}");
    assert!(
        failures.contains("Yahoo has no data for 2019 <script>x</script>"),
        "{failures}"
    );
    assert!(
        text_of(&dom, "daemon").contains("No daemon holds the leader lease"),
        "{dom}"
    );
    assert!(dom.contains("<rect"), "the throughput chart: {dom}");
    assert!(
        !dom.contains("<script>x"),
        "unescaped text became markup: {dom}"
    );

    // One admin action through the binary's server.
    let failed: i64 = sqlx::query_scalar("SELECT id FROM backfill_queue WHERE status = 'failed'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let url = format!("{base}/admin/jobs/{failed}/cancel");
    let wrong = http.post(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let right = http.post(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(right.status().as_u16(), 200);
    eventually(DEADLINE, "the admin action logged", || {
        std::future::ready(log.lock().unwrap().contains("admin: job cancelled"))
    })
    .await;

    let pid = worker.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(DEADLINE, worker.wait())
        .await
        .expect("the worker exits after SIGTERM")
        .unwrap();
    let _ = reader.await;
    assert!(status.success(), "{status:?}\n{}", log.lock().unwrap());
    assert!(
        reqwest::get(format!("{base}/health")).await.is_err(),
        "the server stopped with the process"
    );
}

async fn run(args: &[&str], url: &str) -> (i32, String, String) {
    let out = bin()
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn status_prices_and_jobs_read_and_steer_the_database_without_a_server() {
    let db = test_db().await;
    let asset = common::insert_stock(&db.pool, "AAPL").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SELECT ensure_asset_prices_partitions('2024-01-01', '2024-12-31');
         INSERT INTO asset_prices (asset_id, ts, open, high, low, close, volume, currency, source)
         VALUES ({asset}, '2024-03-01 14:30Z', 10, 11, 9, 10.5, 1000, 'USD', 'yahoo'),
                ({asset}, '2024-03-04 14:30Z', 10.5, 12, 10, 11.25, 2000, 'USD', 'yahoo');
         INSERT INTO asset_quotes (asset_id, price, currency, quoted_at, source)
         VALUES ({asset}, 11.5, 'USD', now(), 'yahoo');
         INSERT INTO backfill_queue (asset_id, start_date, end_date, status, error_message, provider)
         VALUES ({asset}, '2023-01-01', '2023-12-31', 'failed', 'no data'||chr(27)||'[31m', 'yahoo');
         INSERT INTO backfill_queue (asset_id, start_date, end_date, retry_after)
         VALUES ({asset}, '2022-01-01', '2022-12-31', now() + interval '1 hour');"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    let url = db.url();

    let (code, out, err) = run(&["status"], url).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Queue: degraded"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().eq(["failed", "1"])),
        "{out}"
    );
    assert!(out.contains("PROVIDER"), "{out}");
    let (code, out, _) = run(&["status", "--format", "json"], url).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["queue"]["jobs"]["failed"], 1);
    assert_eq!(v["sources"][0]["provider"], "yahoo");

    let (code, out, err) = run(
        &[
            "prices",
            "aapl",
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-31",
            "--format",
            "csv",
        ],
        url,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "date,open,high,low,close,adj_close,volume,currency,source,flags\n\
         2024-03-01,10,11,9,10.5,,1000,USD,yahoo,\n\
         2024-03-04,10.5,12,10,11.25,,2000,USD,yahoo,\n"
    );
    let (_, out, _) = run(
        &[
            "prices",
            "AAPL",
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-31",
        ],
        url,
    )
    .await;
    assert!(out.contains("2 daily bars"), "{out}");
    assert!(out.contains("Latest quote: 11.5 USD"), "{out}");
    let (code, out, _) = run(
        &["prices", "AAPL", "--format", "json", "--from", "2024-01-01"],
        url,
    )
    .await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["bars"].as_array().unwrap().len(), 2);
    let (code, _, err) = run(&["prices", "NOPE"], url).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no asset \"NOPE\""), "{err}");

    let (code, out, _) = run(&["jobs", "list", "--status", "failed"], url).await;
    assert_eq!(code, 0);
    assert!(out.contains("AAPL XNAS"), "{out}");
    assert!(
        out.contains("no data?[31m"),
        "the escape sequence is defused: {out}"
    );
    let (code, _, err) = run(&["jobs", "retry"], url).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--job ID, --asset SYMBOL or --all"), "{err}");
    let (code, out, _) = run(&["jobs", "retry", "--asset", "AAPL"], url).await;
    assert_eq!(code, 0);
    assert!(out.contains("was failed) queued again"), "{out}");
    let (code, out, _) = run(&["jobs", "retry", "--all", "--waiting"], url).await;
    assert_eq!(code, 0);
    assert!(out.contains("was pending) made due now"), "{out}");
    let due: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM backfill_queue WHERE status = 'pending' AND coalesce(retry_after, now()) <= now()",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(due, 2);

    // A database that does not answer: a message without the password.
    let (code, _, err) = run(
        &["status", "--db-connect-timeout", "1s"],
        "postgres://app:s3cret@127.0.0.1:1/none",
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot read the database"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[tokio::test]
async fn bad_ops_settings_stop_the_process_at_start_naming_the_variable() {
    for (args, env, var) in [
        (
            vec!["worker", "--http-addr", "localhost:80"],
            None,
            "PRICEKEEPER_HTTP_ADDR",
        ),
        (
            vec!["run"],
            Some(("PRICEKEEPER_ADMIN_TOKEN", "short")),
            "PRICEKEEPER_ADMIN_TOKEN",
        ),
        (
            vec!["daemon"],
            Some(("PRICEKEEPER_JOB_RETENTION", "soon")),
            "PRICEKEEPER_JOB_RETENTION",
        ),
        (
            vec!["status"],
            Some(("PRICEKEEPER_HEALTH_DUE_FAILING", "0s")),
            "PRICEKEEPER_HEALTH_DUE_FAILING",
        ),
    ] {
        let mut cmd = bin();
        cmd.args(&args)
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/unused");
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(var), "{args:?}: {err}");
        assert!(!err.contains("short"), "the token is never echoed: {err}");
    }
}

#[tokio::test]
async fn a_taken_port_stops_the_worker_naming_the_setting() {
    let db = test_db().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tokio::time::timeout(
        DEADLINE,
        bin()
            .args(["worker", "--http-addr", &addr])
            .env("DATABASE_URL", db.url())
            .output(),
    )
    .await
    .expect("the worker gives up at once")
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("PRICEKEEPER_HTTP_ADDR"), "{err}");
}
