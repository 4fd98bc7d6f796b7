//! [`LabelStore`] on SQL: a workspace's conversation labels and which conversations carry
//! them. Putting a label on a conversation, or taking it off, is a `conversation.labels_changed`
//! event in the same transaction; renaming or recolouring a label is a `label.updated` event,
//! deleting it a `label.deleted` one.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::AssertSqlSafe;

use super::event_log::{emit, NewEvent};
use super::rows::{db_err, get, now_ms, parse_id, parse_text, placeholders, time, Tx};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{ConversationId, EventKind, Label, LabelColour, LabelId, WorkspaceId};

/// Conversation labels.
#[async_trait]
pub trait LabelStore: Send + Sync {
    /// Creates a label; [`StoreError::Conflict`] if the workspace has one of that name.
    async fn create_label(
        &self,
        ws: WorkspaceId,
        name: &str,
        colour: LabelColour,
    ) -> Result<Label, StoreError>;
    /// The workspace's labels, by name.
    async fn labels(&self, ws: WorkspaceId) -> Result<Vec<Label>, StoreError>;
    /// A label of the workspace by id.
    async fn label(&self, ws: WorkspaceId, id: LabelId) -> Result<Option<Label>, StoreError>;
    /// A label of the workspace by name.
    async fn label_by_name(&self, ws: WorkspaceId, name: &str)
        -> Result<Option<Label>, StoreError>;
    /// Renames a label or changes its colour (fields left `None` stay); `None` if it is not
    /// the workspace's. [`StoreError::Conflict`] if the new name is taken.
    async fn update_label(
        &self,
        ws: WorkspaceId,
        id: LabelId,
        name: Option<&str>,
        colour: Option<LabelColour>,
    ) -> Result<Option<Label>, StoreError>;
    /// Deletes a label, taking it off every conversation; false if it was not the workspace's.
    async fn delete_label(&self, ws: WorkspaceId, id: LabelId) -> Result<bool, StoreError>;
    /// The labels on a conversation, by name.
    async fn conversation_labels(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<Label>, StoreError>;
    /// The labels on each of `conversations`, by name (a conversation without any is left out).
    async fn labels_of(
        &self,
        conversations: &[ConversationId],
    ) -> Result<HashMap<ConversationId, Vec<Label>>, StoreError>;
    /// Puts `label` on `conversation` (`on`) or takes it off; whether they share a workspace
    /// is the caller's to check. Returns the conversation's labels now and whether anything
    /// changed (a change is an event).
    async fn set_conversation_label(
        &self,
        conversation: ConversationId,
        label: &Label,
        on: bool,
    ) -> Result<(Vec<Label>, bool), StoreError>;
}

const COLUMNS: &str = "id, workspace_id, name, colour, created_at, updated_at";

pub(super) fn label_from_row(row: &AnyRow) -> Result<Label, StoreError> {
    Ok(Label {
        id: parse_id(row, "id")?,
        workspace_id: parse_id(row, "workspace_id")?,
        name: get(row, "name")?,
        colour: parse_text(row, "colour")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// The workspace's label `id`, read through `executor` (the pool, or a transaction).
async fn label_in<'e, E>(
    executor: E,
    ws: WorkspaceId,
    id: LabelId,
) -> Result<Option<Label>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM labels WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(ws.to_string())
    .bind(id.to_string())
    .fetch_optional(executor)
    .await
    .map_err(db_err)?;
    row.as_ref().map(label_from_row).transpose()
}

/// Writes an event about one of workspace `ws`'s labels inside `tx`, last in it.
async fn label_event(
    tx: &mut Tx,
    ws: WorkspaceId,
    kind: EventKind,
    data: serde_json::Value,
) -> Result<WorkspaceId, StoreError> {
    emit(
        tx,
        &ws.to_string(),
        NewEvent {
            kind,
            conversation: None,
            channel: None,
            data,
        },
        now_ms(),
    )
    .await
}

/// The labels of one conversation, read by `executor`.
async fn labels_on<'e, E>(executor: E, conversation: &str) -> Result<Vec<Label>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT l.id, l.workspace_id, l.name, l.colour, l.created_at, l.updated_at
         FROM conversation_labels cl JOIN labels l ON l.id = cl.label_id
         WHERE cl.conversation_id = $1 ORDER BY l.name",
    )
    .bind(conversation)
    .fetch_all(executor)
    .await
    .map_err(db_err)?;
    rows.iter().map(label_from_row).collect()
}

