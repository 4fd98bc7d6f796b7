//! `/agents`: create, list, read, update and delete agents. Configuration fields sit at the
//! top level of the JSON next to `name` and `active`; updates merge the fields given.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::{find_agent, Json, Path};
use crate::accounts::{audit, check_limit, Caller, Resource, Roles};
use crate::domain::{validate_name, Agent, AgentConfig, AgentId, FieldError};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};

/// Routes under `/agents`: owners and authors.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/agents", Roles::AUTHORS, list),
        Route::post("/agents", Roles::AUTHORS, create),
        Route::get("/agents/{agent}", Roles::AUTHORS, read),
        Route::patch("/agents/{agent}", Roles::AUTHORS, update),
        Route::delete("/agents/{agent}", Roles::AUTHORS, remove),
    ]
}

/// An agent as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    id: AgentId,
    name: String,
    active: bool,
    /// Configuration, with `collection` resolved to the collection in use.
    #[serde(flatten)]
    config: AgentConfig,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        let mut config = a.config.clone();
        config.collection = Some(a.collection_name().to_string());
        Self {
            id: a.id,
            name: a.name,
            active: a.active,
            config,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// An agent's fields as sent: `name` and `active` next to the configuration (read by
/// [`split_body`] and [`AgentConfig::patched`], which report every bad field at once).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // the document's shape of the body; the handlers read it field by field
struct AgentBody {
    /// Required when creating.
    name: Option<String>,
    /// Default true.
    active: Option<bool>,
    #[schema(inline)]
    #[serde(flatten)]
    config: AgentConfig,
}

/// Splits `name` and `active` from the configuration fields.
fn split_body(body: Value) -> Result<(Option<Value>, Option<Value>, Value), ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    };
    let name = map.remove("name");
    let active = map.remove("active");
    for read_only in ["id", "created_at", "updated_at"] {
        map.remove(read_only);
    }
    Ok((name, active, Value::Object(map)))
}

fn parse_name(value: Option<Value>, errors: &mut Vec<FieldError>) -> Option<String> {
    match value {
        Some(Value::String(name)) => {
            if let Some(e) = validate_name("name", &name) {
                errors.push(e);
            }
            Some(name)
        }
        Some(_) => {
            errors.push(FieldError::new("name", "must be a string"));
            None
        }
        None => None,
    }
}

fn parse_active(value: Option<Value>, errors: &mut Vec<FieldError>) -> Option<bool> {
    match value {
        Some(Value::Bool(b)) => Some(b),
        Some(_) => {
            errors.push(FieldError::new("active", "must be true or false"));
            None
        }
        None => None,
    }
}

#[utoipa::path(
    get,
    path = "/agents",
    operation_id = "list_agents",
    tag = "agents",
    summary = "List agents",
    responses((status = 200, description = "The workspace's agents", body = Vec<AgentView>))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AgentView>>, ApiError> {
    let agents = state.store.list_agents(caller.workspace).await?;
    Ok(Json(agents.into_iter().map(AgentView::from).collect()))
}

#[utoipa::path(
    post,
    path = "/agents",
    operation_id = "create_agent",
    tag = "agents",
    summary = "Create an agent",
    description = "`name` (required) and `active` sit next to the configuration fields; bad values answer 422 with every field.",
    request_body = AgentBody,
    responses((status = 201, description = "The agent", body = AgentView))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    let (name, active, patch) = split_body(body)?;
    let mut errors = Vec::new();
    let name = parse_name(name, &mut errors);
    if name.is_none() && errors.is_empty() {
        errors.push(FieldError::new("name", "is required"));
    }
    let active = parse_active(active, &mut errors).unwrap_or(true);
    let config = match AgentConfig::patched(&AgentConfig::default(), patch) {
        Ok(c) => Some(c),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let (Some(name), Some(config), true) = (name, config, errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    check_limit(state.store.as_ref(), caller.workspace, Resource::Agent).await?;
    let agent = state
        .store
        .create_agent(caller.workspace, &name, active, &config)
        .await?;
    tracing::info!(agent = %agent.name, "agent created");
    audit(
        state.store.as_ref(),
        &caller,
        "agent.create",
        Some(agent.id.to_string()),
        json!({"name": agent.name}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(agent.into())))
}

#[utoipa::path(
    get,
    path = "/agents/{agent}",
    operation_id = "get_agent",
    tag = "agents",
    summary = "Read an agent",
    params(("agent" = String, Path, description = "The agent's name or id")),
    responses((status = 200, description = "The agent", body = AgentView))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(find_agent(&state, &caller, &key).await?.into()))
}

#[utoipa::path(
    patch,
    path = "/agents/{agent}",
    operation_id = "update_agent",
    tag = "agents",
    summary = "Change an agent",
    description = "Merges the fields given; the others keep their value.",
    params(("agent" = String, Path, description = "The agent's name or id")),
    request_body = AgentBody,
    responses((status = 200, description = "The agent", body = AgentView))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<AgentView>, ApiError> {
    let mut agent = find_agent(&state, &caller, &key).await?;
    let (name, active, patch) = split_body(body)?;
    let changed: Vec<String> = patch
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut errors = Vec::new();
    let name = parse_name(name, &mut errors);
    let active = parse_active(active, &mut errors);
    let config = match AgentConfig::patched(&agent.config, patch) {
        Ok(c) => Some(c),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let (Some(config), true) = (config, errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    if let Some(name) = name {
        agent.name = name;
    }
    if let Some(active) = active {
        agent.active = active;
    }
    agent.config = config;
    let agent = state.store.update_agent(&agent).await?;
    audit(
        state.store.as_ref(),
        &caller,
        "agent.update",
        Some(agent.id.to_string()),
        json!({"fields": changed}),
    )
    .await;
    Ok(Json(agent.into()))
}

#[utoipa::path(
    delete,
    path = "/agents/{agent}",
    operation_id = "delete_agent",
    tag = "agents",
    summary = "Delete an agent",
    params(("agent" = String, Path, description = "The agent's name or id")),
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let agent = find_agent(&state, &caller, &key).await?;
    state.store.delete_agent(agent.id).await?;
    tracing::info!(agent = %agent.name, "agent deleted");
    audit(
        state.store.as_ref(),
        &caller,
        "agent.delete",
        Some(agent.id.to_string()),
        json!({"name": agent.name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
