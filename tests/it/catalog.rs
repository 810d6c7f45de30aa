//! `pricekeeper seed-catalog` end to end: the binary against a local server
//! that serves Nasdaq Trader's symbol directory, CoinGecko `coins/markets`
//! and Binance `exchangeInfo` in their real shapes, and a real database.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{TestDb, eventually, test_db};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/catalog");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

/// One `coins/markets` entry with every field CoinGecko sends.
fn coin(rank: usize, id: &str, symbol: &str, name: &str) -> Value {
    json!({
        "id": id, "symbol": symbol, "name": name,
        "image": format!("https://coin-images.coingecko.com/coins/images/{rank}/large/{id}.png"),
        "current_price": 1.5 * rank as f64, "market_cap": 1.0e12 / rank as f64,
        "market_cap_rank": rank, "fully_diluted_valuation": null,
        "total_volume": 1.0e7, "high_24h": 2.0, "low_24h": 1.0,
        "price_change_24h": -0.01, "price_change_percentage_24h": -0.66,
        "market_cap_change_24h": -1.0e6, "market_cap_change_percentage_24h": -0.5,
        "circulating_supply": 1.0e9, "total_supply": null, "max_supply": null,
        "ath": 3.1, "ath_change_percentage": -50.2, "ath_date": "2024-03-14T07:10:36.635Z",
        "atl": 0.01, "atl_change_percentage": 14_900.0, "atl_date": "2015-10-20T00:00:00.000Z",
        "roi": if rank == 2 { json!({"times": 40.1, "currency": "btc", "percentage": 4010.0}) } else { Value::Null },
        "last_updated": "2026-11-22T03:59:59.123Z"
    })
}

/// The top 500: bitcoin, ethereum, tether, solana, then `coin-N` (`CN`);
/// rank 260 is a bridged bitcoin that shares BTC, rank 300 an unusable
/// symbol.
fn markets_page(page: usize) -> Value {
    let coins: Vec<Value> = (1 + (page - 1) * 250..=page * 250)
        .map(|rank| match rank {
            1 => coin(1, "bitcoin", "btc", "Bitcoin"),
            2 => coin(2, "ethereum", "eth", "Ethereum"),
            3 => coin(3, "tether", "usdt", "Tether"),
            4 => coin(4, "solana", "sol", "Solana"),
            260 => coin(260, "bridged-bitcoin", "btc", "Bridged Bitcoin"),
            300 => coin(300, "spaced-out", "sp ace", "Spaced Out"),
            n => coin(
                n,
                &format!("coin-{n}"),
                &format!("c{n}"),
                &format!("Coin {n}"),
            ),
        })
        .collect();
    Value::Array(coins)
}

/// A local server with every source; `nasdaq` and `other` override the files.
async fn market(nasdaq: &str, other: &str) -> MockServer {
    let server = MockServer::start().await;
    mount_sources(&server, nasdaq, other).await;
    server
}

/// The server answers with the fixture files from now on.
async fn serve_fixtures(server: &MockServer) {
    serve(
        server,
        &fixture("nasdaqlisted.txt"),
        &fixture("otherlisted.txt"),
    )
    .await;
}

