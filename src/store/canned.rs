//! [`CannedStore`] on SQL: a workspace's canned responses, found by their short codes.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::AssertSqlSafe;

use super::rows::{db_err, get, now_ms, parse_id, time};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{CannedResponse, CannedResponseId, WorkspaceId};

/// Canned responses.
#[async_trait]
pub trait CannedStore: Send + Sync {
    /// Creates one; [`StoreError::Conflict`] if the workspace has one with that short code.
    async fn create_canned_response(
        &self,
        ws: WorkspaceId,
        short_code: &str,
        content: &str,
    ) -> Result<CannedResponse, StoreError>;
    /// The workspace's canned responses, by short code.
    async fn canned_responses(&self, ws: WorkspaceId) -> Result<Vec<CannedResponse>, StoreError>;
    /// One of the workspace's, by id.
    async fn canned_response(
        &self,
        ws: WorkspaceId,
        id: CannedResponseId,
    ) -> Result<Option<CannedResponse>, StoreError>;
    /// Changes its short code or text (fields left `None` stay); `None` if it is not the
    /// workspace's. [`StoreError::Conflict`] if the new short code is taken.
    async fn update_canned_response(
        &self,
        ws: WorkspaceId,
        id: CannedResponseId,
        short_code: Option<&str>,
        content: Option<&str>,
    ) -> Result<Option<CannedResponse>, StoreError>;
    /// Deletes one; false if it was not the workspace's.
    async fn delete_canned_response(
        &self,
        ws: WorkspaceId,
        id: CannedResponseId,
    ) -> Result<bool, StoreError>;
}

const COLUMNS: &str = "id, workspace_id, short_code, content, created_at, updated_at";

fn canned_from_row(row: &AnyRow) -> Result<CannedResponse, StoreError> {
    Ok(CannedResponse {
        id: parse_id(row, "id")?,
        workspace_id: parse_id(row, "workspace_id")?,
        short_code: get(row, "short_code")?,
        content: get(row, "content")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// A unique violation said as the short code taken.
fn taken(short_code: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match db_err(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a canned response `/{short_code}` exists"))
        }
        other => other,
    }
}

#[async_trait]
impl CannedStore for SqlStore {
    async fn create_canned_response(
        &self,
        ws: WorkspaceId,
        short_code: &str,
        content: &str,
    ) -> Result<CannedResponse, StoreError> {
        let id = CannedResponseId::new();
        sqlx::query(
            "INSERT INTO canned_responses (id, workspace_id, short_code, content, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id.to_string())
        .bind(ws.to_string())
        .bind(short_code)
        .bind(content)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(taken(short_code))?;
        self.canned_response(ws, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("canned response {id}")))
    }

    async fn canned_responses(&self, ws: WorkspaceId) -> Result<Vec<CannedResponse>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM canned_responses WHERE workspace_id = $1 ORDER BY short_code"
        )))
        .bind(ws.to_string())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(canned_from_row).collect()
    }

    async fn canned_response(
        &self,
        ws: WorkspaceId,
        id: CannedResponseId,
    ) -> Result<Option<CannedResponse>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM canned_responses WHERE workspace_id = $1 AND id = $2"
        )))
        .bind(ws.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref().map(canned_from_row).transpose()
    }

    async fn update_canned_response(
        &self,
        ws: WorkspaceId,
        id: CannedResponseId,
        short_code: Option<&str>,
        content: Option<&str>,
    ) -> Result<Option<CannedResponse>, StoreError> {
        let updated = sqlx::query(
            "UPDATE canned_responses SET short_code = COALESCE($3, short_code),
                content = COALESCE($4, content), updated_at = $5
             WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.to_string())
        .bind(id.to_string())
        .bind(short_code)
        .bind(content)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(taken(short_code.unwrap_or_default()))?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        self.canned_response(ws, id).await
    }

    async fn delete_canned_response(
        &self,
        ws: WorkspaceId,
        id: CannedResponseId,
    ) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("DELETE FROM canned_responses WHERE workspace_id = $1 AND id = $2")
                .bind(ws.to_string())
                .bind(id.to_string())
                .execute(&self.write)
                .await
                .map_err(db_err)?
                .rows_affected()
                > 0,
        )
    }
}
