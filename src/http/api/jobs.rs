//! `/jobs`: the queue as operators see it — counts, dead-lettered jobs and requeueing them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{Json, Path, Query};
use crate::accounts::{Caller, Roles};
use crate::domain::JobId;
use crate::http::auth::allow;
use crate::http::{ApiError, AppState};
use crate::store::Job;

/// Routes under `/jobs`: owners.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs", allow(Roles::OWNER, get(list)))
        .route("/jobs/counts", allow(Roles::OWNER, get(counts)))
        .route("/jobs/{job}/requeue", allow(Roles::OWNER, post(requeue)))
}

/// Which jobs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// `pending`, `running` or `dead` (default).
    status: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ListParams>,
) -> Result<Json<Vec<Job>>, ApiError> {
    let status = p.status.unwrap_or_else(|| "dead".into());
    if !["pending", "running", "dead"].contains(&status.as_str()) {
        return Err(ApiError::invalid(
            "status",
            "must be pending, running or dead",
        ));
    }
    Ok(Json(
        state
            .store
            .list_jobs(
                caller.workspace,
                &status,
                p.limit.unwrap_or(100).clamp(1, 1000),
            )
            .await?,
    ))
}

async fn counts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<std::collections::HashMap<String, i64>>, ApiError> {
    Ok(Json(state.store.job_counts(Some(caller.workspace)).await?))
}

async fn requeue(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<JobId>,
) -> Result<StatusCode, ApiError> {
    if state.store.requeue_job(caller.workspace, id).await? {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(ApiError::NotFound(format!("no dead job {id}")))
    }
}
