//! `/conversations`: the inbox. List (filter by status, channel, assignee, unread, label and
//! snoozed; search contact name, number or message text), read messages with their delivery
//! status, reply as a person (through the outbox), mark read, assign, label, snooze, resolve,
//! and hand back to the bot. The rules are [`crate::inbox`]'s.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::{find_conversation, optional_json, Json, Path, Query};
use crate::accounts::{Caller, Roles};
use crate::channels::delivery::HumanFile;
use crate::channels::WindowState;
use crate::domain::{
    Conversation, ConversationId, ConversationStatus, Escalation, Label, Message, MessageId,
    Resolution, UserId,
};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::inbox;
use crate::store::{ConversationFilter, ConversationSummary};

/// Routes under `/conversations`: every role reads them; owners and inbox agents act on them.
pub fn routes() -> Vec<Route> {
    let message = "/conversations/{conversation}/messages/{message}";
    vec![
        Route::get("/conversations", Roles::ANY, list),
        Route::post("/conversations", Roles::INBOX, start),
        Route::get("/conversations/{conversation}", Roles::ANY, read),
        Route::get(
            "/conversations/{conversation}/messages",
            Roles::ANY,
            messages,
        )
        .body_limit(REPLY_BODY_LIMIT),
        Route::post(
            "/conversations/{conversation}/messages",
            Roles::INBOX,
            reply,
        )
        .body_limit(REPLY_BODY_LIMIT),
        Route::post(&format!("{message}/reaction"), Roles::INBOX, react),
        Route::post(
            "/conversations/{conversation}/templates",
            Roles::INBOX,
            send_template,
        ),
        Route::post(
            "/conversations/{conversation}/read",
            Roles::INBOX,
            mark_read,
        ),
        Route::put(
            "/conversations/{conversation}/assignee",
            Roles::INBOX,
            assign,
        ),
        Route::post(
            "/conversations/{conversation}/resolve",
            Roles::INBOX,
            resolve,
        ),
        Route::post(
            "/conversations/{conversation}/handback",
            Roles::INBOX,
            hand_back,
        ),
        Route::get("/conversations/{conversation}/labels", Roles::ANY, labels),
        Route::post(
            "/conversations/{conversation}/labels",
            Roles::INBOX,
            add_label,
        ),
        Route::delete(
            "/conversations/{conversation}/labels/{label}",
            Roles::INBOX,
            remove_label,
        ),
        Route::post("/conversations/{conversation}/snooze", Roles::INBOX, snooze),
        Route::delete("/conversations/{conversation}/snooze", Roles::INBOX, wake),
        Route::get(&format!("{message}/media"), Roles::ANY, media),
        Route::get(&format!("{message}/eval-case"), Roles::AUTHORS, eval_case),
    ]
}

/// An eval case made from a bot reply of a conversation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EvalCase {
    /// The agent it runs against.
    pub agent: String,
    /// The suite's YAML text, ready to run inline or to keep in a suite file.
    pub suite: String,
}

/// Makes an eval case of bot reply `message` of conversation `id` (see
/// [`crate::eval::from_conversation`]).
pub async fn make_eval_case(
    state: &AppState,
    caller: &Caller,
    id: ConversationId,
    message: MessageId,
) -> Result<EvalCase, ApiError> {
    let conversation = find_conversation(state, caller, id).await?;
    let agent = match conversation.agent_id {
        Some(agent) => state.store.agent(agent).await?,
        None => None,
    }
    .ok_or_else(|| ApiError::invalid("conversation", "has no agent answering it"))?;
    let messages = state.store.messages(conversation.id, 1000, None).await?;
    let suite = crate::eval::from_conversation::suite_from_conversation(&agent, &messages, message)
        .map_err(|e| ApiError::invalid("message", &e.to_string()))?;
    Ok(EvalCase {
        agent: agent.name,
        suite,
    })
}

#[utoipa::path(
    get,
    path = "/conversations/{conversation}/messages/{message}/eval-case",
    operation_id = "make_eval_case",
    tag = "conversations",
    summary = "Make an eval case from a bot reply",
    params(("conversation" = ConversationId, Path, description = "The conversation"), ("message" = MessageId, Path, description = "A message of the conversation")),
    responses((status = 200, description = "The suite's YAML text", body = EvalCase))
)]
async fn eval_case(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, message)): Path<(ConversationId, MessageId)>,
) -> Result<Json<EvalCase>, ApiError> {
    Ok(Json(make_eval_case(&state, &caller, id, message).await?))
}

