//! `/labels`: the workspace's conversation labels (a name and a colour of the palette).
//! Everyone reads them; owners create, rename, recolour and delete them. Putting them on
//! conversations is under `/conversations/{conversation}/labels`; the inbox list filters by one
//! with `?conversation_label=`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{Json, Path};
use crate::accounts::{Caller, Roles};
use crate::domain::{Label, LabelColour, LabelId};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::inbox::labels;

/// Routes under `/labels`.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/labels", Roles::ANY, list),
        Route::post("/labels", Roles::OWNER, create),
        Route::patch("/labels/{label}", Roles::OWNER, update),
        Route::delete("/labels/{label}", Roles::OWNER, remove),
    ]
}

/// A new label.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewLabel {
    /// 1-32 characters of a-z, 0-9, `-` and `_` (stored lowercased), unique in the workspace.
    name: String,
    /// Its chip's colour (grey when not given).
    #[serde(default)]
    colour: Option<LabelColour>,
}

/// Changes to a label: fields left out stay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LabelChanges {
    name: Option<String>,
    colour: Option<LabelColour>,
}

#[utoipa::path(
    get,
    path = "/labels",
    operation_id = "list_labels",
    tag = "labels",
    summary = "List conversation labels",
    responses((status = 200, description = "The workspace's labels, by name", body = Vec<Label>))
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Label>>, ApiError> {
    Ok(Json(state.store.labels(caller.workspace).await?))
}

#[utoipa::path(
    post,
    path = "/labels",
    operation_id = "create_label",
    tag = "labels",
    summary = "Create a conversation label",
    request_body = NewLabel,
    responses((status = 201, description = "The label", body = Label))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewLabel>,
) -> Result<(StatusCode, Json<Label>), ApiError> {
    let label = labels::create(
        state.store.as_ref(),
        &caller,
        &body.name,
        body.colour.unwrap_or(LabelColour::Grey),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(label)))
}

#[utoipa::path(
    patch,
    path = "/labels/{label}",
    operation_id = "update_label",
    tag = "labels",
    summary = "Rename or recolour a label",
    description = "Conversations carrying the label keep it.",
    params(("label" = LabelId, Path, description = "The label")),
    request_body = LabelChanges,
    responses((status = 200, description = "The label", body = Label))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<LabelId>,
    Json(body): Json<LabelChanges>,
) -> Result<Json<Label>, ApiError> {
    Ok(Json(
        labels::update(
            state.store.as_ref(),
            &caller,
            id,
            body.name.as_deref(),
            body.colour,
        )
        .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/labels/{label}",
    operation_id = "delete_label",
    tag = "labels",
    summary = "Delete a label",
    description = "It is taken off every conversation.",
    params(("label" = LabelId, Path, description = "The label")),
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<LabelId>,
) -> Result<StatusCode, ApiError> {
    labels::delete(state.store.as_ref(), &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
