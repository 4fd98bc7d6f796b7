//! Presence: who has a conversation open in the console, and who is typing in it. It is not
//! history, so it is not in the event log: each process keeps it in memory, fed by its people's
//! heartbeats ([`Presence::beat`]) and, on Postgres, by the other replicas' (each change, and a
//! reminder every [`REMIND_SECS`], is a `palaver_presence` notification that every replica's
//! event hub listens for). A person is viewing for [`VIEWING_SECS`] after their last heartbeat
//! and typing for [`TYPING_SECS`] after their last keystroke signal, then it ends by itself;
//! a replica that starts knows everyone again within [`REMIND_SECS`]. Changes go to the event
//! streams that ask for a conversation's presence, never showing a person to themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::domain::{ConversationId, UserId, WorkspaceId};
use crate::store::Store;

/// How long a heartbeat keeps a person shown as viewing.
pub const VIEWING_SECS: i64 = 30;
/// How long a typing signal keeps a person shown as typing.
pub const TYPING_SECS: i64 = 6;
/// How often, at most, a person's unchanged presence is told to the other replicas again.
pub const REMIND_SECS: i64 = 10;
/// Heartbeats of the same kind from one person closer together than this are coalesced.
const COALESCE_MS: i64 = 1000;

/// What a person's heartbeat says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    /// The conversation is open in front of them.
    Viewing,
    /// They are writing in it (a reply or a note).
    Typing,
    /// They closed it or went elsewhere.
    Left,
}

/// One person with a conversation open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Present {
    /// The person.
    pub user_id: UserId,
    /// Their name.
    pub name: String,
    /// Writing now.
    pub typing: bool,
}

/// Who has a conversation open now, after a change.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PresenceChange {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Everyone there, by name.
    pub people: Vec<Present>,
}

impl PresenceChange {
    /// The change as `user` is shown it: everyone but themselves.
    pub fn for_viewer(&self, user: Option<UserId>) -> PresenceChange {
        PresenceChange {
            people: others(&self.people, user),
            ..self.clone()
        }
    }
}

fn others(people: &[Present], user: Option<UserId>) -> Vec<Present> {
    people
        .iter()
        .filter(|p| Some(p.user_id) != user)
        .cloned()
        .collect()
}

/// A heartbeat as replicas tell each other.
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    origin: String,
    workspace_id: WorkspaceId,
    conversation_id: ConversationId,
    user_id: UserId,
    name: String,
    activity: Activity,
}

#[derive(Debug)]
struct Seen {
    name: String,
    /// Viewing until then (unix ms).
    until: i64,
    /// Typing until then (unix ms).
    typing_until: i64,
    /// The last heartbeat taken, and its kind.
    last_beat: (i64, Activity),
    /// When this replica last told the others.
    announced_at: i64,
}

#[derive(Debug, Default)]
struct Room {
    people: HashMap<UserId, Seen>,
    /// What the streams were last told.
    shown: Vec<Present>,
}

impl Room {
    fn now_present(&self, now: i64) -> Vec<Present> {
        let mut people: Vec<Present> = self
            .people
            .iter()
            .filter(|(_, s)| s.until > now)
            .map(|(id, s)| Present {
                user_id: *id,
                name: s.name.clone(),
                typing: s.typing_until > now,
            })
            .collect();
        people.sort_by(|a, b| a.name.cmp(&b.name).then(a.user_id.cmp(&b.user_id)));
        people
    }
}

type Key = (WorkspaceId, ConversationId);

/// This process's view of who has which conversation open.
pub struct Presence {
    store: Arc<dyn Store>,
    /// Tells this replica's announcements apart from the others'.
    origin: String,
    rooms: Mutex<HashMap<Key, Room>>,
    sender: broadcast::Sender<Arc<PresenceChange>>,
}

