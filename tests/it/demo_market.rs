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

/// Asks until the market's planned refusals are used up. A client pauses
/// itself after a 429 (Yahoo sends no Retry-After: a minute), so a refused
/// one is replaced by a fresh client rather than waited out.
async fn history(
    make: impl Fn() -> Box<dyn Provider>,
    symbol: &str,
    days: u64,
) -> pricekeeper::providers::History {
    let to = Utc::now().date_naive();
    let from = to - Days::new(days);
    let mut provider = make();
    for _ in 0..10 {
        match provider.history(symbol, from, to, Interval::D1).await {
            Ok(history) => return history,
            Err(ProviderError::RateLimited { .. }) => provider = make(),
            Err(ProviderError::Transient { .. }) => {}
            Err(e) => panic!("{symbol}: {e}"),
        }
    }
    panic!("{symbol}: still refused after 10 tries");
}

#[tokio::test]
async fn yahoo_answers_parse_with_sessions_split_dividend_and_pence() {
    let (market, config) = market().await;
    let make = || Box::new(Yahoo::new(config.clone()).unwrap()) as Box<dyn Provider>;
    let yahoo = Yahoo::new(config.clone()).unwrap();
    let calendars = Calendars::default();
    let today = Utc::now().date_naive();

    let aapl = history(&make, "AAPL", 200).await;
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

    let nvda = history(&make, "NVDA", 200).await;
    assert!(
        nvda.events
            .iter()
            .any(|e| matches!(e, CorporateEvent::Split { ratio, .. } if ratio == "4:1")),
        "{:?}",
        nvda.events
    );
    let msft = history(&make, "MSFT", 200).await;
    assert!(
        msft.events
            .iter()
            .any(|e| matches!(e, CorporateEvent::Dividend { .. })),
        "{:?}",
        msft.events
    );
    // Pence at Yahoo, pounds once parsed.
    let vod = history(&make, "VOD.L", 60).await;
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
    let btc = history(
        || Box::new(Binance::new(config.clone(), 6000).unwrap()) as Box<dyn Provider>,
        "BTCUSDT",
        400,
    )
    .await;
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

    let coingecko = CoinGecko::new(config.clone(), None, "usd".to_owned()).unwrap();
    let xmr = history(
        || {
            Box::new(CoinGecko::new(config.clone(), None, "usd".to_owned()).unwrap())
                as Box<dyn Provider>
        },
        "monero",
        120,
    )
    .await;
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
