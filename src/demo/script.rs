//! What the demo does as the host application: its catalog and its
//! portfolios' trades (plain SQL in `sql/demo_*.sql`), and the instruments
//! the simulated market lists for them.

use sqlx::PgPool;

use super::market::{Instrument, YahooListing};
use crate::calendar::CalendarId;

/// The demo's portfolios, as named in `sql/demo_transactions.sql`.
pub const PORTFOLIOS: &[(&str, &str)] = &[
    ("alice", "00000000-0000-4000-8000-00000000a11c"),
    ("bob", "00000000-0000-4000-8000-000000000b0b"),
    ("carol", "00000000-0000-4000-8000-0000000ca201"),
];

/// Writes the catalog; returns the number of assets.
pub async fn write_catalog(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::raw_sql(include_str!("../../sql/demo_catalog.sql"))
        .execute(pool)
        .await?
        .rows_affected())
}

/// Writes the trades; returns the number of transactions.
pub async fn write_transactions(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::raw_sql(include_str!("../../sql/demo_transactions.sql"))
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

const NASDAQ: YahooListing = YahooListing {
    symbol: "",
    currency: "USD",
    exchange_name: "NMS",
    instrument_type: "EQUITY",
    timezone: "America/New_York",
};

/// The market's listings of the catalog's instruments, under the symbols
/// pricekeeper derives for them. XMR is at CoinGecko only.
pub fn instruments() -> Vec<Instrument> {
    let stock = |name, symbol, price_now, vol| Instrument {
        name,
        yahoo: Some(YahooListing { symbol, ..NASDAQ }),
        binance: None,
        coingecko: None,
        calendar: CalendarId::Xnys,
        price_now,
        vol,
        split: None,
        dividend: None,
    };
    let coin = |name, binance, coingecko, price_now| Instrument {
        name,
        yahoo: None,
        binance,
        coingecko: Some(coingecko),
        calendar: CalendarId::Crypto,
        price_now,
        vol: 0.035,
        split: None,
        dividend: None,
    };
    vec![
        stock("AAPL", "AAPL", 228.0, 0.016),
        Instrument {
            // A 4-for-1 split 30 days ago.
            split: Some((30, 4, 1)),
            ..stock("NVDA", "NVDA", 34.0, 0.025)
        },
        Instrument {
            // A quarterly dividend 20 days ago.
            dividend: Some((20, 0.83)),
            ..stock("MSFT", "MSFT", 436.0, 0.014)
        },
        Instrument {
            // London quotes in pence: Yahoo says GBp, pricekeeper stores GBP.
            yahoo: Some(YahooListing {
                symbol: "VOD.L",
                currency: "GBp",
                exchange_name: "LSE",
                timezone: "Europe/London",
                ..NASDAQ
            }),
            calendar: CalendarId::Xlon,
            ..stock("VOD", "VOD.L", 74.0, 0.012)
        },
        Instrument {
            yahoo: Some(YahooListing {
                symbol: "SPY",
                exchange_name: "PCX",
                instrument_type: "ETF",
                ..NASDAQ
            }),
            ..stock("SPY", "SPY", 561.0, 0.009)
        },
        coin("BTC", Some("BTCUSDT"), "bitcoin", 66_500.0),
        coin("ETH", Some("ETHUSDT"), "ethereum", 3_150.0),
        coin("XMR", None, "monero", 171.0),
    ]
}
