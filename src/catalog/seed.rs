//! One catalog run over some sources, for `seed-catalog` and the daemon's
//! weekly refresh. Each source is fetched and parsed whole, then applied
//! in its own transaction: a source that fails changes nothing and the
//! others go on. `seed-catalog` prints a line per source and a summary.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use super::download::Fetcher;
use super::settings::CatalogSettings;
use super::store::{self, Applied};
use super::{CatalogError, Parsed, Skipped, Source, builtin, coingecko, nasdaq};
use crate::config::Settings;
use crate::daemon::lease::{self, Term};
use crate::providers::Providers;

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Sources to read: nasdaq (US stocks and ETFs), coingecko (top
    /// cryptocurrencies, with Binance pairs), builtin (commodities, FX
    /// pairs, bond ETFs), or all; a comma-separated list works too.
    #[arg(long, value_name = "SOURCES", default_value = "all", value_parser = sources)]
    pub source: Sources,

    /// Fetch, check and apply everything, report the counts, then roll back:
    /// nothing is written.
    #[arg(long)]
    pub dry_run: bool,

    /// Apply a source even when it would deactivate more than a tenth of
    /// what it lists (plus 50). Without it such a run is refused as a
    /// probably partial file, and changes nothing.
    #[arg(long)]
    pub allow_mass_deactivation: bool,

    #[command(flatten)]
    pub catalog: CatalogSettings,
}

/// The sources of one run, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources(pub Vec<Source>);

fn sources(raw: &str) -> Result<Sources, String> {
    let mut chosen = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name.eq_ignore_ascii_case("all") {
            chosen.extend(Source::ALL);
            continue;
        }
        let source = Source::named(name).ok_or_else(|| {
            format!("unknown source {name:?}; use nasdaq, coingecko, builtin or all")
        })?;
        chosen.push(source);
    }
    // Always in the order of Source::ALL, each once.
    let ordered: Vec<Source> = Source::ALL
        .into_iter()
        .filter(|s| chosen.contains(s))
        .collect();
    if ordered.is_empty() {
        return Err("name at least one source".to_owned());
    }
    Ok(Sources(ordered))
}

/// A term that must still be live when a source is written (the daemon's).
#[derive(Debug, Clone)]
pub struct Fence {
    pub role: String,
    pub term: Term,
    pub hold: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    pub source: Source,
    pub listed: usize,
    pub skipped: Skipped,
    #[serde(flatten)]
    pub applied: Applied,
    pub elapsed_ms: u128,
}

#[derive(Debug, Default, Serialize)]
pub struct RunReport {
    pub dry_run: bool,
    pub sources: Vec<SourceReport>,
    /// Sources that changed nothing, with the reason.
    pub failed: Vec<(Source, String)>,
}

pub struct Seeder {
    pool: PgPool,
    fetcher: Fetcher,
    fence: Option<Fence>,
    allow_mass_deactivation: bool,
}

/// Whether deactivating `deactivated` assets is out of proportion for a
/// source that lists `listed` now: a file that lost most of its rows
/// without looking broken (a publishing glitch upstream) must not take
/// thousands of assets out of the catalog in one run.
pub fn mass_deactivation(deactivated: usize, listed: usize) -> bool {
    deactivated > listed / 10 + 50
}

impl Seeder {
    pub fn new(
        pool: PgPool,
        settings: &Settings,
        catalog: CatalogSettings,
        cancel: CancellationToken,
    ) -> Result<Self, CatalogError> {
        let providers = Providers::from_settings(settings).map_err(|e| CatalogError::Download {
            what: "provider clients".to_owned(),
            reason: e.to_string(),
        })?;
        let fetcher = Fetcher::new(
            pool.clone(),
            catalog,
            providers,
            settings.retry_exponential_base,
            cancel,
        )?;
        Ok(Self {
            pool,
            fetcher,
            fence: None,
            allow_mass_deactivation: false,
        })
    }

