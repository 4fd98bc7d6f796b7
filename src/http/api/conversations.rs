//! `/conversations`: the inbox. List (filter by status, channel, assignee and unread; search
//! contact name, number or message text), read messages with their delivery status, reply as a
//! person (through the outbox), mark read, assign, resolve, and hand back to the bot. The rules
//! are [`crate::inbox`]'s.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{find_conversation, optional_json, Json, Path, Query};
use crate::accounts::{Caller, Roles};
use crate::domain::{
    Conversation, ConversationId, ConversationStatus, Escalation, Message, MessageId, Resolution,
    UserId,
};
use crate::http::auth::allow;
use crate::http::{ApiError, AppState};
use crate::inbox;
use crate::store::{ConversationFilter, ConversationSummary};

/// Routes under `/conversations`: every role reads them; owners and inbox agents act on them.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/conversations", allow(Roles::ANY, get(list)))
        .route(
            "/conversations/{conversation}",
            allow(Roles::ANY, get(read)),
        )
        .route(
            "/conversations/{conversation}/messages",
            allow(Roles::ANY, get(messages)).merge(allow(Roles::INBOX, post(reply))),
        )
        .route(
            "/conversations/{conversation}/read",
            allow(Roles::INBOX, post(mark_read)),
        )
        .route(
            "/conversations/{conversation}/assignee",
            allow(Roles::INBOX, put(assign)),
        )
        .route(
            "/conversations/{conversation}/resolve",
            allow(Roles::INBOX, post(resolve)),
        )
        .route(
            "/conversations/{conversation}/handback",
            allow(Roles::INBOX, post(hand_back)),
        )
}

/// List filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<ConversationStatus>,
    channel: Option<crate::domain::ChannelId>,
    q: Option<String>,
    /// `me`, `none`, or a user id.
    assignee: Option<String>,
    #[serde(default)]
    unread: bool,
    #[serde(default)]
    sandbox: bool,
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<ListParams>,
) -> Result<Json<Vec<ConversationSummary>>, ApiError> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 500"));
    }
    let assignee = match p.assignee.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some("me") => match caller.actor.user() {
            Some(user) => Some(Some(user)),
            None => {
                return Err(ApiError::invalid(
                    "assignee",
                    "`me` needs a signed-in person",
                ))
            }
        },
        Some(id) => Some(Some(id.parse::<UserId>().map_err(|_| {
            ApiError::invalid("assignee", "must be `me`, `none` or a user id")
        })?)),
    };
    let list = state
        .store
        .list_conversations(
            caller.workspace,
            &ConversationFilter {
                status: p.status,
                channel_id: p.channel,
                search: p.q,
                assignee,
                unread: p.unread,
                sandbox: p.sandbox,
                limit,
                offset: p.offset.unwrap_or(0),
            },
        )
        .await?;
    Ok(Json(list))
}

/// A conversation with its escalations.
#[derive(Debug, Serialize)]
struct ConversationView {
    #[serde(flatten)]
    conversation: Conversation,
    escalations: Vec<Escalation>,
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
) -> Result<Json<ConversationView>, ApiError> {
    let conversation = find_conversation(&state, &caller, id).await?;
    let escalations = state.store.escalations(id).await?;
    Ok(Json(ConversationView {
        conversation,
        escalations,
    }))
}

/// Paging of messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageParams {
    limit: Option<u32>,
    before: Option<MessageId>,
}

async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Query(p): Query<MessageParams>,
) -> Result<Json<Vec<Message>>, ApiError> {
    find_conversation(&state, &caller, id).await?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    Ok(Json(state.store.messages(id, limit, p.before).await?))
}

/// A person's reply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    text: String,
}

/// The `Idempotency-Key` of a request, checked: printable ASCII, at most 200 characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.trim().is_empty() && key.len() <= 200 => Ok(Some(key.trim().to_string())),
        _ => Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1-200 printable ASCII characters",
        )),
    }
}

/// A person's reply, queued for sending (see [`inbox::reply`]). With an `Idempotency-Key`
/// header, repeating the same request (a client retrying after a timeout) records and sends the
/// message once: the repeat answers `200` with the same message instead of `202`.
async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    headers: HeaderMap,
    Json(body): Json<ReplyBody>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let conversation = find_conversation(&state, &caller, id).await?;
    let key = idempotency_key(&headers)?;
    let (message, created) = inbox::reply(
        state.store.as_ref(),
        &state.channels,
        &caller,
        &conversation,
        &body.text,
        key.as_deref(),
    )
    .await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(message)))
}

/// Who gets the conversation: a user id, or `null` for nobody.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    user: Option<UserId>,
}

async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<AssignBody>,
) -> Result<Json<ConversationView>, ApiError> {
    let conversation = find_conversation(&state, &caller, id).await?;
    inbox::assign(state.store.as_ref(), &conversation, body.user).await?;
    view(&state, &caller, id).await
}

async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
) -> Result<StatusCode, ApiError> {
    find_conversation(&state, &caller, id).await?;
    state.store.mark_read(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The conversation as it is now, with its escalations.
async fn view(
    state: &AppState,
    caller: &Caller,
    id: ConversationId,
) -> Result<Json<ConversationView>, ApiError> {
    let conversation = find_conversation(state, caller, id).await?;
    let escalations = state.store.escalations(id).await?;
    Ok(Json(ConversationView {
        conversation,
        escalations,
    }))
}

async fn close(
    state: &AppState,
    caller: &Caller,
    id: ConversationId,
    resolution: Resolution,
    body: &[u8],
) -> Result<Json<ConversationView>, ApiError> {
    // The body, if any, must be an empty object: who closes is the caller.
    let _: EmptyBody = optional_json(body)?;
    let conversation = find_conversation(state, caller, id).await?;
    inbox::close(state.store.as_ref(), caller, &conversation, resolution).await?;
    view(state, caller, id).await
}

/// No fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    body: axum::body::Bytes,
) -> Result<Json<ConversationView>, ApiError> {
    close(&state, &caller, id, Resolution::Resolved, &body).await
}

async fn hand_back(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    body: axum::body::Bytes,
) -> Result<Json<ConversationView>, ApiError> {
    close(&state, &caller, id, Resolution::HandedBack, &body).await
}
