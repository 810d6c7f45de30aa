//! Rate limits, with the real provider clients against a local server that
//! answers as the real APIs do: a 429 (plain text without Retry-After,
//! with Retry-After, CoinGecko's HTML page) or Binance's 418 ban snoozes
//! the job without using an attempt and pauses the provider for every
//! worker; while it cools down no job that only it can serve is claimed,
//! and jobs for other providers keep flowing.

use crate::common;
use crate::queue_common;

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use common::test_db;
use pricekeeper::config::Settings;
use pricekeeper::queue::backfill::Backfill;
use pricekeeper::queue::{Clock, Worker};
use queue_common::*;
use serde_json::json;
use sqlx::PgPool;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FROM: &str = "2024-01-02";
const TO: &str = "2024-06-28";

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

fn yahoo_path(symbol: &str) -> String {
    format!("/v8/finance/chart/{symbol}")
}

async fn yahoo_answers(server: &MockServer, symbol: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(yahoo_path(symbol)))
        .respond_with(response)
        .mount(server)
        .await;
}

fn yahoo_ok(symbol: &str) -> ResponseTemplate {
    let days = weekdays(date(FROM), date(TO));
    let bars = series(days.len());
    ResponseTemplate::new(200).set_body_json(yahoo_chart(symbol, &days, &bars))
}

/// Yahoo's throttling answer: plain text, no Retry-After.
fn yahoo_429() -> ResponseTemplate {
    ResponseTemplate::new(429).set_body_raw("Edge: Too Many Requests", "text/plain")
}

async fn binance_answers(server: &MockServer, symbol: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path("/api/v3/klines"))
        .and(query_param("symbol", symbol))
        .respond_with(response)
        .mount(server)
        .await;
}

fn binance_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(binance_klines(&days_between(FROM, TO)))
}

async fn coingecko_answers(server: &MockServer, id: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/coins/{id}/market_chart/range")))
        .respond_with(response)
        .mount(server)
        .await;
}

/// Daily points at 00:00Z over more than the job's range, as CoinGecko
/// answers a span of more than 90 days.
fn coingecko_ok() -> ResponseTemplate {
    let points: Vec<_> = days_between("2023-12-01", "2024-07-31")
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let ms = d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
            (ms, 40000.0 + i as f64)
        })
        .collect();
    let series = |scale: f64| -> Vec<_> {
        points
            .iter()
            .map(|(ms, p)| json!([ms, p * scale]))
            .collect()
    };
    ResponseTemplate::new(200).set_body_json(json!({
        "prices": series(1.0), "market_caps": series(1.9e7), "total_volumes": series(5e5)
    }))
}

async fn requests_to(server: &MockServer, prefix: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().starts_with(prefix))
        .count()
}

struct Setup {
    settings: Settings,
    clock: Clock,
}

impl Setup {
    fn new(server: &MockServer, args: &[&str]) -> Self {
        Self {
            settings: settings(&server.uri(), args),
            clock: Clock::manual(t0()),
        }
    }

    /// A worker process of its own (own id, own in-memory state).
    fn worker(&self, pool: &PgPool, batch: u32) -> Worker<Backfill> {
        let mut settings = self.settings.clone();
        settings.backfill_batch_size = batch;
        backfill_worker(pool, &settings, self.clock.clone())
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.local()
    }
}

async fn job_for(pool: &PgPool, asset: NewAsset<'_>) -> i64 {
    let id = insert_asset(pool, asset).await;
    let (from, to): (NaiveDate, NaiveDate) = (date(FROM), date(TO));
    insert_job(pool, id, from, to).await
}

