//! Checks of a provider's answer against the asset it is for, before
//! anything is stored: the listing must be one pricekeeper knows, and the
//! answer's currency must be the asset's (a VOD fetched as the US listing
//! answers in USD for an asset priced in GBP: the wrong instrument), and
//! whether an answer starts later than asked, so the rest of the chain is
//! asked for the missing head.

use chrono::{Days, NaiveDate};

use crate::db::assets::Asset;
use crate::exchanges;
use crate::providers::History;
use crate::providers::symbol::Printable;

/// Why a job cannot be run for `asset` at all, if it cannot: its exchange
/// is no known MIC (a row written before the schema refused such rows).
pub fn unknown_exchange(asset: &Asset) -> Option<String> {
    if exchanges::lookup(&asset.exchange).is_some() {
        return None;
    }
    Some(format!(
        "asset {} ({}) is listed on {}, which is not a known exchange MIC; \
         the provider symbol cannot be derived (see the exchanges table)",
        asset.id,
        Printable(&asset.symbol),
        Printable(&asset.exchange)
    ))
}

/// Why `history` is not `asset`'s, if its currency contradicts the asset's.
/// Minor units are compared as their major currency (`GBp`/`GBX` is GBP,
/// providers already report GBP); either side unknown is no contradiction.
pub fn currency_mismatch(asset: &Asset, history: &History) -> Option<String> {
    let expected = major_currency(asset.currency.as_deref()?)?;
    let answered = major_currency(history.currency.as_deref()?)?;
    if expected == answered {
        return None;
    }
    Some(format!(
        "answered in {answered} but the asset is priced in {expected}: another listing \
         or instrument; nothing stored"
    ))
}

/// Days an answer may start after the range asked without missing a head:
/// a weekend and a holiday on either side.
pub const HEAD_SLACK_DAYS: u64 = 4;

/// The date (UTC) of the first bar of an answer.
pub fn first_date(history: &History) -> Option<NaiveDate> {
    history.bars.first().map(|b| b.ts.date_naive())
}

/// Whether an answer starting on `first` lacks the head of a range asked
/// from `from`: it starts more than [`HEAD_SLACK_DAYS`] later.
pub fn head_missing(from: NaiveDate, first: NaiveDate) -> bool {
    from.checked_add_days(Days::new(HEAD_SLACK_DAYS))
        .is_some_and(|limit| first > limit)
}

/// An ISO code in upper case, minor units as their major currency.
fn major_currency(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let major = match raw {
        "GBp" | "GBX" | "gbx" => "GBP",
        "ZAc" | "ZAC" => "ZAR",
        "ILA" => "ILS",
        "USX" => "USD",
        other => other,
    };
    (!major.is_empty()).then(|| major.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::assets::AssetType;
    use crate::providers::{Interval, ProviderKind};

    fn asset(exchange: &str, currency: Option<&str>) -> Asset {
        Asset {
            id: 1,
            symbol: "VOD".into(),
            asset_type: AssetType::Stock,
            exchange: exchange.into(),
            currency: currency.map(str::to_owned),
            yahoo_symbol: None,
            binance_symbol: None,
            coingecko_id: None,
            active: true,
        }
    }

    fn answer(currency: Option<&str>) -> History {
        History {
            provider: ProviderKind::Yahoo,
            symbol: "VOD.L".into(),
            interval: Interval::D1,
            currency: currency.map(str::to_owned),
            timezone: None,
            bars: Vec::new(),
            events: Vec::new(),
            rejected: Vec::new(),
            skipped: 0,
        }
    }

    #[test]
    fn currencies_must_agree_after_minor_units() {
        let cases = [
            (Some("GBP"), Some("GBP"), true),
            (Some("GBX"), Some("GBP"), true),
            (Some("gbp"), Some("GBP"), true),
            (Some("GBP"), Some("USD"), false),
            (None, Some("USD"), true),
            (Some("GBP"), None, true),
        ];
        for (asset_currency, answered, ok) in cases {
            let got = currency_mismatch(&asset("XLON", asset_currency), &answer(answered));
            assert_eq!(
                got.is_none(),
                ok,
                "{asset_currency:?} vs {answered:?}: {got:?}"
            );
        }
        assert_eq!(
            currency_mismatch(&asset("XLON", Some("GBP")), &answer(Some("USD"))).unwrap(),
            "answered in USD but the asset is priced in GBP: another listing or instrument; \
             nothing stored"
        );
    }

    #[test]
    fn unknown_exchanges_are_named() {
        assert_eq!(unknown_exchange(&asset("XLON", None)), None);
        let reason = unknown_exchange(&asset("LSE\n", None)).unwrap();
        assert!(reason.contains("listed on \"LSE\\n\""), "{reason}");
    }
}
