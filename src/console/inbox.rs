//! The inbox: the conversation list (search, filters, labels, unread counts, pages) and one
//! conversation with its messages, delivery ticks, transcripts and sources, and the reply (with
//! canned responses), label, snooze, assign, resolve and hand-back forms, and the customer's
//! contact panel beside it. Everything goes through [`crate::inbox`], as the JSON API's
//! conversation routes do.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use serde::Deserialize;

use super::{acting, error_page, render, to_sign_in, viewer, Viewer, PAGE};
use crate::accounts::{people, Roles};
use crate::domain::{
    ChannelId, ChannelState, ConversationId, ConversationStatus, Resolution, TeamId, UserId,
};
use crate::http::{ApiError, AppState};
use crate::inbox;
use crate::store::ConversationFilter;

/// Messages shown of a conversation (the newest).
const MESSAGES: u32 = 200;

/// Inbox filters, as the list's form sends them (empty fields mean "any").
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub(super) struct InboxParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    unread: Option<String>,
    #[serde(default)]
    conversation_label: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    page: Option<u32>,
}

pub(super) async fn inbox_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<InboxParams>,
) -> Response {
    let viewer = match viewer(&state, &headers).await {
        Ok(Some(v)) => v,
        Ok(None) => return to_sign_in(&state, "/inbox").await,
        Err(e) => return error_page(None, e),
    };
    match inbox_list(&state, &viewer, &p, true).await {
        Ok(page) => render(StatusCode::OK, "inbox.html", Some(&viewer), page),
        Err(e) => error_page(Some(&viewer), e),
    }
}

/// The conversation list's page values; `alone` when it is the whole page (not beside an open
/// conversation), where an empty workspace is shown its first steps.
async fn inbox_list(
    state: &AppState,
    viewer: &Viewer,
    p: &InboxParams,
    alone: bool,
) -> Result<Value, ApiError> {
    // Snoozed conversations are out of every list but their own.
    let snoozed = p.status == "snoozed";
    let status = match p.status.as_str() {
        "" | "snoozed" => None,
        s => Some(s.parse::<ConversationStatus>().map_err(|_| {
            ApiError::invalid("status", "must be active, escalated, resolved or snoozed")
        })?),
    };
    let label = match p.conversation_label.trim() {
        "" => None,
        l => Some(
            inbox::labels::label_name("conversation_label", l)
                .map_err(|e| ApiError::Invalid(vec![e]))?,
        ),
    };
    let assignee = match p.assignee.as_str() {
        "" => None,
        "none" => Some(None),
        "me" => Some(Some(viewer.user.id)),
        _ => return Err(ApiError::invalid("assignee", "must be me or none")),
    };
    let channel_id = match p.channel.as_str() {
        "" => None,
        c => Some(
            c.parse::<ChannelId>()
                .map_err(|_| ApiError::invalid("channel", "is not a channel of this workspace"))?,
        ),
    };
    let teams = state.store.teams(viewer.caller.workspace).await?;
    let team = match p.team.as_str() {
        "" => None,
        t => Some(
            t.parse::<TeamId>()
                .ok()
                .filter(|t| teams.iter().any(|known| known.id == *t))
                .ok_or_else(|| ApiError::invalid("team", "is not a team of this workspace"))?,
        ),
    };
    let unread = p
        .unread
        .as_deref()
        .is_some_and(|v| v == "true" || v == "on");
    let page = p.page.unwrap_or(0).min(10_000);
    let q = p.q.trim();
    // One more than a page tells whether there is a next one.
    let mut conversations = state
        .store
        .list_conversations(
            viewer.caller.workspace,
            &ConversationFilter {
                status,
                channel_id,
                search: (!q.is_empty()).then(|| q.to_string()),
                assignee,
                unread,
                sandbox: false,
                label: None,
                attribute: None,
                conversation_label: label.clone(),
                snoozed: Some(snoozed),
                team,
                limit: PAGE + 1,
                offset: page * PAGE,
            },
        )
        .await?;
    let more = conversations.len() > PAGE as usize;
    let numbers = state
        .store
        .list_channels(Some(viewer.caller.workspace), None)
        .await?;
    let labels = state.store.labels(viewer.caller.workspace).await?;
    let filtered = !q.is_empty()
        || status.is_some()
        || snoozed
        || label.is_some()
        || assignee.is_some()
        || channel_id.is_some()
        || team.is_some()
        || unread;
    // An empty open list may only mean that every conversation is snoozed.
    let snoozed_waiting = conversations.is_empty()
        && !snoozed
        && !state
            .store
            .list_conversations(
                viewer.caller.workspace,
                &ConversationFilter {
                    snoozed: Some(true),
                    limit: 1,
                    ..Default::default()
                },
            )
            .await?
            .is_empty();
    // A workspace without a conversation yet is shown the way to its first one.
    let first_run =
        if alone && conversations.is_empty() && !filtered && !snoozed_waiting && page == 0 {
            Some(first_run(state, viewer, &numbers).await?)
        } else {
            None
        };
    let channels: Vec<_> = numbers
        .into_iter()
        .map(|c| context! { id => c.id.to_string(), name => c.name })
        .collect();
    conversations.truncate(PAGE as usize);
    let link = |page: u32| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("q", q),
            ("status", &p.status),
            ("assignee", &p.assignee),
            ("channel", &p.channel),
            ("conversation_label", &p.conversation_label),
            ("team", &p.team),
        ] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if unread {
            query.append_pair("unread", "true");
        }
        if page > 0 {
            query.append_pair("page", &page.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            "/inbox".to_string()
        } else {
            format!("/inbox?{query}")
        }
    };
    Ok(context! {
        page => "inbox",
        conversations => Value::from_serialize(&conversations),
        channels => Value::from_serialize(&channels),
        labels => Value::from_serialize(&labels),
        teams => teams
            .iter()
            .map(|t| context! { id => t.id.to_string(), name => t.name })
            .collect::<Vec<_>>(),
        filter => context! {
            q, status => p.status, assignee => p.assignee, channel => p.channel, unread,
            label, team => p.team,
        },
        snoozed_waiting,
        previous => (page > 0).then(|| link(page - 1)),
        next => more.then(|| link(page + 1)),
        first_run,
    })
}