#[tokio::test]
async fn a_429_without_retry_after_snoozes_the_job_and_pauses_the_provider_for_every_worker() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let setup = Setup::new(&server, &["--crypto-chain=binance"]);
    yahoo_answers(&server, "AAPL", yahoo_429()).await;
    yahoo_answers(&server, "MSFT", yahoo_ok("MSFT")).await;
    binance_answers(&server, "BTCUSDT", binance_ok()).await;
    let aapl = job_for(&db.pool, stock("AAPL")).await;
    let msft = job_for(&db.pool, stock("MSFT")).await;
    let btc = job_for(&db.pool, crypto("BTC", Some("BTCUSDT"), None)).await;

    let first = setup.worker(&db.pool, 1);
    first.process_next().await.unwrap();
    let row = job(&db.pool, aapl).await;
    assert_eq!(row.status, "rate_limited");
    assert_eq!(row.attempts, 0, "a rate limit gives the attempt back");
    assert_eq!(row.retry_after, Some(setup.now() + minutes(5)));
    assert_eq!(row.provider.as_deref(), Some("yahoo"));
    assert_eq!(row.locked_by, None);
    let message = row.error_message.unwrap();
    assert!(
        message.contains("yahoo AAPL: rate limited (no Retry-After given)"),
        "{message}"
    );
    let yahoo = provider_state(&db.pool, "yahoo").await;
    assert_eq!(yahoo.cooldown_until, Some(setup.now() + minutes(5)));
    assert_eq!(
        (yahoo.consecutive_rate_limits, yahoo.rate_limited_total),
        (1, 1)
    );

    // Another worker process: the Yahoo job waits, the Binance one runs.
    let other = setup.worker(&db.pool, 10);
    let step = other.process_next().await.unwrap();
    let claimed: Vec<i64> = step.finished.iter().map(|f| f.job.id.0).collect();
    assert_eq!(claimed, vec![btc]);
    assert_eq!(job(&db.pool, btc).await.status, "completed");
    assert_eq!(
        job(&db.pool, btc).await.provider.as_deref(),
        Some("binance")
    );
    assert!(first.process_next().await.unwrap().finished.is_empty());
    // Set aside until Yahoo is back, without using an attempt.
    let waiting = job(&db.pool, msft).await;
    assert_eq!(
        (
            waiting.status.as_str(),
            waiting.attempts,
            waiting.retry_after
        ),
        ("rate_limited", 0, Some(setup.now() + minutes(5)))
    );
    assert_eq!(
        requests_to(&server, "/v8/").await,
        1,
        "nobody called Yahoo while it cooled down"
    );

    // Still cooling a second before the end; after it, both Yahoo jobs run.
    setup.clock.advance(Duration::from_secs(299));
    assert!(other.process_next().await.unwrap().finished.is_empty());
    setup.clock.advance(Duration::from_secs(1));
    server.reset().await;
    yahoo_answers(&server, "AAPL", yahoo_ok("AAPL")).await;
    yahoo_answers(&server, "MSFT", yahoo_ok("MSFT")).await;
    let step = other.process_next().await.unwrap();
    assert_eq!(step.written.applied.len(), 2);
    for id in [aapl, msft] {
        let row = job(&db.pool, id).await;
        assert_eq!(
            (row.status.as_str(), row.attempts),
            ("completed", 1),
            "job {id}"
        );
        assert_eq!(row.error_message, None);
    }
    assert_eq!(
        provider_state(&db.pool, "yahoo")
            .await
            .consecutive_rate_limits,
        0
    );
}

#[tokio::test]
async fn pauses_grow_5_10_20_40_minutes_while_a_provider_keeps_refusing() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let setup = Setup::new(&server, &[]);
    yahoo_answers(&server, "AAPL", yahoo_429()).await;
    let id = job_for(&db.pool, stock("AAPL")).await;
    let worker = setup.worker(&db.pool, 10);

    for (n, pause) in [(1, 5), (2, 10), (3, 20), (4, 40)] {
        let started = setup.now();
        worker.process_next().await.unwrap();
        let row = job(&db.pool, id).await;
        assert_eq!(
            (row.status.as_str(), row.attempts),
            ("rate_limited", 0),
            "refusal {n}"
        );
        assert_eq!(
            row.retry_after,
            Some(started + minutes(pause)),
            "refusal {n}"
        );
        let yahoo = provider_state(&db.pool, "yahoo").await;
        assert_eq!(yahoo.cooldown_until, row.retry_after);
        assert_eq!(yahoo.consecutive_rate_limits, n);

        setup
            .clock
            .set(row.retry_after.unwrap() - chrono::Duration::seconds(1));
        assert!(worker.process_next().await.unwrap().finished.is_empty());
        setup.clock.set(row.retry_after.unwrap());
    }
    server.reset().await;
    yahoo_answers(&server, "AAPL", yahoo_ok("AAPL")).await;
    worker.process_next().await.unwrap();
    let row = job(&db.pool, id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("completed", 1));
    let yahoo = provider_state(&db.pool, "yahoo").await;
    assert_eq!(
        (yahoo.consecutive_rate_limits, yahoo.rate_limited_total),
        (0, 4)
    );
}

