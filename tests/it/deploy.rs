//! What `deploy/` promises, checked against the real binary: `pricekeeper
//! market` serves the simulated market a worker fills its backfills from
//! (as the compose quick start runs it), and every metric the alert rules
//! (`deploy/prometheus/alerts.yaml`) and the Grafana dashboard
//! (`deploy/grafana/dashboards/pricekeeper.json`) query is in a scrape of a
//! running worker and daemon after they did some work. The dashboard's
//! queries must also parse as PromQL (promtool checks them as rules).
//! `.ci/check_deploy.py` checks the files themselves (promtool, YAML, schemas).

use crate::common;
use crate::events_common::trade;
use crate::ops_cli::{promtool_check, tool};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, eventually_some, test_db};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

const DEADLINE: Duration = Duration::from_secs(90);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A pricekeeper process whose output lines are kept for the test to read.
struct Proc {
    _child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
            .args(args)
            .envs(env.iter().copied())
            .env("PRICEKEEPER_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            let mut reader = tokio::io::BufReader::new(out).lines();
            tokio::spawn(async move {
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Self {
            _child: child,
            lines,
        }
    }

    /// The first output line `pick` finds something in.
    async fn find<T>(&self, what: &str, pick: impl Fn(&str) -> Option<T>) -> T {
        eventually_some(DEADLINE, what, || {
            let found = self.lines.lock().unwrap().iter().find_map(|l| pick(l));
            std::future::ready(found)
        })
        .await
    }

    /// The ops server's base URL, from its "listening" log line.
    async fn ops_url(&self) -> String {
        self.find("the ops server's address", |l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let listening = v["message"]
                .as_str()?
                .starts_with("ops HTTP server listening");
            let addr = v["addr"].as_str().filter(|_| listening)?;
            Some(format!("http://{addr}"))
        })
        .await
    }
}

/// Every `pricekeeper_…` name in `text` (metric names are lower case; the
/// settings' upper-case names are not matched).
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let name_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("pricekeeper_") {
        if at > 0 && (name_char(bytes[at - 1]) || bytes[at - 1].is_ascii_uppercase()) {
            continue;
        }
        let end = bytes[at..]
            .iter()
            .position(|&b| !name_char(b))
            .map_or(text.len(), |n| at + n);
        names.insert(text[at..end].to_owned());
    }
    names
}

/// The sample names of a Prometheus text scrape (histograms as their
/// `_bucket`, `_sum` and `_count` series, as queries name them).
fn scraped_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every `expr` of the dashboard's panels.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(repo("deploy/grafana/dashboards/pricekeeper.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    queries
}

/// Every HTTP path the deployment asks of a process: the Kubernetes probes
/// and the ServiceMonitor (`path: /…`), the image's HEALTHCHECK (`GET /…`).
fn probed_paths() -> BTreeSet<String> {
    let mut texts = vec![std::fs::read_to_string(repo("deploy/Dockerfile")).unwrap()];
    for entry in std::fs::read_dir(repo("deploy/kubernetes")).unwrap() {
        texts.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let mut paths = BTreeSet::new();
    for text in &texts {
        for marker in ["path: /", "GET /"] {
            for (at, _) in text.match_indices(marker) {
                let path: String = text[at + marker.len() - 1..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | '}' | '\''))
                    .collect();
                paths.insert(path);
            }
        }
    }
    paths
}