/// List filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
    /// Only conversations whose contact has this label.
    label: Option<String>,
    /// `key:value`: only conversations whose contact has this attribute value.
    attribute: Option<String>,
    /// Only conversations carrying the workspace's conversation label of this name.
    conversation_label: Option<String>,
    /// `true`: only snoozed conversations; `false`: only those not snoozed (the open list).
    snoozed: Option<bool>,
    /// Only the team's conversations: assigned to one of its members, or nobody's yet on a
    /// channel whose escalations go to it.
    team: Option<crate::domain::TeamId>,
    limit: Option<u32>,
    offset: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/conversations",
    operation_id = "list_conversations",
    tag = "conversations",
    summary = "List conversations (the inbox)",
    params(ListParams),
    responses((status = 200, description = "Conversations, latest activity first", body = Vec<ConversationSummary>))
)]
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
    let attribute = p
        .attribute
        .as_deref()
        .map(super::contacts::attribute_filter)
        .transpose()?;
    let conversation_label = p
        .conversation_label
        .as_deref()
        .map(|l| inbox::labels::label_name("conversation_label", l))
        .transpose()
        .map_err(|e| ApiError::Invalid(vec![e]))?;
    if let Some(team) = p.team {
        if state.store.team(caller.workspace, team).await?.is_none() {
            return Err(ApiError::invalid("team", "is not a team of this workspace"));
        }
    }
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
                label: p.label,
                attribute,
                conversation_label,
                snoozed: p.snoozed,
                team: p.team,
                limit,
                offset: p.offset.unwrap_or(0),
            },
        )
        .await?;
    Ok(Json(list))
}

/// A conversation with its escalations, labels and customer-service window.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ConversationView {
    #[serde(flatten)]
    conversation: Conversation,
    escalations: Vec<Escalation>,
    /// Its labels, by name.
    labels: Vec<Label>,
    /// Its private notes (`type: note`), oldest first: the workspace's people's, never sent to
    /// the customer.
    notes: Vec<crate::domain::Note>,
    /// WhatsApp's 24-hour customer-service window: `{"state": "open", "closes_at"}` or
    /// `{"state": "closed", "closed_at"}` (only templates may be sent then); `null` when the
    /// channel's provider keeps none.
    service_window: Option<WindowState>,
}

#[utoipa::path(
    get,
    path = "/conversations/{conversation}",
    operation_id = "get_conversation",
    tag = "conversations",
    summary = "Read a conversation",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    responses((status = 200, description = "The conversation", body = ConversationView))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
) -> Result<Json<ConversationView>, ApiError> {
    view(&state, &caller, id).await
}

/// Paging of messages.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MessageParams {
    limit: Option<u32>,
    before: Option<MessageId>,
}

#[utoipa::path(
    get,
    path = "/conversations/{conversation}/messages",
    operation_id = "list_messages",
    tag = "conversations",
    summary = "List messages",
    params(("conversation" = ConversationId, Path, description = "The conversation"), MessageParams),
    responses((status = 200, description = "Messages, newest first", body = Vec<Message>))
)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    text: String,
    /// The message of the conversation this reply quotes.
    #[serde(default)]
    reply_to: Option<MessageId>,
}

/// A person's reply with a file, as a multipart form.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the document's shape of the form; the handler reads its parts
struct FileReply {
    /// JPEG and PNG go as images (5 MB at most), MP4 as video, AAC/MP3/OGG/AMR as audio,
    /// anything else as a document (16 MB at most).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// A caption.
    text: Option<String>,
    /// The message of the conversation this reply quotes.
    reply_to: Option<MessageId>,
}

/// A person's reaction.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReactionBody {
    /// One emoji; empty removes the reaction.
    emoji: String,
}