/// The steps before a workspace's first conversation, each with its page (when the viewer may
/// open it) and whether it is done: an agent, its documents, a try in the sandbox, a number.
async fn first_run(
    state: &AppState,
    viewer: &Viewer,
    numbers: &[crate::domain::Channel],
) -> Result<Vec<Value>, ApiError> {
    let ws = viewer.caller.workspace;
    let authors = Roles::AUTHORS.allows(viewer.caller.role);
    let owns = Roles::OWNER.allows(viewer.caller.role);
    let agents = state.store.list_agents(ws).await?;
    let mut documented = None;
    for agent in &agents {
        if !state
            .store
            .list_documents(&agent.collection())
            .await?
            .is_empty()
        {
            documented = Some(agent);
            break;
        }
    }
    let tried = !state
        .store
        .list_conversations(
            ws,
            &ConversationFilter {
                sandbox: true,
                limit: 1,
                ..Default::default()
            },
        )
        .await?
        .is_empty();
    // A number is ready once added (a Cloud API number shows as connected with its first
    // message) or linked; one still waiting for its QR code, or refused, is not.
    let ready = numbers
        .iter()
        .any(|c| matches!(c.state, ChannelState::Created | ChannelState::Connected));
    let waiting = (!ready)
        .then(|| numbers.first())
        .flatten()
        .map(|c| match c.state {
            ChannelState::Connecting => {
                format!("{}: waiting for its QR code to be scanned", c.name)
            }
            other => format!("{}: {}", c.name, other.as_str()),
        });
    let agent_page = documented
        .or(agents.first())
        .map(|a| format!("/agents/{}", a.name))
        .unwrap_or_else(|| "/agents".into());
    // A step the viewer may not take says who takes it.
    let authored = |title: &str, href: String, done: bool, detail: Option<String>| {
        let href = authors.then_some(href);
        context! { title, href, done, detail, who => "An owner or an author" }
    };
    Ok(vec![
        authored(
            "Create an agent",
            "/agents".into(),
            !agents.is_empty(),
            (!agents.is_empty()).then(|| {
                let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
                names.join(", ")
            }),
        ),
        authored(
            "Add documents it answers from",
            agent_page,
            documented.is_some(),
            None,
        ),
        authored("Try it in the sandbox", "/sandbox".into(), tried, None),
        context! {
            title => "Connect a WhatsApp number",
            href => owns.then_some("/channels"),
            done => ready,
            detail => waiting,
            who => "An owner",
        },
    ])
}

