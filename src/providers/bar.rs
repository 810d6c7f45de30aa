//! The normalized shapes every provider returns: daily (or intraday) bars,
//! corporate events, quotes, and the number rules that turn a provider's
//! floats and strings into exact decimals.
//!
//! Invariants of a [`Bar`]: `ts` is the bar's start as a UTC instant; prices
//! are exact decimals without float noise, in `currency` (an ISO 4217 code,
//! already converted from minor units such as `GBp`); a missing value is
//! `None`, never zero.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use rust_decimal::Decimal;

use super::error::ProviderError;
use super::kind::ProviderKind;

/// Bar length. Each provider lists the ones it serves (its `INTERVALS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    M1,
    M5,
    M15,
    M30,
    H1,
    D1,
    W1,
    Mo1,
}

impl Interval {
    pub const ALL: [Interval; 8] = [
        Self::M1,
        Self::M5,
        Self::M15,
        Self::M30,
        Self::H1,
        Self::D1,
        Self::W1,
        Self::Mo1,
    ];

    /// The name used in storage (`asset_prices.interval`) and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::M1 => "1m",
            Self::M5 => "5m",
            Self::M15 => "15m",
            Self::M30 => "30m",
            Self::H1 => "1h",
            Self::D1 => "1d",
            Self::W1 => "1wk",
            Self::Mo1 => "1mo",
        }
    }

    /// The nominal length, used to tell a still-open bar from a finished one
    /// (a month counts as 31 days: erring towards "still open").
    pub fn length(self) -> TimeDelta {
        match self {
            Self::M1 => TimeDelta::minutes(1),
            Self::M5 => TimeDelta::minutes(5),
            Self::M15 => TimeDelta::minutes(15),
            Self::M30 => TimeDelta::minutes(30),
            Self::H1 => TimeDelta::hours(1),
            Self::D1 => TimeDelta::days(1),
            Self::W1 => TimeDelta::weeks(1),
            Self::Mo1 => TimeDelta::days(31),
        }
    }

    pub fn is_intraday(self) -> bool {
        self < Self::D1
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(match raw.trim() {
            "1m" => Self::M1,
            "5m" => Self::M5,
            "15m" => Self::M15,
            "30m" => Self::M30,
            "1h" | "60m" => Self::H1,
            "1d" => Self::D1,
            "1w" | "1wk" => Self::W1,
            "1mo" | "1M" => Self::Mo1,
            other => {
                return Err(format!(
                    "unknown interval {other:?}; use one of 1m, 5m, 15m, 30m, 1h, 1d, 1wk, 1mo"
                ));
            }
        })
    }
}

/// A row as a provider reported it, before validation: any value may be
/// missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawBar {
    pub ts: DateTime<Utc>,
    pub open: Option<Decimal>,
    pub high: Option<Decimal>,
    pub low: Option<Decimal>,
    pub close: Option<Decimal>,
    pub adj_close: Option<Decimal>,
    pub volume: Option<Decimal>,
    /// A value the provider sent that cannot be stored (`1e300`, beyond
    /// what a decimal holds): the row is rejected with this reason rather
    /// than read as a missing value and silently skipped.
    pub unreadable: Option<String>,
}

/// A validated bar. CoinGecko gives close-only bars (open/high/low `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub ts: DateTime<Utc>,
    pub open: Option<Decimal>,
    pub high: Option<Decimal>,
    pub low: Option<Decimal>,
    pub close: Decimal,
    pub adj_close: Option<Decimal>,
    pub volume: Option<Decimal>,
    pub currency: Option<String>,
    pub flags: Vec<BarFlag>,
}

/// Quality flags stored with a bar (`asset_prices.flags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarFlag {
    /// Close moved more than 50% from the previous bar's close. Kept, not dropped.
    Spike,
    /// An official reference rate (the ECB's, from Frankfurter), not a
    /// traded price: one fixing a day, no open, high, low or volume.
    Reference,
}

impl BarFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spike => "spike",
            Self::Reference => "reference",
        }
    }
}