/// Reacts to a message of the conversation with an emoji (empty removes the reaction).
#[utoipa::path(
    post,
    path = "/conversations/{conversation}/messages/{message}/reaction",
    operation_id = "react",
    tag = "conversations",
    summary = "React to a message",
    params(("conversation" = ConversationId, Path, description = "The conversation"), ("message" = MessageId, Path, description = "A message of the conversation"), ("Idempotency-Key" = Option<String>, Header, description = "Repeats answer the first")),
    request_body = ReactionBody,
    responses((status = 201, description = "The reaction, queued", body = Message), (status = 200, description = "The same reaction again", body = Message))
)]
async fn react(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, message)): Path<(ConversationId, MessageId)>,
    headers: HeaderMap,
    Json(body): Json<ReactionBody>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let conversation = find_conversation(&state, &caller, id).await?;
    let key = idempotency_key(&headers)?;
    let (message, created) = inbox::react(
        state.store.as_ref(),
        &state.channels,
        &caller,
        &conversation,
        message,
        &body.emoji,
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
#[utoipa::path(
    post,
    path = "/conversations/{conversation}/messages",
    operation_id = "reply",
    tag = "conversations",
    summary = "Reply as a person",
    description = "A person's reply goes through the outbox; the person takes the conversation over. Multipart sends a file with an optional caption.",
    params(("conversation" = ConversationId, Path, description = "The conversation"), ("Idempotency-Key" = Option<String>, Header, description = "The same key with the same text answers the first reply")),
    request_body(content((ReplyBody = "application/json"), (FileReply = "multipart/form-data"))),
    responses((status = 201, description = "The reply, queued", body = Message), (status = 200, description = "The same reply again (same `Idempotency-Key`)", body = Message))
)]
async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let conversation = find_conversation(&state, &caller, id).await?;
    let key = idempotency_key(request.headers())?;
    let content_type = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (message, created) = if content_type.starts_with("multipart/form-data") {
        let (mut fields, file) = multipart_reply(&state, request).await?;
        let file =
            file.ok_or_else(|| ApiError::invalid("file", "a part named `file` is required"))?;
        let caption = fields.remove("text");
        inbox::reply_with_file(
            state.store.as_ref(),
            &state.channels,
            &caller,
            &conversation,
            file,
            caption.as_deref(),
            key.as_deref(),
        )
        .await?
    } else {
        let Json(body) = <Json<ReplyBody> as axum::extract::FromRequest<AppState>>::from_request(
            request, &state,
        )
        .await?;
        inbox::reply(
            state.store.as_ref(),
            &state.channels,
            &caller,
            &conversation,
            &body.text,
            body.reply_to,
            key.as_deref(),
        )
        .await?
    };
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(message)))
}

/// A template to send.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    name: String,
    language: String,
    #[serde(default)]
    parameters: std::collections::BTreeMap<String, String>,
}

impl TemplateBody {
    /// The template to send, its name and language checked as every template send checks them.
    fn checked(self) -> Result<crate::channels::templates::TemplateSend, ApiError> {
        crate::channels::templates::TemplateSend::new(&self.name, &self.language, self.parameters)
            .map_err(ApiError::Invalid)
    }
}

/// Sends an approved template with its values (checked against the template: a missing one is
/// a 422 naming it), to re-open a conversation outside the 24-hour window.
#[utoipa::path(
    post,
    path = "/conversations/{conversation}/templates",
    operation_id = "send_template",
    tag = "conversations",
    summary = "Send an approved template",
    description = "The way to write to a customer outside WhatsApp's 24-hour window; parameters are checked against the template first.",
    params(("conversation" = ConversationId, Path, description = "The conversation"), ("Idempotency-Key" = Option<String>, Header, description = "Repeats answer the first")),
    request_body = TemplateBody,
    responses((status = 201, description = "The template message, queued", body = Message), (status = 200, description = "The same message again", body = Message))
)]
async fn send_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    headers: HeaderMap,
    Json(body): Json<TemplateBody>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let conversation = find_conversation(&state, &caller, id).await?;
    let key = idempotency_key(&headers)?;
    let send = body.checked()?;
    let (message, created) = inbox::send_template(
        state.store.as_ref(),
        &state.channels,
        &caller,
        &conversation,
        &send,
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

/// A conversation to start with a template.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewConversation {
    /// The channel (number) to write from.
    channel: crate::domain::ChannelId,
    /// The customer's number with its country code (`+55 11 91234-5678`), or a WhatsApp user
    /// id.
    #[schema(example = "+351 912 345 678")]
    to: String,
    /// The approved template, with its values.
    template: TemplateBody,
}

