//! The ops HTTP server: binds before the process starts its work (so a
//! taken port stops it at once), serves the routes below, and stops with
//! the process. Every database read is bounded by [`DB_WAIT`], so a scrape
//! during a database outage answers 503 at once instead of waiting out the
//! pool.
//!
//! | route              | what                                          |
//! |--------------------|-----------------------------------------------|
//! | `GET /`            | status page ([`super::page`])                 |
//! | `GET /health`      | liveness, no database call                    |
//! | `GET /health/ready`| database answers and the schema is current    |
//! | `GET /health/queue`| queue and outbox, `ok | degraded | failing`   |
//! | `GET /health/sources` | providers                                  |
//! | `GET /metrics`     | Prometheus text format                        |
//! | `POST /admin/…`    | admin actions ([`super::admin`]), bearer token |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{AdminToken, HttpAddr, OpsArgs, Thresholds, admin, health, metrics, page};
use crate::config::Settings;
use crate::providers::rate_limit::Rate;
use crate::providers::{ProviderKind, Providers};

/// How long a request may wait for the database before it answers 503.
pub const DB_WAIT: Duration = Duration::from_secs(3);
/// How long any request may take, body included (a slow client too).
const REQUEST_DEADLINE: Duration = Duration::from_secs(15);
/// Admin requests carry a few fields of JSON; anything bigger is refused.
pub const BODY_LIMIT: usize = 4 * 1024;
/// On shutdown, how long open connections may take to finish.
const DRAIN: Duration = Duration::from_secs(3);
/// How long a client may take to send its request headers.
const HEADER_DEADLINE: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} (PRICEKEEPER_HTTP_ADDR / --http-addr): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// What every handler reads.
pub struct OpsState {
    pub pool: PgPool,
    pub thresholds: Thresholds,
    pub rates: Vec<(ProviderKind, Rate)>,
    pub admin_token: Option<AdminToken>,
    pub metrics: Option<&'static PrometheusHandle>,
    /// The process kind, shown on the status page.
    pub role: &'static str,
    /// Attempts a job queued by an admin gets (MAX_BACKFILL_ATTEMPTS).
    pub max_attempts: i32,
    pub started: Instant,
}

pub type Shared = Arc<OpsState>;

impl OpsState {
    pub fn new(
        pool: PgPool,
        settings: &Settings,
        ops: &OpsArgs,
        role: &'static str,
    ) -> Result<Self, ServerError> {
        Ok(Self {
            pool,
            thresholds: ops.thresholds.clone(),
            rates: rates(settings)?,
            admin_token: ops.admin_token.clone(),
            metrics: None,
            role,
            max_attempts: settings.max_backfill_attempts as i32,
            started: Instant::now(),
        })
    }
}

/// Each provider's configured request budget.
pub fn rates(settings: &Settings) -> Result<Vec<(ProviderKind, Rate)>, reqwest::Error> {
    let providers = Providers::from_settings(settings)?;
    Ok(ProviderKind::ALL
        .into_iter()
        .map(|kind| (kind, providers.rate(kind)))
        .collect())
}

/// The running server: where it listens and its task.
pub struct Running {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

/// Binds `addr` and serves until `cancel`; `Ok(None)` when it is `off`.
/// Installs the Prometheus recorder first, so every metric recorded from
/// now on is exported.
pub async fn start(
    mut state: OpsState,
    addr: HttpAddr,
    cancel: CancellationToken,
) -> Result<Option<Running>, ServerError> {
    let HttpAddr::On(addr) = addr else {
        tracing::info!("ops HTTP server off (PRICEKEEPER_HTTP_ADDR=off)");
        return Ok(None);
    };
    state.metrics = Some(metrics::install()?);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let admin = state.admin_token.is_some();
    let app = router(Arc::new(state));
    tracing::info!(addr = %bound, admin_actions = admin,
        "ops HTTP server listening (/, /health, /health/ready, /health/queue, /health/sources, /metrics)");
    let task = tokio::spawn(serve(listener, app, cancel));
    Ok(Some(Running { addr: bound, task }))
}

/// Accepts connections until `cancel`, each served by hyper with a
/// deadline on its request headers and at most [`MAX_CONNECTIONS`] at once:
/// a client that connects and sends nothing (or a header a byte a minute)
/// is dropped instead of holding a connection, and a crowd of them cannot
/// take every file descriptor. (`axum::serve` sets no header deadline.)
async fn serve(listener: TcpListener, app: Router, cancel: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let slot = tokio::select! {
            () = cancel.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
        };
        let stream = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: pause, do not spin.
                    tracing::warn!(error = %e, "ops HTTP server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (app, cancel) = (app.clone(), cancel.clone());
        connections.spawn(async move {
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_DEADLINE)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
            }
            drop(slot);
        });
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    // Open connections finish their request within DRAIN, then go.
    let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

pub fn router(state: Shared) -> Router {
    let mut app = Router::new()
        .route("/", get(page::page))
        .route("/health", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health/queue", get(health::queue))
        .route("/health/sources", get(health::sources))
        .route("/metrics", get(scrape));
    if state.admin_token.is_some() {
        app = app.merge(admin::router(state.clone()));
    }
    app.fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(deadline))
        .with_state(state)
}

async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(StatusCode::REQUEST_TIMEOUT, "the request took too long"),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route")
}

/// A JSON error body; `message` is ours, never a database's or a panic's.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Runs a database read bounded by [`DB_WAIT`]; any failure is logged
/// here and becomes a 503 that names no SQL.
pub async fn db<T, F>(what: &str, read: F) -> Result<T, Response>
where
    F: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    match tokio::time::timeout(DB_WAIT, read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, what, "ops request: database read failed");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable",
            ))
        }
        Err(_) => {
            tracing::warn!(what, wait = ?DB_WAIT, "ops request: the database did not answer in time");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database did not answer in time",
            ))
        }
    }
}

async fn scrape(State(state): State<Shared>) -> Response {
    let Some(handle) = state.metrics else {
        return error(
            StatusCode::NOT_FOUND,
            "metrics are not recorded in this process",
        );
    };
    let snapshot = match db("metrics", super::snapshot::fetch(&state.pool, None)).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let sources = match db(
        "metrics",
        super::sources::fetch(
            &state.pool,
            snapshot.now,
            &state.rates,
            state.thresholds.source_failing_after,
        ),
    )
    .await
    {
        Ok(s) => s,
        Err(response) => return response,
    };
    let body = metrics::render(handle, &snapshot, &sources);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
