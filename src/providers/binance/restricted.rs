//! Binance's HTTP 451, "Service unavailable from a restricted location":
//! permanent for this IP, so never retried. The first 451 from the main
//! host moves every later request to the market-data host
//! (`data-api.binance.vision`, same public endpoints); a 451 from there
//! too makes Binance unavailable for this deployment: later calls fail at
//! once without a request, the queue records it in `provider_state`
//! (`unavailable_since`, kept across restarts), and `/health/sources` and
//! the status page show it.

use std::sync::OnceLock;

use url::Url;

use crate::providers::http::Endpoint;

#[derive(Debug, Default)]
pub struct Restricted {
    /// The market-data host to move to after a 451; `None` when the
    /// configured base already is it.
    data_url: Option<Url>,
    /// Why Binance is unavailable, once it is.
    unavailable: OnceLock<String>,
}

/// What to do after a request was answered 451.
#[derive(Debug, PartialEq, Eq)]
pub enum After451 {
    /// Ask the market-data host, once.
    MoveToDataHost,
    /// Nothing is left to ask: Binance is unavailable (the reason).
    Unavailable(String),
}

impl Restricted {
    pub fn new(configured: &Url, data_url: Option<Url>) -> Self {
        Self {
            data_url: data_url.filter(|u| u != configured),
            unavailable: OnceLock::new(),
        }
    }

    /// Why Binance is unavailable here, if it is.
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.get().map(String::as_str)
    }

    /// Records that Binance is unavailable (from this process's 451s, or
    /// from `provider_state` after a restart). The first reason stays.
    pub fn mark_unavailable(&self, reason: &str) {
        if self.unavailable.set(reason.to_owned()).is_ok() {
            tracing::error!(
                provider = "binance",
                reason,
                "Binance is unavailable for this deployment; its assets use the next providers of their chain"
            );
        }
    }

    /// Whether requests already go to the market-data host.
    pub fn on_data_host(&self, endpoint: &Endpoint) -> bool {
        self.data_url
            .as_ref()
            .is_none_or(|data| endpoint.is_based_at(data))
    }

    /// Decides after a 451 to a request sent to the data host or not
    /// (`sent_to_data_host`, known before it was sent: a concurrent
    /// request may have moved the endpoint meanwhile).
    pub fn after_451(&self, endpoint: &Endpoint, sent_to_data_host: bool) -> After451 {
        match &self.data_url {
            Some(data) if !sent_to_data_host => {
                if !endpoint.is_based_at(data) {
                    tracing::warn!(
                        provider = "binance",
                        host = data.host_str().unwrap_or_default(),
                        "Binance answered 451 (restricted location); moving to its market-data host"
                    );
                    endpoint.rebase(data.clone());
                }
                After451::MoveToDataHost
            }
            _ => {
                let reason = "HTTP 451: Binance refuses this location (restricted location) on \
                              its API and market-data hosts; unavailable for this deployment"
                    .to_owned();
                self.mark_unavailable(&reason);
                After451::Unavailable(reason)
            }
        }
    }
}
