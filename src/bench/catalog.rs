//! `bench catalog`: seeding a large Nasdaq symbol directory through the
//! real `seed-catalog` path (files read from a directory, as `--from-dir`
//! does): a first seed into an empty catalog, a rerun that changes
//! nothing, and a rerun after some symbols vanished and some were renamed.
//! Wall time and statements sent per pass.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{BenchError, Scratch, round3};
use crate::catalog::seed::Seeder;
use crate::catalog::settings::CatalogSettings;
use crate::catalog::{Source, nasdaq};
use crate::config::Settings;

#[derive(Debug, clap::Args)]
pub struct CatalogBench {
    /// Securities in the generated directory (half Nasdaq, half other venues).
    #[arg(long, default_value_t = 10_000)]
    pub assets: usize,
    /// Share of them that vanish (and as many renamed) for the third pass, in percent.
    #[arg(long, default_value_t = 1)]
    pub churn_percent: usize,
}

#[derive(Debug, Serialize)]
pub struct CatalogReport {
    pub assets: usize,
    pub first_seed: Pass,
    pub unchanged_rerun: Pass,
    pub churn_rerun: Pass,
}

#[derive(Debug, Serialize)]
pub struct Pass {
    pub wall_ms: f64,
    /// Statements `seed-catalog` sent for the source, BEGIN and COMMIT included.
    pub statements: u32,
    pub added: u64,
    pub updated: u64,
    pub deactivated: usize,
}

pub async fn run(settings: &Settings, args: &CatalogBench) -> Result<CatalogReport, BenchError> {
    let scratch = Scratch::create(&settings.connect_options(), 4).await?;
    let dir = std::env::temp_dir().join(format!(
        "pricekeeper-bench-catalog-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let report = measure(&scratch, settings, args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    scratch.drop().await?;
    report
}

async fn measure(
    scratch: &Scratch,
    settings: &Settings,
    args: &CatalogBench,
    dir: &Path,
) -> Result<CatalogReport, BenchError> {
    std::fs::create_dir_all(dir).map_err(stalled)?;
    let catalog = CatalogSettings {
        nasdaq_url: crate::catalog::settings::DEFAULT_NASDAQ_URL
            .parse()
            .expect("default URL"),
        from_dir: Some(PathBuf::from(dir)),
        crypto_top: 500,
        timeout: Duration::from_secs(60),
    };
    let seeder = Seeder::new(
        scratch.pool.clone(),
        settings,
        catalog,
        CancellationToken::new(),
    )
    .map_err(stalled)?;
    let churn = args.assets * args.churn_percent / 100;

    write_directory(dir, args.assets, 0, 0)?;
    let first_seed = pass(&seeder).await?;
    let unchanged_rerun = pass(&seeder).await?;
    write_directory(dir, args.assets, churn, churn)?;
    let churn_rerun = pass(&seeder).await?;
    Ok(CatalogReport {
        assets: args.assets,
        first_seed,
        unchanged_rerun,
        churn_rerun,
    })
}

async fn pass(seeder: &Seeder) -> Result<Pass, BenchError> {
    let started = Instant::now();
    let report = seeder.source(Source::Nasdaq, None).await.map_err(stalled)?;
    Ok(Pass {
        wall_ms: round3(started.elapsed().as_secs_f64() * 1000.0),
        statements: report.applied.statements + 2,
        added: report.applied.added,
        updated: report.applied.updated,
        deactivated: report.applied.deactivated.len(),
    })
}

/// The two directory files for `n` securities; the first `vanished` are
/// left out and the next `renamed` get a new name.
fn write_directory(
    dir: &Path,
    n: usize,
    vanished: usize,
    renamed: usize,
) -> Result<(), BenchError> {
    let mut listed = String::from(
        "Symbol|Security Name|Market Category|Test Issue|Financial Status|Round Lot Size|ETF|NextShares\n",
    );
    let mut other = String::from(
        "ACT Symbol|Security Name|Exchange|CQS Symbol|ETF|Round Lot Size|Test Issue|NASDAQ Symbol\n",
    );
    for i in vanished..n {
        let symbol = ticker(i);
        let name = if i < vanished + renamed {
            format!("{symbol} Holdings Corp. (renamed) Common Stock")
        } else {
            format!("{symbol} Holdings Corp. Common Stock")
        };
        let etf = if i % 7 == 0 { "Y" } else { "N" };
        if i % 2 == 0 {
            let _ = writeln!(listed, "{symbol}|{name}|Q|N|N|100|{etf}|N");
        } else {
            let venue = ["N", "A", "P", "Z", "V"][i % 5];
            let _ = writeln!(
                other,
                "{symbol}|{name}|{venue}|{symbol}|{etf}|100|N|{symbol}"
            );
        }
    }
    for text in [&mut listed, &mut other] {
        text.push_str("File Creation Time: 1122202604:00|||||||\n");
    }
    std::fs::write(dir.join(nasdaq::LISTED_FILE), listed).map_err(stalled)?;
    std::fs::write(dir.join(nasdaq::OTHER_FILE), other).map_err(stalled)?;
    Ok(())
}

/// A distinct ticker of letters for each `i` (`AAAA`, `AAAB`, …).
fn ticker(mut i: usize) -> String {
    let mut letters = [b'A'; 5];
    for slot in letters.iter_mut().rev() {
        *slot = b'A' + (i % 26) as u8;
        i /= 26;
    }
    String::from_utf8_lossy(&letters).into_owned()
}

fn stalled(e: impl std::fmt::Display) -> BenchError {
    BenchError::Stalled(e.to_string())
}
