//! The demo's simulated market, read by the real provider clients over
//! real HTTP: every listing parses, in the shapes the live APIs use, with
//! the split, the dividend, London pence and the planned refusals.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, Utc};
use pricekeeper::calendar::{CalendarId, Calendars};
use pricekeeper::demo::market::SimMarket;
use pricekeeper::demo::script;
use pricekeeper::local_http;
use pricekeeper::providers::{
    Binance, CoinGecko, CorporateEvent, EndpointConfig, Interval, Provider, ProviderError, Rate,
    Yahoo,
};

async fn market() -> (Arc<SimMarket>, EndpointConfig) {
    let market = Arc::new(SimMarket::new(
        &script::instruments(),
        Utc::now().date_naive(),
        false,
    ));
    let url = local_http::serve(market.clone()).await.unwrap();
    let config = EndpointConfig {
        timeout: Duration::from_secs(5),
        ..EndpointConfig::new(url, Rate::per_minute(60_000))
    };
    (market, config)
}

/// Asks until the market's planned refusals for this endpoint are used up
/// and the client's own pause after a 429 (the market's Retry-After, 2 s)
/// is over: a condition with a deadline.
async fn history(
    provider: &dyn Provider,
    symbol: &str,
    days: u64,
) -> pricekeeper::providers::History {
    let to = Utc::now().date_naive();
    let from = to - Days::new(days);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match provider.history(symbol, from, to, Interval::D1).await {
            Ok(history) => return history,
            Err(e @ (ProviderError::RateLimited { .. } | ProviderError::Transient { .. })) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{symbol}: still refused: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{symbol}: {e}"),
        }
    }
}

#[tokio::test]
async fn yahoo_answers_parse_with_sessions_split_dividend_and_pence() {
    let (market, config) = market().await;
    let yahoo = Yahoo::new(config).unwrap();
    let calendars = Calendars::default();
    let today = Utc::now().date_naive();

    let aapl = history(&yahoo, "AAPL", 200).await;
    assert_eq!(aapl.currency.as_deref(), Some("USD"));
    assert!(aapl.rejected.is_empty(), "{:?}", aapl.rejected);
    // One bar per NYSE session, the still-open one left out.
    let sessions = calendars.sessions(CalendarId::Xnys, today - Days::new(200), today);
    let finished = sessions.iter().filter(|s| s.close <= Utc::now()).count();
    assert!(
        aapl.bars.len() == finished || aapl.bars.len() == sessions.len(),
        "{} bars for {} sessions",
        aapl.bars.len(),
        sessions.len()
    );

    let nvda = history(&yahoo, "NVDA", 200).await;
    assert!(
        nvda.events
            .iter()
            .any(|e| matches!(e, CorporateEvent::Split { ratio, .. } if ratio == "4:1")),
        "{:?}",
        nvda.events
    );
    let msft = history(&yahoo, "MSFT", 200).await;
    assert!(
        msft.events
            .iter()
            .any(|e| matches!(e, CorporateEvent::Dividend { .. })),
        "{:?}",
        msft.events
    );
    // Pence at Yahoo, pounds once parsed.
    let vod = history(&yahoo, "VOD.L", 60).await;
    assert_eq!(vod.currency.as_deref(), Some("GBP"));
    assert!(
        vod.bars
            .iter()
            .all(|b| b.close < rust_decimal::Decimal::from(5))
    );

    let unknown = yahoo
        .history("NOPE", today - Days::new(30), today, Interval::D1)
        .await;
    assert!(
        matches!(unknown, Err(ProviderError::NotFound { .. })),
        "{unknown:?}"
    );

    let quotes = yahoo
        .quotes(&["AAPL".to_owned(), "VOD.L".to_owned()])
        .await
        .unwrap();
    assert_eq!(quotes.quotes.len(), 2, "{quotes:?}");
    let stats = market.stats();
    assert_eq!(
        (stats.rate_limited, stats.server_errors),
        (1, 1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn binance_and_coingecko_answers_parse() {
    let (market, config) = market().await;
    let binance = Binance::new(config.clone(), 6000).unwrap();
    let btc = history(&binance, "BTCUSDT", 400).await;
    // Crypto trades every day: 400 days back, today's open bar left out.
    assert!((400..=401).contains(&btc.bars.len()), "{}", btc.bars.len());
    let missing = binance
        .history(
            "XMRUSDT",
            Utc::now().date_naive() - Days::new(10),
            Utc::now().date_naive(),
            Interval::D1,
        )
        .await;
    assert!(
        matches!(missing, Err(ProviderError::NotFound { .. })),
        "{missing:?}"
    );
    let prices = binance
        .quotes(&["BTCUSDT".to_owned(), "ETHUSDT".to_owned()])
        .await
        .unwrap();
    assert_eq!(prices.quotes.len(), 2);

    let coingecko = CoinGecko::new(config, None, "usd".to_owned()).unwrap();
    let xmr = history(&coingecko, "monero", 120).await;
    assert!(xmr.bars.len() >= 119, "{}", xmr.bars.len());
    let quotes = coingecko.quotes(&["monero".to_owned()]).await.unwrap();
    assert_eq!(quotes.quotes.len(), 1);
    let stats = market.stats();
    assert_eq!(
        (stats.rate_limited, stats.server_errors),
        (1, 1),
        "{stats:?}"
    );
}