#[tokio::test]
async fn refusals_that_arrive_together_pause_the_provider_once() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let setup = Setup::new(&server, &[]);
    let mut ids = Vec::new();
    for symbol in ["AAPL", "MSFT", "NVDA", "AMZN"] {
        yahoo_answers(&server, symbol, yahoo_429()).await;
        ids.push(job_for(&db.pool, stock(symbol)).await);
    }
    let worker = setup.worker(&db.pool, 10);
    assert_eq!(worker.process_next().await.unwrap().finished.len(), 4);
    assert_eq!(requests_to(&server, "/v8/").await, 4);
    let yahoo = provider_state(&db.pool, "yahoo").await;
    assert_eq!(
        (yahoo.consecutive_rate_limits, yahoo.rate_limited_total),
        (1, 4)
    );
    assert_eq!(yahoo.cooldown_until, Some(setup.now() + minutes(5)));
    for id in ids {
        assert_eq!(job(&db.pool, id).await.retry_after, yahoo.cooldown_until);
    }
}

#[tokio::test]
async fn a_longer_retry_after_is_obeyed_to_the_second_and_a_shorter_one_raised_to_the_backoff() {
    for (header, pause) in [("900", minutes(15)), ("30", minutes(5)), ("0", minutes(5))] {
        let db = test_db().await;
        let server = MockServer::start().await;
        let setup = Setup::new(&server, &[]);
        yahoo_answers(
            &server,
            "AAPL",
            yahoo_429().insert_header("retry-after", header),
        )
        .await;
        let id = job_for(&db.pool, stock("AAPL")).await;
        setup.worker(&db.pool, 10).process_next().await.unwrap();
        let row = job(&db.pool, id).await;
        assert_eq!((row.status.as_str(), row.attempts), ("rate_limited", 0));
        assert_eq!(
            row.retry_after,
            Some(setup.now() + pause),
            "Retry-After: {header}"
        );
        let message = row.error_message.unwrap();
        assert!(message.contains("rate limited (retry after"), "{message}");
        let yahoo = provider_state(&db.pool, "yahoo").await;
        assert_eq!(yahoo.cooldown_until, row.retry_after);
    }
}

#[tokio::test]
async fn retry_after_zero_keeps_doubling_and_no_request_goes_out_during_a_pause() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let setup = Setup::new(&server, &[]);
    yahoo_answers(
        &server,
        "AAPL",
        yahoo_429().insert_header("retry-after", "0"),
    )
    .await;
    let id = job_for(&db.pool, stock("AAPL")).await;
    let worker = setup.worker(&db.pool, 10);
    for (n, pause) in [(1, 5), (2, 10), (3, 20)] {
        let started = setup.now();
        worker.process_next().await.unwrap();
        let yahoo = provider_state(&db.pool, "yahoo").await;
        assert_eq!(
            yahoo.cooldown_until,
            Some(started + minutes(pause)),
            "refusal {n}"
        );
        assert_eq!(yahoo.consecutive_rate_limits, n);
        assert_eq!(requests_to(&server, "/v8/").await, n as usize);
        // Nothing is claimed, nothing is sent, while the pause lasts.
        setup.clock.advance(Duration::from_secs(60));
        assert!(worker.process_next().await.unwrap().finished.is_empty());
        assert_eq!(requests_to(&server, "/v8/").await, n as usize);
        setup.clock.set(yahoo.cooldown_until.unwrap());
    }
    assert_eq!(job(&db.pool, id).await.attempts, 0);
}

#[tokio::test]
async fn a_429_without_retry_after_stops_the_requests_waiting_for_a_token() {
    let db = test_db().await;
    let server = MockServer::start().await;
    // 5/s: one at once (a burst is at most a twentieth of the budget),
    // then one every 250 ms; the other 19 wait for a token.
    let setup = Setup::new(&server, &["--yahoo-rate=5/s"]);
    let symbols: Vec<String> = (0..20).map(|i| format!("S{i:02}")).collect();
    for symbol in &symbols {
        yahoo_answers(&server, symbol, yahoo_429()).await;
        job_for(&db.pool, stock(symbol)).await;
    }
    let step = setup.worker(&db.pool, 20).process_next().await.unwrap();
    assert_eq!(step.finished.len(), 20);
    assert_eq!(
        requests_to(&server, "/v8/").await,
        1,
        "only the request that left before the first refusal reached the provider"
    );
    assert_eq!(count_status(&db.pool, "rate_limited").await, 20);
    let yahoo = provider_state(&db.pool, "yahoo").await;
    assert_eq!(
        (
            yahoo.consecutive_rate_limits,
            yahoo.rate_limited_total,
            yahoo.requests_total
        ),
        (1, 1, 1),
        "local refusals are not counted as the provider's"
    );
}

