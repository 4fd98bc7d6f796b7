//! `/channels`: WhatsApp numbers and instances. Credentials go in and are never returned; each
//! channel shows the webhook URL its provider must call. Evolution instances are created,
//! linked by QR code, checked and logged out from here.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{find_agent, find_channel, optional_json, Json, Path, Query};
use crate::accounts::{audit, check_limit, Caller, Resource, Roles};
use crate::channels::{ChannelInput, GivenCredentials, Linking};
use crate::domain::{
    validate_name, AgentId, Channel, ChannelConfig, ChannelId, ChannelState, FieldError,
    MemberRole, ProviderKind,
};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};

/// Routes under `/channels`: every role sees the workspace's channels (never their
/// credentials); owners create, change, link and remove them.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/channels", Roles::ANY, list),
        Route::post("/channels", Roles::OWNER, create),
        Route::get("/channels/{channel}", Roles::ANY, read),
        Route::patch("/channels/{channel}", Roles::OWNER, update),
        Route::delete("/channels/{channel}", Roles::OWNER, remove),
        Route::post("/channels/{channel}/connect", Roles::OWNER, connect),
        Route::get("/channels/{channel}/state", Roles::ANY, state),
        Route::get("/channels/{channel}/templates", Roles::ANY, templates),
        Route::post("/channels/{channel}/logout", Roles::OWNER, logout),
    ]
}

/// A channel as the API shows it (no credentials). How it is set up (its number or instance,
/// settings, Graph API version and webhook address) is shown to owners only: agents and authors
/// see what the inbox filter needs, its name and state, and what is wrong with it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    id: ChannelId,
    name: String,
    provider: ProviderKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    route_key: Option<String>,
    agent_id: Option<AgentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    settings: Option<ChannelConfig>,
    /// The Graph API version it calls (Meta): its own, or the installation's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    graph_version: Option<String>,
    state: ChannelState,
    state_detail: Option<String>,
    /// What needs the owner's attention besides the state (a retired Graph API version).
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_url: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(crate) fn view(state: &AppState, caller: &Caller, c: Channel) -> ChannelView {
    let owner = caller.role == MemberRole::Owner;
    ChannelView {
        webhook_url: if owner {
            state.channels.webhook_url(&c)
        } else {
            None
        },
        graph_version: state.channels.graph_version(&c).filter(|_| owner),
        warnings: state.channels.warnings(&c),
        id: c.id,
        name: c.name,
        provider: c.provider,
        route_key: owner.then_some(c.route_key),
        agent_id: c.agent_id,
        settings: owner.then_some(c.settings),
        state: c.state,
        state_detail: c.state_detail,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// Secrets as sent by the caller: an object whose fields the channel's provider defines and
/// checks.
fn credentials_input(
    value: Option<serde_json::Value>,
    errors: &mut Vec<FieldError>,
) -> Option<GivenCredentials> {
    match value.map(GivenCredentials::from_json) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            errors.extend(e);
            None
        }
        None => None,
    }
}

/// Body of a channel creation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewChannelBody {
    name: String,
    provider: ProviderKind,
    /// Meta and Kapso.
    phone_number_id: Option<String>,
    /// Evolution.
    instance: Option<String>,
    agent: Option<String>,
    #[serde(default)]
    settings: ChannelConfig,
    /// Meta: the Graph API version to call (`v23.0`); left out, the installation's default.
    graph_version: Option<String>,
    credentials: serde_json::Value,
    /// Providers with instances: create the instance on the server (default), or configure an
    /// existing one.
    #[serde(default = "yes")]
    create_instance: bool,
}

fn yes() -> bool {
    true
}

fn check_settings(settings: &ChannelConfig, errors: &mut Vec<FieldError>) {
    if settings.rate_per_minute == Some(0) {
        errors.push(FieldError::new(
            "settings.rate_per_minute",
            "must be greater than 0",
        ));
    }
    if settings
        .call_message
        .as_ref()
        .is_some_and(|m| m.len() > 1000)
    {
        errors.push(FieldError::new(
            "settings.call_message",
            "must be at most 1000 bytes",
        ));
    }
}

