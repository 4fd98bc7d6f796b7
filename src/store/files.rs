//! [`FileStore`]: files people send from the inbox (a document, an image), kept with their
//! conversation: every attempt to send one sends the same bytes, the inbox shows it from this
//! copy, and the provider's media id is recorded once it is uploaded, so a retried send does not
//! upload again.

use async_trait::async_trait;

use super::rows::{db_err, get, now_ms, parse_id};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{ConversationId, MessageId};

/// A file to keep.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// The conversation it is sent in (the file is deleted with the conversation).
    pub conversation_id: ConversationId,
    /// Its name.
    pub filename: String,
    /// MIME type.
    pub mime_type: String,
    /// The bytes.
    pub content: Vec<u8>,
}

/// A kept file.
#[derive(Debug, Clone)]
pub struct StoredFile {
    /// Its id.
    pub id: String,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Its name.
    pub filename: String,
    /// MIME type.
    pub mime_type: String,
    /// The bytes.
    pub content: Vec<u8>,
}

/// Files sent from the inbox.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Keeps a file; returns its id.
    async fn store_file(&self, file: NewFile) -> Result<String, StoreError>;
    /// A kept file.
    async fn file(&self, id: &str) -> Result<Option<StoredFile>, StoreError>;
    /// Forgets a file (one kept for a message that turned out to exist already).
    async fn delete_file(&self, id: &str) -> Result<(), StoreError>;
    /// Records on a message the provider's id of its uploaded file (`details.media.id`).
    async fn set_uploaded_media(
        &self,
        message: MessageId,
        provider_media_id: &str,
    ) -> Result<(), StoreError>;
}

#[async_trait]
impl FileStore for SqlStore {
    async fn store_file(&self, file: NewFile) -> Result<String, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO media_files (id, conversation_id, filename, mime_type, size, content, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(file.conversation_id.to_string())
        .bind(file.filename)
        .bind(file.mime_type)
        .bind(file.content.len() as i64)
        .bind(file.content)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(id)
    }

    async fn file(&self, id: &str) -> Result<Option<StoredFile>, StoreError> {
        let row = sqlx::query(
            "SELECT id, conversation_id, filename, mime_type, content FROM media_files WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.map(|row| {
            Ok(StoredFile {
                id: get(&row, "id")?,
                conversation_id: parse_id(&row, "conversation_id")?,
                filename: get(&row, "filename")?,
                mime_type: get(&row, "mime_type")?,
                content: get(&row, "content")?,
            })
        })
        .transpose()
    }

    async fn delete_file(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM media_files WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_uploaded_media(
        &self,
        message: MessageId,
        provider_media_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let details: Option<String> =
            sqlx::query_scalar("SELECT details FROM messages WHERE id = $1")
                .bind(message.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let Some(details) = details else {
            return Ok(());
        };
        let mut details: serde_json::Value = serde_json::from_str(&details)
            .map_err(|e| StoreError::Corrupt(format!("message details: {e}")))?;
        details["media"]["id"] = serde_json::Value::String(provider_media_id.to_string());
        sqlx::query("UPDATE messages SET details = $2, updated_at = $3 WHERE id = $1")
            .bind(message.to_string())
            .bind(details.to_string())
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }
}
