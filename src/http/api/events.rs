//! `/events`: the workspace's event log, live. Without `after` it is a Server-Sent Events
//! stream (`id:` the event's number, `event:` its type, `data:` the event as JSON), resumed
//! after `Last-Event-ID` (the header browsers send when they reconnect, or the
//! `last_event_id` parameter) with nothing lost or repeated, and kept open by heartbeats. With
//! `after=N` it answers one page of events as JSON, for clients that poll. Both filter by
//! `type` (comma-separated), `conversation` and `channel`, and show each role only what it may
//! see, and each person only the mentions of themselves. A stream opened with
//! `presence={conversation}` also carries `presence` events (no `id:`: they are not in the log)
//! saying who else has that conversation open or is typing in it.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use super::{Json, Query};
use crate::accounts::{Caller, Roles};
use crate::domain::{ChannelId, ConversationId, EventKind};
use crate::events::presence::PresenceChange;
use crate::events::{EventFilter, EventsError};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};

/// Routes under `/events`: every role, each seeing what it may.
pub fn routes() -> Vec<Route> {
    vec![Route::get("/events", Roles::ANY, events)]
}

/// Filters and position.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventParams {
    /// Event types, comma-separated.
    #[serde(rename = "type")]
    types: Option<String>,
    conversation: Option<ConversationId>,
    channel: Option<ChannelId>,
    /// Poll: the events after this number, as JSON.
    after: Option<i64>,
    /// Poll: page size (1-1000, default 100).
    limit: Option<u32>,
    /// Stream: resume after this number (as the `Last-Event-ID` header does).
    last_event_id: Option<i64>,
    /// Stream: also `presence` events for this conversation (who else has it open, who is
    /// typing), the current state first.
    presence: Option<ConversationId>,
}

fn filter(p: &EventParams) -> Result<EventFilter, ApiError> {
    let mut kinds = std::collections::HashSet::new();
    for name in p.types.iter().flat_map(|t| t.split(',')).map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let kind: EventKind = name.parse().map_err(|_| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::Invalid(vec![crate::domain::FieldError::new(
                "type",
                format!("unknown event type `{name}`; known: {}", known.join(", ")),
            )])
        })?;
        kinds.insert(kind);
    }
    Ok(EventFilter {
        kinds,
        conversation: p.conversation,
        channel: p.channel,
    })
}

fn position(name: &str, value: i64) -> Result<i64, ApiError> {
    if value < 0 {
        return Err(ApiError::invalid(name, "must be 0 or more"));
    }
    Ok(value)
}

#[utoipa::path(
    get,
    path = "/events",
    operation_id = "events",
    tag = "events",
    summary = "Follow the event log",
    description = "A Server-Sent Events stream (`id:` the number, `event:` the type, `data:` the event as JSON), filtered by type, conversation and channel. With `?after=N` it answers one page as JSON instead.",
    params(EventParams, ("Last-Event-ID" = Option<i64>, Header, description = "Resume the stream after this event")),
    responses((status = 200, description = "`text/event-stream` of events, or with `after` a page of them", body = crate::events::EventPage))
)]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(p): Query<EventParams>,
) -> Result<Response, ApiError> {
    let filter = filter(&p)?;
    if let Some(after) = p.after {
        let limit = p.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
        }
        let page = crate::events::poll(
            state.store.as_ref(),
            caller.workspace,
            caller.role,
            caller.actor.user(),
            &filter,
            position("after", after)?,
            limit,
        )
        .await?;
        return Ok(Json(page).into_response());
    }
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::invalid("Last-Event-ID", "must be an event number"))?,
        ),
        None => p.last_event_id,
    };
    let resume = resume.map(|r| position("Last-Event-ID", r)).transpose()?;
    let watched = match p.presence {
        Some(id) => Some(super::find_conversation(&state, &caller, id).await?.id),
        None => None,
    };
    let me = caller.actor.user();
    let stream = state
        .events
        .subscribe(caller.workspace, caller.role, me, filter, resume)
        .await?;
    // Presence, when asked for: who is there now, then each change, never the caller.
    let presence = match watched {
        Some(conversation) => {
            let hub = state.events.clone();
            let ws = caller.workspace;
            let now = PresenceChange {
                workspace_id: ws,
                conversation_id: conversation,
                people: hub.presence().present(ws, conversation, me),
            };
            // A stream that falls behind skips changes: the next one says everything again.
            let changes = futures::stream::unfold(hub.presence().subscribe(), |mut r| async move {
                loop {
                    match r.recv().await {
                        Ok(change) => return Some((change, r)),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            })
            .filter_map(move |change| {
                let ours = (change.workspace_id == ws && change.conversation_id == conversation)
                    .then(|| change.for_viewer(me));
                futures::future::ready(ours)
            });
            futures::stream::once(futures::future::ready(now))
                .chain(changes)
                .map(Step::Presence)
                .boxed()
        }
        None => futures::stream::empty().boxed(),
    };
    let heartbeat = Duration::from_secs(state.events.settings().heartbeat_secs);
    // The credentials are asked again before every event and at every heartbeat: a revoked
    // key, an ended session, a removed member or a changed role closes the stream. The stream
    // ends when the events do (a lagging client, shutdown), whatever the ticks.
    let ticks = futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(heartbeat).await;
        Some((Step::Tick, ()))
    });
    let events = stream
        .map(Step::Event)
        .chain(futures::stream::once(futures::future::ready(Step::End)));
    let events = futures::stream::select(events, presence)
        .take_while(|step| futures::future::ready(!matches!(step, Step::End)))
        .chain(futures::stream::once(futures::future::ready(Step::End)));
    let stream = futures::stream::select(events, ticks)
        .then(move |step| {
            let (state, headers) = (state.clone(), headers.clone());
            async move {
                let valid = matches!(step, Step::End)
                    || crate::http::auth::still_valid(&state, &headers, &caller).await;
                (valid, step)
            }
        })
        .scan(false, |ended, (valid, step)| {
            let out = match step {
                _ if *ended => None,
                Step::End => None,
                _ if !valid => {
                    *ended = true;
                    Some(Some(closed("the credentials no longer allow this stream")))
                }
                Step::Tick => Some(None),
                Step::Presence(change) => Some(Some(
                    SseEvent::default()
                        .event("presence")
                        .data(serde_json::to_string(&change).unwrap_or_default()),
                )),
                Step::Event(Ok(live)) => Some(Some(
                    SseEvent::default()
                        .id(live.event.id.to_string())
                        .event(live.event.kind.as_str())
                        .data(&live.json),
                )),
                Step::Event(Err(e @ EventsError::Lagged))
                | Step::Event(Err(e @ EventsError::Store(_))) => Some(Some(closed(&e.to_string()))),
            };
            futures::future::ready(out)
        })
        .filter_map(|event| futures::future::ready(event.map(Ok::<_, Infallible>)));
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(heartbeat))
        .into_response())
}

/// The last event of a stream that ends, with why.
fn closed(reason: &str) -> SseEvent {
    SseEvent::default()
        .event("closed")
        .data(serde_json::json!({ "reason": reason }).to_string())
}

/// What the stream of a subscription is made of: its events, a tick to ask the credentials
/// again, and its end.
enum Step<E> {
    Event(E),
    Presence(PresenceChange),
    Tick,
    End,
}
