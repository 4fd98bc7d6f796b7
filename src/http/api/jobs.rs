//! `/jobs`: the queue as operators see it — counts, dead-lettered jobs and requeueing them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{Json, Path, Query};
use crate::domain::JobId;
use crate::http::{ApiError, AppState};
use crate::store::Job;

/// Routes under `/jobs`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/counts", get(counts))
        .route("/jobs/{job}/requeue", post(requeue))
}

/// Which jobs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// `pending`, `running` or `dead` (default).
    status: Option<String>,
    limit: Option<u32>,
}

async fn list(State(state): State<AppState>, Query(p): Query<ListParams>) -> Result<Json<Vec<Job>>, ApiError> {
    let status = p.status.unwrap_or_else(|| "dead".into());
    if !["pending", "running", "dead"].contains(&status.as_str()) {
        return Err(ApiError::invalid("status", "must be pending, running or dead"));
    }
    Ok(Json(state.store.list_jobs(&status, p.limit.unwrap_or(100).clamp(1, 1000)).await?))
}

async fn counts(State(state): State<AppState>) -> Result<Json<std::collections::HashMap<String, i64>>, ApiError> {
    Ok(Json(state.store.job_counts().await?))
}

async fn requeue(State(state): State<AppState>, Path(id): Path<JobId>) -> Result<StatusCode, ApiError> {
    if state.store.requeue_job(id).await? {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(ApiError::NotFound(format!("no dead job {id}")))
    }
}
