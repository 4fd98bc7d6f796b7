//! [`EventStore`] on SQL: reading the event log, which the store writes inside the transaction
//! of each change (see [`super::event_log`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::event_log::EventSignal;
use super::rows::{db_err, get, opt_id, parse_id, time};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{to_millis, Event, WorkspaceId};

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
    /// Tells the other replicas about a change of who has a conversation open (`payload`, as
    /// [`crate::events::presence`] writes it): a `palaver_presence` notification on Postgres,
    /// nothing on SQLite, whose one process already knows.
    async fn announce_presence(&self, payload: &str) -> Result<(), StoreError>;
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

impl SqlStore {
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

    async fn announce_presence(&self, payload: &str) -> Result<(), StoreError> {
        if self.backend != super::Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify('palaver_presence', $1)")
            .bind(payload)
            .execute(&self.read)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