#[utoipa::path(
    get,
    path = "/channels",
    operation_id = "list_channels",
    tag = "channels",
    summary = "List channels",
    responses((status = 200, description = "The workspace's channels (never their credentials)", body = Vec<ChannelView>))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ChannelView>>, ApiError> {
    let channels = state
        .store
        .list_channels(Some(caller.workspace), None)
        .await?;
    Ok(Json(
        channels
            .into_iter()
            .map(|c| view(&state, &caller, c))
            .collect(),
    ))
}

#[utoipa::path(
    post,
    path = "/channels",
    operation_id = "create_channel",
    tag = "channels",
    summary = "Add a channel",
    request_body = NewChannelBody,
    responses((status = 201, description = "The channel", body = ChannelView))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewChannelBody>,
) -> Result<(StatusCode, Json<ChannelView>), ApiError> {
    let mut errors = Vec::new();
    if body.name.trim().is_empty() || body.name.len() > 200 {
        errors.push(FieldError::new("name", "must be 1-200 characters"));
    }
    let by_instance = match state.channels.linked_by_instance(body.provider) {
        Ok(by_instance) if body.provider != ProviderKind::Sandbox => by_instance,
        _ => {
            return Err(ApiError::Invalid(vec![FieldError::new(
                "provider",
                "sandbox channels are created by the sandbox",
            )]))
        }
    };
    // Numbers linked as a device are named by their instance; the others by the provider's
    // phone number id.
    let route_key = match by_instance {
        true => {
            if body.phone_number_id.is_some() {
                errors.push(FieldError::new(
                    "phone_number_id",
                    format!(
                        "{} channels are named by `instance`",
                        body.provider.as_str()
                    ),
                ));
            }
            let instance = body.instance.clone().unwrap_or_default();
            if let Some(e) = validate_name("instance", &instance) {
                errors.push(e);
            }
            instance
        }
        false => {
            if body.instance.is_some() {
                errors.push(FieldError::new(
                    "instance",
                    format!("{} channels have no instance", body.provider.as_str()),
                ));
            }
            let id = body.phone_number_id.clone().unwrap_or_default();
            if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_digit()) {
                errors.push(FieldError::new(
                    "phone_number_id",
                    "must be the provider's numeric phone number id",
                ));
            }
            id
        }
    };
    check_settings(&body.settings, &mut errors);
    let graph_version = match &body.graph_version {
        Some(given) => match state.channels.accept_graph_version(body.provider, given) {
            Ok(version) => Some(version),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        None => None,
    };
    let credentials = credentials_input(Some(body.credentials), &mut errors);
    if let Some(c) = &credentials {
        errors.extend(state.channels.check_new_credentials(body.provider, c)?);
    }
    let agent_id = match &body.agent {
        Some(a) => match find_agent(&state, &caller, a).await {
            Ok(agent) => Some(agent.id),
            Err(_) => {
                errors.push(FieldError::new("agent", format!("no agent `{a}`")));
                None
            }
        },
        None => None,
    };
    let (Some(credentials), true) = (credentials, errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    check_limit(state.store.as_ref(), caller.workspace, Resource::Channel).await?;
    let channel = state
        .channels
        .create(ChannelInput {
            workspace_id: caller.workspace,
            name: body.name.trim().to_string(),
            provider: body.provider,
            route_key,
            agent_id,
            settings: body.settings,
            graph_version,
            credentials,
            create_instance: body.create_instance,
        })
        .await?;
    audit(
        state.store.as_ref(),
        &caller,
        "channel.create",
        Some(channel.id.to_string()),
        serde_json::json!({"provider": channel.provider}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(view(&state, &caller, channel))))
}

#[utoipa::path(
    get,
    path = "/channels/{channel}",
    operation_id = "get_channel",
    tag = "channels",
    summary = "Read a channel",
    params(("channel" = ChannelId, Path, description = "The channel")),
    responses((status = 200, description = "The channel", body = ChannelView))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ChannelId>,
) -> Result<Json<ChannelView>, ApiError> {
    Ok(Json(view(
        &state,
        &caller,
        find_channel(&state, &caller, id).await?,
    )))
}

