//! Provider webhooks: Meta (`/webhooks/meta`, one URL per app, checked against every Meta
//! channel's app secret), Evolution and Kapso (`/webhooks/{provider}/{channel}`). A delivery is
//! answered 200 only after what it carried is stored; it never waits for a model.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::api::Path;
use super::{ApiError, AppState};
use crate::channels::ChannelError;
use crate::domain::{ChannelId, ProviderKind};

/// The webhook routes, each with the webhook body limit.
pub fn routes(state: &AppState) -> Router<AppState> {
    let limit = state.settings.server.max_webhook_bytes;
    Router::new()
        .route("/webhooks/meta", get(meta_verify).post(meta))
        .route("/webhooks/evolution/{channel}", post(evolution))
        .route("/webhooks/kapso/{channel}", post(kapso))
        .layer(DefaultBodyLimit::max(limit))
}

impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Unauthorized(m) => ApiError::BadSignature(m),
            ChannelError::BadRequest(m) => ApiError::BadRequest(m),
            ChannelError::NotFound(m) => ApiError::NotFound(m),
            ChannelError::Unsupported(m) => ApiError::Conflict(m),
            ChannelError::Provider(p) => ApiError::Unavailable(format!("provider: {p}")),
            e @ ChannelError::Sealed => ApiError::internal(e),
            ChannelError::Store(s) => s.into(),
        }
    }
}

/// Meta's subscription handshake query.
#[derive(Debug, Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

async fn meta_verify(State(state): State<AppState>, Query(q): Query<Handshake>) -> Response {
    match state
        .channels
        .verify_meta_subscription(q.mode.as_deref(), q.token.as_deref(), q.challenge.as_deref())
        .await
    {
        Ok(challenge) => ([(header::CONTENT_TYPE, "text/plain")], challenge).into_response(),
        Err(ChannelError::Unauthorized(_)) => (StatusCode::FORBIDDEN, "verification failed").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Webhooks carry JSON; anything else is refused before any work.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType("webhooks must be `Content-Type: application/json`".into()))
    }
}

/// The raw body, with our JSON errors for bodies over the limit.
type RawBody = Result<Bytes, BytesRejection>;

async fn receive(
    state: AppState,
    kind: ProviderKind,
    channel: Option<ChannelId>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "webhook body over the limit of {} bytes",
                state.settings.server.max_webhook_bytes
            ))
        } else {
            ApiError::BadRequest(r.body_text())
        }
    })?;
    require_json(&headers)?;
    let receipt = state.channels.receive(kind, channel, &headers, &body).await?;
    Ok((StatusCode::OK, Json(receipt)).into_response())
}

async fn meta(State(state): State<AppState>, headers: HeaderMap, body: RawBody) -> Result<Response, ApiError> {
    receive(state, ProviderKind::Meta, None, headers, body).await
}

async fn evolution(
    State(state): State<AppState>,
    Path(channel): Path<ChannelId>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    receive(state, ProviderKind::Evolution, Some(channel), headers, body).await
}

async fn kapso(
    State(state): State<AppState>,
    Path(channel): Path<ChannelId>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    receive(state, ProviderKind::Kapso, Some(channel), headers, body).await
}
