//! `/workspace`: the caller's workspace, what it holds and its limits. `/workspaces`: the
//! instance's operator creates workspaces and sets their limits.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{Json, Path};
use crate::accounts::quota::{self, ModelCalls};
use crate::accounts::{self, Caller, Roles};
use crate::domain::{AssignmentRule, Workspace, WorkspaceId, WorkspaceLimits};
use crate::http::route::{Access, Route};
use crate::http::{ApiError, AppState};
use crate::store::WorkspaceUsage;

/// Routes under `/workspace` (every role) and `/workspaces` (the operator).
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/workspace", Roles::ANY, current),
        Route::put("/workspace/assignment", Roles::OWNER, set_assignment),
        Route::put(
            "/workspace/model-calls",
            Roles::OWNER,
            set_model_calls_limit,
        ),
        Route::get("/workspaces", Access::Operator, list),
        Route::post("/workspaces", Access::Operator, create),
        Route::patch("/workspaces/{workspace}", Access::Operator, update),
    ]
}

/// A workspace with what it holds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkspaceView {
    #[serde(flatten)]
    workspace: Workspace,
    usage: WorkspaceUsage,
    /// Model calls this month, against `model_calls_limit`.
    model_calls: ModelCalls,
}

async fn view(state: &AppState, workspace: Workspace) -> Result<WorkspaceView, ApiError> {
    let usage = state.store.workspace_usage(workspace.id).await?;
    let model_calls =
        quota::model_calls(state.store.as_ref(), workspace.id, chrono::Utc::now()).await?;
    Ok(WorkspaceView {
        workspace,
        usage,
        model_calls,
    })
}

#[utoipa::path(
    get,
    path = "/workspace",
    operation_id = "get_workspace",
    tag = "workspaces",
    summary = "The caller's workspace",
    responses((status = 200, description = "The workspace with its usage", body = WorkspaceView))
)]
async fn current(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WorkspaceView>, ApiError> {
    let workspace = state
        .store
        .workspace(caller.workspace)
        .await?
        .ok_or_else(|| ApiError::NotFound("the workspace no longer exists".into()))?;
    Ok(Json(view(&state, workspace).await?))
}

/// Who gets escalated conversations: `{"mode": "manual"}`, `{"mode": "default", "user": id}`
/// or `{"mode": "round_robin"}`.
#[utoipa::path(
    put,
    path = "/workspace/assignment",
    operation_id = "set_assignment",
    tag = "workspaces",
    summary = "Who gets escalated conversations",
    request_body = AssignmentRule,
    responses((status = 200, description = "The workspace", body = WorkspaceView))
)]
async fn set_assignment(
    State(state): State<AppState>,
    caller: Caller,
    Json(rule): Json<AssignmentRule>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let workspace = crate::inbox::set_assignment_rule(state.store.as_ref(), &caller, rule).await?;
    Ok(Json(view(&state, workspace).await?))
}

/// The monthly limit of model calls.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ModelCallsLimit {
    /// Calls people may ask for in a calendar month (UTC), 0 to 1000000; `null`: no limit.
    #[schema(example = 200, minimum = 0, maximum = 1_000_000)]
    monthly_limit: Option<u64>,
}

/// How many model calls the workspace's people may ask for in a month: drafting an agent's
/// instructions with a model makes one. Offline drafts are never counted.
#[utoipa::path(
    put,
    path = "/workspace/model-calls",
    operation_id = "set_model_calls_limit",
    tag = "workspaces",
    summary = "The monthly limit of model calls",
    request_body = ModelCallsLimit,
    responses((status = 200, description = "This month's calls and the limit", body = ModelCalls))
)]
async fn set_model_calls_limit(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ModelCallsLimit>,
) -> Result<Json<ModelCalls>, ApiError> {
    Ok(Json(
        quota::set_limit(state.store.as_ref(), &caller, body.monthly_limit).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/workspaces",
    operation_id = "list_workspaces",
    tag = "workspaces",
    summary = "List workspaces",
    responses((status = 200, description = "Every workspace", body = Vec<WorkspaceView>))
)]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<WorkspaceView>>, ApiError> {
    let mut out = Vec::new();
    for w in state.store.list_workspaces().await? {
        out.push(view(&state, w).await?);
    }
    Ok(Json(out))
}

/// Body of a workspace creation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewWorkspace {
    slug: String,
    name: Option<String>,
    #[serde(default)]
    limits: WorkspaceLimits,
}

#[utoipa::path(
    post,
    path = "/workspaces",
    operation_id = "create_workspace",
    tag = "workspaces",
    summary = "Create a workspace",
    request_body = NewWorkspace,
    responses((status = 201, description = "The workspace", body = WorkspaceView))
)]
async fn create(
    State(state): State<AppState>,
    Json(body): Json<NewWorkspace>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    let name = body.name.unwrap_or_else(|| body.slug.clone());
    let created =
        accounts::create_workspace(state.store.as_ref(), &body.slug, &name, &body.limits).await?;
    tracing::info!(workspace = %created.id, slug = %created.slug, "workspace created");
    Ok((StatusCode::CREATED, Json(view(&state, created).await?)))
}

/// Body of a workspace update: fields left out keep their value.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WorkspacePatch {
    name: Option<String>,
    limits: Option<WorkspaceLimits>,
}

#[utoipa::path(
    patch,
    path = "/workspaces/{workspace}",
    operation_id = "update_workspace",
    tag = "workspaces",
    summary = "Rename a workspace or change its limits",
    params(("workspace" = WorkspaceId, Path, description = "The workspace")),
    request_body = WorkspacePatch,
    responses((status = 200, description = "The workspace", body = WorkspaceView))
)]
async fn update(
    State(state): State<AppState>,
    Path(id): Path<WorkspaceId>,
    Json(patch): Json<WorkspacePatch>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let current = state
        .store
        .workspace(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workspace {id}")))?;
    let name = patch.name.unwrap_or(current.name);
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::invalid("name", "must be 1-200 characters"));
    }
    let limits = patch.limits.unwrap_or(current.limits);
    let saved = state
        .store
        .update_workspace(id, name.trim(), &limits)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workspace {id}")))?;
    Ok(Json(view(&state, saved).await?))
}
