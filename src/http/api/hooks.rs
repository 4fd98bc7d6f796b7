//! `/webhooks`: outgoing webhook subscriptions of the workspace (owners). Making one answers its
//! signing secret, once; the delivery log shows every attempt's status, and a delivery can be
//! sent again. A paused subscription (it kept failing, or an owner paused it) is resumed with
//! `PATCH {"active": true}`, which sends what waited.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{Json, Path, Query};
use crate::accounts::{audit, Caller, Roles};
use crate::domain::{Hook, HookDelivery, HookDeliveryId, HookDeliveryStatus, HookId};
use crate::events::hooks::{parse_kinds, HookUpdate};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};

/// Routes under `/webhooks`: owners.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/webhooks", Roles::OWNER, list),
        Route::post("/webhooks", Roles::OWNER, create),
        Route::get("/webhooks/{hook}", Roles::OWNER, show),
        Route::patch("/webhooks/{hook}", Roles::OWNER, update),
        Route::delete("/webhooks/{hook}", Roles::OWNER, remove),
        Route::get("/webhooks/{hook}/deliveries", Roles::OWNER, deliveries),
        Route::post(
            "/webhooks/{hook}/deliveries/{delivery}/redeliver",
            Roles::OWNER,
            redeliver,
        ),
    ]
}

/// Body of a subscription.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewHookBody {
    /// Where to POST events.
    url: String,
    /// Event types (every type when absent or empty).
    #[serde(default)]
    events: Vec<String>,
    /// A note for people.
    #[serde(default)]
    description: String,
}

/// Changes to a subscription.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct HookPatch {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    /// false pauses it, true resumes it.
    active: Option<bool>,
}

/// A new subscription, with its secret (shown only here).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct CreatedHook {
    #[serde(flatten)]
    hook: Hook,
    secret: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveryParams {
    status: Option<HookDeliveryStatus>,
    /// 1-1000, default 100.
    limit: Option<u32>,
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > 500 {
        return Err(ApiError::invalid(
            "description",
            "must be at most 500 characters",
        ));
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/webhooks",
    operation_id = "list_hooks",
    tag = "webhooks",
    summary = "List webhook subscriptions",
    responses((status = 200, description = "Subscriptions", body = Vec<Hook>))
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Hook>>, ApiError> {
    Ok(Json(state.store.list_hooks(caller.workspace).await?))
}

#[utoipa::path(
    post,
    path = "/webhooks",
    operation_id = "create_hook",
    tag = "webhooks",
    summary = "Subscribe a URL to events",
    description = "Deliveries are signed: see the `event` webhook and the `X-Palaver-Signature` header.",
    request_body = NewHookBody,
    responses((status = 201, description = "The subscription with its signing secret, shown only here", body = CreatedHook))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewHookBody>,
) -> Result<(StatusCode, Json<CreatedHook>), ApiError> {
    check_description(&body.description)?;
    let events = parse_kinds(&body.events)?;
    let (hook, secret) = state
        .hooks
        .create(caller.workspace, &body.url, events, &body.description)
        .await?;
    audit(
        state.store.as_ref(),
        &caller,
        "webhook.create",
        Some(hook.id.to_string()),
        serde_json::json!({"url": hook.url, "events": hook.events.iter().map(|k| k.as_str()).collect::<Vec<_>>()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreatedHook { hook, secret })))
}

async fn find(state: &AppState, caller: &Caller, id: HookId) -> Result<Hook, ApiError> {
    state
        .store
        .hook(caller.workspace, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no webhook subscription {id}")))
}

#[utoipa::path(
    get,
    path = "/webhooks/{hook}",
    operation_id = "get_hook",
    tag = "webhooks",
    summary = "Read a subscription",
    params(("hook" = HookId, Path, description = "The subscription")),
    responses((status = 200, description = "The subscription", body = Hook))
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<HookId>,
) -> Result<Json<Hook>, ApiError> {
    Ok(Json(find(&state, &caller, id).await?))
}

#[utoipa::path(
    patch,
    path = "/webhooks/{hook}",
    operation_id = "update_hook",
    tag = "webhooks",
    summary = "Change, pause or resume a subscription",
    params(("hook" = HookId, Path, description = "The subscription")),
    request_body = HookPatch,
    responses((status = 200, description = "The subscription", body = Hook))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<HookId>,
    Json(body): Json<HookPatch>,
) -> Result<Json<Hook>, ApiError> {
    if let Some(description) = &body.description {
        check_description(description)?;
    }
    let events = body.events.as_deref().map(parse_kinds).transpose()?;
    let update = HookUpdate {
        url: body.url.clone(),
        events,
        description: body.description,
        active: body.active,
    };
    let hook = state
        .hooks
        .update(caller.workspace, id, update)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no webhook subscription {id}")))?;
    audit(
        state.store.as_ref(),
        &caller,
        "webhook.update",
        Some(id.to_string()),
        serde_json::json!({"url": body.url, "active": body.active, "status": hook.status}),
    )
    .await;
    Ok(Json(hook))
}

#[utoipa::path(
    delete,
    path = "/webhooks/{hook}",
    operation_id = "delete_hook",
    tag = "webhooks",
    summary = "Delete a subscription",
    params(("hook" = HookId, Path, description = "The subscription")),
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<HookId>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_hook(caller.workspace, id).await? {
        return Err(ApiError::NotFound(format!("no webhook subscription {id}")));
    }
    audit(
        state.store.as_ref(),
        &caller,
        "webhook.delete",
        Some(id.to_string()),
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/webhooks/{hook}/deliveries",
    operation_id = "list_deliveries",
    tag = "webhooks",
    summary = "The delivery log",
    params(("hook" = HookId, Path, description = "The subscription"), DeliveryParams),
    responses((status = 200, description = "Deliveries, latest first", body = Vec<HookDelivery>))
)]
async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<HookId>,
    Query(params): Query<DeliveryParams>,
) -> Result<Json<Vec<HookDelivery>>, ApiError> {
    find(&state, &caller, id).await?;
    let limit = params.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        state
            .store
            .list_hook_deliveries(caller.workspace, id, params.status, limit)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/webhooks/{hook}/deliveries/{delivery}/redeliver",
    operation_id = "redeliver",
    tag = "webhooks",
    summary = "Send a delivery again",
    params(("hook" = HookId, Path, description = "The subscription"), ("delivery" = HookDeliveryId, Path, description = "The delivery")),
    responses((status = 202, description = "The delivery, queued again", body = HookDelivery))
)]
async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery)): Path<(HookId, HookDeliveryId)>,
) -> Result<(StatusCode, Json<HookDelivery>), ApiError> {
    let current = state
        .store
        .hook_delivery(delivery)
        .await?
        .filter(|d| d.workspace_id == caller.workspace && d.hook_id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no delivery {delivery}")))?;
    if current.status == HookDeliveryStatus::Pending {
        return Err(ApiError::Conflict(format!(
            "delivery {delivery} is still being sent"
        )));
    }
    let delivery = state
        .store
        .redeliver_hook(
            caller.workspace,
            id,
            delivery,
            state.settings.workers.limits(),
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no delivery {delivery}")))?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}
