//! `/canned-responses`: the workspace's prepared replies, each under a short code that people
//! type after `/` in the reply box. Everyone reads them; owners manage them. A text may use
//! `{{contact.name}}`, `{{contact.phone}}` and `{{agent.name}}`, filled in when inserted; any
//! other variable is refused when saved.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{Json, Path};
use crate::accounts::{Caller, Roles};
use crate::domain::{CannedResponse, CannedResponseId};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::inbox::canned;

/// Routes under `/canned-responses`.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/canned-responses", Roles::ANY, list),
        Route::post("/canned-responses", Roles::OWNER, create),
        Route::patch("/canned-responses/{canned}", Roles::OWNER, update),
        Route::delete("/canned-responses/{canned}", Roles::OWNER, remove),
    ]
}

/// A new canned response.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewCanned {
    /// 1-32 characters of a-z, 0-9, `-` and `_` (a leading `/` is dropped), unique in the
    /// workspace.
    short_code: String,
    /// The text, up to 4096 characters; `{{contact.name}}`, `{{contact.phone}}` and
    /// `{{agent.name}}` are the variables.
    content: String,
}

/// Changes to a canned response: fields left out stay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CannedChanges {
    short_code: Option<String>,
    content: Option<String>,
}

#[utoipa::path(
    get,
    path = "/canned-responses",
    operation_id = "list_canned_responses",
    tag = "canned",
    summary = "List canned responses",
    responses((status = 200, description = "The workspace's canned responses, by short code", body = Vec<CannedResponse>))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CannedResponse>>, ApiError> {
    Ok(Json(state.store.canned_responses(caller.workspace).await?))
}

#[utoipa::path(
    post,
    path = "/canned-responses",
    operation_id = "create_canned_response",
    tag = "canned",
    summary = "Create a canned response",
    description = "An unknown variable in the text is a 422 naming it.",
    request_body = NewCanned,
    responses((status = 201, description = "The canned response", body = CannedResponse))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewCanned>,
) -> Result<(StatusCode, Json<CannedResponse>), ApiError> {
    let created = canned::create(
        state.store.as_ref(),
        &caller,
        &body.short_code,
        &body.content,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(
    patch,
    path = "/canned-responses/{canned}",
    operation_id = "update_canned_response",
    tag = "canned",
    summary = "Change a canned response",
    params(("canned" = CannedResponseId, Path, description = "The canned response")),
    request_body = CannedChanges,
    responses((status = 200, description = "The canned response", body = CannedResponse))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<CannedResponseId>,
    Json(body): Json<CannedChanges>,
) -> Result<Json<CannedResponse>, ApiError> {
    Ok(Json(
        canned::update(
            state.store.as_ref(),
            &caller,
            id,
            body.short_code.as_deref(),
            body.content.as_deref(),
        )
        .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/canned-responses/{canned}",
    operation_id = "delete_canned_response",
    tag = "canned",
    summary = "Delete a canned response",
    params(("canned" = CannedResponseId, Path, description = "The canned response")),
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<CannedResponseId>,
) -> Result<StatusCode, ApiError> {
    canned::delete(state.store.as_ref(), &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
