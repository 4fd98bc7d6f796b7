//! `/eval/runs`: start an eval run in the background (suites from the server's eval directory,
//! or one inline) and read its status and results.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{find_eval_run, Json, Path, Query};
use crate::accounts::{Caller, Roles};
use crate::domain::{EvalRunId, FieldError};
use crate::eval::runs::{self, RunRequest};
use crate::eval::EvalError;
use crate::http::auth::allow;
use crate::http::{ApiError, AppState};
use crate::store::EvalRun;

/// Routes under `/eval`: owners and authors.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/eval/runs", allow(Roles::AUTHORS, post(start).get(list)))
        .route("/eval/runs/{id}", allow(Roles::AUTHORS, get(show)))
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

async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<RunRequest>,
) -> Result<(StatusCode, Json<EvalRun>), ApiError> {
    let run = runs::start(state, caller.workspace, request).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<EvalRunId>,
) -> Result<Json<EvalRun>, ApiError> {
    find_eval_run(&state, &caller, id).await.map(Json)
}

/// How many runs to list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
}

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
