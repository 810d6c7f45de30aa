//! The catalog's settings, each a flag and an environment variable with a
//! default, checked at start (a bad value exits 2 naming the variable).
//! [`CatalogSettings`] goes to `seed-catalog` and to the commands that run
//! the daemon; [`RefreshSettings`] only to the latter. CoinGecko and Binance
//! are asked at their provider URLs (`PRICEKEEPER_COINGECKO_URL`,
//! `PRICEKEEPER_BINANCE_URL`), within their rate limits.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, NaiveTime, Utc, Weekday};
use url::Url;

use super::Source;
use crate::config::{duration, ranged};

pub const DEFAULT_NASDAQ_URL: &str = "https://www.nasdaqtrader.com/dynamic/SymDir/";

#[derive(Debug, Clone, clap::Args)]
pub struct CatalogSettings {
    /// Where Nasdaq Trader's symbol directory is: `nasdaqlisted.txt` and
    /// `otherlisted.txt` are read from under this URL.
    #[arg(long = "catalog-nasdaq-url", value_name = "URL", env = "PRICEKEEPER_CATALOG_NASDAQ_URL",
          default_value = DEFAULT_NASDAQ_URL, value_parser = directory_url("PRICEKEEPER_CATALOG_NASDAQ_URL"),
          help_heading = "Catalog")]
    pub nasdaq_url: Url,

    /// Read every source from files in this directory instead of the network
    /// (air-gapped use): nasdaqlisted.txt, otherlisted.txt,
    /// coingecko_markets_1.json, coingecko_markets_2.json, …, and
    /// binance_exchange_info.json, as the sources serve them.
    #[arg(long = "from-dir", value_name = "DIR", env = "PRICEKEEPER_CATALOG_DIR",
          value_parser = existing_dir("PRICEKEEPER_CATALOG_DIR"), help_heading = "Catalog")]
    pub from_dir: Option<PathBuf>,

    /// How many cryptocurrencies to list, largest market cap first
    /// (CoinGecko pages of 250, within CoinGecko's request budget).
    #[arg(long = "catalog-crypto-top", value_name = "N", env = "PRICEKEEPER_CATALOG_CRYPTO_TOP", default_value_t = 500,
          value_parser = ranged::<u32>("PRICEKEEPER_CATALOG_CRYPTO_TOP", 1, 5000),
          help_heading = "Catalog")]
    pub crypto_top: u32,

    /// Time limit of one catalog download (the Nasdaq files are about 1 MB).
    #[arg(long = "catalog-timeout", value_name = "DURATION", env = "PRICEKEEPER_CATALOG_TIMEOUT", default_value = "60s",
          value_parser = duration("PRICEKEEPER_CATALOG_TIMEOUT", Duration::from_millis(100), Duration::from_secs(3600)),
          help_heading = "Catalog")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RefreshSettings {
    /// When the active daemon refreshes the catalog each week: a weekday and
    /// a UTC time (`sun 06:00`), or `off`. A refresh missed while no daemon
    /// ran happens at the next start.
    #[arg(long = "catalog-refresh", value_name = "WHEN", env = "PRICEKEEPER_CATALOG_REFRESH", default_value = "sun 06:00",
          value_parser = schedule("PRICEKEEPER_CATALOG_REFRESH"), help_heading = "Catalog")]
    pub schedule: Schedule,

    /// Sources the weekly refresh runs: `auto` (each source that
    /// `seed-catalog` has filled before, so a host that manages its own
    /// catalog is left alone), `none`, or a list of nasdaq, coingecko, builtin.
    #[arg(long = "catalog-refresh-sources", value_name = "SOURCES", env = "PRICEKEEPER_CATALOG_REFRESH_SOURCES",
          default_value = "auto", value_parser = refresh_sources("PRICEKEEPER_CATALOG_REFRESH_SOURCES"),
          help_heading = "Catalog")]
    pub sources: RefreshSources,
}

/// When the weekly refresh runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Off,
    Weekly { weekday: Weekday, at: NaiveTime },
}