#[async_trait]
impl LabelStore for SqlStore {
    async fn create_label(
        &self,
        ws: WorkspaceId,
        name: &str,
        colour: LabelColour,
    ) -> Result<Label, StoreError> {
        let id = LabelId::new();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO labels (id, workspace_id, name, colour, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id.to_string())
        .bind(ws.to_string())
        .bind(name)
        .bind(colour.as_str())
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("a label `{name}` exists")),
            other => other,
        })?;
        self.label(ws, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("label {id}")))
    }

    async fn labels(&self, ws: WorkspaceId) -> Result<Vec<Label>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM labels WHERE workspace_id = $1 ORDER BY name"
        )))
        .bind(ws.to_string())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(label_from_row).collect()
    }

    async fn label(&self, ws: WorkspaceId, id: LabelId) -> Result<Option<Label>, StoreError> {
        label_in(&self.read, ws, id).await
    }

    async fn label_by_name(
        &self,
        ws: WorkspaceId,
        name: &str,
    ) -> Result<Option<Label>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM labels WHERE workspace_id = $1 AND name = $2"
        )))
        .bind(ws.to_string())
        .bind(name)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref().map(label_from_row).transpose()
    }

    async fn update_label(
        &self,
        ws: WorkspaceId,
        id: LabelId,
        name: Option<&str>,
        colour: Option<LabelColour>,
    ) -> Result<Option<Label>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(previous) = label_in(&mut *tx, ws, id).await? else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE labels SET name = COALESCE($3, name), colour = COALESCE($4, colour),
                updated_at = $5
             WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.to_string())
        .bind(id.to_string())
        .bind(name)
        .bind(colour.map(LabelColour::as_str))
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("a label `{}` exists", name.unwrap_or_default()))
            }
            other => other,
        })?;
        let label = label_in(&mut *tx, ws, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("label {id} gone while updated")))?;
        let woke = label_event(
            &mut tx,
            ws,
            EventKind::LabelUpdated,
            serde_json::json!({ "label": label, "previous": previous }),
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([woke]);
        Ok(Some(label))
    }

    async fn delete_label(&self, ws: WorkspaceId, id: LabelId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(label) = label_in(&mut *tx, ws, id).await? else {
            return Ok(false);
        };
        // Taken off its conversations first: SQLite's foreign keys may be off on a database
        // opened by an older release.
        sqlx::query("DELETE FROM conversation_labels WHERE label_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM labels WHERE workspace_id = $1 AND id = $2")
            .bind(ws.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let woke = label_event(
            &mut tx,
            ws,
            EventKind::LabelDeleted,
            serde_json::json!({ "label": label }),
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([woke]);
        Ok(true)
    }

    async fn conversation_labels(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<Label>, StoreError> {
        labels_on(&self.read, &conversation.to_string()).await
    }

    async fn labels_of(
        &self,
        conversations: &[ConversationId],
    ) -> Result<HashMap<ConversationId, Vec<Label>>, StoreError> {
        let mut out: HashMap<ConversationId, Vec<Label>> = HashMap::new();
        if conversations.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT cl.conversation_id, l.id, l.workspace_id, l.name, l.colour, l.created_at, l.updated_at
             FROM conversation_labels cl JOIN labels l ON l.id = cl.label_id
             WHERE cl.conversation_id IN ({}) ORDER BY l.name",
            placeholders(1, conversations.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in conversations {
            query = query.bind(id.to_string());
        }
        for row in query.fetch_all(&self.read).await.map_err(db_err)? {
            out.entry(parse_id(&row, "conversation_id")?)
                .or_default()
                .push(label_from_row(&row)?);
        }
        Ok(out)
    }

    async fn set_conversation_label(
        &self,
        conversation: ConversationId,
        label: &Label,
        on: bool,
    ) -> Result<(Vec<Label>, bool), StoreError> {
        let now = now_ms();
        let id = conversation.to_string();
        let mut tx = self.begin_write().await?;
        let changed = if on {
            sqlx::query(
                "INSERT INTO conversation_labels (conversation_id, label_id, created_at)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(label.id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
        } else {
            sqlx::query(
                "DELETE FROM conversation_labels WHERE conversation_id = $1 AND label_id = $2",
            )
            .bind(&id)
            .bind(label.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
        }
        .rows_affected()
            > 0;
        let labels = labels_on(&mut *tx, &id).await?;
        let mut woke = Vec::new();
        if changed {
            let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
            let mut extra = serde_json::json!({ "labels": names });
            extra[if on { "added" } else { "removed" }] = label.name.clone().into();
            woke.push(
                Self::conversation_event_in(
                    &mut tx,
                    &id,
                    EventKind::ConversationLabelsChanged,
                    extra,
                    now,
                )
                .await?,
            );
        }
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok((labels, changed))
    }
}