#[tokio::test]
async fn a_refusal_during_a_pause_it_does_not_lengthen_leaves_the_row_unwritten() {
    use pricekeeper::providers::ProviderKind;
    use pricekeeper::queue::cooldown::record_rate_limit;

    let db = test_db().await;
    let base = Duration::from_secs(300);
    let first = record_rate_limit(&db.pool, ProviderKind::Yahoo, None, None, base)
        .await
        .unwrap();
    assert!(first.began);
    let version = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT xmin::text FROM provider_state WHERE provider = 'yahoo'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    let before = version().await;
    for _ in 0..5 {
        let again = record_rate_limit(&db.pool, ProviderKind::Yahoo, None, None, base)
            .await
            .unwrap();
        assert_eq!((again.until, again.began), (first.until, false));
    }
    assert_eq!(version().await, before, "no new row version per refusal");
    // A longer Retry-After does lengthen it, and is written.
    let longer = record_rate_limit(
        &db.pool,
        ProviderKind::Yahoo,
        None,
        Some(Duration::from_secs(3600)),
        base,
    )
    .await
    .unwrap();
    assert!(longer.began && longer.until > first.until);
    assert_ne!(version().await, before);
}

#[tokio::test]
async fn failed_requests_are_counted_once_each_with_the_last_message() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let setup = Setup::new(&server, &[]);
    for symbol in ["AAPL", "MSFT", "NVDA"] {
        yahoo_answers(&server, symbol, ResponseTemplate::new(503)).await;
        job_for(&db.pool, stock(symbol)).await;
    }
    yahoo_answers(&server, "AMZN", yahoo_ok("AMZN")).await;
    job_for(&db.pool, stock("AMZN")).await;
    let step = setup.worker(&db.pool, 10).process_next().await.unwrap();
    assert_eq!(step.finished.len(), 4);
    let yahoo = provider_state(&db.pool, "yahoo").await;
    assert_eq!(
        (
            yahoo.requests_total,
            yahoo.errors_total,
            yahoo.rate_limited_total
        ),
        (requests_to(&server, "/v8/").await as i64, 3, 0)
    );
    assert!(
        yahoo
            .last_error
            .as_deref()
            .is_some_and(|m| m.contains("503")),
        "{:?}",
        yahoo.last_error
    );
}

#[tokio::test]
async fn a_cooldown_announced_by_another_process_stops_requests_here_at_once() {
    use pricekeeper::providers::{Interval, ProviderError, ProviderKind, Providers};
    use pricekeeper::queue::cooldown::record_rate_limit;
    use pricekeeper::queue::worker::JobBody;

    let db = test_db().await;
    let server = MockServer::start().await;
    yahoo_answers(&server, "AAPL", yahoo_ok("AAPL")).await;
    let settings = settings(&server.uri(), &[]);
    let providers = Providers::from_settings(&settings).unwrap();
    let here = Backfill::new(
        db.pool.clone(),
        providers.clone(),
        settings.retry_exponential_base,
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let watching = tokio::spawn({
        let cancel = cancel.clone();
        async move { here.background(cancel).await }
    });
    common::eventually(
        Duration::from_secs(20),
        "the cooldown watcher listening",
        || {
            let pool = db.pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND query LIKE 'LISTEN%cooldowns%'",
                )
                .fetch_one(&pool)
                .await
                .unwrap()
                    == 1
            }
        },
    )
    .await;
    let yahoo = providers.get(ProviderKind::Yahoo);
    yahoo
        .history("AAPL", date(FROM), date(TO), Interval::D1)
        .await
        .unwrap();

    // Another process is refused and records it.
    record_rate_limit(
        &db.pool,
        ProviderKind::Yahoo,
        None,
        None,
        settings.retry_exponential_base,
    )
    .await
    .unwrap();
    let announced = std::time::Instant::now();
    common::eventually(Duration::from_secs(5), "the pause known here", || {
        std::future::ready(providers.cooldown_left(ProviderKind::Yahoo).is_some())
    })
    .await;
    let delay = announced.elapsed();
    assert!(delay < Duration::from_millis(500), "{delay:?}");
    let refused = yahoo
        .history("AAPL", date(FROM), date(TO), Interval::D1)
        .await;
    assert!(
        matches!(refused, Err(ProviderError::RateLimited { .. })),
        "{refused:?}"
    );
    assert_eq!(
        requests_to(&server, "/v8/").await,
        1,
        "nothing sent after the announcement"
    );
    cancel.cancel();
    watching.await.unwrap();
}