async fn exec(pool: &PgPool, sql: &'static str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

/// The server answers with these files from now on.
async fn serve(server: &MockServer, nasdaq: &str, other: &str) {
    server.reset().await;
    mount_sources(server, nasdaq, other).await;
}

async fn mount_sources(server: &MockServer, nasdaq: &str, other: &str) {
    for (file, body) in [("nasdaqlisted.txt", nasdaq), ("otherlisted.txt", other)] {
        Mock::given(method("GET"))
            .and(path(format!("/SymDir/{file}")))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(server)
            .await;
    }
    for page in [1, 2] {
        Mock::given(method("GET"))
            .and(path("/api/v3/coins/markets"))
            .and(query_param("vs_currency", "usd"))
            .and(query_param("order", "market_cap_desc"))
            .and(query_param("per_page", "250"))
            .and(query_param("page", page.to_string()))
            .respond_with(ResponseTemplate::new(200).set_body_json(markets_page(page)))
            .mount(server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/api/v3/exchangeInfo"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-mbx-used-weight-1m", "20")
                .set_body_string(fixture("binance_exchange_info.json")),
        )
        .mount(server)
        .await;
}

fn command(db: &TestDb, server: &MockServer, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pricekeeper"));
    cmd.arg("seed-catalog")
        .args(args)
        .env("DATABASE_URL", db.url())
        .env(
            "PRICEKEEPER_CATALOG_NASDAQ_URL",
            format!("{}/SymDir", server.uri()),
        )
        .env(
            "PRICEKEEPER_COINGECKO_URL",
            format!("{}/api/v3", server.uri()),
        )
        .env("PRICEKEEPER_BINANCE_URL", server.uri())
        .env("PRICEKEEPER_COINGECKO_RATE", "600/min")
        .env("RETRY_EXPONENTIAL_BASE", "1s")
        .env("PRICEKEEPER_LOG_FORMAT", "json")
        .env_remove("PRICEKEEPER_CATALOG_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn seed(db: &TestDb, server: &MockServer, args: &[&str]) -> (Output, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), command(db, server, args).output())
        .await
        .expect("seed-catalog finishes within 60 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

async fn seed_ok(db: &TestDb, server: &MockServer, args: &[&str]) -> String {
    let (out, stdout) = seed(db, server, args).await;
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs a seed that must fail (exit 1) saying `why` on stdout.
async fn seed_fails(db: &TestDb, server: &MockServer, args: &[&str], why: &str) -> String {
    let (out, stdout) = seed(db, server, args).await;
    assert_eq!(out.status.code(), Some(1), "{why}: {stdout}");
    assert!(stdout.contains(why), "{why}: {stdout}");
    stdout
}

/// Every column of every asset, to compare before and after.
async fn snapshot(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT a::text FROM assets a ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn row(
    pool: &PgPool,
    symbol: &str,
    exchange: &str,
) -> Option<(
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
)> {
    sqlx::query_as(
        "SELECT asset_type::text, name, yahoo_symbol, binance_symbol, coingecko_id, active
         FROM assets WHERE symbol = $1 AND exchange = $2",
    )
    .bind(symbol)
    .bind(exchange)
    .fetch_optional(pool)
    .await
    .unwrap()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_run_fills_the_catalog_and_a_second_changes_nothing() {
    let db = test_db().await;
    let server = market(&fixture("nasdaqlisted.txt"), &fixture("otherlisted.txt")).await;

    let stdout = seed_ok(&db, &server, &[]).await;
    let pool = &db.pool;
    assert!(
        stdout.contains("builtin: listed 39; added 39, updated 0, deactivated 0"),
        "{stdout}"
    );
    // 6 Nasdaq rows (2 test issues left out), 8 others (1 test issue); TLT
    // is a built-in bond ETF already, so it is not added again.
    assert!(
        stdout.contains(
            "nasdaq: listed 14 (left out 3: 3 test issue); added 13, updated 0, deactivated 0"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "coingecko: listed 498 (left out 2: 1 duplicate symbol, 1 invalid symbol); added 498"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("catalog: 3 source(s) applied: added 550"),
        "{stdout}"
    );

    let cases = [
        ("AAPL", "XNAS", "stock", Some("AAPL"), None, None),
        ("QQQ", "XNAS", "etf", Some("QQQ"), None, None),
        ("TLT", "XNAS", "bond", Some("TLT"), None, None),
        ("BRK.B", "XNYS", "stock", Some("BRK-B"), None, None),
        ("ABR$D", "XNYS", "stock", Some("ABR-PD"), None, None),
        ("HELD", "XASE", "stock", Some("HELD"), None, None),
        ("SPY", "ARCX", "etf", Some("SPY"), None, None),
        ("CBOE", "BATS", "stock", Some("CBOE"), None, None),
        ("IEXA", "IEXG", "etf", Some("IEXA"), None, None),
        (
            "BTC",
            "CRYPTO",
            "crypto",
            Some("BTC-USD"),
            Some("BTCUSDT"),
            Some("bitcoin"),
        ),
        (
            "ETH",
            "CRYPTO",
            "crypto",
            Some("ETH-USD"),
            Some("ETHUSDT"),
            Some("ethereum"),
        ),
        (
            "SOL",
            "CRYPTO",
            "crypto",
            Some("SOL-USD"),
            None,
            Some("solana"),
        ),
        (
            "C7",
            "CRYPTO",
            "crypto",
            Some("C7-USD"),
            Some("C7USDT"),
            Some("coin-7"),
        ),
        (
            "C500",
            "CRYPTO",
            "crypto",
            Some("C500-USD"),
            None,
            Some("coin-500"),
        ),
        ("GC", "XCEC", "commodity", Some("GC=F"), None, None),
        ("BZ", "XNYM", "commodity", Some("BZ=F"), None, None),
        ("ZS", "XCBT", "commodity", Some("ZS=F"), None, None),
        ("EURUSD", "FX", "forex", Some("EURUSD=X"), None, None),
        ("AGG", "ARCX", "bond", Some("AGG"), None, None),
    ];
    for (symbol, exchange, asset_type, yahoo, binance, gecko) in cases {
        let (t, _, y, b, g, active) = row(pool, symbol, exchange)
            .await
            .unwrap_or_else(|| panic!("{symbol} {exchange} missing"));
        assert_eq!(
            (t.as_str(), y.as_deref(), b.as_deref(), g.as_deref(), active),
            (asset_type, yahoo, binance, gecko, true),
            "{symbol}"
        );
    }
    for (symbol, exchange) in [("ZAZZT", "XNAS"), ("NTEST", "XNYS")] {
        assert!(
            row(pool, symbol, exchange).await.is_none(),
            "test issue {symbol} stored"
        );
    }
    let (_, name, ..) = row(pool, "BTC", "CRYPTO").await.unwrap();
    assert_eq!(
        name.as_deref(),
        Some("Bitcoin"),
        "the larger coin keeps the ticker"
    );

    let before = snapshot(pool).await;
    let stdout = seed_ok(&db, &server, &[]).await;
    for source in ["builtin", "nasdaq", "coingecko"] {
        assert!(
            stdout.contains(&format!("{source}: listed")) && !stdout.contains("FAILED"),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("catalog: 3 source(s) applied: added 0, updated 0, deactivated 0"),
        "{stdout}"
    );
    assert_eq!(
        snapshot(pool).await,
        before,
        "a second run changes no asset"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM portfolio_events").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_symbol_is_deactivated_unless_held_and_comes_back_when_listed() {
    let db = test_db().await;
    let pool = &db.pool;
    let server = market(&fixture("nasdaqlisted.txt"), &fixture("otherlisted.txt")).await;
    seed_ok(&db, &server, &["--source", "nasdaq"]).await;

    // The host's own asset, never listed by a source, and a portfolio
    // holding HELD (its buy not yet applied by the orchestrator: held all
    // the same) and ACHV (applied: tracked).
    common::insert_stock(pool, "HOSTONLY").await;
    let id = |symbol: &'static str| async move {
        sqlx::query_scalar::<_, i64>("SELECT id FROM assets WHERE symbol = $1")
            .bind(symbol)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let buy = "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
               VALUES ($1, $2, 'buy', 1, 10, now())";
    sqlx::query(buy)
        .bind(Uuid::new_v4())
        .bind(id("ACHV").await)
        .execute(pool)
        .await
        .unwrap();
    let orchestrator =
        pricekeeper::events::orchestrator::Orchestrator::new(pool.clone(), &common::settings(&[]));
    orchestrator.drain().await.unwrap();
    sqlx::query(buy)
        .bind(Uuid::new_v4())
        .bind(id("HELD").await)
        .execute(pool)
        .await
        .unwrap();

    let nasdaq = fixture("nasdaqlisted.txt")
        .replace("ACHV|", "XXXX|")
        .replace("MSFT|", "MSFX|");
    let other: String = fixture("otherlisted.txt")
        .lines()
        .filter(|l| !l.starts_with("GONE|") && !l.starts_with("HELD|"))
        .map(|l| format!("{l}\n"))
        .collect();
    serve(&server, &nasdaq, &other).await;
    let stdout = seed_ok(&db, &server, &["--source", "nasdaq"]).await;
    assert!(
        stdout.contains("added 2, updated 0, deactivated 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("vanished but held, kept active: ACHV (XNAS), HELD (XASE)"),
        "{stdout}"
    );
    for (symbol, exchange, active) in [
        ("GONE", "XNYS", false),
        ("MSFT", "XNAS", false),
        ("HELD", "XASE", true),
        ("ACHV", "XNAS", true),
        ("HOSTONLY", "XNAS", true),
        ("MSFX", "XNAS", true),
    ] {
        let (.., is_active) = row(pool, symbol, exchange).await.unwrap();
        assert_eq!(is_active, active, "{symbol}");
    }
    assert_eq!(
        count(pool, "SELECT count(*) FROM assets WHERE symbol = 'GONE'").await,
        1,
        "never deleted"
    );

    // Listed again: the catalog's own deactivation is undone, the host's is not.
    exec(
        pool,
        "UPDATE assets SET active = false WHERE symbol = 'AAPL'",
    )
    .await;
    serve_fixtures(&server).await;
    let stdout = seed_ok(&db, &server, &["--source", "nasdaq"]).await;
    assert!(stdout.contains("(reactivated 2)"), "{stdout}");
    let (.., gone_active) = row(pool, "GONE", "XNYS").await.unwrap();
    let (.., aapl_active) = row(pool, "AAPL", "XNAS").await.unwrap();
    assert!(gone_active && !aapl_active);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_source_file_changes_nothing_and_says_why() {
    let db = test_db().await;
    let pool = &db.pool;
    let good_listed = fixture("nasdaqlisted.txt");
    let good_other = fixture("otherlisted.txt");
    let server = market(&good_listed, &good_other).await;
    seed_ok(&db, &server, &["--source", "nasdaq"]).await;
    let before = snapshot(pool).await;

    let cut = &good_listed[..good_listed.find("QQQ|").unwrap() + 10];
    let headless = good_other.split_once('\n').unwrap().1;
    let html =
        "<!DOCTYPE html><html><head><title>Page Not Found</title></head><body>Sorry</body></html>";
    let short_row = good_other.replace("SPY|SPDR S&P 500 ETF Trust|P|SPY|Y|100|N|SPY", "SPY|SPDR");
    let cases = [
        (
            cut.to_owned(),
            good_other.clone(),
            "nasdaqlisted.txt: no `File Creation Time` footer: the download was cut short",
        ),
        (
            good_listed.clone(),
            html.to_owned(),
            "otherlisted.txt: an HTML page, not the symbol directory",
        ),
        (
            good_listed.clone(),
            headless.to_owned(),
            "otherlisted.txt: no header row",
        ),
        (good_listed.clone(), short_row, "otherlisted.txt: line 7"),
        (String::new(), good_other.clone(), "nasdaqlisted.txt: empty"),
    ];
    for (listed, other, why) in cases {
        serve(&server, &listed, &other).await;
        let (out, stdout) = seed(&db, &server, &["--source", "nasdaq"]).await;
        assert_eq!(out.status.code(), Some(1), "{why}: {stdout}");
        assert!(
            stdout.contains(&format!("nasdaq: FAILED, nothing changed: {why}")),
            "{why}: {stdout}"
        );
        assert!(
            stdout.contains("FAILED (nothing changed): nasdaq"),
            "{stdout}"
        );
        assert_eq!(snapshot(pool).await, before, "{why}");
    }

    // A file far larger than any directory is refused before it is parsed.
    let huge = format!("{good_other}{}", "X".repeat(33 << 20));
    serve(&server, &good_listed, &huge).await;
    seed_fails(
        &db,
        &server,
        &["--source", "nasdaq"],
        "otherlisted.txt: larger than 32 MiB",
    )
    .await;

    // An error status, and a CoinGecko page that is an HTML page under 200.
    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(html))
        .mount(&server)
        .await;
    seed_fails(
        &db,
        &server,
        &["--source", "coingecko"],
        "coingecko: FAILED, nothing changed: coingecko_markets_1.json: not JSON",
    )
    .await;
    server.reset().await;
    seed_fails(
        &db,
        &server,
        &["--source", "nasdaq"],
        "nasdaqlisted.txt: HTTP 404",
    )
    .await;
    assert_eq!(snapshot(pool).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coingecko_429_mid_run_pauses_coingecko_for_everyone_and_the_run_resumes() {
    let db = test_db().await;
    let pool = &db.pool;
    let server = MockServer::start().await;
    // Page 2 is refused once, with the real 429 body and a Retry-After.
    Mock::given(method("GET"))
        .and(path("/api/v3/coins/markets"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_string(
                    r#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits."}}"#,
                ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_sources(
        &server,
        &fixture("nasdaqlisted.txt"),
        &fixture("otherlisted.txt"),
    )
    .await;

    let stdout = seed_ok(&db, &server, &["--source", "coingecko"]).await;
    assert!(stdout.contains("coingecko: listed 498"), "{stdout}");
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM assets WHERE exchange = 'CRYPTO'"
        )
        .await,
        498
    );
    let (limited, cooled): (i64, bool) = sqlx::query_as(
        "SELECT rate_limited_total, cooldown_until IS NOT NULL FROM provider_state WHERE provider = 'coingecko'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (limited, cooled),
        (1, true),
        "the pause is shared through provider_state"
    );
    let page_two = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            r.url.path() == "/api/v3/coins/markets"
                && r.url.query_pairs().any(|(k, v)| k == "page" && v == "2")
        })
        .count();
    assert_eq!(page_two, 2, "asked again once the pause ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_during_a_cooldown_writes_nothing_and_a_rerun_completes() {
    let db = test_db().await;
    let pool = &db.pool;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v3/coins/markets"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_sources(
        &server,
        &fixture("nasdaqlisted.txt"),
        &fixture("otherlisted.txt"),
    )
    .await;

    let mut child = command(&db, &server, &["--source", "coingecko"])
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(60), "CoinGecko's cooldown recorded", || async {
        count(pool, "SELECT count(*) FROM provider_state WHERE provider = 'coingecko' AND cooldown_until > now()").await == 1
    })
    .await;
    child.kill().await.unwrap(); // SIGKILL, mid-run
    assert_eq!(
        count(pool, "SELECT count(*) FROM assets").await,
        0,
        "page 1 alone was never written"
    );

    // The pause ends (as if an hour passed); page 2 answers now.
    exec(
        pool,
        "UPDATE provider_state SET cooldown_until = now() WHERE provider = 'coingecko'",
    )
    .await;
    serve_fixtures(&server).await;
    let stdout = seed_ok(&db, &server, &["--source", "coingecko"]).await;
    assert!(stdout.contains("coingecko: listed 498"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn from_dir_reads_the_same_files_and_dry_run_writes_nothing() {
    let db = test_db().await;
    let pool = &db.pool;
    let dir: PathBuf = std::env::temp_dir().join(format!("pk-catalog-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "nasdaqlisted.txt",
        "otherlisted.txt",
        "binance_exchange_info.json",
    ] {
        std::fs::copy(Path::new(FIXTURES).join(name), dir.join(name)).unwrap();
    }
    for page in [1, 2] {
        std::fs::write(
            dir.join(format!("coingecko_markets_{page}.json")),
            markets_page(page).to_string(),
        )
        .unwrap();
    }
    // Nothing answers on the network: a request would fail the run.
    let server = MockServer::start().await;
    let dir_arg = dir.to_str().unwrap();

    let stdout = seed_ok(&db, &server, &["--from-dir", dir_arg, "--dry-run"]).await;
    assert!(
        stdout.contains("added 550") && stdout.contains("(dry run: nothing written)"),
        "{stdout}"
    );
    assert_eq!(count(pool, "SELECT count(*) FROM assets").await, 0);

    let stdout = seed_ok(&db, &server, &["--from-dir", dir_arg]).await;
    assert!(
        stdout.contains("catalog: 3 source(s) applied: added 550"),
        "{stdout}"
    );
    assert_eq!(count(pool, "SELECT count(*) FROM assets").await, 550);
    assert!(server.received_requests().await.unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_catalog_settings_stop_with_exit_2_naming_the_variable() {
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["seed-catalog"],
            "PRICEKEEPER_CATALOG_NASDAQ_URL",
            "ftp://example.com/",
        ),
        (
            &["seed-catalog"],
            "PRICEKEEPER_CATALOG_DIR",
            "/nonexistent/catalog",
        ),
        (&["seed-catalog"], "PRICEKEEPER_CATALOG_CRYPTO_TOP", "0"),
        (&["daemon"], "PRICEKEEPER_CATALOG_REFRESH", "someday 06:00"),
        (
            &["run"],
            "PRICEKEEPER_CATALOG_REFRESH_SOURCES",
            "nasdaq,kraken",
        ),
    ];
    for (args, var, value) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
            .args(args)
            .env(var, value)
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/unused")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {err}");
        assert!(err.contains(var), "{var}: {err}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
        .args(["seed-catalog", "--source", "kraken"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[derive(clap::Parser)]
struct CatalogCli {
    #[command(flatten)]
    catalog: pricekeeper::catalog::settings::CatalogSettings,
    #[command(flatten)]
    refresh: pricekeeper::catalog::settings::RefreshSettings,
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_refreshes_the_seeded_sources_once_a_week_under_its_lease() {
    use pricekeeper::catalog::Source;
    use pricekeeper::catalog::refresh::{SLOT_KIND, WeeklyRefresh};
    use pricekeeper::catalog::seed::Seeder;
    use pricekeeper::daemon::ROLE;
    use pricekeeper::daemon::lease::Leadership;
    use tokio_util::sync::CancellationToken;

    let db = test_db().await;
    let pool = &db.pool;
    let settings = common::settings(&[]);
    let cli = <CatalogCli as clap::Parser>::try_parse_from([
        "pricekeeper",
        "--catalog-refresh",
        "sun 06:00",
        "--catalog-refresh-sources",
        "auto",
    ])
    .unwrap();
    let lease = Duration::from_secs(15);
    let weekly = std::sync::Arc::new(WeeklyRefresh::new(
        pool.clone(),
        &settings,
        cli.catalog.clone(),
        cli.refresh,
        ROLE,
        lease,
    ));
    let leadership = Leadership::new(pool.clone(), ROLE, lease);
    let term = leadership
        .step()
        .await
        .unwrap()
        .expect("the only daemon leads");
    let wednesday: chrono::DateTime<chrono::Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
    let slot = weekly.schedule().last_before(wednesday).unwrap();
    let cancel = CancellationToken::new();

    // Nothing seeded: a host that manages its own catalog is left alone.
    assert!(
        weekly
            .run_slot(slot, &term, cancel.clone())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(count(pool, "SELECT count(*) FROM daemon_slots").await, 0);

    Seeder::new(pool.clone(), &settings, cli.catalog, cancel.clone())
        .unwrap()
        .run(&[Source::Builtin], false, |_, _| {})
        .await;
    exec(pool, "UPDATE assets SET name = 'stale' WHERE symbol = 'GC'").await;

    // A standby's minute does nothing; the leader's runs the caught-up slot.
    weekly.on_minute(wednesday, None, &cancel);
    weekly.on_minute(wednesday, Some(term), &cancel);
    eventually(Duration::from_secs(60), "the weekly slot finished", || async {
        count(pool, "SELECT count(*) FROM daemon_slots WHERE kind = 'catalog' AND finished_at IS NOT NULL").await == 1
    })
    .await;
    let (name,): (String,) = sqlx::query_as("SELECT name FROM assets WHERE symbol = 'GC'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(name, "Gold futures (COMEX)", "the refresh updated the name");
    let summary: Value = sqlx::query_scalar("SELECT summary FROM daemon_slots WHERE kind = $1")
        .bind(SLOT_KIND)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(summary["sources"][0]["source"], "builtin");
    assert_eq!(summary["sources"][0]["updated"], 1);
    assert_eq!(
        summary["sources"].as_array().unwrap().len(),
        1,
        "only the seeded source"
    );

    // The same slot never runs twice, even by another leader.
    assert!(
        weekly
            .run_slot(slot, &term, cancel.clone())
            .await
            .unwrap()
            .is_none()
    );
}

/// A directory of `n` Nasdaq securities `T0`, `T1`, …
fn generated_listed(n: usize) -> String {
    let mut text = String::from(
        "Symbol|Security Name|Market Category|Test Issue|Financial Status|Round Lot Size|ETF|NextShares\n",
    );
    for i in 0..n {
        text.push_str(&format!("T{i}|T{i} Corp. Common Stock|Q|N|N|100|N|N\n"));
    }
    text + "File Creation Time: 1122202604:00|||||||\n"
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_that_lost_most_of_its_rows_is_refused_unless_allowed() {
    let db = test_db().await;
    let pool = &db.pool;
    let server = market(&generated_listed(200), &fixture("otherlisted.txt")).await;
    seed_ok(&db, &server, &["--source", "nasdaq"]).await;
    let before = snapshot(pool).await;

    serve(&server, &generated_listed(10), &fixture("otherlisted.txt")).await;
    seed_fails(
        &db,
        &server,
        &["--source", "nasdaq"],
        "would deactivate 190 assets while the source lists 18",
    )
    .await;
    assert_eq!(snapshot(pool).await, before);

    let stdout = seed_ok(
        &db,
        &server,
        &["--source", "nasdaq", "--allow-mass-deactivation"],
    )
    .await;
    assert!(stdout.contains("deactivated 190"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_catalog_is_filled_in_without_dropping_anyones_history() {
    let db = test_db().await;
    let pool = &db.pool;
    // The host's own rows, without provider symbols; a portfolio holds ABR$D.
    for (symbol, exchange) in [("AAPL", "XNAS"), ("BRK.B", "XNYS"), ("ABR$D", "XNYS")] {
        sqlx::query(
            "INSERT INTO assets (symbol, asset_type, exchange, currency) VALUES ($1, 'stock', $2, 'USD')",
        )
        .bind(symbol)
        .bind(exchange)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         SELECT $1, id, 'buy', 1, 10, now() FROM assets WHERE symbol = 'ABR$D'",
    )
    .bind(Uuid::new_v4())
    .execute(pool)
    .await
    .unwrap();
    let server = market(&fixture("nasdaqlisted.txt"), &fixture("otherlisted.txt")).await;

    let stdout = seed_ok(&db, &server, &["--source", "nasdaq"]).await;
    assert!(stdout.contains("added 11, updated 3"), "{stdout}");
    let yahoo = |symbol: &'static str| async move {
        row(pool, symbol, if symbol == "AAPL" { "XNAS" } else { "XNYS" })
            .await
            .map(|(_, name, yahoo, ..)| (name.is_some(), yahoo))
            .unwrap()
    };
    // Derived anyway: not written (no identity change, no event).
    assert_eq!(yahoo("AAPL").await, (true, None));
    // Derivation would be wrong: filled in.
    assert_eq!(yahoo("BRK.B").await, (true, Some("BRK-B".to_owned())));
    // Held: only its name changes.
    assert_eq!(yahoo("ABR$D").await, (true, None));
    let events: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT op, detail FROM portfolio_events WHERE op = 'reidentify'")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1.as_deref(), Some("yahoo_symbol  → BRK-B"));
}
