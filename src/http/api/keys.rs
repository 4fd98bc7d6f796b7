//! `/api-keys`: create (the key is shown once), list and revoke the workspace's API keys. A key
//! carries a role; only owners manage keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{Json, Path};
use crate::accounts::{audit, Caller, Roles};
use crate::domain::{ApiKeyId, MemberRole};
use crate::http::auth::allow;
use crate::http::{ApiError, AppState};
use crate::store::ApiKey;

/// Routes under `/api-keys`: owners.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api-keys", allow(Roles::OWNER, get(list).post(create)))
        .route("/api-keys/{id}", allow(Roles::OWNER, delete(revoke)))
}

/// Body of a key creation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A label for the key.
    name: String,
    /// What the key may do. Required: a key made without saying so should not silently be an
    /// owner's.
    role: Option<MemberRole>,
}

/// A new key, shown only in this response.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    info: ApiKey,
    key: String,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ApiKey>>, ApiError> {
    Ok(Json(state.store.list_api_keys(caller.workspace).await?))
}

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