/// A conversation started, and the template that starts it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct StartedConversation {
    conversation: Conversation,
    message: Message,
}

/// Writes first to a customer: an approved template to the number on the channel, checked as
/// a template sent in a conversation is. The conversation with that customer on that channel
/// is created (or goes on, when there is one) and the caller takes it.
#[utoipa::path(
    post,
    path = "/conversations",
    operation_id = "start_conversation",
    tag = "conversations",
    summary = "Start a conversation with a template",
    description = "A bad number is a 422 on `to`; a template that is not approved, or a missing or malformed value, a 422 naming it, every problem at once.",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats answer the first")),
    request_body = NewConversation,
    responses((status = 202, description = "The conversation, and the template queued", body = StartedConversation), (status = 200, description = "The same again", body = StartedConversation))
)]
async fn start(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<NewConversation>,
) -> Result<(StatusCode, Json<StartedConversation>), ApiError> {
    let channel = super::find_channel(&state, &caller, body.channel).await?;
    let key = idempotency_key(&headers)?;
    let send = body.template.checked()?;
    let (conversation, message, created) = inbox::start_conversation(
        state.store.as_ref(),
        &state.channels,
        &caller,
        &channel,
        &body.to,
        &send,
        key.as_deref(),
    )
    .await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(StartedConversation {
            conversation,
            message,
        }),
    ))
}

/// The largest reply request: a file and its multipart framing.
pub(crate) const REPLY_BODY_LIMIT: usize = crate::channels::delivery::MAX_FILE_BYTES + 64 * 1024;

/// A multipart reply's text fields, and its `file` when one was chosen (a form sent with no
/// file chosen carries an empty, nameless part). The API and the console's reply form read
/// replies with files through it.
pub(crate) async fn multipart_reply(
    state: &AppState,
    request: axum::extract::Request,
) -> Result<(std::collections::HashMap<String, String>, Option<HumanFile>), ApiError> {
    let mut multipart =
        <axum::extract::Multipart as axum::extract::FromRequest<AppState>>::from_request(
            request, state,
        )
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut fields = std::collections::HashMap::new();
    let mut file = None;
    while let Some(field) = multipart.next_field().await? {
        let Some(name) = field.name().map(str::to_string) else {
            continue;
        };
        if name == "file" {
            let filename = field.file_name().unwrap_or_default().to_string();
            let mime_type = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_string();
            let content = field.bytes().await?.to_vec();
            if !(filename.is_empty() && content.is_empty()) {
                file = Some(HumanFile {
                    filename,
                    mime_type,
                    content,
                });
            }
        } else {
            fields.insert(name, field.text().await?);
        }
    }
    Ok((fields, file))
}

/// Who gets the conversation: a user id, or `null` for nobody.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    user: Option<UserId>,
}

#[utoipa::path(
    put,
    path = "/conversations/{conversation}/assignee",
    operation_id = "assign",
    tag = "conversations",
    summary = "Give a conversation to a person, or to nobody",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    request_body = AssignBody,
    responses((status = 200, description = "The conversation", body = ConversationView))
)]
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

#[utoipa::path(
    post,
    path = "/conversations/{conversation}/read",
    operation_id = "mark_read",
    tag = "conversations",
    summary = "Mark a conversation read",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    responses((status = 204, description = "Marked"))
)]
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
    let labels = state.store.conversation_labels(id).await?;
    let notes = state
        .store
        .notes(caller.workspace, id, inbox::notes::SHOWN)
        .await?;
    let service_window = state
        .channels
        .service_window(&conversation, chrono::Utc::now())
        .await?;
    Ok(Json(ConversationView {
        conversation,
        escalations,
        labels,
        notes,
        service_window,
    }))
}

#[utoipa::path(
    get,
    path = "/conversations/{conversation}/labels",
    operation_id = "list_conversation_labels",
    tag = "conversations",
    summary = "A conversation's labels",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    responses((status = 200, description = "Its labels, by name", body = Vec<Label>))
)]
async fn labels(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
) -> Result<Json<Vec<Label>>, ApiError> {
    find_conversation(&state, &caller, id).await?;
    Ok(Json(state.store.conversation_labels(id).await?))
}

/// A label to put on a conversation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LabelBody {
    /// The name of one of the workspace's labels.
    label: String,
}

