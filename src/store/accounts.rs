//! [`AccountStore`] on SQL: workspaces (tenants), their limits and what they hold.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::any::AnyRow;

use super::rows::{db_err, get, now_ms, parse_id, time};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{AssignmentRule, Workspace, WorkspaceId, WorkspaceLimits};

/// What a workspace holds, counted against its [`WorkspaceLimits`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WorkspaceUsage {
    /// Channels, sandbox channels not counted.
    pub channels: u64,
    /// Agents.
    pub agents: u64,
    /// Knowledge documents.
    pub documents: u64,
    /// Bytes of knowledge documents.
    pub storage_bytes: u64,
}

/// Workspaces.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates a workspace; [`StoreError::Conflict`] if the slug is taken.
    async fn create_workspace(
        &self,
        slug: &str,
        name: &str,
        limits: &WorkspaceLimits,
    ) -> Result<Workspace, StoreError>;
    /// A workspace by id.
    async fn workspace(&self, id: WorkspaceId) -> Result<Option<Workspace>, StoreError>;
    /// A workspace by slug.
    async fn workspace_by_slug(&self, slug: &str) -> Result<Option<Workspace>, StoreError>;
    /// Every workspace, by slug.
    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError>;
    /// Saves a workspace's name and limits; `None` if it does not exist.
    async fn update_workspace(
        &self,
        id: WorkspaceId,
        name: &str,
        limits: &WorkspaceLimits,
    ) -> Result<Option<Workspace>, StoreError>;
    /// Sets who gets escalated conversations; `None` if the workspace does not exist.
    async fn set_assignment_rule(
        &self,
        id: WorkspaceId,
        rule: AssignmentRule,
    ) -> Result<Option<Workspace>, StoreError>;
    /// What the workspace holds now.
    async fn workspace_usage(&self, id: WorkspaceId) -> Result<WorkspaceUsage, StoreError>;
    /// Sets how many model calls the workspace may make in a month (`None`: no limit);
    /// `None` if the workspace does not exist.
    async fn set_model_calls_limit(
        &self,
        id: WorkspaceId,
        limit: Option<u64>,
    ) -> Result<Option<Workspace>, StoreError>;
    /// Model calls counted for the workspace in `month` (`YYYY-MM`).
    async fn model_calls(&self, id: WorkspaceId, month: &str) -> Result<u64, StoreError>;
    /// Counts one model call in `month` unless `limit` calls are counted already, in one
    /// statement (two replicas cannot both take the last call): the new count, or `None` when
    /// the limit is reached.
    async fn count_model_call(
        &self,
        id: WorkspaceId,
        month: &str,
        limit: Option<u64>,
    ) -> Result<Option<u64>, StoreError>;
    /// Takes back a call [`AccountStore::count_model_call`] counted that the model never
    /// answered.
    async fn uncount_model_call(&self, id: WorkspaceId, month: &str) -> Result<(), StoreError>;
}

