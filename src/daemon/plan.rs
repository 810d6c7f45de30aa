//! Which assets a tick asks for, and from which provider: pure, so the
//! rules (market open, cooling providers, unknown exchanges) are tested
//! without a network or a database.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::calendar::{CalendarId, Calendars};
use crate::db::assets::Asset;
use crate::providers::{ProviderKind, Providers};

/// What a tick selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A scheduled refresh: assets whose market is open now (or all of
    /// them when trading hours are not observed).
    Refresh { trading_hours_only: bool },
    /// The tick after a session close: the assets of that calendar.
    Close(CalendarId),
}

/// One asset in a request, by the symbol its provider knows it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub asset: Asset,
    pub symbol: String,
    pub calendar: Option<CalendarId>,
}

#[derive(Debug, Default, Serialize)]
pub struct Plan {
    #[serde(skip)]
    pub groups: BTreeMap<ProviderKind, Vec<Wanted>>,
    /// Every asset the scope selected, whether or not it can be asked for.
    #[serde(skip)]
    pub selected: Vec<i64>,
    /// Assets left out because their market is closed.
    pub market_closed: usize,
    /// Assets whose every provider is cooling down.
    pub cooling: usize,
    /// Assets no provider of their chain has a symbol for.
    pub no_symbol: usize,
    /// Exchanges without a calendar (their assets are refreshed every tick).
    pub unknown_exchanges: BTreeSet<String>,
}

impl Plan {
    pub fn wanted(&self) -> usize {
        self.groups.values().map(Vec::len).sum()
    }
}

/// Groups `assets` by the first provider of their chain that is not cooling.
pub fn plan(
    assets: Vec<Asset>,
    scope: Scope,
    now: DateTime<Utc>,
    calendars: &Calendars,
    providers: &Providers,
    cooling: &HashSet<ProviderKind>,
) -> Plan {
    let mut plan = Plan::default();
    for asset in assets {
        let calendar = CalendarId::for_exchange(&asset.exchange);
        let selected = match (scope, calendar) {
            (Scope::Close(wanted), Some(calendar)) => calendar == wanted,
            (Scope::Close(_), None) => false,
            (Scope::Refresh { .. }, None) => {
                plan.unknown_exchanges.insert(asset.exchange.clone());
                true
            }
            (Scope::Refresh { trading_hours_only }, Some(calendar)) => {
                !trading_hours_only || calendars.is_open(calendar, now)
            }
        };
        if !selected {
            if matches!(scope, Scope::Refresh { .. }) {
                plan.market_closed += 1;
            }
            continue;
        }
        plan.selected.push(asset.id);
        let candidates = providers.candidates(&asset);
        if candidates.is_empty() {
            plan.no_symbol += 1;
            continue;
        }
        match candidates
            .into_iter()
            .find(|(kind, _)| !cooling.contains(kind))
        {
            Some((kind, symbol)) => plan.groups.entry(kind).or_default().push(Wanted {
                asset,
                symbol,
                calendar,
            }),
            None => plan.cooling += 1,
        }
    }
    plan
}
