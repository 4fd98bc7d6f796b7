//! `/jobs`: the queue as operators see it — counts, dead-lettered jobs and requeueing them.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{Json, Path, Query};
use crate::accounts::{Caller, Roles};
use crate::domain::JobId;
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::store::Job;

/// Routes under `/jobs`: owners.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/jobs", Roles::OWNER, list),
        Route::get("/jobs/counts", Roles::OWNER, counts),
        Route::post("/jobs/{job}/requeue", Roles::OWNER, requeue),
    ]
}

/// Which jobs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// `pending`, `running` or `dead` (default).
    status: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    summary = "List jobs",
    params(ListParams),
    responses((status = 200, description = "Jobs", body = Vec<Job>))
)]
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

#[utoipa::path(
    get,
    path = "/jobs/counts",
    operation_id = "count_jobs",
    tag = "jobs",
    summary = "Count jobs by status",
    responses((status = 200, description = "Jobs per status", body = std::collections::HashMap<String, i64>))
)]
async fn counts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<std::collections::HashMap<String, i64>>, ApiError> {
    Ok(Json(state.store.job_counts(Some(caller.workspace)).await?))
}

#[utoipa::path(
    post,
    path = "/jobs/{job}/requeue",
    operation_id = "requeue_job",
    tag = "jobs",
    summary = "Run a dead job again",
    params(("job" = JobId, Path, description = "The job")),
    responses((status = 202, description = "Queued again"))
)]
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
