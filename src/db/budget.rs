//! The providers' request budgets in `provider_budget` (migration 0015):
//! one token bucket per provider for every process using the database.

use async_trait::async_trait;
use sqlx::PgPool;

use crate::providers::ProviderKind;
use crate::providers::rate_limit::{Pacing, SharedBudget, Taken};

const TAKE: &str = include_str!("../../sql/budget_take.sql");

/// [`SharedBudget`] in PostgreSQL, judged by the database's clock so that
/// processes on machines with skewed clocks still share one bucket.
#[derive(Debug, Clone)]
pub struct PgBudget {
    pool: PgPool,
}

impl PgBudget {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SharedBudget for PgBudget {
    async fn take(&self, kind: ProviderKind, want: u32, pacing: Pacing) -> Result<Taken, String> {
        let (granted, wait_us): (i32, i64) = sqlx::query_as(TAKE)
            .bind(kind.as_str())
            .bind(i32::try_from(want).unwrap_or(i32::MAX))
            .bind(micros(pacing.every))
            .bind(micros(pacing.tolerance()))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        Ok(match u32::try_from(granted) {
            Ok(n) if n > 0 => Taken::Granted(n),
            _ => Taken::Wait(std::time::Duration::from_micros(
                u64::try_from(wait_us).unwrap_or(0),
            )),
        })
    }
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX).max(1)
}
