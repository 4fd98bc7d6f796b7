//! `/eval/runs`: start an eval run in the background (suites from the server's eval directory,
//! or one inline) and read its status and results.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{find_eval_run, Json, Path, Query};
use crate::accounts::{Caller, Roles};
use crate::domain::{EvalRunId, FieldError};
use crate::eval::runs::{self, RunRequest};
use crate::eval::EvalError;
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::store::EvalRun;

/// Routes under `/eval`: owners and authors.
pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/eval/runs", Roles::AUTHORS, start),
        Route::get("/eval/runs", Roles::AUTHORS, list),
        Route::get("/eval/runs/{id}", Roles::AUTHORS, show),
    ]
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::Schema(errors) => ApiError::Invalid(
                errors
                    .0
                    .iter()
                    .map(|e| FieldError::new("suite", e.to_string()))
                    .collect(),
            ),
            EvalError::Override(errors) => ApiError::Invalid(
                errors
                    .into_iter()
                    .map(|e| FieldError::new(format!("overrides.{}", e.field), e.message))
                    .collect(),
            ),
            e @ (EvalError::UnknownAgent { .. } | EvalError::Agent { .. }) => {
                ApiError::Invalid(vec![FieldError::new("suite", e.to_string())])
            }
            EvalError::Forbidden(m) => ApiError::Forbidden(m),
            EvalError::Store(e) => e.into(),
            e @ (EvalError::Setup(_)
            | EvalError::Knowledge { .. }
            | EvalError::Io { .. }
            | EvalError::Report { .. }
            | EvalError::Baseline { .. }) => ApiError::internal(e),
        }
    }
}

#[utoipa::path(
    post,
    path = "/eval/runs",
    operation_id = "start_eval_run",
    tag = "eval",
    summary = "Start an eval run",
    request_body = crate::eval::runs::RunRequest,
    responses((status = 202, description = "The run, started in the background", body = EvalRun))
)]
async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<RunRequest>,
) -> Result<(StatusCode, Json<EvalRun>), ApiError> {
    let run = runs::start(state, caller.workspace, request).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

#[utoipa::path(
    get,
    path = "/eval/runs/{id}",
    operation_id = "get_eval_run",
    tag = "eval",
    summary = "Read an eval run",
    params(("id" = EvalRunId, Path, description = "The run")),
    responses((status = 200, description = "Its status, progress and, once finished, the summary and every case", body = EvalRun))
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<EvalRunId>,
) -> Result<Json<EvalRun>, ApiError> {
    find_eval_run(&state, &caller, id).await.map(Json)
}

/// How many runs to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/eval/runs",
    operation_id = "list_eval_runs",
    tag = "eval",
    summary = "List recent eval runs",
    params(ListParams),
    responses((status = 200, description = "Runs, latest first", body = Vec<EvalRun>))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ListParams>,
) -> Result<Json<Vec<EvalRun>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_eval_runs(caller.workspace, p.limit.unwrap_or(20).clamp(1, 100))
            .await?,
    ))
}