async fn scrape(url: &str) -> String {
    let response = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn dashboard_queries_parse_as_promql() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    // Grafana fills in $__rate_interval; promtool checks each query as the
    // expression of a recording rule.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, query) in queries.iter().enumerate() {
        let query = query.replace("$__rate_interval", "5m");
        let quoted = serde_json::to_string(&query).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: {quoted}\n"
        ));
    }
    let file = std::env::temp_dir().join(format!(
        "pk-dashboard-rules-{}.yaml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new(tool("promtool", "prometheus"))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "a dashboard query is not PromQL: {}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_worker_and_a_daemon_on_the_market_subcommand_serve_every_metric_alerts_and_dashboard_use()
 {
    let db = test_db().await;
    let market = Proc::spawn(&["market", "--market-addr", "127.0.0.1:0"], &[]);
    let market_url = market
        .find("the market's URL", |l| {
            l.strip_prefix("simulated market: ").map(str::to_owned)
        })
        .await;

    // The host application's writes, as in the compose quick start, plus
    // one stock the market does not list: its job fails, so the failure
    // metrics have something to say.
    pricekeeper::demo::script::write_catalog(&db.pool)
        .await
        .unwrap();
    let unlisted = common::insert_stock(&db.pool, "ZZZQ").await;
    pricekeeper::demo::script::write_transactions(&db.pool)
        .await
        .unwrap();
    let bought = (chrono::Utc::now() - chrono::TimeDelta::days(30)).to_rfc3339();
    trade(&db.pool, uuid::Uuid::new_v4(), unlisted, "buy", 1, &bought).await;

    let env = [
        ("DATABASE_URL", db.url()),
        ("PRICEKEEPER_HTTP_ADDR", "127.0.0.1:0"),
        ("PRICEKEEPER_YAHOO_URL", &market_url),
        ("PRICEKEEPER_BINANCE_URL", &market_url),
        ("PRICEKEEPER_COINGECKO_URL", &market_url),
        // The market answers as those three only.
        ("PRICEKEEPER_CRYPTO_CHAIN", "binance,coingecko,yahoo"),
        ("PRICEKEEPER_FX_CHAIN", "yahoo"),
        ("PRICEKEEPER_YAHOO_RATE", "1200/min"),
        ("PRICEKEEPER_COINGECKO_RATE", "300/min"),
        // The market's 429s and 5xx are waited out in a second, not minutes.
        ("RETRY_EXPONENTIAL_BASE", "1s"),
        ("PRICEKEEPER_POLL_INTERVAL", "250ms"),
    ];
    let worker = Proc::spawn(&["worker"], &env);
    let daemon = Proc::spawn(
        &[
            "daemon",
            "--cron",
            "* * * * * *",
            "--trading-hours-only",
            "false",
        ],
        &env,
    );
    let (worker_url, daemon_url) = (worker.ops_url().await, daemon.ops_url().await);

    eventually(DEADLINE, "every backfill to settle", || async {
        let (open, completed, failed): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status NOT IN ('completed', 'failed', 'cancelled')),
                    count(*) FILTER (WHERE status = 'completed'),
                    count(*) FILTER (WHERE status = 'failed')
             FROM backfill_queue",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        open == 0 && completed >= 8 && failed == 1
    })
    .await;
    // Filled from the market through the binary: a year of AAPL's sessions.
    let bars: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM asset_prices p JOIN assets a ON a.id = p.asset_id
         WHERE a.symbol = 'AAPL' AND p.source = 'yahoo'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(bars > 200, "{bars} AAPL bars");
    eventually(DEADLINE, "a daemon tick that wrote quotes", || async {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM asset_quotes)")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    })
    .await;

    let alerts = std::fs::read_to_string(repo("deploy/prometheus/alerts.yaml")).unwrap();
    let mut wanted = metric_names(&alerts);
    let dashboard = metric_names(&dashboard_queries().join("\n"));
    assert!(dashboard.len() >= 15, "{dashboard:?}");
    wanted.extend(dashboard);
    // A tick is counted when it is written: scrape until both processes
    // show what they did, then say what is still missing.
    let mut missing = BTreeSet::new();
    let mut ticked = false;
    let (mut worker_scrape, mut daemon_scrape) = (String::new(), String::new());
    let start = tokio::time::Instant::now();
    while start.elapsed() < DEADLINE {
        worker_scrape = scrape(&worker_url).await;
        daemon_scrape = scrape(&daemon_url).await;
        let scraped: BTreeSet<String> = scraped_names(&worker_scrape)
            .union(&scraped_names(&daemon_scrape))
            .cloned()
            .collect();
        missing = wanted.difference(&scraped).cloned().collect();
        ticked = daemon_scrape
            .lines()
            .any(|l| l.starts_with("pricekeeper_daemon_ticks_total") && !l.ends_with(" 0"));
        if missing.is_empty() && ticked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        missing.is_empty(),
        "queried by the alerts or the dashboard but in no scrape: {missing:?}\n\
         worker:\n{worker_scrape}\ndaemon:\n{daemon_scrape}"
    );
    assert!(ticked, "no daemon tick counted:\n{daemon_scrape}");
    // What the kubelet, Prometheus and Docker will ask, both processes
    // answer (a wrong probe path would restart every pod).
    let paths = probed_paths();
    assert!(
        paths.contains("/health") && paths.contains("/health/ready") && paths.contains("/metrics"),
        "{paths:?}"
    );
    for url in [&worker_url, &daemon_url] {
        for path in &paths {
            let status = reqwest::get(format!("{url}{path}")).await.unwrap().status();
            assert_eq!(status, 200, "{url}{path}");
        }
    }
    promtool_check(&worker_scrape).await;
    promtool_check(&daemon_scrape).await;
    for (scrape, held) in [(&daemon_scrape, "1"), (&worker_scrape, "")] {
        let line = scrape
            .lines()
            .find(|l| l.starts_with("pricekeeper_lease_held{role=\"daemon\"}"));
        match held {
            "" => assert_eq!(line, None, "a worker holds no daemon lease"),
            held => assert_eq!(
                line.and_then(|l| l.rsplit(' ').next()),
                Some(held),
                "{daemon_scrape}"
            ),
        }
    }
    assert!(
        daemon_scrape.contains("pricekeeper_daemon_tick_interval_seconds 1\n"),
        "a cron firing every second: {daemon_scrape}"
    );
    assert!(
        worker_scrape.contains("pricekeeper_backfill_jobs_failed_total 1\n"),
        "{worker_scrape}"
    );
}