/// Body of a channel update: every field optional.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ChannelPatch {
    name: Option<String>,
    /// Agent name or id; `null` unlinks.
    #[serde(default, deserialize_with = "double_option")]
    agent: Option<Option<String>>,
    settings: Option<ChannelConfig>,
    /// Meta: the Graph API version to call; `null` returns to the installation's default.
    #[serde(default, deserialize_with = "double_option")]
    graph_version: Option<Option<String>>,
    /// Fields to change; those left out keep their value.
    credentials: Option<serde_json::Value>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

#[utoipa::path(
    patch,
    path = "/channels/{channel}",
    operation_id = "update_channel",
    tag = "channels",
    summary = "Change a channel",
    description = "Credentials left out keep their value; an empty secret is refused.",
    params(("channel" = ChannelId, Path, description = "The channel")),
    request_body = ChannelPatch,
    responses((status = 200, description = "The channel", body = ChannelView))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ChannelId>,
    Json(patch): Json<ChannelPatch>,
) -> Result<Json<ChannelView>, ApiError> {
    let mut channel = find_channel(&state, &caller, id).await?;
    let mut errors = Vec::new();
    if let Some(name) = patch.name {
        if name.trim().is_empty() || name.len() > 200 {
            errors.push(FieldError::new("name", "must be 1-200 characters"));
        }
        channel.name = name.trim().to_string();
    }
    match patch.agent {
        Some(Some(a)) => match find_agent(&state, &caller, &a).await {
            Ok(agent) => channel.agent_id = Some(agent.id),
            Err(_) => errors.push(FieldError::new("agent", format!("no agent `{a}`"))),
        },
        Some(None) => channel.agent_id = None,
        None => {}
    }
    if let Some(settings) = patch.settings {
        check_settings(&settings, &mut errors);
        channel.settings = settings;
    }
    match patch.graph_version {
        // The version it already calls is kept as it is, even one retired since.
        Some(Some(given)) => match state.channels.choose_graph_version(&channel, &given) {
            Ok(version) => channel.graph_version = Some(version),
            Err(e) => errors.push(e),
        },
        Some(None) => channel.graph_version = None,
        None => {}
    }
    let credentials = credentials_input(patch.credentials, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let credentials_changed = credentials.is_some();
    let saved = state.channels.update(&channel, credentials).await?;
    audit(
        state.store.as_ref(),
        &caller,
        "channel.update",
        Some(saved.id.to_string()),
        serde_json::json!({
            "credentials_changed": credentials_changed,
            "agent_id": saved.agent_id,
            "graph_version": saved.graph_version,
        }),
    )
    .await;
    Ok(Json(view(&state, &caller, saved)))
}

/// Deletion options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    /// Evolution: also delete the instance on the server.
    #[serde(default)]
    delete_instance: bool,
}

#[utoipa::path(
    delete,
    path = "/channels/{channel}",
    operation_id = "delete_channel",
    tag = "channels",
    summary = "Remove a channel",
    params(("channel" = ChannelId, Path, description = "The channel"), DeleteParams),
    responses((status = 204, description = "Removed"))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ChannelId>,
    Query(params): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    let channel = find_channel(&state, &caller, id).await?;
    state
        .channels
        .delete(&channel, params.delete_instance)
        .await?;
    audit(
        state.store.as_ref(),
        &caller,
        "channel.delete",
        Some(channel.id.to_string()),
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Linking options.
/// A channel being linked: its state, and while linking the QR code to scan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct LinkingView {
    state: ChannelState,
    /// While it waits to be scanned: `{"image", "code", "pairing_code"}` (the QR code as an
    /// image data URL, its text, and a code to pair by number), or `null` while the provider
    /// prepares one; absent once linked.
    #[serde(skip_serializing_if = "Option::is_none")]
    qr: Option<Option<serde_json::Value>>,
}