fn workspace_from_row(row: &AnyRow) -> Result<Workspace, StoreError> {
    let limits: String = get(row, "limits")?;
    let assignment: String = get(row, "assignment")?;
    Ok(Workspace {
        id: parse_id(row, "id")?,
        slug: get(row, "slug")?,
        name: get(row, "name")?,
        limits: serde_json::from_str(&limits)
            .map_err(|e| StoreError::Corrupt(format!("workspace limits: {e}")))?,
        assignment: serde_json::from_str(&assignment)
            .map_err(|e| StoreError::Corrupt(format!("workspace assignment: {e}")))?,
        model_calls_limit: get::<Option<i64>>(row, "model_calls_limit")?.map(|n| n.max(0) as u64),
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn limits_json(limits: &WorkspaceLimits) -> Result<String, StoreError> {
    serde_json::to_string(limits).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// `LIKE` pattern matching the collection keys of a workspace (see
/// [`crate::domain::collection_key`]) and whether the pattern is negated.
fn collection_pattern(id: WorkspaceId) -> (String, bool) {
    if id == WorkspaceId::DEFAULT {
        ("%.%".into(), true)
    } else {
        (format!("{}.%", id.0.simple()), false)
    }
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn create_workspace(
        &self,
        slug: &str,
        name: &str,
        limits: &WorkspaceLimits,
    ) -> Result<Workspace, StoreError> {
        let row = sqlx::query(
            "INSERT INTO workspaces (id, slug, name, limits, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING *",
        )
        .bind(WorkspaceId::new().to_string())
        .bind(slug)
        .bind(name)
        .bind(limits_json(limits)?)
        .bind(now_ms())
        .fetch_one(&self.write)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("a workspace `{slug}` already exists"))
            }
            other => other,
        })?;
        workspace_from_row(&row)
    }

    async fn workspace(&self, id: WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        let row = sqlx::query("SELECT * FROM workspaces WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    async fn workspace_by_slug(&self, slug: &str) -> Result<Option<Workspace>, StoreError> {
        let row = sqlx::query("SELECT * FROM workspaces WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        let rows = sqlx::query("SELECT * FROM workspaces ORDER BY slug")
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(workspace_from_row).collect()
    }

    async fn update_workspace(
        &self,
        id: WorkspaceId,
        name: &str,
        limits: &WorkspaceLimits,
    ) -> Result<Option<Workspace>, StoreError> {
        let row = sqlx::query(
            "UPDATE workspaces SET name = $2, limits = $3, updated_at = $4 WHERE id = $1 RETURNING *",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(limits_json(limits)?)
        .bind(now_ms())
        .fetch_optional(&self.write)
        .await
        .map_err(db_err)?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    async fn set_assignment_rule(
        &self,
        id: WorkspaceId,
        rule: AssignmentRule,
    ) -> Result<Option<Workspace>, StoreError> {
        let rule = serde_json::to_string(&rule).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row = sqlx::query(
            "UPDATE workspaces SET assignment = $2, updated_at = $3 WHERE id = $1 RETURNING *",
        )
        .bind(id.to_string())
        .bind(rule)
        .bind(now_ms())
        .fetch_optional(&self.write)
        .await
        .map_err(db_err)?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    async fn workspace_usage(&self, id: WorkspaceId) -> Result<WorkspaceUsage, StoreError> {
        let (pattern, negated) = collection_pattern(id);
        let like = if negated { "NOT LIKE" } else { "LIKE" };
        let sql = format!(
            "SELECT
                (SELECT COUNT(*) FROM channels WHERE workspace_id = $1 AND provider <> 'sandbox') AS channels,
                (SELECT COUNT(*) FROM agents WHERE workspace_id = $1) AS agents,
                (SELECT COUNT(*) FROM documents WHERE collection {like} $2) AS documents,
                (SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM documents WHERE collection {like} $2) AS storage_bytes"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .bind(pattern)
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        let count = |column: &str| -> Result<u64, StoreError> {
            Ok(get::<i64>(&row, column)?.max(0) as u64)
        };
        Ok(WorkspaceUsage {
            channels: count("channels")?,
            agents: count("agents")?,
            documents: count("documents")?,
            storage_bytes: count("storage_bytes")?,
        })
    }

    async fn set_model_calls_limit(
        &self,
        id: WorkspaceId,
        limit: Option<u64>,
    ) -> Result<Option<Workspace>, StoreError> {
        let row = sqlx::query(
            "UPDATE workspaces SET model_calls_limit = $2, updated_at = $3 WHERE id = $1 RETURNING *",
        )
        .bind(id.to_string())
        .bind(limit.map(|n| n.min(i64::MAX as u64) as i64))
        .bind(now_ms())
        .fetch_optional(&self.write)
        .await
        .map_err(db_err)?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    async fn model_calls(&self, id: WorkspaceId, month: &str) -> Result<u64, StoreError> {
        let row =
            sqlx::query("SELECT calls FROM model_calls WHERE workspace_id = $1 AND month = $2")
                .bind(id.to_string())
                .bind(month)
                .fetch_optional(&self.read)
                .await
                .map_err(db_err)?;
        Ok(match row {
            Some(row) => get::<i64>(&row, "calls")?.max(0) as u64,
            None => 0,
        })
    }

    async fn count_model_call(
        &self,
        id: WorkspaceId,
        month: &str,
        limit: Option<u64>,
    ) -> Result<Option<u64>, StoreError> {
        // A limit of 0 allows nothing; the insert below would count the first call.
        if limit == Some(0) {
            return Ok(None);
        }
        let row = sqlx::query(
            "INSERT INTO model_calls (workspace_id, month, calls) VALUES ($1, $2, 1)
             ON CONFLICT (workspace_id, month) DO UPDATE SET calls = model_calls.calls + 1
             WHERE CAST($3 AS BIGINT) IS NULL OR model_calls.calls < CAST($3 AS BIGINT)
             RETURNING calls",
        )
        .bind(id.to_string())
        .bind(month)
        .bind(limit.map(|n| n.min(i64::MAX as u64) as i64))
        .fetch_optional(&self.write)
        .await
        .map_err(db_err)?;
        row.map(|row| get::<i64>(&row, "calls").map(|n| n.max(0) as u64))
            .transpose()
    }

    async fn uncount_model_call(&self, id: WorkspaceId, month: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE model_calls SET calls = calls - 1
             WHERE workspace_id = $1 AND month = $2 AND calls > 0",
        )
        .bind(id.to_string())
        .bind(month)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}
