//! Provider webhooks: `/webhooks/{provider}` for providers with one URL for every channel (Meta:
//! one per app, checked against every Meta channel's app secret, with its GET subscription
//! handshake) and `/webhooks/{provider}/{channel}` for the others (Evolution, Kapso). Which
//! applies is the provider's to say. A delivery is answered 200 only after what it carried is
//! stored; it never waits for a model.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::collections::HashMap;

use super::api::Path;
use super::route::{Access, Route};
use super::{ApiError, AppState};
use crate::channels::ChannelError;
use crate::domain::{ChannelId, ProviderKind};

/// The webhook routes: `/webhooks/{provider}` (with the GET subscription handshake) and
/// `/webhooks/{provider}/{channel}`; anyone may call them, the signature decides.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/webhooks/{provider}", Access::Public, handshake),
        Route::post("/webhooks/{provider}", Access::Public, per_provider),
        Route::post(
            "/webhooks/{provider}/{channel}",
            Access::Public,
            per_channel,
        ),
    ]
}

/// Whether `route` is a provider webhook (outside the API, whose `/webhooks` are subscriptions).
pub fn is_webhook(route: &Route) -> bool {
    route.path.starts_with("/webhooks/")
}

/// The webhook routes with their bodies bounded: read up to the largest limit of any provider,
/// then each is held to its provider's.
pub fn bounded(state: &AppState, routes: Router<AppState>) -> Router<AppState> {
    let limit = state.channels.largest_webhook_body();
    // Anyone may send a webhook: one that trickles bytes, or claims more than it sends, must
    // not hold a connection for the whole request timeout. Providers send a few kilobytes at
    // once.
    let deadline = Duration::from_secs(state.settings.server.webhook_body_secs);
    routes
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            bounded_body(limit, deadline, req, next)
        }))
}

/// Reads a webhook's body before its route does: a declared length over `limit` is refused
/// at once (413, nothing read), and a body that has not arrived whole within `deadline` is
/// answered 408.
async fn bounded_body(limit: usize, deadline: Duration, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let too_large = || ApiError::TooLarge(format!("webhook body over the limit of {limit} bytes"));
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large().into_response();
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if over {
                too_large().into_response()
            } else {
                ApiError::BadRequest(format!("the body could not be read: {e}")).into_response()
            }
        }
        Err(_) => ApiError::SlowBody(format!(
            "the body did not arrive within {} s",
            deadline.as_secs()
        ))
        .into_response(),
    }
}

impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Unauthorized(m) => ApiError::BadSignature(m),
            ChannelError::BadRequest(m) => ApiError::BadRequest(m),
            ChannelError::NotFound(m) => ApiError::NotFound(m),
            ChannelError::Invalid(errors) => ApiError::Invalid(errors),
            ChannelError::Conflict(m) => ApiError::Conflict(m),
            ChannelError::Unsupported(m) => ApiError::Conflict(m),
            ChannelError::Provider(p) => ApiError::Unavailable(format!("provider: {p}")),
            e @ ChannelError::Sealed => ApiError::internal(e),
            ChannelError::Store(s) => s.into(),
        }
    }
}