/// Puts one of the workspace's labels on the conversation (a `conversation.labels_changed`
/// event); putting it on again changes nothing.
#[utoipa::path(
    post,
    path = "/conversations/{conversation}/labels",
    operation_id = "add_conversation_label",
    tag = "conversations",
    summary = "Label a conversation",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    request_body = LabelBody,
    responses((status = 200, description = "Its labels now, by name", body = Vec<Label>))
)]
async fn add_label(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<LabelBody>,
) -> Result<Json<Vec<Label>>, ApiError> {
    let conversation = find_conversation(&state, &caller, id).await?;
    Ok(Json(
        inbox::labels::set(state.store.as_ref(), &conversation, &body.label, true).await?,
    ))
}

/// Takes a label off the conversation (a `conversation.labels_changed` event); a label it
/// does not carry changes nothing.
#[utoipa::path(
    delete,
    path = "/conversations/{conversation}/labels/{label}",
    operation_id = "remove_conversation_label",
    tag = "conversations",
    summary = "Take a label off a conversation",
    params(("conversation" = ConversationId, Path, description = "The conversation"), ("label" = String, Path, description = "The label's name")),
    responses((status = 200, description = "Its labels now, by name", body = Vec<Label>))
)]
async fn remove_label(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, label)): Path<(ConversationId, String)>,
) -> Result<Json<Vec<Label>>, ApiError> {
    let conversation = find_conversation(&state, &caller, id).await?;
    Ok(Json(
        inbox::labels::set(state.store.as_ref(), &conversation, &label, false).await?,
    ))
}

/// Until when to snooze: a time, or a preset read in a time zone.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SnoozeBody {
    /// The end of the snooze (RFC 3339, within a year).
    until: Option<chrono::DateTime<chrono::Utc>>,
    /// Instead of `until`: `1h`, `tomorrow` (09:00) or `next_week` (Monday 09:00).
    #[schema(value_type = Option<String>)]
    preset: Option<String>,
    /// The IANA time zone a preset is read in (`Europe/Lisbon`); UTC when not given.
    zone: Option<String>,
}

/// Snoozes a conversation: it leaves the open list (`snoozed=false`) until the time comes or
/// the customer writes again, then comes back by itself (`conversation.unsnoozed`).
#[utoipa::path(
    post,
    path = "/conversations/{conversation}/snooze",
    operation_id = "snooze",
    tag = "conversations",
    summary = "Snooze a conversation until a time",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    request_body = SnoozeBody,
    responses((status = 200, description = "The conversation", body = ConversationView))
)]
async fn snooze(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<SnoozeBody>,
) -> Result<Json<ConversationView>, ApiError> {
    use inbox::snooze as s;
    let conversation = find_conversation(&state, &caller, id).await?;
    let invalid = |e: crate::domain::FieldError| ApiError::Invalid(vec![e]);
    let until = match (body.until, body.preset.as_deref()) {
        (Some(until), None) => until,
        (None, Some(preset)) => {
            let preset: s::Preset = preset.parse().map_err(invalid)?;
            let zone = s::zone(body.zone.as_deref()).map_err(invalid)?;
            s::preset_until(preset, zone, chrono::Utc::now())
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "preset",
                "give either `until` or a `preset`, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "until",
                "give `until` (RFC 3339) or a `preset` (1h, tomorrow, next_week)",
            ))
        }
    };
    s::snooze(
        state.store.as_ref(),
        &conversation,
        until,
        state.settings.workers.limits(),
    )
    .await?;
    view(&state, &caller, id).await
}

#[utoipa::path(
    delete,
    path = "/conversations/{conversation}/snooze",
    operation_id = "unsnooze",
    tag = "conversations",
    summary = "Bring a snoozed conversation back now",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    responses((status = 200, description = "The conversation", body = ConversationView))
)]
async fn wake(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
) -> Result<Json<ConversationView>, ApiError> {
    let conversation = find_conversation(&state, &caller, id).await?;
    inbox::snooze::wake(
        state.store.as_ref(),
        &conversation,
        state.settings.workers.limits(),
    )
    .await?;
    view(&state, &caller, id).await
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
    inbox::close(
        state.store.as_ref(),
        &state.channels,
        caller,
        &conversation,
        resolution,
    )
    .await?;
    view(state, caller, id).await
}

/// No fields.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