#[tokio::test]
async fn a_binance_418_ban_holds_binance_jobs_while_stocks_flow() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let setup = Setup::new(&server, &["--crypto-chain=binance"]);
    let ban_ends = Utc::now().timestamp_millis() + 7_200_000;
    let ban = json!({"code": -1003, "msg": format!(
        "Way too much request weight used; IP banned until {ban_ends}. \
         Please use WebSocket Streams for live updates to avoid bans.")});
    binance_answers(
        &server,
        "BTCUSDT",
        ResponseTemplate::new(418)
            .set_body_json(ban)
            .insert_header("retry-after", "7200"),
    )
    .await;
    binance_answers(&server, "ETHUSDT", binance_ok()).await;
    yahoo_answers(&server, "AAPL", yahoo_ok("AAPL")).await;
    let btc = job_for(&db.pool, crypto("BTC", Some("BTCUSDT"), None)).await;
    let eth = job_for(&db.pool, crypto("ETH", Some("ETHUSDT"), None)).await;
    let aapl = job_for(&db.pool, stock("AAPL")).await;

    setup.worker(&db.pool, 1).process_next().await.unwrap();
    let row = job(&db.pool, btc).await;
    assert_eq!((row.status.as_str(), row.attempts), ("rate_limited", 0));
    let wait = row.retry_after.unwrap() - setup.now();
    assert!(
        (7_190..=7_200).contains(&wait.num_seconds()),
        "banned for {wait}"
    );
    assert!(row.error_message.unwrap().contains("IP banned"));
    let binance = provider_state(&db.pool, "binance").await;
    assert_eq!(binance.cooldown_until, row.retry_after);

    let step = setup.worker(&db.pool, 10).process_next().await.unwrap();
    let claimed: Vec<i64> = step.finished.iter().map(|f| f.job.id.0).collect();
    assert_eq!(claimed, vec![aapl]);
    assert_eq!(job(&db.pool, aapl).await.status, "completed");
    assert_eq!(job(&db.pool, eth).await.status, "rate_limited", "set aside");
    assert_eq!(requests_to(&server, "/api/v3/klines").await, 1);
}

#[tokio::test]
async fn a_coingecko_html_429_pauses_coingecko_with_the_default_backoff() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let setup = Setup::new(&server, &["--crypto-chain=coingecko"]);
    let html = std::fs::read_to_string("tests/fixtures/coingecko/error_429.html").unwrap();
    coingecko_answers(
        &server,
        "bitcoin",
        ResponseTemplate::new(429).set_body_raw(html, "text/html"),
    )
    .await;
    coingecko_answers(&server, "ethereum", coingecko_ok()).await;
    yahoo_answers(&server, "AAPL", yahoo_ok("AAPL")).await;
    let btc = job_for(&db.pool, crypto("BTC", None, Some("bitcoin"))).await;
    let eth = job_for(&db.pool, crypto("ETH", None, Some("ethereum"))).await;
    let aapl = job_for(&db.pool, stock("AAPL")).await;

    setup.worker(&db.pool, 1).process_next().await.unwrap();
    let row = job(&db.pool, btc).await;
    assert_eq!((row.status.as_str(), row.attempts), ("rate_limited", 0));
    assert_eq!(row.retry_after, Some(setup.now() + minutes(5)));
    let message = row.error_message.unwrap();
    assert!(
        message.contains("coingecko bitcoin: rate limited"),
        "{message}"
    );
    assert!(message.contains("429 Too Many Requests"), "{message}");
    assert_eq!(
        provider_state(&db.pool, "coingecko").await.cooldown_until,
        row.retry_after
    );

    let step = setup.worker(&db.pool, 10).process_next().await.unwrap();
    let claimed: Vec<i64> = step.finished.iter().map(|f| f.job.id.0).collect();
    assert_eq!(claimed, vec![aapl]);
    assert_eq!(job(&db.pool, eth).await.status, "rate_limited", "set aside");
    assert_eq!(requests_to(&server, "/coins/").await, 1);

    // When the pause ends, CoinGecko serves both.
    setup.clock.advance(Duration::from_secs(300));
    server.reset().await;
    coingecko_answers(&server, "bitcoin", coingecko_ok()).await;
    coingecko_answers(&server, "ethereum", coingecko_ok()).await;
    setup.worker(&db.pool, 10).process_next().await.unwrap();
    for id in [btc, eth] {
        let row = job(&db.pool, id).await;
        assert_eq!(
            (row.status.as_str(), row.provider.as_deref()),
            ("completed", Some("coingecko"))
        );
        assert!(row.bars_stored.unwrap() > 150);
    }
}