    /// Applies a source however much it deactivates (`--allow-mass-deactivation`).
    pub fn allowing_mass_deactivation(mut self, allow: bool) -> Self {
        self.allow_mass_deactivation = allow;
        self
    }

    /// Writes only while `fence` is the live lease.
    pub fn fenced(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Runs `sources` in turn; `done` sees each outcome as it comes. A
    /// dry run applies them all in one transaction, each in a savepoint,
    /// and rolls it back at the end: later sources see what earlier ones
    /// would have written, as in a real run.
    pub async fn run(
        &self,
        sources: &[Source],
        dry_run: bool,
        mut done: impl FnMut(Source, &Result<SourceReport, CatalogError>),
    ) -> RunReport {
        let mut report = RunReport {
            dry_run,
            ..RunReport::default()
        };
        let mut dry = None;
        if dry_run {
            match self.pool.begin().await {
                Ok(tx) => dry = Some(tx),
                Err(e) => {
                    let e = CatalogError::from(e);
                    report.failed = sources.iter().map(|s| (*s, e.to_string())).collect();
                    return report;
                }
            }
        }
        for &source in sources {
            tracing::info!(%source, dry_run, "catalog source starting");
            let outcome = self.source(source, dry.as_deref_mut()).await;
            done(source, &outcome);
            match outcome {
                Ok(one) => report.sources.push(one),
                Err(e) => report.failed.push((source, e.to_string())),
            }
        }
        if let Some(tx) = dry
            && let Err(e) = tx.rollback().await
        {
            tracing::warn!(error = %e, "rolling back the dry run failed; the connection is dropped");
        }
        report
    }

    /// Fetches, parses and applies one source in one transaction (a
    /// savepoint of `outer` when given).
    #[tracing::instrument(skip_all, fields(%source), err)]
    pub async fn source(
        &self,
        source: Source,
        outer: Option<&mut PgConnection>,
    ) -> Result<SourceReport, CatalogError> {
        let started = Instant::now();
        let parsed = self.parsed(source).await?;
        let mut tx = match outer {
            Some(conn) => conn.begin().await?,
            None => self.pool.begin().await?,
        };
        if let Some(f) = &self.fence
            && !lease::fence(&mut tx, &f.role, &f.term, f.hold).await?
        {
            return Err(CatalogError::NotLeader);
        }
        let applied = store::apply(&mut tx, source, &parsed.listings).await?;
        let (gone, listed) = (applied.deactivated.len(), parsed.listings.len());
        if !self.allow_mass_deactivation && mass_deactivation(gone, listed) {
            tx.rollback().await?;
            return Err(CatalogError::MassDeactivation { gone, listed });
        }
        tx.commit().await?;
        let report = SourceReport {
            source,
            listed: parsed.listings.len(),
            skipped: parsed.skipped,
            applied,
            elapsed_ms: started.elapsed().as_millis(),
        };
        for (reason, examples) in &report.skipped.examples {
            tracing::debug!(%source, %reason, count = report.skipped.counts[reason], ?examples, "listings left out");
        }
        tracing::info!(%source, listed = report.listed, skipped = report.skipped.total(),
            added = report.applied.added, updated = report.applied.updated,
            deactivated = report.applied.deactivated.len(), kept_held = report.applied.kept_held.len(),
            elapsed_ms = report.elapsed_ms as u64, "catalog source applied");
        if !report.applied.kept_held.is_empty() {
            tracing::warn!(%source, held = ?report.applied.kept_held,
                "vanished from the source but held by a portfolio: left active");
        }
        Ok(report)
    }

    async fn parsed(&self, source: Source) -> Result<Parsed, CatalogError> {
        match source {
            Source::Builtin => builtin::parse(),
            Source::Nasdaq => {
                let (listed, other) = self.fetcher.nasdaq().await?;
                nasdaq::parse(&listed, &other)
            }
            Source::CoinGecko => {
                let (coins, bases) = self.fetcher.crypto().await?;
                let top = self.fetcher.settings.crypto_top as usize;
                Ok(coingecko::listings(&coins, bases.as_ref(), top))
            }
        }
    }
}

/// `pricekeeper seed-catalog`: exit 0 when every source was applied, 1
/// when one failed (it changed nothing; the others were applied).
pub async fn command(pool: PgPool, settings: &Settings, args: SeedArgs) -> ExitCode {
    let cancel = crate::shutdown::on_signal(Duration::from_secs(10), || {
        "the catalog source being fetched (nothing of it written)".to_owned()
    });
    let seeder = match Seeder::new(pool, settings, args.catalog, cancel) {
        Ok(seeder) => seeder.allowing_mass_deactivation(args.allow_mass_deactivation),
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let report = seeder
        .run(&args.source.0, args.dry_run, |source, outcome| {
            println!("{}", source_line(source, outcome));
        })
        .await;
    println!("{}", summary_line(&report));
    if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `nasdaq: listed 7981 (left out 12: 10 test issue, 2 duplicate symbol);
/// added 7981, updated 0, deactivated 0 [1.2 s]`
pub fn source_line(source: Source, outcome: &Result<SourceReport, CatalogError>) -> String {
    let r = match outcome {
        Ok(r) => r,
        Err(e) => return format!("{source}: FAILED, nothing changed: {e}"),
    };
    let mut line = format!("{source}: listed {}", r.listed);
    if r.skipped.total() > 0 {
        let reasons: Vec<String> = r
            .skipped
            .counts
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        let _ = write!(
            line,
            " (left out {}: {})",
            r.skipped.total(),
            reasons.join(", ")
        );
    }
    let a = &r.applied;
    let _ = write!(
        line,
        "; added {}, updated {}, deactivated {}",
        a.added,
        a.updated,
        a.deactivated.len()
    );
    if a.reactivated > 0 {
        let _ = write!(line, " (reactivated {})", a.reactivated);
    }
    if !a.kept_held.is_empty() {
        let _ = write!(
            line,
            "; vanished but held, kept active: {}",
            a.kept_held.join(", ")
        );
    }
    if a.kept_listed_elsewhere > 0 {
        let _ = write!(
            line,
            "; vanished but listed by another source: {}",
            a.kept_listed_elsewhere
        );
    }
    let _ = write!(line, " [{:.1} s]", r.elapsed_ms as f64 / 1000.0);
    line
}

pub fn summary_line(report: &RunReport) -> String {
    let sum = |f: fn(&SourceReport) -> u64| report.sources.iter().map(f).sum::<u64>();
    let mut line = format!(
        "catalog: {} source(s) applied: added {}, updated {}, deactivated {}, kept held {}",
        report.sources.len(),
        sum(|r| r.applied.added),
        sum(|r| r.applied.updated),
        sum(|r| r.applied.deactivated.len() as u64),
        sum(|r| r.applied.kept_held.len() as u64),
    );
    if !report.failed.is_empty() {
        let names: Vec<&str> = report.failed.iter().map(|(s, _)| s.as_str()).collect();
        let _ = write!(line, "; FAILED (nothing changed): {}", names.join(", "));
    }
    if report.dry_run {
        line.push_str(" (dry run: nothing written)");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deactivating_a_tenth_and_more_is_refused() {
        assert!(!mass_deactivation(100, 8000));
        assert!(!mass_deactivation(850, 8000));
        assert!(mass_deactivation(851, 8000));
        assert!(mass_deactivation(7200, 800));
        assert!(!mass_deactivation(50, 0), "small catalogs churn freely");
    }

    #[test]
    fn sources_run_in_a_fixed_order_once() {
        assert_eq!(sources("all").unwrap().0, Source::ALL);
        assert_eq!(
            sources("coingecko,nasdaq,coingecko").unwrap().0,
            [Source::Nasdaq, Source::CoinGecko]
        );
        assert!(sources("kraken").is_err());
        assert!(sources("").is_err());
    }
}
