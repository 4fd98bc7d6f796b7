//! `/api/v1`: JSON resources behind API keys. Every route runs as a [`Caller`] and sees only
//! its workspace: an id from another workspace answers 404, exactly as an unknown one.

pub mod agents;
pub mod canned;
pub mod channels;
pub mod contacts;
pub mod conversations;
pub mod eval;
pub mod events;
pub mod faq;
pub mod hooks;
pub mod instructions;
pub mod jobs;
pub mod keys;
pub mod knowledge;
pub mod labels;
pub mod notes;
pub mod people;
pub mod reports;
pub mod sandbox;
pub mod teams;
pub mod workspaces;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::route::Route;
use super::{ApiError, AppState};
use crate::accounts::Caller;
use crate::domain::{Agent, Channel, ChannelId, Conversation, ConversationId, ProviderKind};

/// The API's routes under `/api/v1`: sign-in, invitations and the first set-up are public;
/// every other route declares the roles that may call it.
pub fn routes(state: &AppState) -> Vec<Route> {
    [
        people::routes(),
        workspaces::routes(),
        agents::routes(),
        instructions::routes(),
        knowledge::routes(state),
        faq::routes(),
        keys::routes(),
        channels::routes(),
        conversations::routes(),
        notes::routes(),
        labels::routes(),
        canned::routes(),
        teams::routes(),
        contacts::routes(),
        reports::routes(),
        sandbox::routes(state),
        jobs::routes(),
        eval::routes(),
        events::routes(),
        hooks::routes(),
    ]
    .into_iter()
    .flatten()
    .map(|route| route.nested(PREFIX))
    .collect()
}

/// Where the API is served.
pub const PREFIX: &str = "/api/v1";

/// The caller's agent given by id or by name.
pub async fn find_agent(state: &AppState, caller: &Caller, key: &str) -> Result<Agent, ApiError> {
    let agent = match key.parse() {
        Ok(id) => state.store.agent(id).await?,
        Err(_) => state.store.agent_by_name(caller.workspace, key).await?,
    };
    agent
        .filter(|a| a.workspace_id == caller.workspace)
        .ok_or_else(|| ApiError::NotFound(format!("no agent `{key}`")))
}

/// The caller's channel (sandbox channels are not channels to the API).
pub async fn find_channel(
    state: &AppState,
    caller: &Caller,
    id: ChannelId,
) -> Result<Channel, ApiError> {
    state
        .store
        .channel(id)
        .await?
        .filter(|c| c.workspace_id == caller.workspace && c.provider != ProviderKind::Sandbox)
        .ok_or_else(|| ApiError::NotFound(format!("no channel {id}")))
}

/// The caller's conversation.
pub async fn find_conversation(
    state: &AppState,
    caller: &Caller,
    id: ConversationId,
) -> Result<Conversation, ApiError> {
    state
        .store
        .conversation(id)
        .await?
        .filter(|c| c.workspace_id == caller.workspace)
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {id}")))
}

/// The caller's eval run.
pub async fn find_eval_run(
    state: &AppState,
    caller: &Caller,
    id: crate::domain::EvalRunId,
) -> Result<crate::store::EvalRun, ApiError> {
    state
        .store
        .eval_run(id)
        .await?
        .filter(|run| run.workspace_id == caller.workspace)
        .ok_or_else(|| ApiError::NotFound(format!("no eval run {id}")))
}

/// A JSON body that may be absent (empty means the defaults).
pub fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// `axum::Json` with our error type for rejections.
pub struct Json<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Json<T>
where
    axum::Json<T>:
        axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(value))
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` with our error type for rejections.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    axum::extract::Path<T>:
        FromRequestParts<S, Rejection = axum::extract::rejection::PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// `axum::extract::Query` with our error type for rejections.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    axum::extract::Query<T>:
        FromRequestParts<S, Rejection = axum::extract::rejection::QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}
