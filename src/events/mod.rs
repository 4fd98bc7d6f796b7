//! Live events: the event log (written by the store with each change) read out to streams. The
//! [`EventHub`] of each process reads new events from the log when woken (by this process's
//! commits, or on Postgres by `palaver_events` notifications from any replica) and passes each
//! to every subscriber through one bounded broadcast buffer. A subscriber starts from the log
//! (everything after its `Last-Event-ID`) and then follows the buffer; a gap sends it back to
//! the log, and one that falls a whole buffer behind is cut off, so a slow client never holds
//! more than the shared buffer. The log is the truth; the buffer only saves reading it again
//! per client.

pub mod hooks;
pub mod presence;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::{broadcast, watch};

use crate::config::EventSettings;
use crate::domain::{ChannelId, ConversationId, Event, EventKind, MemberRole, UserId, WorkspaceId};
use crate::store::{Store, StoreError};

/// Events read from the log per query.
const PAGE: u32 = 500;

/// An event with its JSON, serialized once for every stream.
#[derive(Debug)]
pub struct LiveEvent {
    /// The event.
    pub event: Event,
    /// It as JSON.
    pub json: String,
}

impl From<Event> for LiveEvent {
    fn from(event: Event) -> Self {
        let json = serde_json::to_string(&event).unwrap_or_default();
        Self { event, json }
    }
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these kinds (all when empty).
    pub kinds: HashSet<EventKind>,
    /// Only about this conversation.
    pub conversation: Option<ConversationId>,
    /// Only about this channel.
    pub channel: Option<ChannelId>,
}

impl EventFilter {
    /// Whether `event` passes the filter and `role` may see it, as person `user` (none for an
    /// API key): an event addressed to one person (a mention) is for their streams only.
    pub fn admits(&self, event: &Event, role: MemberRole, user: Option<UserId>) -> bool {
        event.kind.visible_to(role)
            && event.addressee().is_none_or(|to| Some(to) == user)
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self
                .conversation
                .is_none_or(|c| event.conversation_id == Some(c))
            && self.channel.is_none_or(|c| event.channel_id == Some(c))
    }
}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The subscriber fell a whole buffer behind; it resumes from the log with its last id.
    #[error("the stream fell behind and was closed; reconnect with Last-Event-ID")]
    Lagged,
    /// Reading the log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A page of events for a client that polls.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventPage {
    /// The events after the cursor that pass the filter, oldest first.
    pub events: Vec<Event>,
    /// The cursor for the next poll: the last event looked at (it may have been filtered out).
    pub next: i64,
}

/// Reads one page of `ws`'s events after `after` for `role` (as person `user`), filtered.
pub async fn poll(
    store: &dyn Store,
    ws: WorkspaceId,
    role: MemberRole,
    user: Option<UserId>,
    filter: &EventFilter,
    after: i64,
    limit: u32,
) -> Result<EventPage, StoreError> {
    let page = store.events_after(ws, after, limit).await?;
    let next = page.last().map_or(after, |e| e.id);
    Ok(EventPage {
        events: page
            .into_iter()
            .filter(|e| filter.admits(e, role, user))
            .collect(),
        next,
    })
}

/// The live side of the event log in one process.
pub struct EventHub {
    store: Arc<dyn Store>,
    sender: broadcast::Sender<Arc<LiveEvent>>,
    settings: EventSettings,
    /// Turns true when the server shuts down: every stream ends.
    closed: watch::Sender<bool>,
    /// Moves on each time the hub has looked at new events, for followers that only need
    /// waking (outgoing webhooks read the log themselves).
    passed: watch::Sender<u64>,
    /// Who has which conversation open.
    presence: Arc<presence::Presence>,
    /// Whether the hub listens for the other replicas' notifications (on Postgres).
    notified: AtomicBool,
    /// Whether that listener is connected and listening now.
    listening: Arc<AtomicBool>,
}

