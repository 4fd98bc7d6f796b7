//! [`HookStore`] on SQL: outgoing webhook subscriptions and their deliveries. A subscription
//! keeps a cursor into its workspace's event log; dispatching moves the cursor and queues one
//! delivery (and its `hook` job) per wanted event in one transaction, and only when the cursor
//! is still where the dispatcher read it, so replicas dispatching at once queue each event
//! once. Deliveries of one subscription and conversation share a job queue: they go in order.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::rows::{db_err, get, now_ms, opt_id, opt_time, parse_id, parse_text, time};
use super::sql::SqlStore;
use super::{JobLimits, StoreError};
use crate::domain::{
    ConversationId, EventKind, Hook, HookDelivery, HookDeliveryId, HookDeliveryStatus, HookId,
    HookStatus, Task, WorkspaceId,
};

type Tx = Transaction<'static, Any>;

/// A subscription to make.
#[derive(Debug, Clone)]
pub struct NewHook {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Where to POST.
    pub url: String,
    /// The signing secret, sealed.
    pub sealed_secret: Vec<u8>,
    /// Event types (all when empty).
    pub events: Vec<EventKind>,
    /// A note for people.
    pub description: String,
}

/// Changes to a subscription; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct HookChanges {
    /// A new URL.
    pub url: Option<String>,
    /// New event types.
    pub events: Option<Vec<EventKind>>,
    /// A new note.
    pub description: Option<String>,
}

/// A delivery to queue while dispatching.
#[derive(Debug, Clone)]
pub struct NewHookDelivery {
    /// The event's number.
    pub event_id: i64,
    /// Its type.
    pub event_type: EventKind,
    /// Its conversation.
    pub conversation_id: Option<ConversationId>,
    /// The JSON body to send.
    pub body: String,
}

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq)]
pub struct HookAttempt {
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// How long it took.
    pub elapsed_ms: u64,
    /// Why it failed (none: delivered).
    pub error: Option<String>,
}