/// A channel's state, asked of its provider now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct StateView {
    state: ChannelState,
    /// What needs the owner's attention besides the state.
    warnings: Vec<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ConnectBody {
    /// Link by pairing code sent to this number instead of a QR code.
    pairing_number: Option<String>,
}

#[utoipa::path(
    post,
    path = "/channels/{channel}/connect",
    operation_id = "connect_channel",
    tag = "channels",
    summary = "Link a channel",
    params(("channel" = ChannelId, Path, description = "The channel")),
    request_body(content = Option<ConnectBody>, description = "Optional: a phone number to pair by code instead of a QR code"),
    responses((status = 200, description = "The state, with a QR code to scan while linking", body = LinkingView))
)]
async fn connect(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ChannelId>,
    body: axum::body::Bytes,
) -> Result<Json<LinkingView>, ApiError> {
    let channel = find_channel(&state, &caller, id).await?;
    let body: ConnectBody = optional_json(&body)?;
    let outcome = state
        .channels
        .connect(&channel, body.pairing_number.as_deref())
        .await?;
    Ok(Json(match outcome {
        Linking::Scan(qr) => LinkingView {
            state: ChannelState::Connecting,
            qr: Some(Some(qr)),
        },
        Linking::Linked => LinkingView {
            state: ChannelState::Connected,
            qr: None,
        },
        Linking::Waiting => LinkingView {
            state: ChannelState::Connecting,
            qr: Some(None),
        },
    }))
}

#[utoipa::path(
    get,
    path = "/channels/{channel}/state",
    operation_id = "channel_state",
    tag = "channels",
    summary = "Ask a channel's state",
    params(("channel" = ChannelId, Path, description = "The channel")),
    responses((status = 200, description = "The state now, and what needs attention", body = StateView))
)]
async fn state(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ChannelId>,
) -> Result<Json<StateView>, ApiError> {
    let channel = find_channel(&state, &caller, id).await?;
    let now = state.channels.refresh_state(&channel).await?;
    Ok(Json(StateView {
        state: now,
        warnings: state.channels.warnings(&channel),
    }))
}

/// `?refresh=true` reads the list from the provider again.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TemplatesQuery {
    #[serde(default)]
    refresh: bool,
}

/// The channel's message templates (kept 15 minutes; `?refresh=true` reads them again), with
/// the placeholders each takes.
#[utoipa::path(
    get,
    path = "/channels/{channel}/templates",
    operation_id = "list_templates",
    tag = "channels",
    summary = "List message templates",
    params(("channel" = ChannelId, Path, description = "The channel"), TemplatesQuery),
    responses((status = 200, description = "The account's templates with the placeholders each takes", body = Vec<crate::channels::templates::Template>))
)]
async fn templates(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ChannelId>,
    Query(q): Query<TemplatesQuery>,
) -> Result<Json<Vec<crate::channels::templates::Template>>, ApiError> {
    let channel = find_channel(&state, &caller, id).await?;
    let list = state.channels.templates(&channel, q.refresh).await?;
    Ok(Json(list.as_ref().clone()))
}

#[utoipa::path(
    post,
    path = "/channels/{channel}/logout",
    operation_id = "logout_channel",
    tag = "channels",
    summary = "Unlink a channel",
    params(("channel" = ChannelId, Path, description = "The channel")),
    responses((status = 204, description = "Logged out"))
)]
async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ChannelId>,
) -> Result<StatusCode, ApiError> {
    let channel = find_channel(&state, &caller, id).await?;
    state.channels.logout(&channel).await?;
    Ok(StatusCode::NO_CONTENT)
}