impl Presence {
    /// Presence over `store` (which carries announcements to the other replicas).
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            origin: uuid::Uuid::now_v7().to_string(),
            rooms: Mutex::new(HashMap::new()),
            sender: broadcast::channel(256).0,
        }
    }

    /// Changes as they happen, for event streams.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<PresenceChange>> {
        self.sender.subscribe()
    }

    /// Who has `conversation` open now, but `user`.
    pub fn present(
        &self,
        ws: WorkspaceId,
        conversation: ConversationId,
        user: Option<UserId>,
    ) -> Vec<Present> {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms
            .get(&(ws, conversation))
            .map(|room| others(&room.now_present(now_ms()), user))
            .unwrap_or_default()
    }

    /// Takes person `user`'s heartbeat for `conversation` of `ws` (checked by the caller to be
    /// theirs to read); tells the streams and the other replicas when it changes what they
    /// show. Returns who else has it open.
    pub async fn beat(
        &self,
        ws: WorkspaceId,
        conversation: ConversationId,
        user: UserId,
        name: &str,
        activity: Activity,
    ) -> Vec<Present> {
        let now = now_ms();
        let (announce, present) = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            let room = rooms.entry((ws, conversation)).or_default();
            let coalesced = room.people.get(&user).is_some_and(|s| {
                s.last_beat.1 == activity && now - s.last_beat.0 < COALESCE_MS && s.until > now
            });
            let mut announce = false;
            if !coalesced {
                let reminded = room
                    .people
                    .get(&user)
                    .is_some_and(|s| now - s.announced_at < REMIND_SECS * 1000);
                apply(room, user, name, activity, now);
                let changed = self.show(ws, conversation, room, now);
                announce = changed || !reminded;
                if let Some(seen) = room.people.get_mut(&user).filter(|_| announce) {
                    seen.announced_at = now;
                }
            }
            let present = others(&room.now_present(now), Some(user));
            if room.people.is_empty() && room.shown.is_empty() {
                rooms.remove(&(ws, conversation));
            }
            (announce, present)
        };
        if announce {
            let told = Announcement {
                origin: self.origin.clone(),
                workspace_id: ws,
                conversation_id: conversation,
                user_id: user,
                name: name.to_string(),
                activity,
            };
            let payload = serde_json::to_string(&told).unwrap_or_default();
            if let Err(e) = self.store.announce_presence(&payload).await {
                tracing::warn!(error = %e, "cannot tell the other replicas about presence");
            }
        }
        present
    }

    /// Takes another replica's announcement (a `palaver_presence` notification's payload).
    pub fn receive(&self, payload: &str) {
        let Ok(told) = serde_json::from_str::<Announcement>(payload) else {
            tracing::warn!("unreadable presence notification");
            return;
        };
        if told.origin == self.origin {
            return;
        }
        let now = now_ms();
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let key = (told.workspace_id, told.conversation_id);
        let room = rooms.entry(key).or_default();
        apply(room, told.user_id, &told.name, told.activity, now);
        // Known from elsewhere: this replica has nothing to remind the others of.
        if let Some(seen) = room.people.get_mut(&told.user_id) {
            seen.announced_at = now;
        }
        self.show(key.0, key.1, room, now);
    }

    /// Ends what expired, telling the streams; drops rooms nobody is in.
    pub fn sweep(&self) {
        let now = now_ms();
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        for ((ws, conversation), room) in rooms.iter_mut() {
            room.people.retain(|_, s| s.until > now);
            self.show(*ws, *conversation, room, now);
        }
        rooms.retain(|_, room| !room.people.is_empty() || !room.shown.is_empty());
    }

    /// Tells the streams what `room` shows now, if that changed; whether it did.
    fn show(
        &self,
        ws: WorkspaceId,
        conversation: ConversationId,
        room: &mut Room,
        now: i64,
    ) -> bool {
        let people = room.now_present(now);
        if people == room.shown {
            return false;
        }
        room.shown = people.clone();
        // Nobody following is not an error: the next heartbeat's answer says it.
        let _ = self.sender.send(Arc::new(PresenceChange {
            workspace_id: ws,
            conversation_id: conversation,
            people,
        }));
        true
    }
}

fn apply(room: &mut Room, user: UserId, name: &str, activity: Activity, now: i64) {
    if activity == Activity::Left {
        room.people.remove(&user);
        return;
    }
    let seen = room.people.entry(user).or_insert_with(|| Seen {
        name: name.to_string(),
        until: 0,
        typing_until: 0,
        last_beat: (0, activity),
        announced_at: 0,
    });
    seen.name = name.to_string();
    seen.until = now + VIEWING_SECS * 1000;
    seen.last_beat = (now, activity);
    if activity == Activity::Typing {
        seen.typing_until = now + TYPING_SECS * 1000;
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room_with(user: UserId, activity: Activity, at: i64) -> Room {
        let mut room = Room::default();
        apply(&mut room, user, "Ana", activity, at);
        room
    }

    #[test]
    fn presence_ends_by_itself_and_typing_sooner() {
        let ana = UserId::new();
        let room = room_with(ana, Activity::Typing, 0);
        let at = |ms: i64| room.now_present(ms);
        assert!(at(1000)[0].typing);
        assert!(!at(TYPING_SECS * 1000)[0].typing, "typing ends first");
        assert_eq!(at(VIEWING_SECS * 1000 - 1).len(), 1);
        assert!(at(VIEWING_SECS * 1000).is_empty(), "viewing ends by itself");
        let mut room = room_with(ana, Activity::Viewing, 0);
        apply(&mut room, ana, "Ana", Activity::Left, 10);
        assert!(room.now_present(11).is_empty(), "leaving ends it at once");
    }

    #[test]
    fn nobody_is_shown_to_themselves() {
        let (ana, rui) = (UserId::new(), UserId::new());
        let mut room = room_with(ana, Activity::Viewing, 0);
        apply(&mut room, rui, "Rui", Activity::Typing, 0);
        let people = room.now_present(1);
        let change = PresenceChange {
            workspace_id: WorkspaceId::DEFAULT,
            conversation_id: ConversationId::new(),
            people,
        };
        let names: Vec<String> = change
            .for_viewer(Some(ana))
            .people
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["Rui"]);
        assert_eq!(change.for_viewer(None).people.len(), 2);
    }
}