/// The outgoing webhooks.
#[async_trait]
pub trait HookStore: Send + Sync {
    /// Makes a subscription; it receives the workspace's events from now on.
    async fn create_hook(&self, hook: NewHook) -> Result<Hook, StoreError>;
    /// A workspace's subscription.
    async fn hook(&self, ws: WorkspaceId, id: HookId) -> Result<Option<Hook>, StoreError>;
    /// A subscription's sealed signing secret.
    async fn hook_secret(&self, id: HookId) -> Result<Option<Vec<u8>>, StoreError>;
    /// A workspace's subscriptions, oldest first.
    async fn list_hooks(&self, ws: WorkspaceId) -> Result<Vec<Hook>, StoreError>;
    /// Changes a subscription; `None` when it does not exist.
    async fn update_hook(
        &self,
        ws: WorkspaceId,
        id: HookId,
        changes: HookChanges,
    ) -> Result<Option<Hook>, StoreError>;
    /// Pauses a subscription with a reason; `None` when it does not exist.
    async fn pause_hook(
        &self,
        ws: WorkspaceId,
        id: HookId,
        reason: &str,
    ) -> Result<Option<Hook>, StoreError>;
    /// Resumes a subscription: its failure count starts again and the deliveries that were
    /// paused are queued again, in event order. `None` when it does not exist.
    async fn resume_hook(
        &self,
        ws: WorkspaceId,
        id: HookId,
        limits: JobLimits,
    ) -> Result<Option<Hook>, StoreError>;
    /// Deletes a subscription and its deliveries; false when it did not exist.
    async fn delete_hook(&self, ws: WorkspaceId, id: HookId) -> Result<bool, StoreError>;
    /// Active subscriptions, of every workspace, with events past their cursor.
    async fn hooks_behind(&self) -> Result<Vec<Hook>, StoreError>;
    /// Queues `deliveries` and moves the cursor of `hook` from `from` to `to`, in one
    /// transaction; false (and nothing written) when the cursor is no longer at `from`.
    async fn dispatch_hook(
        &self,
        hook: &Hook,
        from: i64,
        to: i64,
        deliveries: Vec<NewHookDelivery>,
        limits: JobLimits,
    ) -> Result<bool, StoreError>;
    /// A delivery, with its body.
    async fn hook_delivery(&self, id: HookDeliveryId) -> Result<Option<HookDelivery>, StoreError>;
    /// A subscription's deliveries, newest first.
    async fn list_hook_deliveries(
        &self,
        ws: WorkspaceId,
        hook: HookId,
        status: Option<HookDeliveryStatus>,
        limit: u32,
    ) -> Result<Vec<HookDelivery>, StoreError>;
    /// Records an attempt on the delivery and its subscription's failure count; a failure
    /// that brings the count to `pause_after` pauses the subscription (and the delivery).
    /// Returns the subscription as it now is.
    async fn record_hook_attempt(
        &self,
        id: HookDeliveryId,
        attempt: &HookAttempt,
        pause_after: u32,
    ) -> Result<Option<Hook>, StoreError>;
    /// Sets a delivery's status (paused while its subscription is, failed when given up).
    async fn set_hook_delivery_status(
        &self,
        id: HookDeliveryId,
        status: HookDeliveryStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Queues a delivery again (from the API); `None` when it does not exist.
    async fn redeliver_hook(
        &self,
        ws: WorkspaceId,
        hook: HookId,
        id: HookDeliveryId,
        limits: JobLimits,
    ) -> Result<Option<HookDelivery>, StoreError>;
}

/// Stored event types: `,a,b,` (so one type is found with `LIKE`), empty for all.
fn kinds_text(kinds: &[EventKind]) -> String {
    if kinds.is_empty() {
        return String::new();
    }
    let mut text = String::from(",");
    for kind in kinds {
        text.push_str(kind.as_str());
        text.push(',');
    }
    text
}

fn hook_from_row(row: &AnyRow) -> Result<Hook, StoreError> {
    let kinds: String = get(row, "kinds")?;
    Ok(Hook {
        id: parse_id(row, "id")?,
        workspace_id: parse_id(row, "workspace_id")?,
        url: get(row, "url")?,
        events: kinds
            .split(',')
            .filter(|k| !k.is_empty())
            .map(|k| k.parse().map_err(StoreError::Corrupt))
            .collect::<Result<_, _>>()?,
        description: get(row, "description")?,
        status: parse_text(row, "status")?,
        failures: get::<i64>(row, "failures")? as u32,
        paused_reason: get(row, "paused_reason")?,
        cursor: get(row, "event_cursor")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<HookDelivery, StoreError> {
    Ok(HookDelivery {
        id: parse_id(row, "id")?,
        hook_id: parse_id(row, "hook_id")?,
        workspace_id: parse_id(row, "workspace_id")?,
        event_id: get(row, "event_seq")?,
        event_type: parse_text(row, "event_kind")?,
        conversation_id: opt_id(row, "conversation_id")?,
        status: parse_text(row, "status")?,
        attempts: get::<i64>(row, "attempts")? as u32,
        response_status: get::<Option<i64>>(row, "response_status")?.map(|s| s as u16),
        response_ms: get::<Option<i64>>(row, "response_ms")?.map(|s| s.max(0) as u64),
        last_error: get(row, "last_error")?,
        created_at: time(row, "created_at")?,
        delivered_at: opt_time(row, "delivered_at")?,
        body: get(row, "body")?,
    })
}

/// A subscription's columns (never its secret), from `hooks h`.
const HOOK_COLUMNS: &str = "h.id, h.workspace_id, h.url, h.kinds, h.description, h.status, \
     h.failures, h.paused_reason, h.event_cursor, h.created_at, h.updated_at";

impl SqlStore {
    async fn hook_in(tx: &mut Tx, ws: &str, id: &str) -> Result<Option<Hook>, StoreError> {
        let sql =
            format!("SELECT {HOOK_COLUMNS} FROM hooks h WHERE h.id = $1 AND h.workspace_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(ws)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
        row.as_ref().map(hook_from_row).transpose()
    }

    /// Queues the `hook` job of a delivery inside `tx`: one queue per subscription and
    /// conversation (events about no conversation share the subscription's own).
    async fn queue_delivery_in(
        tx: &mut Tx,
        ws: &str,
        hook: &str,
        delivery: HookDeliveryId,
        conversation: Option<&str>,
        limits: JobLimits,
        now: i64,
    ) -> Result<(), StoreError> {
        let queue = format!("hook:{hook}:{}", conversation.unwrap_or("-"));
        let task = Task::Hook {
            delivery_id: delivery,
        };
        Self::insert_job(tx, ws, &task, &queue, limits, now, now).await
    }
}

#[async_trait]
impl HookStore for SqlStore {
    async fn create_hook(&self, hook: NewHook) -> Result<Hook, StoreError> {
        let id = HookId::new();
        let now = now_ms();
        let ws = hook.workspace_id.to_string();
        let mut tx = self.begin_write().await?;
        // From now on: the cursor starts at the workspace's latest event.
        sqlx::query(
            "INSERT INTO hooks (id, workspace_id, url, secret, kinds, description, status, failures, event_cursor, created_at, updated_at)
             SELECT $1, $2, $3, $4, $5, $6, 'active', 0, event_seq, $7, $7 FROM workspaces WHERE id = $2",
        )
        .bind(id.to_string())
        .bind(&ws)
        .bind(&hook.url)
        .bind(hook.sealed_secret)
        .bind(kinds_text(&hook.events))
        .bind(&hook.description)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let made = Self::hook_in(&mut tx, &ws, &id.to_string())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("workspace {ws}")))?;
        tx.commit().await.map_err(db_err)?;
        Ok(made)
    }

    async fn hook(&self, ws: WorkspaceId, id: HookId) -> Result<Option<Hook>, StoreError> {
        let sql =
            format!("SELECT {HOOK_COLUMNS} FROM hooks h WHERE h.id = $1 AND h.workspace_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(ws.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(hook_from_row).transpose()
    }

    async fn hook_secret(&self, id: HookId) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT secret FROM hooks WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.map(|r| get::<Vec<u8>>(&r, "secret")).transpose()
    }

    async fn list_hooks(&self, ws: WorkspaceId) -> Result<Vec<Hook>, StoreError> {
        let sql = format!(
            "SELECT {HOOK_COLUMNS} FROM hooks h WHERE h.workspace_id = $1 ORDER BY h.created_at, h.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ws.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(hook_from_row).collect()
    }

    async fn update_hook(
        &self,
        ws: WorkspaceId,
        id: HookId,
        changes: HookChanges,
    ) -> Result<Option<Hook>, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE hooks SET url = COALESCE($3, url), kinds = COALESCE($4, kinds),
                description = COALESCE($5, description), updated_at = $6
             WHERE id = $1 AND workspace_id = $2",
        )
        .bind(id.to_string())
        .bind(ws.to_string())
        .bind(changes.url)
        .bind(changes.events.as_deref().map(kinds_text))
        .bind(changes.description)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let hook = Self::hook_in(&mut tx, &ws.to_string(), &id.to_string()).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(hook)
    }

    async fn pause_hook(
        &self,
        ws: WorkspaceId,
        id: HookId,
        reason: &str,
    ) -> Result<Option<Hook>, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE hooks SET status = 'paused', paused_reason = $3, updated_at = $4
             WHERE id = $1 AND workspace_id = $2",
        )
        .bind(id.to_string())
        .bind(ws.to_string())
        .bind(reason)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let hook = Self::hook_in(&mut tx, &ws.to_string(), &id.to_string()).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(hook)
    }