/// Which messages of a conversation: the latest, or those before a message.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ThreadParams {
    #[serde(default)]
    before: String,
    /// The template chosen for the form that replaces the reply box once the window closed.
    #[serde(default)]
    template: String,
}

pub(super) async fn conversation_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<ThreadParams>,
) -> Response {
    let viewer = match viewer(&state, &headers).await {
        Ok(Some(v)) => v,
        Ok(None) => return to_sign_in(&state, &format!("/inbox/{id}")).await,
        Err(e) => return error_page(None, e),
    };
    let template = (p.template.as_str(), &BTreeMap::new(), &[][..]);
    match conversation_view(&state, &viewer, &id, &p, template).await {
        Ok(page) => render(StatusCode::OK, "conversation.html", Some(&viewer), page),
        Err(e) => error_page(Some(&viewer), e),
    }
}

/// The template chosen in a conversation's template form, the values given and the problems
/// found in them.
type TemplateForm<'a> = (
    &'a str,
    &'a BTreeMap<String, String>,
    &'a [crate::domain::FieldError],
);

/// The conversation `id` of the viewer's workspace (404 for any other).
async fn find(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
) -> Result<crate::domain::Conversation, ApiError> {
    let id: ConversationId = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no conversation {id}")))?;
    crate::http::api::find_conversation(state, &viewer.caller, id).await
}

