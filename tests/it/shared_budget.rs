//! The request budget every process shares through `provider_budget`:
//! limiters that stand for separate worker processes (each with its own
//! in-process bucket and its own pool) together keep to one budget.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::test_db;
use pricekeeper::bench::peak_in_window;
use pricekeeper::db::budget::PgBudget;
use pricekeeper::providers::ProviderKind;
use pricekeeper::providers::rate_limit::{Rate, RateLimiter};
use sqlx::postgres::PgPoolOptions;
use tokio::time::Instant;

#[tokio::test]
async fn processes_sharing_a_database_keep_to_one_budget_together() {
    let db = test_db().await;
    let rate = Rate {
        count: 40,
        per: Duration::from_secs(1),
    };
    let processes = 4;
    let per_process = 30;
    let mut limiters = Vec::new();
    for _ in 0..processes {
        // Each "process" has its own pool, as a separate worker would.
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(db.url())
            .await
            .expect("pool");
        let limiter = Arc::new(RateLimiter::new(rate));
        limiter.share_budget(ProviderKind::Yahoo, Arc::new(PgBudget::new(pool)));
        limiters.push(limiter);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for limiter in &limiters {
        // Eight requests at a time per process, as a worker's jobs would.
        for _ in 0..8 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                let mut sent = Vec::new();
                for _ in 0..per_process / 8 + 1 {
                    limiter.acquire().await;
                    sent.push(Instant::now());
                }
                sent
            }));
        }
    }
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await.expect("task"));
    }
    times.sort();
    let peak = peak_in_window(&times, rate.per);
    // Alone, each process's own bucket would let 40 a second through: 160.
    assert!(
        peak <= rate.count as usize,
        "{peak} requests in one second across {processes} processes; the budget is {rate}"
    );
    // ... and the budget is used, not wasted: 4 × 32 requests at a
    // steady 38/s (after a burst of 2) take about 3.3 s, not 4 × that.
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "{} requests took {took:?}",
        times.len()
    );
}

#[tokio::test]
async fn a_budget_unreachable_in_the_database_falls_back_to_the_process_bucket() {
    let db = test_db().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(db.url())
        .await
        .expect("pool");
    let limiter = RateLimiter::new(Rate::per_minute(6000));
    limiter.share_budget(ProviderKind::Yahoo, Arc::new(PgBudget::new(pool.clone())));
    pool.close().await;
    // Closed pool: every take fails; requests still go, paced locally.
    let deadline = tokio::time::timeout(Duration::from_secs(30), async {
        for _ in 0..10 {
            limiter.acquire().await;
        }
    });
    deadline
        .await
        .expect("requests go on when the shared budget fails");
}

#[tokio::test]
async fn the_last_hour_of_a_provider_counts_every_process() {
    use pricekeeper::ops::sources;
    use pricekeeper::providers::{Providers, Rate as R};
    use pricekeeper::queue::ledger::Ledger;

    let db = test_db().await;
    let settings = common::settings(&[]);
    let providers = Providers::from_settings(&settings).expect("providers");
    let now = chrono::Utc::now();
    // Two processes, each with its own ledger, failing requests to Yahoo.
    for failures in [2, 3] {
        let ledger = Ledger::default();
        for _ in 0..failures {
            let error = pricekeeper::providers::ProviderError::Transient {
                provider: ProviderKind::Yahoo,
                symbol: "AAPL".into(),
                message: "HTTP 503".into(),
            };
            ledger.failed(ProviderKind::Yahoo, now, &error);
        }
        ledger.flush(&db.pool, &providers, None).await.unwrap();
    }
    let rates = [(ProviderKind::Yahoo, R::per_hour(2000))];
    let all = sources::fetch(&db.pool, now, &rates, Duration::from_secs(7200))
        .await
        .unwrap();
    let yahoo = all.iter().find(|s| s.provider == "yahoo").unwrap();
    assert_eq!(yahoo.last_hour.errors, 5, "{:?}", yahoo.last_hour);
    assert_eq!(yahoo.errors_total, 5);
}