/// A row that broke a validation rule, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub ts: DateTime<Utc>,
    pub reason: String,
}

/// Splits and dividends, as Yahoo reports them. `ts` is the ex-date instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorporateEvent {
    Split {
        ts: DateTime<Utc>,
        numerator: Decimal,
        denominator: Decimal,
        /// As the provider writes it, e.g. `4:1`.
        ratio: String,
    },
    Dividend {
        ts: DateTime<Utc>,
        amount: Decimal,
        currency: Option<String>,
    },
}

impl CorporateEvent {
    pub fn ts(&self) -> DateTime<Utc> {
        match self {
            Self::Split { ts, .. } | Self::Dividend { ts, .. } => *ts,
        }
    }
}

/// The answer to a history request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub provider: ProviderKind,
    pub symbol: String,
    pub interval: Interval,
    pub currency: Option<String>,
    /// IANA zone the provider trades the symbol in (Yahoo's
    /// `exchangeTimezoneName`); UTC for crypto venues.
    pub timezone: Option<String>,
    /// Valid bars, oldest first, unique by `ts`.
    pub bars: Vec<Bar>,
    pub events: Vec<CorporateEvent>,
    /// Rows that broke a rule; never stored.
    pub rejected: Vec<Rejected>,
    /// Rows with no close (Yahoo's missing bars); never stored as zero.
    pub skipped: usize,
}

/// A current price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub symbol: String,
    pub price: Decimal,
    pub currency: Option<String>,
    /// When the price was made (the provider's time, or when it was fetched
    /// if the provider gives none, as Binance's ticker does not).
    pub ts: DateTime<Utc>,
}

/// The answer to a batch quote request: what was found, and why the rest
/// was not.
#[derive(Debug, Default)]
pub struct Quotes {
    pub quotes: Vec<Quote>,
    pub missing: Vec<ProviderError>,
}

// ---------------------------------------------------------------------------
// Numbers

/// Significant digits kept from a value that arrived as a binary float: f64
/// arithmetic noise lives in the 16th–17th digit, and no exchange quotes
/// twelve significant digits.
const FLOAT_SIG_DIGITS: u32 = 12;

/// A decimal from a JSON float that was computed in f64 (CoinGecko, or Yahoo
/// numbers that are not f32 values): the shortest decimal that reads back as
/// the same f64, rounded to twelve significant digits.
/// `42261.04154235402` → `42261.0415424`, `1.0845000000000001` → `1.0845`.
pub fn decimal_from_f64(value: f64) -> Option<Decimal> {
    if !value.is_finite() {
        return None;
    }
    let exact = Decimal::from_str(&value.to_string())
        .ok()
        .or_else(|| Decimal::from_f64_retain(value))?;
    Some(exact.round_sf(FLOAT_SIG_DIGITS)?.normalize())
}

/// A decimal from a Yahoo price. Yahoo keeps prices as 32-bit floats and
/// widens them to f64 on output, so `129.04` arrives as `129.0399932861328`
/// (exactly the f32 nearest 129.04). The rule: a value that is exactly an
/// f32 (within a few f64 ulps) is read as the shortest decimal that maps to
/// that same f32 (`129.04`; 7–9 significant digits, which is all an f32 carries); any other value is
/// a true f64 and goes through [`decimal_from_f64`].
pub fn decimal_from_yahoo(value: f64) -> Option<Decimal> {
    if !value.is_finite() {
        return None;
    }
    let narrow = value as f32;
    // "Exactly" up to a few f64 ulps: a JSON parser may land one ulp off.
    let widened = f64::from(narrow);
    if narrow.is_finite() && (widened - value).abs() <= value.abs() * 4.0 * f64::EPSILON {
        // f32's Display is the shortest round-trip form, never exponent notation.
        return Decimal::from_str(&narrow.to_string())
            .ok()
            .map(|d| d.normalize());
    }
    decimal_from_f64(value)
}