/// A subscription handshake (Meta: `hub.mode`, `hub.verify_token`, `hub.challenge`): the
/// challenge is echoed as text when the token is one of the provider's channels'.
#[utoipa::path(
    get,
    path = "/webhooks/{provider}",
    operation_id = "provider_handshake",
    tag = "providers",
    summary = "A provider's subscription handshake",
    params(
        ("provider" = ProviderKind, Path, description = "`meta`"),
        ("hub.mode" = String, Query, description = "`subscribe`"),
        ("hub.verify_token" = String, Query, description = "One of the provider's channels' verify tokens"),
        ("hub.challenge" = String, Query, description = "Echoed back"),
    ),
    responses(
        (status = 200, description = "The challenge, as text", body = String, content_type = "text/plain"),
        (status = 403, description = "The token is no channel's"),
    )
)]
async fn handshake(
    State(state): State<AppState>,
    Path(kind): Path<ProviderKind>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match state.channels.answer_subscription(kind, &query).await {
        Ok(challenge) => ([(header::CONTENT_TYPE, "text/plain")], challenge).into_response(),
        Err(ChannelError::Unauthorized(_)) => {
            (StatusCode::FORBIDDEN, "verification failed").into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Webhooks carry JSON; anything else is refused before any work.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "webhooks must be `Content-Type: application/json`".into(),
        ))
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
    let limit = state.channels.webhook_body_limit(kind);
    let too_large = || ApiError::TooLarge(format!("webhook body over the limit of {limit} bytes"));
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::BadRequest(r.body_text())
        }
    })?;
    if body.len() > limit {
        return Err(too_large());
    }
    require_json(&headers)?;
    let receipt = state
        .channels
        .receive(kind, channel, &headers, &body)
        .await?;
    Ok((StatusCode::OK, Json(receipt)).into_response())
}

#[utoipa::path(
    post,
    path = "/webhooks/{provider}",
    operation_id = "provider_webhook",
    tag = "providers",
    summary = "A provider's webhook, one URL for every channel (Meta)",
    description = "Meta signs with `X-Hub-Signature-256`, checked against every Meta channel's app secret. Answered only once what it carried is stored.",
    params(("provider" = ProviderKind, Path, description = "`meta`")),
    request_body(content = serde_json::Value, description = "The provider's own payload, read as raw bytes: the signature is checked over them before any parsing"),
    responses(
        (status = 200, description = "Stored (or a duplicate, ignored): the provider may forget it", body = serde_json::Value),
        (status = 401, description = "Missing or wrong signature (`bad_signature`)", body = crate::http::error::ErrorResponse),
        (status = 400, description = "A body the provider's parser cannot read", body = crate::http::error::ErrorResponse),
        (status = 408, description = "The body did not arrive in time", body = crate::http::error::ErrorResponse),
        (status = 413, description = "Over the provider's limit", body = crate::http::error::ErrorResponse),
        (status = 503, description = "Not stored: the provider should send it again", body = crate::http::error::ErrorResponse),
    ),
    security(("meta_signature" = []), ("kapso_signature" = []), ("evolution_token" = []))
)]
async fn per_provider(
    State(state): State<AppState>,
    Path(kind): Path<ProviderKind>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    receive(state, kind, None, headers, body).await
}

#[utoipa::path(
    post,
    path = "/webhooks/{provider}/{channel}",
    operation_id = "channel_webhook",
    tag = "providers",
    summary = "A provider's webhook for one channel (Evolution, Kapso)",
    description = "Kapso signs with `X-Webhook-Signature`; Evolution sends back the channel's secret in `X-Palaver-Webhook-Token`. Answered only once what it carried is stored.",
    params(
        ("provider" = ProviderKind, Path, description = "`evolution` or `kapso`"),
        ("channel" = ChannelId, Path, description = "The channel, as its `webhook_url` says"),
    ),
    request_body(content = serde_json::Value, description = "The provider's own payload, read as raw bytes: the signature is checked over them before any parsing"),
    responses(
        (status = 200, description = "Stored (or a duplicate, ignored): the provider may forget it", body = serde_json::Value),
        (status = 401, description = "Missing or wrong signature (`bad_signature`)", body = crate::http::error::ErrorResponse),
        (status = 400, description = "A body the provider's parser cannot read", body = crate::http::error::ErrorResponse),
        (status = 408, description = "The body did not arrive in time", body = crate::http::error::ErrorResponse),
        (status = 413, description = "Over the provider's limit", body = crate::http::error::ErrorResponse),
        (status = 503, description = "Not stored: the provider should send it again", body = crate::http::error::ErrorResponse),
    ),
    security(("meta_signature" = []), ("kapso_signature" = []), ("evolution_token" = []))
)]
async fn per_channel(
    State(state): State<AppState>,
    Path((kind, channel)): Path<(ProviderKind, ChannelId)>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    receive(state, kind, Some(channel), headers, body).await
}
