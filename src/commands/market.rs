//! `pricekeeper market`: the demo's simulated market ([`crate::demo::market`])
//! as a standalone server, so a deployment without internet (the compose
//! quick start, a test through the binary) can point the providers'
//! `PRICEKEEPER_*_URL` at it. It lists the demo catalog's instruments
//! (`sql/demo_catalog.sql`) in the Yahoo, Binance and CoinGecko formats,
//! refuses a few requests with 429 and 5xx as the real APIs do, and needs
//! no database.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;

use crate::demo::{market::SimMarket, script};
use crate::local_http;

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Point a worker or daemon at it with PRICEKEEPER_YAHOO_URL, \
    PRICEKEEPER_BINANCE_URL and PRICEKEEPER_COINGECKO_URL set to the URL it prints, \
    and the chains kept to those three (PRICEKEEPER_CRYPTO_CHAIN=binance,coingecko,yahoo, \
    PRICEKEEPER_FX_CHAIN=yahoo). It lists AAPL, NVDA, MSFT, VOD, SPY, BTC, ETH and XMR (sql/demo_catalog.sql). \
    Prices are a deterministic random walk through the day it started."
)]
pub struct MarketArgs {
    /// Where the simulated market listens: `host:port` (port 0 for any free one).
    #[arg(
        long = "market-addr",
        env = "PRICEKEEPER_MARKET_ADDR",
        default_value = "127.0.0.1:9300",
        value_name = "ADDR"
    )]
    pub addr: SocketAddr,
}

/// Serves the market until `stop` resolves; prints its URL on stdout
/// first (port 0 means the caller needs to know which one was bound).
pub async fn serve(
    args: &MarketArgs,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let market = Arc::new(SimMarket::new(
        &script::instruments(),
        Utc::now().date_naive(),
        true,
    ));
    let url = local_http::serve_on(args.addr, market).await?;
    println!("simulated market: {url}");
    tracing::info!(%url, "simulated market listening (Yahoo, Binance and CoinGecko formats)");
    stop.await;
    Ok(())
}