impl EventHub {
    /// A hub over `store`'s event log.
    pub fn new(store: Arc<dyn Store>, settings: EventSettings) -> Self {
        let (sender, _) = broadcast::channel(settings.buffer.max(1));
        Self {
            presence: Arc::new(presence::Presence::new(store.clone())),
            store,
            sender,
            settings,
            closed: watch::channel(false).0,
            passed: watch::channel(0).0,
            notified: AtomicBool::new(false),
            listening: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether this replica hears the other replicas' notifications now (their events wake
    /// it at once, their people's presence reaches it); `None` where there are no other
    /// replicas to hear (SQLite). A replica that does not hear them still serves: its streams
    /// catch up within half a second, and presence within [`presence::REMIND_SECS`].
    pub fn listening(&self) -> Option<bool> {
        self.notified
            .load(Ordering::Relaxed)
            .then(|| self.listening.load(Ordering::Relaxed))
    }

    /// Ends every stream (the server is shutting down).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Who has which conversation open (kept by this hub, and across replicas on Postgres).
    pub fn presence(&self) -> &presence::Presence {
        &self.presence
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &EventSettings {
        &self.settings
    }

    /// How many streams (and other followers) are following the hub now.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Changes each time the hub has looked at new events of any workspace, for a follower
    /// that only needs waking (outgoing webhooks read the log themselves).
    pub fn wake_up(&self) -> watch::Receiver<u64> {
        self.passed.subscribe()
    }

    /// Reads new events when woken and passes them on; prunes events past their retention.
    /// `database_url` is given on Postgres, whose notifications from other replicas wake it
    /// too. Runs until `stop` turns true.
    pub async fn run(
        self: Arc<Self>,
        database_url: Option<String>,
        mut stop: watch::Receiver<bool>,
    ) {
        let signal = self.store.event_signal();
        let mut last: HashMap<WorkspaceId, i64> = match self.store.last_event_ids().await {
            Ok(ids) => ids.into_iter().collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event log; live events are off");
                return;
            }
        };
        self.notified
            .store(database_url.is_some(), Ordering::Relaxed);
        let listener = database_url.map(|url| {
            tokio::spawn(listen(
                url,
                signal.clone(),
                self.presence.clone(),
                self.listening.clone(),
            ))
        });
        // On Postgres a notification can be lost while the listener reconnects: look at every
        // workspace's counter now and then, so nothing waits longer than that.
        let mut sweep = tokio::time::interval(match listener {
            Some(_) => Duration::from_millis(500),
            None => Duration::from_secs(30),
        });
        let mut prune = tokio::time::interval(Duration::from_secs(600));
        // Presence ends by itself: expired heartbeats are looked for every second or two.
        let mut expire = tokio::time::interval(Duration::from_millis(1500));
        loop {
            let woken = tokio::select! {
                _ = expire.tick() => {
                    self.presence.sweep();
                    continue;
                }
                woken = signal.changed() => woken,
                _ = sweep.tick() => match self.store.last_event_ids().await {
                    Ok(ids) => ids
                        .into_iter()
                        .filter(|(ws, seq)| last.get(ws).copied().unwrap_or(0) < *seq)
                        .map(|(ws, _)| ws)
                        .collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the event counters");
                        HashSet::new()
                    }
                },
                _ = prune.tick() => {
                    self.prune().await;
                    continue;
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
            };
            if woken.is_empty() {
                continue;
            }
            for ws in woken {
                let cursor = last.entry(ws).or_insert(0);
                if let Err(e) = self.pass_on(ws, cursor).await {
                    tracing::warn!(error = %e, workspace = %ws, "cannot read new events");
                }
            }
            self.passed.send_modify(|n| *n = n.wrapping_add(1));
        }
        if let Some(listener) = listener {
            listener.abort();
        }
    }

    /// Passes on `ws`'s events after `cursor`, moving it.
    async fn pass_on(&self, ws: WorkspaceId, cursor: &mut i64) -> Result<(), StoreError> {
        if self.sender.receiver_count() == 0 {
            // Nobody listens: the cursor moves past the log's end without reading the events.
            // The end is read before looking again: a subscriber that comes after that look
            // reads the end itself once subscribed, so it expects nothing up to here.
            let end = self.store.last_event_id(ws).await?;
            if self.sender.receiver_count() == 0 {
                *cursor = (*cursor).max(end);
                return Ok(());
            }
        }
        loop {
            let page = self.store.events_after(ws, *cursor, PAGE).await?;
            let full = page.len() == PAGE as usize;
            for event in page {
                *cursor = event.id;
                // No subscriber is not an error: the log keeps the event.
                let _ = self.sender.send(Arc::new(event.into()));
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn prune(&self) {
        let before =
            chrono::Utc::now() - chrono::Duration::hours(self.settings.retention_hours as i64);
        match self.store.prune_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "pruned events past their retention"),
            Err(e) => tracing::warn!(error = %e, "cannot prune old events"),
        }
    }

    /// The events of `ws` that `role` (as person `user`) may see and `filter` admits: those
    /// after `after` from the log (all of them, in order), then live ones as they come. Without
    /// `after`, only events from now on.
    pub async fn subscribe(
        &self,
        ws: WorkspaceId,
        role: MemberRole,
        user: Option<UserId>,
        filter: EventFilter,
        after: Option<i64>,
    ) -> Result<impl Stream<Item = Result<Arc<LiveEvent>, EventsError>> + Send + 'static, StoreError>
    {
        // Subscribe before reading the counter: an event committed in between is then in the
        // buffer, and one already counted is skipped there.
        let receiver = self.sender.subscribe();
        let cursor = match after {
            Some(after) => after,
            None => self.store.last_event_id(ws).await?,
        };
        let state = Subscriber {
            store: self.store.clone(),
            receiver,
            ws,
            role,
            user,
            filter,
            cursor,
            from_log: after.is_some(),
            ready: VecDeque::new(),
            ended: false,
        };
        let mut closed = self.closed.subscribe();
        let stream = futures::stream::unfold(state, |mut s| async move {
            let next = s.next().await?;
            Some((next, s))
        });
        Ok(futures::StreamExt::take_until(stream, async move {
            let _ = closed.wait_for(|c| *c).await;
        }))
    }
}

/// One subscriber's position.
struct Subscriber {
    store: Arc<dyn Store>,
    receiver: broadcast::Receiver<Arc<LiveEvent>>,
    ws: WorkspaceId,
    role: MemberRole,
    user: Option<UserId>,
    filter: EventFilter,
    /// The last event looked at.
    cursor: i64,
    /// Reading from the log until it has nothing newer.
    from_log: bool,
    /// Events read and admitted, not yet given out.
    ready: VecDeque<Arc<LiveEvent>>,
    ended: bool,
}

impl Subscriber {
    async fn next(&mut self) -> Option<Result<Arc<LiveEvent>, EventsError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                return None;
            }
            if self.from_log {
                let page = match self.store.events_after(self.ws, self.cursor, PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        self.ended = true;
                        return Some(Err(e.into()));
                    }
                };
                self.from_log = page.len() == PAGE as usize;
                for event in page {
                    self.take(Arc::new(event.into()));
                }
                continue;
            }
            match self.receiver.recv().await {
                Ok(live) if live.event.workspace_id != self.ws || live.event.id <= self.cursor => {}
                // Something between the cursor and this event has not come through the
                // buffer (this hub started after it was written): the log has it.
                Ok(live) if live.event.id > self.cursor + 1 => self.from_log = true,
                Ok(event) => self.take(event),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.ended = true;
                    return Some(Err(EventsError::Lagged));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn take(&mut self, live: Arc<LiveEvent>) {
        self.cursor = live.event.id;
        if self.filter.admits(&live.event, self.role, self.user) {
            self.ready.push_back(live);
        }
    }
}

/// Wakes `signal` for each `palaver_events` notification on Postgres (its payload is
/// `workspace:seq`) and hands each `palaver_presence` one (another replica's presence change)
/// to `presence`, reconnecting when the connection drops; `listening` says when it listens.
async fn listen(
    url: String,
    signal: Arc<crate::store::EventSignal>,
    presence: Arc<presence::Presence>,
    listening: Arc<AtomicBool>,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut listener) => {
                if let Err(e) = listener
                    .listen_all(["palaver_events", "palaver_presence"])
                    .await
                {
                    tracing::warn!(error = %e, "cannot listen for events");
                } else {
                    delay = Duration::from_millis(200);
                    listening.store(true, Ordering::Relaxed);
                    loop {
                        match listener.recv().await {
                            Ok(n) if n.channel() == "palaver_presence" => {
                                presence.receive(n.payload());
                            }
                            Ok(n) => {
                                let ws = n.payload().split(':').next().unwrap_or_default();
                                if let Ok(ws) = ws.parse() {
                                    signal.wake(ws);
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "event notifications interrupted");
                                listening.store(false, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect to listen for events"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: EventKind, conversation: Option<ConversationId>) -> Event {
        Event {
            id: 1,
            workspace_id: WorkspaceId::DEFAULT,
            kind,
            conversation_id: conversation,
            channel_id: None,
            at: chrono::Utc::now(),
            data: json!({}),
        }
    }

    #[test]
    fn filters_by_kind_conversation_and_role() {
        let c = ConversationId::new();
        let other = ConversationId::new();
        let all = EventFilter::default();
        let received = event(EventKind::MessageReceived, Some(c));
        let qr = event(EventKind::ChannelState, None);
        let ingested = event(EventKind::DocumentIngested, None);
        let cases = [
            (&all, &received, MemberRole::Agent, true),
            (&all, &qr, MemberRole::Owner, true),
            (&all, &qr, MemberRole::Author, false),
            (&all, &qr, MemberRole::Agent, false),
            (&all, &ingested, MemberRole::Author, true),
            (&all, &ingested, MemberRole::Agent, false),
        ];
        for (filter, event, role, admitted) in cases {
            assert_eq!(
                filter.admits(event, role, None),
                admitted,
                "{:?} as {role:?}",
                event.kind
            );
        }
        let only_status = EventFilter {
            kinds: [EventKind::MessageStatus].into_iter().collect(),
            ..Default::default()
        };
        assert!(!only_status.admits(&received, MemberRole::Owner, None));
        let only_other = EventFilter {
            conversation: Some(other),
            ..Default::default()
        };
        assert!(!only_other.admits(&received, MemberRole::Owner, None));
        let only_mine = EventFilter {
            conversation: Some(c),
            ..Default::default()
        };
        assert!(only_mine.admits(&received, MemberRole::Owner, None));
    }

    #[test]
    fn a_mention_reaches_the_person_mentioned_only() {
        let ana = UserId::new();
        let rui = UserId::new();
        let mut mention = event(EventKind::NoteMentioned, Some(ConversationId::new()));
        mention.data = json!({ "user_id": ana });
        let all = EventFilter::default();
        assert!(all.admits(&mention, MemberRole::Agent, Some(ana)));
        assert!(!all.admits(&mention, MemberRole::Agent, Some(rui)));
        assert!(!all.admits(&mention, MemberRole::Owner, None), "an API key");
        // A mention that names nobody readable is for nobody.
        mention.data = json!({});
        assert!(!all.admits(&mention, MemberRole::Owner, Some(ana)));
        // The note itself is the inbox's, as any conversation event.
        let note = event(EventKind::NoteCreated, Some(ConversationId::new()));
        assert!(all.admits(&note, MemberRole::Author, Some(rui)));
    }
}
