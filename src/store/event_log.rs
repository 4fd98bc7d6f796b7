//! The event log's writing side. Events are written by the store itself, inside the
//! transaction of the change they describe ([`emit`]), so a change and its event are stored
//! together or not at all. Each workspace numbers its events 1, 2, 3... with a counter on its
//! row: taking it locks the row until commit, so events become visible in number order and a
//! reader that resumes after number `n` misses nothing. After a commit the store wakes this
//! process's event hub ([`EventSignal`]); on Postgres a trigger also notifies
//! `palaver_events`, which wakes the hubs of the other replicas.

use std::collections::HashSet;
use std::sync::Mutex;

use super::rows::{db_err, is_postgres, Tx};
use super::StoreError;
use crate::domain::{EventKind, WorkspaceId};

/// Wakes the event hub of this process after a commit that wrote events: which workspaces have
/// new ones.
#[derive(Debug, Default)]
pub struct EventSignal {
    dirty: Mutex<HashSet<WorkspaceId>>,
    notify: tokio::sync::Notify,
}

impl EventSignal {
    /// Workspace `ws` has new events.
    pub fn wake(&self, ws: WorkspaceId) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ws);
        self.notify.notify_one();
    }

    /// Waits until some workspace has new events, and takes the set.
    pub async fn changed(&self) -> HashSet<WorkspaceId> {
        loop {
            let taken = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()));
            if !taken.is_empty() {
                return taken;
            }
            self.notify.notified().await;
        }
    }
}

/// An event to write: what, about which conversation or channel, and its data.
#[derive(Debug)]
pub(super) struct NewEvent<'a> {
    pub kind: EventKind,
    pub conversation: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub data: serde_json::Value,
}

/// Appends an event to workspace `ws`'s log inside `tx`. Call it last in the transaction:
/// the workspace's counter stays locked until commit. Returns the workspace, for
/// [`EventSignal::wake`] after the commit.
pub(super) async fn emit(
    tx: &mut Tx,
    ws: &str,
    event: NewEvent<'_>,
    now: i64,
) -> Result<WorkspaceId, StoreError> {
    // One statement: the event takes the workspace's next number and moves the counter on
    // (on SQLite through the `events_advance_workspace_seq` trigger).
    let sql = if is_postgres(tx) {
        "WITH counter AS (
            UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq
         )
         INSERT INTO events (workspace_id, seq, kind, conversation_id, channel_id, body, created_at)
         SELECT $1, event_seq, $2, $3, $4, $5, $6 FROM counter"
    } else {
        "INSERT INTO events (workspace_id, seq, kind, conversation_id, channel_id, body, created_at)
         SELECT $1, event_seq + 1, $2, $3, $4, $5, $6 FROM workspaces WHERE id = $1"
    };
    let inserted = sqlx::query(sql)
        .bind(ws)
        .bind(event.kind.as_str())
        .bind(event.conversation)
        .bind(event.channel)
        .bind(event.data.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    if inserted.rows_affected() != 1 {
        return Err(StoreError::Corrupt(format!(
            "no workspace {ws} for an event"
        )));
    }
    ws.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad workspace id {ws}")))
}
