//! [`EventStore`] on SQL: the event log. Events are written by the store itself, inside the
//! transaction of the change they describe ([`SqlStore::emit_in`]), so a change and its event
//! are stored together or not at all. Each workspace numbers its events 1, 2, 3... with a
//! counter on its row: taking it locks the row until commit, so events become visible in
//! number order and a reader that resumes after number `n` misses nothing. After a commit the
//! store wakes this process's event hub ([`EventSignal`]); on Postgres a trigger also notifies
//! `palaver_events`, which wakes the hubs of the other replicas.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::sql::{db_err, get, opt_id, parse_id, time, SqlStore};
use super::StoreError;
use crate::domain::{to_millis, Event, EventKind, WorkspaceId};

type Tx = Transaction<'static, Any>;

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

/// The event log.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Up to `limit` events of `ws` after number `after`, oldest first.
    async fn events_after(
        &self,
        ws: WorkspaceId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;
    /// The number of the workspace's latest event (0 before the first).
    async fn last_event_id(&self, ws: WorkspaceId) -> Result<i64, StoreError>;
    /// Every workspace's latest event number.
    async fn last_event_ids(&self) -> Result<Vec<(WorkspaceId, i64)>, StoreError>;
    /// Deletes events older than `before`, and the outgoing deliveries of that age that got
    /// through; returns how many events.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// What wakes this process's event hub.
    fn event_signal(&self) -> std::sync::Arc<EventSignal>;
}

fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
    let body: String = get(row, "body")?;
    Ok(Event {
        id: get(row, "seq")?,
        workspace_id: parse_id(row, "workspace_id")?,
        kind: get::<String>(row, "kind")?
            .parse()
            .map_err(StoreError::Corrupt)?,
        conversation_id: opt_id(row, "conversation_id")?,
        channel_id: opt_id(row, "channel_id")?,
        at: time(row, "created_at")?,
        data: serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?,
    })
}

/// An event to write: what, about which conversation or channel, and its data.
#[derive(Debug)]
pub(super) struct NewEvent<'a> {
    pub kind: EventKind,
    pub conversation: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub data: serde_json::Value,
}

impl SqlStore {
    /// Appends an event to workspace `ws`'s log inside `tx`. Call it last in the transaction:
    /// the workspace's counter stays locked until commit. Returns the workspace, for
    /// [`EventSignal::wake`] after the commit.
    pub(super) async fn emit_in(
        tx: &mut Tx,
        ws: &str,
        event: NewEvent<'_>,
        now: i64,
    ) -> Result<WorkspaceId, StoreError> {
        // One statement: the event takes the workspace's next number and moves the counter on
        // (on SQLite through the `events_advance_workspace_seq` trigger).
        let sql = if super::conversations::is_postgres(tx) {
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

    /// Wakes this process's event hub for each workspace that got events.
    pub(super) fn woke(&self, workspaces: impl IntoIterator<Item = WorkspaceId>) {
        for ws in workspaces {
            self.signal.wake(ws);
        }
    }
}

#[async_trait]
impl EventStore for SqlStore {
    async fn events_after(
        &self,
        ws: WorkspaceId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM events WHERE workspace_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(ws.to_string())
        .bind(after)
        .bind(limit.clamp(1, 10_000) as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn last_event_id(&self, ws: WorkspaceId) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT event_seq FROM workspaces WHERE id = $1")
            .bind(ws.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.map(|r| get(&r, "event_seq"))
            .transpose()
            .map(|s| s.unwrap_or(0))
    }

    async fn last_event_ids(&self) -> Result<Vec<(WorkspaceId, i64)>, StoreError> {
        let rows = sqlx::query("SELECT id, event_seq FROM workspaces")
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((parse_id(r, "id")?, get(r, "event_seq")?)))
            .collect()
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM events WHERE created_at < $1")
            .bind(to_millis(before))
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        // Outgoing deliveries that got through go with the events they carried; the others
        // stay for the delivery log until they are sent or their subscription is deleted.
        sqlx::query("DELETE FROM hook_deliveries WHERE status = 'delivered' AND created_at < $1")
            .bind(to_millis(before))
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected())
    }

    fn event_signal(&self) -> std::sync::Arc<EventSignal> {
        self.signal.clone()
    }
}