impl Schedule {
    /// The latest scheduled instant at or before `now`.
    pub fn last_before(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Schedule::Weekly { weekday, at } = self else {
            return None;
        };
        let back = (7 + now.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
        let day = now
            .date_naive()
            .checked_sub_days(Days::new(u64::from(back)))?;
        let slot = day.and_time(at).and_utc();
        if slot <= now {
            Some(slot)
        } else {
            Some((day.checked_sub_days(Days::new(7))?).and_time(at).and_utc())
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Weekly { weekday, at } => write!(f, "{weekday} {} UTC", at.format("%H:%M")),
        }
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        let (day, time) = raw
            .split_once(char::is_whitespace)
            .ok_or("expected a weekday and a time such as `sun 06:00`, or `off`")?;
        let weekday: Weekday = day
            .trim()
            .parse()
            .map_err(|_| format!("{day:?} is not a weekday (mon … sun)"))?;
        let at = NaiveTime::parse_from_str(time.trim(), "%H:%M")
            .map_err(|_| format!("{:?} is not a time HH:MM", time.trim()))?;
        Ok(Self::Weekly { weekday, at })
    }
}

/// Which sources the weekly refresh runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshSources {
    /// Those `seed-catalog` has filled before.
    Auto,
    Listed(Vec<Source>),
}

fn refresh_sources(var: &'static str) -> impl Fn(&str) -> Result<RefreshSources, String> + Clone {
    move |raw| {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("auto") {
            return Ok(RefreshSources::Auto);
        }
        if raw.eq_ignore_ascii_case("none") {
            return Ok(RefreshSources::Listed(Vec::new()));
        }
        let mut sources = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let source = Source::named(name).ok_or_else(|| {
                format!(
                    "{var}: unknown source {name:?}; use auto, none, or nasdaq, coingecko, builtin"
                )
            })?;
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
        if sources.is_empty() {
            return Err(format!("{var} must be auto, none, or a list of sources"));
        }
        Ok(RefreshSources::Listed(sources))
    }
}

fn schedule(var: &'static str) -> impl Fn(&str) -> Result<Schedule, String> + Clone {
    move |raw| raw.parse().map_err(|e| format!("{var}: {e}"))
}

/// An http(s) URL of a directory: a missing trailing `/` is added, so
/// joining a file name keeps the last path segment.
fn directory_url(var: &'static str) -> impl Fn(&str) -> Result<Url, String> + Clone {
    move |raw| {
        let mut url = Url::parse(raw.trim()).map_err(|e| format!("{var} is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(format!("{var} must be an http:// or https:// URL"));
        }
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        Ok(url)
    }
}

fn existing_dir(var: &'static str) -> impl Fn(&str) -> Result<PathBuf, String> + Clone {
    move |raw| {
        let path = PathBuf::from(raw);
        if path.is_dir() {
            Ok(path)
        } else {
            Err(format!("{var}: {raw:?} is not a directory"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(raw: &str) -> DateTime<Utc> {
        raw.parse().unwrap()
    }

    #[test]
    fn schedules_parse_and_find_the_last_slot() {
        let sunday_six: Schedule = "sun 06:00".parse().unwrap();
        let cases = [
            // Sunday 2026-11-22.
            ("2026-11-22T06:00:00Z", "2026-11-22T06:00:00Z"),
            ("2026-11-22T05:59:00Z", "2026-11-15T06:00:00Z"),
            ("2026-11-25T12:00:00Z", "2026-11-22T06:00:00Z"),
            ("2026-11-28T23:59:00Z", "2026-11-22T06:00:00Z"),
        ];
        for (now, want) in cases {
            assert_eq!(sunday_six.last_before(t(now)), Some(t(want)), "{now}");
        }
        assert_eq!("OFF".parse::<Schedule>(), Ok(Schedule::Off));
        assert_eq!(Schedule::Off.last_before(t("2026-11-22T06:00:00Z")), None);
        for bad in ["sunday", "sun 25:00", "someday 06:00", ""] {
            assert!(schedule("X")(bad).unwrap_err().starts_with("X:"), "{bad}");
        }
    }

    #[test]
    fn refresh_sources_parse() {
        let parse = refresh_sources("V");
        assert_eq!(parse("auto"), Ok(RefreshSources::Auto));
        assert_eq!(parse("none"), Ok(RefreshSources::Listed(vec![])));
        assert_eq!(
            parse("coingecko, builtin"),
            Ok(RefreshSources::Listed(vec![
                Source::CoinGecko,
                Source::Builtin
            ]))
        );
        assert!(parse("kraken").unwrap_err().starts_with("V:"));
        assert!(parse(",").unwrap_err().starts_with("V "));
    }

    #[test]
    fn nasdaq_urls_are_directories() {
        let parse = directory_url("U");
        assert_eq!(
            parse("http://127.0.0.1:9/SymDir")
                .unwrap()
                .join("nasdaqlisted.txt")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/SymDir/nasdaqlisted.txt"
        );
        assert!(parse("ftp://x/").unwrap_err().starts_with("U "));
    }
}