    async fn resume_hook(
        &self,
        ws: WorkspaceId,
        id: HookId,
        limits: JobLimits,
    ) -> Result<Option<Hook>, StoreError> {
        let now = now_ms();
        let (ws, id) = (ws.to_string(), id.to_string());
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE hooks SET status = 'active', failures = 0, paused_reason = NULL, updated_at = $3
             WHERE id = $1 AND workspace_id = $2",
        )
        .bind(&id)
        .bind(&ws)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if changed.rows_affected() == 0 {
            return Ok(None);
        }
        let paused = sqlx::query(
            "SELECT id, conversation_id FROM hook_deliveries
             WHERE hook_id = $1 AND status = 'paused' ORDER BY event_seq",
        )
        .bind(&id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        for row in &paused {
            let delivery: HookDeliveryId = parse_id(row, "id")?;
            let conversation: Option<String> = get(row, "conversation_id")?;
            Self::queue_delivery_in(
                &mut tx,
                &ws,
                &id,
                delivery,
                conversation.as_deref(),
                limits,
                now,
            )
            .await?;
        }
        sqlx::query(
            "UPDATE hook_deliveries SET status = 'pending', updated_at = $2
             WHERE hook_id = $1 AND status = 'paused'",
        )
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let hook = Self::hook_in(&mut tx, &ws, &id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(hook)
    }

    async fn delete_hook(&self, ws: WorkspaceId, id: HookId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        // Jobs of its deliveries find nothing to send and finish.
        sqlx::query("DELETE FROM hook_deliveries WHERE hook_id = $1 AND workspace_id = $2")
            .bind(id.to_string())
            .bind(ws.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let deleted = sqlx::query("DELETE FROM hooks WHERE id = $1 AND workspace_id = $2")
            .bind(id.to_string())
            .bind(ws.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn hooks_behind(&self) -> Result<Vec<Hook>, StoreError> {
        let sql = format!(
            "SELECT {HOOK_COLUMNS} FROM hooks h JOIN workspaces w ON w.id = h.workspace_id
             WHERE h.status = 'active' AND h.event_cursor < w.event_seq ORDER BY h.created_at"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(hook_from_row).collect()
    }

    async fn dispatch_hook(
        &self,
        hook: &Hook,
        from: i64,
        to: i64,
        deliveries: Vec<NewHookDelivery>,
        limits: JobLimits,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let (ws, id) = (hook.workspace_id.to_string(), hook.id.to_string());
        let mut tx = self.begin_write().await?;
        let moved = sqlx::query(
            "UPDATE hooks SET event_cursor = $3 WHERE id = $1 AND event_cursor = $2 AND status = 'active'",
        )
        .bind(&id)
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        for d in deliveries {
            let delivery = HookDeliveryId::new();
            let conversation = d.conversation_id.map(|c| c.to_string());
            sqlx::query(
                "INSERT INTO hook_deliveries (id, hook_id, workspace_id, event_seq, event_kind, conversation_id, body, status, attempts, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8)",
            )
            .bind(delivery.to_string())
            .bind(&id)
            .bind(&ws)
            .bind(d.event_id)
            .bind(d.event_type.as_str())
            .bind(conversation.as_deref())
            .bind(d.body)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            Self::queue_delivery_in(
                &mut tx,
                &ws,
                &id,
                delivery,
                conversation.as_deref(),
                limits,
                now,
            )
            .await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn hook_delivery(&self, id: HookDeliveryId) -> Result<Option<HookDelivery>, StoreError> {
        let row = sqlx::query("SELECT * FROM hook_deliveries WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    async fn list_hook_deliveries(
        &self,
        ws: WorkspaceId,
        hook: HookId,
        status: Option<HookDeliveryStatus>,
        limit: u32,
    ) -> Result<Vec<HookDelivery>, StoreError> {
        let filter = if status.is_some() {
            "AND status = $4"
        } else {
            ""
        };
        let sql = format!(
            "SELECT * FROM hook_deliveries WHERE hook_id = $1 AND workspace_id = $2 {filter}
             ORDER BY event_seq DESC LIMIT $3"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hook.to_string())
            .bind(ws.to_string())
            .bind(limit.clamp(1, 1000) as i64);
        if let Some(status) = status {
            query = query.bind(status.as_str());
        }
        let rows = query.fetch_all(&self.read).await.map_err(db_err)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn record_hook_attempt(
        &self,
        id: HookDeliveryId,
        attempt: &HookAttempt,
        pause_after: u32,
    ) -> Result<Option<Hook>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT hook_id, workspace_id FROM hook_deliveries WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (hook, ws): (String, String) = (get(&row, "hook_id")?, get(&row, "workspace_id")?);
        let delivered = attempt.error.is_none();
        sqlx::query(
            "UPDATE hook_deliveries SET attempts = attempts + 1, response_status = $2,
                response_ms = $3, last_error = $4, updated_at = $5,
                status = CASE WHEN $6 THEN 'delivered' ELSE status END,
                delivered_at = CASE WHEN $6 THEN $5 ELSE delivered_at END
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(attempt.status.map(i64::from))
        .bind(attempt.elapsed_ms.min(i64::MAX as u64) as i64)
        .bind(attempt.error.as_deref())
        .bind(now)
        .bind(delivered)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if delivered {
            sqlx::query("UPDATE hooks SET failures = 0 WHERE id = $1 AND failures <> 0")
                .bind(&hook)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        } else {
            let reason = format!(
                "paused after {pause_after} failed deliveries in a row; last: {}",
                attempt.error.as_deref().unwrap_or_default()
            );
            sqlx::query(
                "UPDATE hooks SET failures = failures + 1, updated_at = $3,
                    status = CASE WHEN failures + 1 >= $2 THEN 'paused' ELSE status END,
                    paused_reason = CASE WHEN failures + 1 >= $2 AND status = 'active' THEN $4 ELSE paused_reason END
                 WHERE id = $1",
            )
            .bind(&hook)
            .bind(pause_after as i64)
            .bind(now)
            .bind(reason)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let hook = Self::hook_in(&mut tx, &ws, &hook).await?;
        if let Some(h) = &hook {
            if !delivered && h.status == HookStatus::Paused {
                sqlx::query("UPDATE hook_deliveries SET status = 'paused' WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(hook)
    }

    async fn set_hook_delivery_status(
        &self,
        id: HookDeliveryId,
        status: HookDeliveryStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE hook_deliveries SET status = $2, last_error = COALESCE($3, last_error), updated_at = $4
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(status.as_str())
        .bind(error)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn redeliver_hook(
        &self,
        ws: WorkspaceId,
        hook: HookId,
        id: HookDeliveryId,
        limits: JobLimits,
    ) -> Result<Option<HookDelivery>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT conversation_id FROM hook_deliveries WHERE id = $1 AND hook_id = $2 AND workspace_id = $3",
        )
        .bind(id.to_string())
        .bind(hook.to_string())
        .bind(ws.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let conversation: Option<String> = get(&row, "conversation_id")?;
        sqlx::query("UPDATE hook_deliveries SET status = 'pending', updated_at = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        Self::queue_delivery_in(
            &mut tx,
            &ws.to_string(),
            &hook.to_string(),
            id,
            conversation.as_deref(),
            limits,
            now,
        )
        .await?;
        let row = sqlx::query("SELECT * FROM hook_deliveries WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let delivery = delivery_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(delivery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_stored_so_one_is_found_by_like() {
        assert_eq!(kinds_text(&[]), "");
        assert_eq!(
            kinds_text(&[EventKind::MessageReceived, EventKind::ChannelState]),
            ",message.received,channel.state,"
        );
    }
}