#[tokio::test]
async fn a_rate_limited_provider_hands_the_job_to_the_next_in_the_chain() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let setup = Setup::new(&server, &["--crypto-chain=binance,coingecko"]);
    binance_answers(
        &server,
        "BTCUSDT",
        ResponseTemplate::new(429)
            .set_body_json(json!({"code": -1003, "msg": "Too much request weight used"}))
            .insert_header("retry-after", "60"),
    )
    .await;
    coingecko_answers(&server, "bitcoin", coingecko_ok()).await;
    coingecko_answers(&server, "ethereum", coingecko_ok()).await;
    let btc = job_for(&db.pool, crypto("BTC", Some("BTCUSDT"), Some("bitcoin"))).await;
    let eth = job_for(&db.pool, crypto("ETH", Some("ETHUSDT"), Some("ethereum"))).await;

    let worker = setup.worker(&db.pool, 1);
    worker.process_next().await.unwrap();
    let row = job(&db.pool, btc).await;
    assert_eq!(
        (row.status.as_str(), row.provider.as_deref()),
        ("completed", Some("coingecko"))
    );
    // Retry-After: 60 is shorter than the 5 min backoff, which wins.
    assert_eq!(
        provider_state(&db.pool, "binance").await.cooldown_until,
        Some(setup.now() + minutes(5))
    );
    // The next crypto job skips cooling Binance without calling it.
    worker.process_next().await.unwrap();
    let row = job(&db.pool, eth).await;
    assert_eq!(
        (row.status.as_str(), row.provider.as_deref()),
        ("completed", Some("coingecko"))
    );
    assert_eq!(requests_to(&server, "/api/v3/klines").await, 1);
}

#[tokio::test]
async fn jobs_behind_a_cooling_provider_are_set_aside_once_not_read_by_every_claim() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let setup = Setup::new(&server, &["--crypto-chain=binance"]);
    yahoo_answers(&server, "BULK", yahoo_429()).await;
    binance_answers(&server, "BTCUSDT", binance_ok()).await;
    let stocks = insert_jobs(&db.pool, 500).await;
    let btc = job_for(&db.pool, crypto("BTC", Some("BTCUSDT"), None)).await;

    setup.worker(&db.pool, 1).process_next().await.unwrap();
    let yahoo = provider_state(&db.pool, "yahoo").await;
    let waiting: Vec<(i32, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT attempts, retry_after FROM backfill_queue WHERE id = ANY($1) AND status = 'rate_limited'",
    )
    .bind(&stocks)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(waiting.len(), 500, "every stock job waits out the cooldown");
    assert!(
        waiting.iter().all(|w| *w == (0, yahoo.cooldown_until)),
        "no attempt used, due when Yahoo is back"
    );
    assert_eq!(job(&db.pool, btc).await.status, "pending");

    // A claim now reads no stock job at all.
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {}",
        include_str!("../../sql/queue_claim.sql")
    )))
    .bind(uuid::Uuid::new_v4())
    .bind(Some(setup.now()))
    .bind(10_i64)
    .bind(60_000_i64)
    .bind(vec!["yahoo", "binance"])
    .bind(vec![
        pricekeeper::db::assets::AssetType::Stock,
        pricekeeper::db::assets::AssetType::Crypto,
    ])
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(!plan.contains("rows=500"), "{plan}");
    assert_eq!(job(&db.pool, btc).await.status, "in_progress", "{plan}");

    // Once Yahoo is back they are due again.
    setup.clock.set(yahoo.cooldown_until.unwrap());
    server.reset().await;
    yahoo_answers(&server, "BULK", yahoo_ok("BULK")).await;
    let step = setup.worker(&db.pool, 10).process_next().await.unwrap();
    assert_eq!(step.finished.len(), 10);
}
