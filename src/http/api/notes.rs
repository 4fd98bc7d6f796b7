//! `/conversations/{conversation}/notes` and `/presence`: the workspace's people talking among
//! themselves about a conversation. Private notes (everyone reads them; owners and inbox agents
//! write them, `@mentioning` colleagues) are never sent to the customer; presence heartbeats say
//! who has the conversation open and who is typing in it. The rules are
//! [`crate::inbox::notes`]' and [`crate::events::presence`]'.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{find_conversation, Json, Path};
use crate::accounts::{Caller, Roles};
use crate::domain::{ConversationId, Note};
use crate::events::presence::{Activity, Present};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::inbox::notes;

/// Routes of a conversation's notes and presence.
pub fn routes() -> Vec<Route> {
    let notes = "/conversations/{conversation}/notes";
    vec![
        Route::get(notes, Roles::ANY, list),
        Route::post(notes, Roles::INBOX, create),
        Route::post(
            "/conversations/{conversation}/presence",
            Roles::ANY,
            presence,
        ),
    ]
}

/// A new private note.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewNote {
    /// 1-4000 characters (trimmed), no NUL or other control characters but new lines and
    /// tabs. `@ana` mentions the member whose email starts `ana@`, or whose name is "Ana" (see
    /// the README).
    text: String,
}

#[utoipa::path(
    get,
    path = "/conversations/{conversation}/notes",
    operation_id = "list_notes",
    tag = "conversations",
    summary = "A conversation's private notes",
    description = "Notes the workspace's people wrote on the conversation, oldest first (the newest 500). Each has `type: note`; none was ever sent to the customer.",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    responses((status = 200, description = "Its notes, oldest first", body = Vec<Note>))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
) -> Result<Json<Vec<Note>>, ApiError> {
    find_conversation(&state, &caller, id).await?;
    Ok(Json(
        state
            .store
            .notes(caller.workspace, id, notes::SHOWN)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/conversations/{conversation}/notes",
    operation_id = "add_note",
    tag = "conversations",
    summary = "Write a private note",
    description = "A note for the workspace's people, shown in the thread and never sent to the customer. Each person it `@mentions` gets a `note.mentioned` event on their own streams. Notes are not sent to outgoing webhooks.",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    request_body = NewNote,
    responses((status = 201, description = "The note, with the people it mentions", body = Note))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<NewNote>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    let conversation = find_conversation(&state, &caller, id).await?;
    let note = notes::add(state.store.as_ref(), &caller, &conversation, &body.text).await?;
    Ok((StatusCode::CREATED, Json(note)))
}

/// A presence heartbeat.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Heartbeat {
    /// `viewing` (every 10 s or so while the conversation is open), `typing` (while writing,
    /// every few seconds at most) or `left`.
    state: Activity,
}

/// Who else has the conversation open.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Presence {
    /// Everyone but the caller, by name.
    people: Vec<Present>,
}

#[utoipa::path(
    post,
    path = "/conversations/{conversation}/presence",
    operation_id = "presence",
    tag = "conversations",
    summary = "Say that you have a conversation open, or are typing in it",
    description = "A signed-in person's heartbeat: viewing lasts 30 s, typing 6 s, unless renewed; `left` ends it. Repeats within a second are coalesced. Changes reach the event streams opened with `presence={conversation}` as `presence` events. Answers who else has it open. API keys are no person: 422.",
    params(("conversation" = ConversationId, Path, description = "The conversation")),
    request_body = Heartbeat,
    responses((status = 200, description = "Who else has it open", body = Presence))
)]
async fn presence(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ConversationId>,
    Json(body): Json<Heartbeat>,
) -> Result<Json<Presence>, ApiError> {
    let conversation = find_conversation(&state, &caller, id).await?;
    let Some(user) = caller.actor.user() else {
        return Err(ApiError::invalid(
            "state",
            "presence is a signed-in person's; an API key has none",
        ));
    };
    let name = state
        .store
        .user(user)
        .await?
        .map(|u| u.name)
        .unwrap_or_default();
    let people = state
        .events
        .presence()
        .beat(caller.workspace, conversation.id, user, &name, body.state)
        .await;
    Ok(Json(Presence { people }))
}