#[utoipa::path(
    post,
    path = "/conversations/{conversation}/resolve",
    operation_id = "resolve",
    tag = "conversations",
    summary = "Resolve a conversation",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    request_body(content = Option<EmptyBody>, description = "Empty, or `{}`"),
    responses((status = 200, description = "The conversation", body = ConversationView))
)]
async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    body: axum::body::Bytes,
) -> Result<Json<ConversationView>, ApiError> {
    close(&state, &caller, id, Resolution::Resolved, &body).await
}

#[utoipa::path(
    post,
    path = "/conversations/{conversation}/handback",
    operation_id = "hand_back",
    tag = "conversations",
    summary = "Give a conversation back to the bot",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    request_body(content = Option<EmptyBody>, description = "Empty, or `{}`"),
    responses((status = 200, description = "The conversation", body = ConversationView))
)]
async fn hand_back(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    body: axum::body::Bytes,
) -> Result<Json<ConversationView>, ApiError> {
    close(&state, &caller, id, Resolution::HandedBack, &body).await
}

/// Types a browser may show in place (the console's images, voice notes and videos, and PDF
/// documents); anything else is downloaded.
const SHOWN_IN_PLACE: &[&str] = &["image/", "audio/", "video/", "application/pdf"];

/// A message's attachment (image, voice note, video, document), fetched from the provider
/// when asked: media is not kept by Palaver. The body is served as data only: `nosniff`, a
/// sandboxing Content-Security-Policy, and a download for types a browser should not render.
#[utoipa::path(
    get,
    path = "/conversations/{conversation}/messages/{message}/media",
    operation_id = "get_media",
    tag = "conversations",
    summary = "Fetch a message's attachment",
    params(("conversation" = ConversationId, Path, description = "The conversation"), ("message" = MessageId, Path, description = "A message of the conversation")),
    responses((status = 200, description = "The file, from the provider (images, audio, video and PDF inline; other types as a download)"))
)]
async fn media(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, message)): Path<(ConversationId, MessageId)>,
) -> Result<axum::response::Response, ApiError> {
    use crate::channels::{MediaError, MediaSource};
    use axum::http::header;
    use axum::response::IntoResponse;

    let conversation = find_conversation(&state, &caller, id).await?;
    let found = state
        .store
        .message(message)
        .await?
        .filter(|m| m.conversation_id == conversation.id)
        .ok_or_else(|| ApiError::NotFound(format!("no message {message} in this conversation")))?;
    let media_ref = found
        .details
        .media
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("the message has no attachment".into()))?;
    // A file a person sent is served from the store; a customer's from the provider.
    let kept = match &media_ref.file {
        Some(file) => state.store.file(file).await?.map(|f| f.content),
        None => None,
    };
    let bytes = match kept {
        Some(bytes) => bytes,
        None => state
            .channels
            .fetch(&conversation, media_ref)
            .await
            .map_err(|e| match e {
                MediaError::Unavailable(m) => ApiError::Unavailable(format!(
                    "the provider could not give the attachment now: {m}"
                )),
                MediaError::Gone(m) => {
                    ApiError::NotFound(format!("the provider no longer has the attachment: {m}"))
                }
            })?,
    };
    let mime = media_ref
        .mime_type
        .as_deref()
        .and_then(media_type)
        .unwrap_or_default();
    let in_place = SHOWN_IN_PLACE.iter().any(|p| mime.starts_with(p));
    let content_type = if in_place {
        mime
    } else {
        "application/octet-stream".to_string()
    };
    let name = media_ref
        .filename
        .as_deref()
        .map(|n| {
            n.chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' '))
                .collect::<String>()
        })
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("{}-{message}", found.kind.as_str()));
    let disposition = format!(
        "{}; filename=\"{}\"",
        if in_place { "inline" } else { "attachment" },
        name.trim()
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_string(),
            ),
            (header::CACHE_CONTROL, "private, max-age=3600".to_string()),
        ],
        bytes,
    )
        .into_response())
}

/// A MIME type as a provider sent it, reduced to `type/subtype` when that is well-formed.
fn media_type(sent: &str) -> Option<String> {
    let essence = crate::domain::mime_essence(sent);
    let (kind, sub) = essence.split_once('/')?;
    let token = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
    };
    (token(kind) && token(sub)).then_some(essence)
}
