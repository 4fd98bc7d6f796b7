//! [`NoteStore`] on SQL: private notes on conversations. Writing one is a `note.created` event
//! and, for each person it mentions, a `note.mentioned` event addressed to that person, all in
//! the note's transaction.

use async_trait::async_trait;
use sqlx::any::AnyRow;

use super::rows::{db_err, get, now_ms, opt_id, parse_id, time};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{ConversationId, EventKind, Note, NoteId, NoteType, UserId, WorkspaceId};

/// A note to write: who wrote it, what it says, whom it mentions (already resolved).
#[derive(Debug, Clone)]
pub struct NewNote<'a> {
    /// The person writing (none for an API key).
    pub author_id: Option<UserId>,
    /// Their name, kept with the note.
    pub author_name: &'a str,
    /// The text, checked.
    pub text: &'a str,
    /// The members of the workspace it mentions.
    pub mentions: &'a [UserId],
}

/// Private notes on conversations.
#[async_trait]
pub trait NoteStore: Send + Sync {
    /// Writes a note on conversation `conversation` of workspace `ws`, with its events;
    /// [`StoreError::NotFound`] when the conversation is not the workspace's.
    async fn add_note(
        &self,
        ws: WorkspaceId,
        conversation: ConversationId,
        note: NewNote<'_>,
    ) -> Result<Note, StoreError>;
    /// The newest `limit` notes of the workspace's conversation, oldest first.
    async fn notes(
        &self,
        ws: WorkspaceId,
        conversation: ConversationId,
        limit: u32,
    ) -> Result<Vec<Note>, StoreError>;
}

fn note_from_row(row: &AnyRow) -> Result<Note, StoreError> {
    let mentions: String = get(row, "mentions")?;
    Ok(Note {
        note_type: NoteType::Note,
        id: parse_id(row, "id")?,
        conversation_id: parse_id(row, "conversation_id")?,
        author_id: opt_id(row, "author_id")?,
        author_name: get(row, "author_name")?,
        text: get(row, "text")?,
        mentions: serde_json::from_str(&mentions)
            .map_err(|e| StoreError::Corrupt(format!("note mentions: {e}")))?,
        created_at: time(row, "created_at")?,
    })
}

#[async_trait]
impl NoteStore for SqlStore {
    async fn add_note(
        &self,
        ws: WorkspaceId,
        conversation: ConversationId,
        new: NewNote<'_>,
    ) -> Result<Note, StoreError> {
        let id = NoteId::new();
        let now = now_ms();
        let conversation_id = conversation.to_string();
        let mentions = serde_json::to_string(new.mentions)
            .map_err(|e| StoreError::Corrupt(format!("note mentions: {e}")))?;
        let mut tx = self.begin_write().await?;
        let found = Self::conversation_in(&mut tx, &conversation_id).await;
        if !found.is_ok_and(|c| c.workspace_id == ws) {
            return Err(StoreError::NotFound(format!(
                "no conversation {conversation}"
            )));
        }
        sqlx::query(
            "INSERT INTO conversation_notes
                (id, workspace_id, conversation_id, author_id, author_name, text, mentions, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.to_string())
        .bind(ws.to_string())
        .bind(&conversation_id)
        .bind(new.author_id.map(|u| u.to_string()))
        .bind(new.author_name)
        .bind(new.text)
        .bind(&mentions)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row = sqlx::query("SELECT * FROM conversation_notes WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let note = note_from_row(&row)?;
        let mut woke = vec![
            Self::conversation_event_in(
                &mut tx,
                &conversation_id,
                EventKind::NoteCreated,
                serde_json::json!({ "note": note }),
                now,
            )
            .await?,
        ];
        for user in new.mentions {
            woke.push(
                Self::conversation_event_in(
                    &mut tx,
                    &conversation_id,
                    EventKind::NoteMentioned,
                    serde_json::json!({ "user_id": user, "note": note }),
                    now,
                )
                .await?,
            );
        }
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok(note)
    }

    async fn notes(
        &self,
        ws: WorkspaceId,
        conversation: ConversationId,
        limit: u32,
    ) -> Result<Vec<Note>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM (
                SELECT * FROM conversation_notes
                WHERE workspace_id = $1 AND conversation_id = $2
                ORDER BY created_at DESC, id DESC LIMIT $3
             ) newest ORDER BY created_at, id",
        )
        .bind(ws.to_string())
        .bind(conversation.to_string())
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(note_from_row).collect()
    }
}
