//! The demo's progress while the pipeline works: a bar on a terminal, one
//! plain line per change otherwise (a pipe or a CI log gets no escape
//! codes or carriage returns).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;

/// The pipeline's state, from the tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Snapshot {
    pub events_waiting: i64,
    pub pending: i64,
    pub running: i64,
    pub rate_limited: i64,
    pub completed: i64,
    pub failed: i64,
    pub retries: i64,
    pub rate_limits: i64,
}

impl Snapshot {
    pub async fn read(pool: &PgPool) -> Result<Self, sqlx::Error> {
        sqlx::query_as(include_str!("../../sql/demo_progress.sql"))
            .fetch_one(pool)
            .await
    }

    pub fn jobs(&self) -> i64 {
        self.pending + self.running + self.rate_limited + self.completed + self.failed
    }

    /// Every event applied and every job finished one way or the other.
    pub fn settled(&self) -> bool {
        self.events_waiting == 0
            && self.jobs() > 0
            && self.pending + self.running + self.rate_limited == 0
    }

    fn line(&self) -> String {
        format!(
            "events waiting {}, jobs: {} queued, {} running, {} rate limited, {} completed, {} failed; {} retries, {} rate limits",
            self.events_waiting,
            self.pending,
            self.running,
            self.rate_limited,
            self.completed,
            self.failed,
            self.retries,
            self.rate_limits
        )
    }
}

#[derive(Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
    last: Option<Snapshot>,
}

impl Progress {
    /// A bar when stdout is a terminal, plain lines otherwise.
    pub fn for_stdout() -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} backfills [{bar:30}] {pos}/{len} {msg}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            bar
        });
        Self { bar, last: None }
    }

    pub fn show(&mut self, now: Snapshot) {
        if self.last == Some(now) {
            if let Some(bar) = &self.bar {
                bar.tick();
            }
            return;
        }
        self.last = Some(now);
        match &self.bar {
            Some(bar) => {
                bar.set_length(now.jobs() as u64);
                bar.set_position((now.completed + now.failed) as u64);
                bar.set_message(format!(
                    "{} running, {} queued, {} rate limited, {} retries, {} failed",
                    now.running, now.pending, now.rate_limited, now.retries, now.failed
                ));
            }
            None => println!("demo: {}", now.line()),
        }
    }

    /// A plain line, above the bar when there is one.
    pub fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