async fn conversation_view(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    p: &ThreadParams,
    (chosen, given, errors): TemplateForm<'_>,
) -> Result<Value, ApiError> {
    let conversation = find(state, viewer, id).await?;
    let before = match p.before.as_str() {
        "" => None,
        b => Some(
            b.parse()
                .map_err(|_| ApiError::invalid("before", "is not a message id"))?,
        ),
    };
    let messages = state
        .store
        .messages(conversation.id, MESSAGES, before)
        .await?;
    // A full page may have earlier messages before it.
    let earlier = (messages.len() == MESSAGES as usize)
        .then(|| messages.first().map(|m| m.id.to_string()))
        .flatten();
    let escalations = state.store.escalations(conversation.id).await?;
    let thread = with_notes(state, &conversation, &messages, earlier.is_some(), before).await?;
    let can_act = Roles::INBOX.allows(viewer.caller.role);
    // Who the conversation may be given to: the workspace's people who answer the inbox.
    let everyone = state.store.members(conversation.workspace_id).await?;
    let members: Vec<_> = everyone
        .iter()
        .filter(|m| Roles::INBOX.allows(m.role))
        .cloned()
        .collect();
    // Who a note may mention, offered as `@` is typed: the others who read the inbox, each by
    // the word that names them alone.
    let mentionable: Vec<Value> = members
        .iter()
        .filter(|m| m.user.id != viewer.user.id)
        .filter_map(|m| {
            inbox::notes::handle(m, &everyone)
                .map(|handle| context! { handle, name => m.user.name })
        })
        .collect();
    let assignee = match conversation.assignee_id {
        Some(user) => match members.iter().find(|m| m.user.id == user) {
            Some(m) => Some(m.user.name.clone()),
            None => state.store.user(user).await?.map(|u| u.name),
        },
        None => None,
    };
    let people: Vec<Value> = members
        .iter()
        .map(|m| context! { id => m.user.id.to_string(), name => m.user.name })
        .collect();
    // Who wrote each reply from the inbox, by name (people since removed are looked up).
    let mut names: std::collections::BTreeMap<String, String> = members
        .iter()
        .map(|m| (m.user.id.to_string(), m.user.name.clone()))
        .collect();
    for author in messages.iter().filter_map(|m| m.sent_by) {
        if let std::collections::btree_map::Entry::Vacant(name) = names.entry(author.to_string()) {
            if let Some(user) = state.store.user(author).await? {
                name.insert(user.name);
            }
        }
    }
    // A person answering is not an escalation to raise: it is said as who is answering.
    let open: Vec<_> = escalations
        .iter()
        .filter(|e| e.closed_at.is_none())
        .collect();
    let taken_over = !open.is_empty()
        && open
            .iter()
            .all(|e| e.reason == crate::domain::EscalationReason::HumanTakeover);
    let labels = state.store.conversation_labels(conversation.id).await?;
    // Canned responses as they read in this conversation, for this person.
    let values = inbox::canned::Values::of(&conversation, Some(&viewer.user.name));
    let canned: Vec<Value> = state
        .store
        .canned_responses(conversation.workspace_id)
        .await?
        .into_iter()
        .map(|c| {
            context! {
                short_code => c.short_code,
                text => inbox::canned::render(&c.content, &values),
            }
        })
        .collect();
    // Beside the thread on a wide screen: the list, unfiltered; and who the customer is.
    let list = inbox_list(state, viewer, &InboxParams::default(), false).await?;
    let contact = crate::inbox::contacts::find(
        state.store.as_ref(),
        &viewer.caller,
        conversation.contact.id,
    )
    .await?;
    let panel = super::contacts::panel(
        state,
        viewer,
        contact,
        &format!("/inbox/{}", conversation.id),
    )
    .await?;
    // WhatsApp's 24-hour window, and the template form once it has closed.
    let window =
        super::outbound::window_values(state, &conversation, chosen, given, errors).await?;
    // The labels that may still be put on it.
    let unused: Vec<crate::domain::Label> = state
        .store
        .labels(conversation.workspace_id)
        .await?
        .into_iter()
        .filter(|l| !labels.iter().any(|on| on.id == l.id))
        .collect();
    // FAQ entries proposed from this conversation's replies, by reply.
    let faq: std::collections::BTreeMap<String, Value> = state
        .store
        .faq_proposals(
            conversation.workspace_id,
            crate::store::FaqFilter {
                conversation: Some(conversation.id),
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .filter_map(|f| {
            let reply = f.answer_message_id?;
            Some((
                reply.to_string(),
                context! { id => f.id.to_string(), status => f.status.as_str() },
            ))
        })
        .collect();
    Ok(context! {
        page => "inbox",
        faq,
        conversation => Value::from_serialize(&conversation),
        messages => Value::from_serialize(&thread),
        escalations => Value::from_serialize(&escalations),
        assignee,
        assignee_id => conversation.assignee_id.map(|u| u.to_string()),
        earlier,
        paged => before.is_some(),
        people,
        names,
        taken_over,
        can_act,
        conversation_labels => Value::from_serialize(&labels),
        unused_labels => Value::from_serialize(&unused),
        canned,
        mentionable,
        // A fresh key per rendered form: sending twice (a double click, a retry) sends once.
        reply_key => people::random_token(),
        ..minijinja::value::merge_maps([panel, list, window])
    })
}

/// The thread as shown: `messages` with the conversation's private notes of the same stretch of
/// time among them, in the order written. A note (`type: note`) carries its text cut into
/// plain parts and the mentions of the people it notified (`segments`). `earlier`: the page
/// has messages before it (notes before its first message belong there); `before`: the page
/// ends before that message.
async fn with_notes(
    state: &AppState,
    conversation: &crate::domain::Conversation,
    messages: &[crate::domain::Message],
    earlier: bool,
    before: Option<crate::domain::MessageId>,
) -> Result<Vec<serde_json::Value>, ApiError> {
    let from = earlier
        .then(|| messages.first().map(|m| m.created_at))
        .flatten();
    let until = match before {
        Some(id) => state.store.message(id).await?.map(|m| m.created_at),
        None => None,
    };
    let notes: Vec<_> = state
        .store
        .notes(
            conversation.workspace_id,
            conversation.id,
            inbox::notes::SHOWN,
        )
        .await?
        .into_iter()
        .filter(|n| {
            from.is_none_or(|t| n.created_at >= t) && until.is_none_or(|t| n.created_at < t)
        })
        .collect();
    let members = if notes.is_empty() {
        Vec::new()
    } else {
        state.store.members(conversation.workspace_id).await?
    };
    let mut thread = Vec::with_capacity(messages.len() + notes.len());
    let mut notes = notes.into_iter().peekable();
    for m in messages {
        while let Some(note) = notes.next_if(|n| n.created_at < m.created_at) {
            thread.push(note_item(note, &members));
        }
        thread.push(serde_json::to_value(m).unwrap_or_default());
    }
    thread.extend(notes.map(|n| note_item(n, &members)));
    Ok(thread)
}

fn note_item(note: crate::domain::Note, members: &[crate::store::Member]) -> serde_json::Value {
    let segments: Vec<_> = inbox::notes::segments(&note.text, members, &note.mentions)
        .into_iter()
        .map(|(text, mention)| serde_json::json!({ "text": text, "mention": mention }))
        .collect();
    let mut item = serde_json::to_value(&note).unwrap_or_default();
    item["segments"] = segments.into();
    item
}

/// A form acting on a conversation: signed in, CSRF checked, allowed to act on the inbox.
/// Back to `conversation` once the action is `done`; its error page when it failed.
fn back_to<T, E: Into<ApiError>>(
    viewer: &Viewer,
    conversation: &crate::domain::Conversation,
    done: Result<T, E>,
) -> Response {
    match done {
        Ok(_) => Redirect::to(&format!("/inbox/{}", conversation.id)).into_response(),
        Err(e) => error_page(Some(viewer), e.into()),
    }
}

async fn act_on(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    id: &str,
) -> Result<(Viewer, crate::domain::Conversation), Response> {
    let viewer = acting(state, headers, form).await?;
    if !Roles::INBOX.allows(viewer.caller.role) {
        let e = ApiError::Forbidden(format!("the {} role may not do this", viewer.caller.role));
        return Err(error_page(Some(&viewer), e));
    }
    match find(state, &viewer, id).await {
        Ok(conversation) => Ok((viewer, conversation)),
        Err(e) => Err(error_page(Some(&viewer), e)),
    }
}

pub(super) async fn reply(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Response {
    // A reply with a file comes as multipart; a text reply as a plain form.
    let multipart = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    let (form, file) = if multipart {
        match crate::http::api::conversations::multipart_reply(&state, request).await {
            Ok(parts) => parts,
            Err(e) => return error_page(None, e),
        }
    } else {
        match <Form<HashMap<String, String>> as axum::extract::FromRequest<AppState>>::from_request(
            request, &state,
        )
        .await
        {
            Ok(Form(form)) => (form, None),
            Err(e) => return error_page(None, ApiError::BadRequest(e.body_text())),
        }
    };
    let (viewer, conversation) = match act_on(&state, &headers, &form, &id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let text = form.get("text").map(String::as_str).unwrap_or("").trim();
    let key = form
        .get("key")
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .map(|k| format!("console:{k}"));
    let sent = match file {
        Some(file) => {
            inbox::reply_with_file(
                state.store.as_ref(),
                &state.channels,
                &viewer.caller,
                &conversation,
                file,
                Some(text),
                key.as_deref(),
            )
            .await
        }
        None => {
            inbox::reply(
                state.store.as_ref(),
                &state.channels,
                &viewer.caller,
                &conversation,
                text,
                None,
                key.as_deref(),
            )
            .await
        }
    };
    back_to(&viewer, &conversation, sent)
}

/// A private note from the conversation's note form.
pub(super) async fn add_note(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (viewer, conversation) = match act_on(&state, &headers, &form, &id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let text = form.get("text").map(String::as_str).unwrap_or("");
    match inbox::notes::add(state.store.as_ref(), &viewer.caller, &conversation, text).await {
        Ok(note) => {
            Redirect::to(&format!("/inbox/{}#n-{}", conversation.id, note.id)).into_response()
        }
        Err(e) => error_page(Some(&viewer), e.into()),
    }
}

/// One click on a person's reply: an FAQ entry proposed from it (the customer's words before
/// it as the question). Anyone who reads the conversation may propose; an author goes on to
/// the proposal on the Knowledge gaps page to edit and approve it, others come back here.
pub(super) async fn propose_faq(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let viewer = match acting(&state, &headers, &form).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let conversation = match find(&state, &viewer, &id).await {
        Ok(c) => c,
        Err(e) => return error_page(Some(&viewer), e),
    };
    let Some(message) = form.get("message").and_then(|m| m.parse().ok()) else {
        return error_page(
            Some(&viewer),
            ApiError::invalid("message", "choose a person's reply"),
        );
    };
    match state.store.message(message).await {
        Ok(Some(m)) if m.conversation_id == conversation.id => {}
        Ok(_) => {
            return error_page(
                Some(&viewer),
                ApiError::NotFound(format!("no message {message} in this conversation")),
            )
        }
        Err(e) => return error_page(Some(&viewer), e.into()),
    }
    let body = crate::http::api::faq::NewProposal {
        message_id: Some(message),
        ..Default::default()
    };
    match crate::http::api::faq::make_proposal(&state, &viewer.caller, body).await {
        Ok((proposal, _)) if Roles::AUTHORS.allows(viewer.caller.role) => {
            Redirect::to(&format!("/knowledge-gaps#p-{}", proposal.id)).into_response()
        }
        Ok(_) => Redirect::to(&format!("/inbox/{}#m-{message}", conversation.id)).into_response(),
        Err(e) => error_page(Some(&viewer), e),
    }
}

pub(super) async fn assign(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (viewer, conversation) = match act_on(&state, &headers, &form, &id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    // The form names a person (empty: nobody); without the field, the viewer takes it.
    let assignee = match form.get("user").map(|u| u.trim()) {
        None => Some(viewer.user.id),
        Some("") => None,
        Some(id) => match id.parse::<UserId>() {
            Ok(user) => Some(user),
            Err(_) => {
                let e = ApiError::invalid("user", "must be a person of this workspace");
                return error_page(Some(&viewer), e);
            }
        },
    };
    back_to(
        &viewer,
        &conversation,
        inbox::assign(state.store.as_ref(), &conversation, assignee).await,
    )
}

async fn close(
    state: AppState,
    headers: HeaderMap,
    id: String,
    form: HashMap<String, String>,
    resolution: Resolution,
) -> Response {
    let (viewer, conversation) = match act_on(&state, &headers, &form, &id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let closed = inbox::close(
        state.store.as_ref(),
        &state.channels,
        &viewer.caller,
        &conversation,
        resolution,
    )
    .await;
    back_to(&viewer, &conversation, closed)
}

pub(super) async fn resolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    close(state, headers, id, form, Resolution::Resolved).await
}

pub(super) async fn hand_back(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    close(state, headers, id, form, Resolution::HandedBack).await
}

/// Puts a label on the conversation (`add`) or takes one off, from the conversation's forms.
async fn label(
    state: AppState,
    headers: HeaderMap,
    id: String,
    form: HashMap<String, String>,
    on: bool,
) -> Response {
    let (viewer, conversation) = match act_on(&state, &headers, &form, &id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let name = form.get("label").map(String::as_str).unwrap_or("");
    back_to(
        &viewer,
        &conversation,
        inbox::labels::set(state.store.as_ref(), &conversation, name, on).await,
    )
}

pub(super) async fn add_label(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    label(state, headers, id, form, true).await
}

pub(super) async fn remove_label(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    label(state, headers, id, form, false).await
}

/// When the snooze form's fields say to wake the conversation: a `preset` (`1h`, `tomorrow`,
/// `next_week`) or a wall-clock time `at` (`2026-11-27T15:00`), each read in the person's
/// `zone` (which the page's script fills in; UTC without it).
fn snooze_end(
    form: &HashMap<String, String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, crate::domain::FieldError> {
    use inbox::snooze as s;
    let zone = s::zone(form.get("zone").map(String::as_str))?;
    match form.get("preset").map(|p| p.trim()) {
        Some(preset) if !preset.is_empty() => Ok(s::preset_until(preset.parse()?, zone, now)),
        _ => {
            let at = form.get("at").map(|a| a.trim()).unwrap_or("");
            let time = chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S"))
                .map_err(|_| crate::domain::FieldError::new("at", "choose a date and a time"))?;
            Ok(s::local(zone, time))
        }
    }
}

pub(super) async fn snooze(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (viewer, conversation) = match act_on(&state, &headers, &form, &id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let until = match snooze_end(&form, chrono::Utc::now()) {
        Ok(until) => until,
        Err(e) => return error_page(Some(&viewer), ApiError::Invalid(vec![e])),
    };
    let limits = state.settings.workers.limits();
    back_to(
        &viewer,
        &conversation,
        inbox::snooze::snooze(state.store.as_ref(), &conversation, until, limits).await,
    )
}

pub(super) async fn wake(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (viewer, conversation) = match act_on(&state, &headers, &form, &id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let limits = state.settings.workers.limits();
    back_to(
        &viewer,
        &conversation,
        inbox::snooze::wake(state.store.as_ref(), &conversation, limits).await,
    )
}

/// A template sent from the form that takes the reply box's place once the window closed.
pub(super) async fn send_template(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form: HashMap<String, String> = pairs.iter().cloned().collect();
    let (viewer, conversation) = match act_on(&state, &headers, &form, &id).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let sent = async {
        let send = super::outbound::template_send(&form, &pairs)?;
        inbox::send_template(
            state.store.as_ref(),
            &state.channels,
            &viewer.caller,
            &conversation,
            &send,
            super::outbound::key(&form).as_deref(),
        )
        .await?;
        Ok::<_, ApiError>(())
    };
    match sent.await {
        Ok(()) => Redirect::to(&format!("/inbox/{}", conversation.id)).into_response(),
        // The conversation's page again, the form holding what was given and why it failed.
        Err(ApiError::Invalid(fields)) => {
            let chosen = form.get("template").cloned().unwrap_or_default();
            let given = super::outbound::parameters(&pairs);
            let p = ThreadParams::default();
            match conversation_view(&state, &viewer, &id, &p, (&chosen, &given, &fields)).await {
                Ok(page) => render(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "conversation.html",
                    Some(&viewer),
                    page,
                ),
                Err(e) => error_page(Some(&viewer), e),
            }
        }
        Err(e) => error_page(Some(&viewer), e),
    }
}

#[cfg(test)]
mod tests {
    use super::snooze_end;
    use std::collections::HashMap;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_snooze_form_is_read_in_the_persons_zone() {
        let now: chrono::DateTime<chrono::Utc> = "2026-11-25T23:30:00Z".parse().unwrap();
        let at = |pairs: &[(&str, &str)]| snooze_end(&form(pairs), now).map(|t| t.to_rfc3339());
        assert_eq!(
            at(&[("preset", "tomorrow"), ("zone", "America/Sao_Paulo")]).unwrap(),
            "2026-11-26T12:00:00+00:00"
        );
        assert_eq!(
            at(&[("preset", "tomorrow"), ("zone", "")]).unwrap(),
            "2026-11-26T09:00:00+00:00"
        );
        assert_eq!(
            at(&[("at", "2026-11-27T15:00"), ("zone", "America/Sao_Paulo")]).unwrap(),
            "2026-11-27T18:00:00+00:00"
        );
        assert_eq!(at(&[("at", "")]).unwrap_err().field, "at");
        assert_eq!(at(&[("preset", "someday")]).unwrap_err().field, "preset");
        assert_eq!(
            at(&[("preset", "1h"), ("zone", "Nowhere/Else")])
                .unwrap_err()
                .field,
            "zone"
        );
    }
}