/// A decimal from a volume sent as a JSON number: whole numbers exactly (up
/// to 2^53), fractions as [`decimal_from_f64`].
pub fn decimal_from_volume(value: f64) -> Option<Decimal> {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 9.0e15 {
        return Some(Decimal::from(value as i64));
    }
    decimal_from_f64(value)
}

/// Converts the numbers of one row, telling a missing value (`null`) from
/// one that was sent but cannot be stored: the first such value becomes the
/// row's [`RawBar::unreadable`] reason.
#[derive(Debug, Default)]
pub struct RowReader {
    pub unreadable: Option<String>,
}

impl RowReader {
    pub fn read(
        &mut self,
        name: &str,
        raw: Option<f64>,
        convert: fn(f64) -> Option<Decimal>,
    ) -> Option<Decimal> {
        let value = raw?;
        let decimal = convert(value);
        if decimal.is_none() && self.unreadable.is_none() {
            self.unreadable = Some(format!("{name} {value:e} cannot be stored as a decimal"));
        }
        decimal
    }
}

/// A decimal from a decimal string (Binance): exact, trailing zeros removed.
pub fn decimal_from_str(raw: &str) -> Option<Decimal> {
    Decimal::from_str(raw.trim()).ok().map(|d| d.normalize())
}

/// An instant from unix seconds, `None` when out of range.
pub fn from_unix_secs(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}

/// An instant from unix milliseconds, `None` when out of range.
pub fn from_unix_millis(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn yahoo_f32_noise_is_removed() {
        let cases = [
            (129.0399932861328, "129.04"),
            (128.0854034423828, "128.0854"),
            (185.63999938964844, "185.64"),
            ((0.1 + 0.7) * 10.0, "8"), // 7.999999999999999: f64 noise, not an f32
            (0.00001234, "0.00001234"), // tiny crypto price survives
            (2.4000000848900527e-5, "0.000024"), // f32 of 0.000024
            (700123.45, "700123.45"),  // a true f64 keeps its digits
            (100.0, "100"),
            (7984.89, "7984.89"),
        ];
        for (raw, want) in cases {
            assert_eq!(decimal_from_yahoo(raw), Some(d(want)), "{raw}");
        }
        // serde_json's default float parser can land one ulp off the f32.
        let off_by_one = f64::from_bits(f64::from(188.15_f32).to_bits() + 1);
        assert_eq!(decimal_from_yahoo(off_by_one), Some(d("188.15")));
        assert_eq!(decimal_from_yahoo(f64::NAN), None);
        assert_eq!(decimal_from_yahoo(f64::INFINITY), None);
    }

    #[test]
    fn f64_floats_keep_twelve_significant_digits() {
        let cases = [
            (42261.04154235402, "42261.0415424"),
            (7984.89, "7984.89"),
            (0.1 + 0.2, "0.3"),
            (1e-9, "0.000000001"),
        ];
        for (raw, want) in cases {
            assert_eq!(decimal_from_f64(raw), Some(d(want)), "{raw}");
        }
    }

    #[test]
    fn volumes_and_strings_are_exact() {
        assert_eq!(decimal_from_volume(54_652_203.0), Some(d("54652203")));
        assert_eq!(
            decimal_from_volume(12_345_678_901.0),
            Some(d("12345678901"))
        );
        assert_eq!(decimal_from_volume(0.5), Some(d("0.5")));
        assert_eq!(decimal_from_str("65861.66000000"), Some(d("65861.66")));
        assert_eq!(decimal_from_str("0.00001000"), Some(d("0.00001")));
        assert_eq!(decimal_from_str("abc"), None);
    }

    #[test]
    fn intervals_parse_and_print() {
        for interval in Interval::ALL {
            assert_eq!(interval.as_str().parse::<Interval>(), Ok(interval));
        }
        assert_eq!("60m".parse(), Ok(Interval::H1));
        assert_eq!("1w".parse(), Ok(Interval::W1));
        assert!("2d".parse::<Interval>().is_err());
        assert!(Interval::H1.is_intraday() && !Interval::D1.is_intraday());
    }
}
