//! `/webhooks`: outgoing webhook subscriptions of the workspace (owners). Making one answers its
//! signing secret, once; the delivery log shows every attempt's status, and a delivery can be
//! sent again. A paused subscription (it kept failing, or an owner paused it) is resumed with
//! `PATCH {"active": true}`, which sends what waited.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{Json, Path, Query};
use crate::accounts::{audit, Caller, Roles};
use crate::domain::{Hook, HookDelivery, HookDeliveryId, HookDeliveryStatus, HookId};
use crate::events::hooks::{parse_kinds, HookUpdate};
use crate::http::auth::allow;
use crate::http::{ApiError, AppState};

/// Routes under `/webhooks`: owners.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", allow(Roles::OWNER, get(list).post(create)))
        .route(
            "/webhooks/{hook}",
            allow(Roles::OWNER, get(show).patch(update).delete(remove)),
        )
        .route(
            "/webhooks/{hook}/deliveries",
            allow(Roles::OWNER, get(deliveries)),
        )
        .route(
            "/webhooks/{hook}/deliveries/{delivery}/redeliver",
            allow(Roles::OWNER, post(redeliver)),
        )
}

/// Body of a subscription.
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookPatch {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    /// false pauses it, true resumes it.
    active: Option<bool>,
}

/// A new subscription, with its secret (shown only here).
#[derive(Debug, Serialize)]
struct CreatedHook {
    #[serde(flatten)]
    hook: Hook,
    secret: String,
}

#[derive(Debug, Deserialize)]
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

async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Hook>>, ApiError> {
    Ok(Json(state.store.list_hooks(caller.workspace).await?))
}

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

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<HookId>,
) -> Result<Json<Hook>, ApiError> {
    Ok(Json(find(&state, &caller, id).await?))
}

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
