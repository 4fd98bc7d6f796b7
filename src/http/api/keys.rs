//! `/api-keys`: create (the key is shown once), list and revoke the workspace's API keys. A key
//! carries a role; only owners manage keys.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{Json, Path};
use crate::accounts::{audit, Caller, Roles};
use crate::domain::{ApiKeyId, MemberRole};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::store::ApiKey;

/// Routes under `/api-keys`: owners.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api-keys", Roles::OWNER, list),
        Route::post("/api-keys", Roles::OWNER, create),
        Route::delete("/api-keys/{id}", Roles::OWNER, revoke),
    ]
}

/// Body of a key creation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A label for the key.
    name: String,
    /// What the key may do. Required: a key made without saying so should not silently be an
    /// owner's.
    role: Option<MemberRole>,
}

/// A new key, shown only in this response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    info: ApiKey,
    key: String,
}

#[utoipa::path(
    get,
    path = "/api-keys",
    operation_id = "list_keys",
    tag = "keys",
    summary = "List API keys",
    responses((status = 200, description = "Keys (never their secret)", body = Vec<ApiKey>))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ApiKey>>, ApiError> {
    Ok(Json(state.store.list_api_keys(caller.workspace).await?))
}

#[utoipa::path(
    post,
    path = "/api-keys",
    operation_id = "create_key",
    tag = "keys",
    summary = "Create an API key",
    request_body = NewKey,
    responses((status = 201, description = "The key, shown only here", body = CreatedKey))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::invalid("name", "must be 1-100 characters"));
    }
    let role = body
        .role
        .ok_or_else(|| ApiError::invalid("role", "is required: one of owner, author, agent"))?;
    let (info, key) = state.issue_api_key(caller.workspace, role, name).await?;
    audit(
        state.store.as_ref(),
        &caller,
        "key.create",
        Some(info.id.to_string()),
        serde_json::json!({"name": info.name, "role": info.role}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreatedKey { info, key })))
}

#[utoipa::path(
    delete,
    path = "/api-keys/{id}",
    operation_id = "revoke_key",
    tag = "keys",
    summary = "Revoke an API key",
    params(("id" = ApiKeyId, Path, description = "The key")),
    responses((status = 204, description = "Revoked"))
)]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ApiKeyId>,
) -> Result<StatusCode, ApiError> {
    if state.store.revoke_api_key(caller.workspace, id).await? {
        audit(
            state.store.as_ref(),
            &caller,
            "key.revoke",
            Some(id.to_string()),
            serde_json::json!({}),
        )
        .await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no live API key {id}")))
    }
}
