//! `/api-keys`: create (the key is shown once), list and revoke API keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{Json, Path};
use crate::domain::ApiKeyId;
use crate::http::{ApiError, AppState};
use crate::store::ApiKey;

/// Routes under `/api-keys`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api-keys", get(list).post(create))
        .route("/api-keys/{id}", delete(revoke))
}

/// Body of a key creation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A label for the key.
    name: String,
}

/// A new key, shown only in this response.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    info: ApiKey,
    key: String,
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<ApiKey>>, ApiError> {
    Ok(Json(state.store.list_api_keys().await?))
}

async fn create(
    State(state): State<AppState>,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::invalid("name", "must be 1-100 characters"));
    }
    let (info, key) = state.issue_api_key(name).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { info, key })))
}

async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<ApiKeyId>,
) -> Result<StatusCode, ApiError> {
    if state.store.revoke_api_key(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no live API key {id}")))
    }
}
