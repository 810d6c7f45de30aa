//! Admin actions over HTTP, behind `Authorization: Bearer
//! $PRICEKEEPER_ADMIN_TOKEN`. Without a token the routes do not exist
//! (404). A missing or wrong token is refused with 401 before anything is
//! parsed or read; the comparison takes the same time wherever the tokens
//! differ. Answers carry our own messages only, never a database error;
//! every action is logged with what it changed.
//!
//! | route                                         | action                       |
//! |-----------------------------------------------|------------------------------|
//! | `POST /admin/jobs/{id}/retry`                 | retry a failed job           |
//! | `POST /admin/jobs/{id}/cancel`                | cancel a job not yet ended   |
//! | `POST /admin/assets/{asset}/retry`            | retry an asset's failed jobs |
//! | `POST /admin/assets/{asset}/backfill` `{"from","to"}` | queue a backfill     |
//!
//! `{asset}` is an asset id or a symbol (`?exchange=MIC` when several
//! exchanges list it).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::actions::{self, ActionError, AssetRef, Selector};
use super::server::{Shared, error};

pub fn router(state: Shared) -> Router<Shared> {
    Router::new()
        .route("/admin/jobs/{id}/retry", post(retry_job))
        .route("/admin/jobs/{id}/cancel", post(cancel_job))
        .route("/admin/assets/{asset}/retry", post(retry_asset))
        .route("/admin/assets/{asset}/backfill", post(backfill_asset))
        .route_layer(middleware::from_fn_with_state(state, authorize))
}

/// Lets a request through only with the right bearer token.
async fn authorize(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let Some(token) = &state.admin_token else {
        return error(StatusCode::NOT_FOUND, "no such route");
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    // ct_eq returns at once on a length mismatch: that tells the length,
    // never the content.
    let ok = given.is_some_and(|g| bool::from(g.ct_eq(token.as_bytes())));
    if !ok {
        tracing::warn!(
            path = %request.uri().path(),
            token = if given.is_some() { "wrong" } else { "missing" },
            "admin request refused"
        );
        let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    next.run(request).await
}

/// An action's failure as an answer; a database error is logged, not shown.
fn refused(e: ActionError) -> Response {
    match e {
        ActionError::Invalid(m) => error(StatusCode::BAD_REQUEST, &m),
        ActionError::NotFound(m) => error(StatusCode::NOT_FOUND, &m),
        e @ ActionError::Ambiguous { .. } => error(StatusCode::CONFLICT, &e.to_string()),
        ActionError::Db(e) => {
            tracing::error!(error = %e, "admin action failed in the database");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the action could not be done; see the server log",
            )
        }
    }
}

async fn retry_job(State(state): State<Shared>, Path(id): Path<i64>) -> Response {
    match actions::retry_failed(&state.pool, Selector::Job(id)).await {
        Ok(changed) if changed.is_empty() => error(
            StatusCode::NOT_FOUND,
            &format!(
                "no failed job {id} to retry (it is not failed, or its range is queued again)"
            ),
        ),
        Ok(changed) => {
            tracing::info!(action = "retry", job.id = id, jobs = ?changed, "admin: failed job queued again");
            Json(serde_json::json!({ "retried": changed })).into_response()
        }
        Err(e) => refused(e),
    }
}

async fn cancel_job(State(state): State<Shared>, Path(id): Path<i64>) -> Response {
    match actions::cancel(&state.pool, id).await {
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            &format!("no job {id} that can be cancelled (none, or it already ended)"),
        ),
        Ok(Some(changed)) => {
            tracing::info!(action = "cancel", job.id = id, was = %changed.was,
                symbol = ?changed.symbol, "admin: job cancelled");
            Json(serde_json::json!({ "cancelled": changed })).into_response()
        }
        Err(e) => refused(e),
    }
}

#[derive(Debug, Deserialize)]
struct AssetQuery {
    exchange: Option<String>,
}

async fn asset(state: &Shared, asset: &str, q: &AssetQuery) -> Result<AssetRef, ActionError> {
    match asset.parse::<i64>() {
        Ok(id) => actions::asset_by_id(&state.pool, id).await,
        Err(_) => actions::find_asset(&state.pool, asset, q.exchange.as_deref()).await,
    }
}

async fn retry_asset(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<AssetQuery>,
) -> Response {
    let asset = match asset(&state, &name, &q).await {
        Ok(a) => a,
        Err(e) => return refused(e),
    };
    match actions::retry_failed(&state.pool, Selector::Asset(asset.id)).await {
        Ok(changed) => {
            tracing::info!(action = "retry", asset.id = asset.id, symbol = ?asset.symbol,
                jobs = changed.len(), "admin: failed jobs of an asset queued again");
            Json(serde_json::json!({ "asset": asset, "retried": changed })).into_response()
        }
        Err(e) => refused(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from: NaiveDate,
    to: NaiveDate,
}

async fn backfill_asset(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<AssetQuery>,
    body: Result<Json<Range>, JsonRejection>,
) -> Response {
    let range = match body {
        Ok(Json(range)) => range,
        Err(rejection) => {
            return error(
                rejection.status(),
                &format!(
                    "the body must be JSON {{\"from\": \"YYYY-MM-DD\", \"to\": \"YYYY-MM-DD\"}} \
                     of at most {} bytes ({})",
                    super::server::BODY_LIMIT,
                    rejection.body_text()
                ),
            );
        }
    };
    let asset = match asset(&state, &name, &q).await {
        Ok(a) => a,
        Err(e) => return refused(e),
    };
    let today = Utc::now().date_naive();
    match actions::queue_backfill(
        &state.pool,
        &asset,
        range.from,
        range.to,
        today,
        state.max_attempts,
    )
    .await
    {
        Ok(queued) => {
            tracing::info!(action = "backfill", asset.id = asset.id, symbol = ?asset.symbol,
                from = %range.from, to = %range.to, job.id = queued.id, created = queued.created,
                "admin: backfill queued");
            let code = if queued.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (
                code,
                Json(serde_json::json!({ "asset": asset, "job": queued })),
            )
                .into_response()
        }
        Err(e) => refused(e),
    }
}
