//! Market-data providers behind one trait: Yahoo Finance (everything with a
//! ticker), Binance, Kraken, Coinbase and CoinGecko (crypto), Frankfurter
//! (ECB reference rates for FX); for users with keys, Financial Modeling
//! Prep and Alpha Vantage (US stocks and ETFs), enabled only with a key.
//!
//! Each provider owns an [`http::Endpoint`] (client, rate limiter, base URL
//! that settings can point at a local server) and sends every request
//! through it. Whatever a provider answers is normalized into [`Bar`]s and
//! [`Quote`]s (UTC instants, exact decimals, ISO currencies) and validated
//! ([`validate`]); every failure is one [`ProviderError`] whose
//! [`Disposition`] tells the caller to wait, retry or move down the chain.
//! Invariant: no body, however broken, makes a provider panic.
//!
//! Dependencies run one way: the clients (`yahoo`, `binance`, `kraken`, …)
//! use `http`, `checks`, `assemble` and `batch`, which use `validate`,
//! `bar`, `error` and `kind`; `registry` builds the clients from settings.
//! This file only declares and re-exports.

pub mod alphavantage;
pub mod assemble;
pub mod bar;
pub mod batch;
pub mod binance;
pub mod checks;
pub mod coinbase;
pub mod coingecko;
pub mod error;
pub mod fmp;
pub mod frankfurter;
pub mod http;
pub mod keyed;
pub mod kind;
pub mod kraken;
pub mod mapping;
pub mod pairs;
pub mod provider;
pub mod rate_limit;
pub mod registry;
pub mod settings;
pub mod symbol;
pub mod validate;
pub mod yahoo;

pub use alphavantage::AlphaVantage;
pub use bar::{Bar, BarFlag, CorporateEvent, History, Interval, Quote, Quotes, RawBar, Rejected};
pub use binance::Binance;
pub use coinbase::Coinbase;
pub use coingecko::CoinGecko;
pub use error::{Disposition, ProviderError};
pub use fmp::Fmp;
pub use frankfurter::Frankfurter;
pub use http::EndpointConfig;
pub use kind::ProviderKind;
pub use kraken::Kraken;
pub use mapping::symbol_for;
pub use provider::Provider;
pub use rate_limit::{Rate, RateLimiter};
pub use registry::Providers;
pub use yahoo::Yahoo;
