//! [`EvalStore`]: eval runs started through the API — what was asked, how far the run is, and
//! its results. The store keeps summaries and results as JSON documents it does not interpret,
//! so the eval report format can grow without a migration.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;

use super::event_log::{emit, NewEvent};
use super::rows::{db_err, get, now_ms, opt_time, parse_id, time};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{EvalRunId, EventKind, WorkspaceId};

/// Where an eval run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvalRunStatus {
    /// Cases are running.
    Running,
    /// Finished, and the gate passed (pass rate and `must_pass` cases).
    Passed,
    /// Finished, and the gate failed.
    Failed,
    /// Could not run (bad suite, missing file, a backend failed).
    Error,
}

impl EvalRunStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            EvalRunStatus::Running => "running",
            EvalRunStatus::Passed => "passed",
            EvalRunStatus::Failed => "failed",
            EvalRunStatus::Error => "error",
        }
    }
}

impl std::str::FromStr for EvalRunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(EvalRunStatus::Running),
            "passed" => Ok(EvalRunStatus::Passed),
            "failed" => Ok(EvalRunStatus::Failed),
            "error" => Ok(EvalRunStatus::Error),
            other => Err(format!("unknown eval run status `{other}`")),
        }
    }
}

/// An eval run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EvalRun {
    /// Its id.
    pub id: EvalRunId,
    /// The workspace that started it.
    pub workspace_id: WorkspaceId,
    /// Where it is.
    pub status: EvalRunStatus,
    /// What was asked (suites, overrides), as given.
    pub request: serde_json::Value,
    /// Cases finished so far.
    pub cases_done: u64,
    /// Cases in the run.
    pub cases_total: u64,
    /// Pass rates and metrics, once finished.
    pub summary: Option<serde_json::Value>,
    /// Every case with its turns and assertions, once finished (left out of lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<serde_json::Value>,
    /// Why the run could not finish.
    pub error: Option<String>,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it last made progress.
    pub updated_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct FinishedEvalRun {
    /// `Passed`, `Failed` or `Error`.
    pub status: EvalRunStatus,
    /// Pass rates and metrics.
    pub summary: Option<serde_json::Value>,
    /// Every case.
    pub results: Option<serde_json::Value>,
    /// Why it could not finish.
    pub error: Option<String>,
}

/// Eval runs.
#[async_trait]
pub trait EvalStore: Send + Sync {
    /// Records a new run, `running`, with what was asked.
    async fn create_eval_run(
        &self,
        ws: WorkspaceId,
        id: EvalRunId,
        request: &serde_json::Value,
    ) -> Result<EvalRun, StoreError>;
    /// Records how many of the run's cases are done.
    async fn record_eval_progress(
        &self,
        id: EvalRunId,
        done: u64,
        total: u64,
    ) -> Result<(), StoreError>;
    /// Records how the run ended.
    async fn finish_eval_run(
        &self,
        id: EvalRunId,
        finished: FinishedEvalRun,
    ) -> Result<(), StoreError>;
    /// A run with its results.
    async fn eval_run(&self, id: EvalRunId) -> Result<Option<EvalRun>, StoreError>;
    /// The latest runs, newest first, without their results.
    async fn list_eval_runs(&self, ws: WorkspaceId, limit: u32)
        -> Result<Vec<EvalRun>, StoreError>;
    /// Marks runs still `running` with no progress since `before` as `error` (their process
    /// stopped); returns how many.
    async fn interrupt_eval_runs(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

fn json(row: &AnyRow, column: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let raw: Option<String> = get(row, column)?;
    raw.map(|r| serde_json::from_str(&r).map_err(|e| StoreError::Corrupt(format!("{column}: {e}"))))
        .transpose()
}

fn eval_run_from_row(row: &AnyRow, with_results: bool) -> Result<EvalRun, StoreError> {
    let status: String = get(row, "status")?;
    Ok(EvalRun {
        id: parse_id(row, "id")?,
        workspace_id: parse_id(row, "workspace_id")?,
        status: status.parse().map_err(StoreError::Corrupt)?,
        request: json(row, "request")?.unwrap_or(serde_json::Value::Null),
        cases_done: get::<i64>(row, "cases_done")?.max(0) as u64,
        cases_total: get::<i64>(row, "cases_total")?.max(0) as u64,
        summary: json(row, "summary")?,
        results: if with_results {
            json(row, "results")?
        } else {
            None
        },
        error: get(row, "error")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        finished_at: opt_time(row, "finished_at")?,
    })
}

fn to_text(value: &serde_json::Value) -> String {
    value.to_string()
}

#[async_trait]
impl EvalStore for SqlStore {
    async fn create_eval_run(
        &self,
        ws: WorkspaceId,
        id: EvalRunId,
        request: &serde_json::Value,
    ) -> Result<EvalRun, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO eval_runs (id, workspace_id, status, request, cases_done, cases_total, created_at, updated_at)
             VALUES ($1, $4, 'running', $2, 0, 0, $3, $3)",
        )
        .bind(id.to_string())
        .bind(to_text(request))
        .bind(now)
        .bind(ws.to_string())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        self.eval_run(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("eval run {id}")))
    }

    async fn record_eval_progress(
        &self,
        id: EvalRunId,
        done: u64,
        total: u64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE eval_runs SET cases_done = $2, cases_total = $3, updated_at = $4
             WHERE id = $1 AND status = 'running' RETURNING workspace_id",
        )
        .bind(id.to_string())
        .bind(done as i64)
        .bind(total as i64)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(());
        };
        let ws: String = get(&row, "workspace_id")?;
        let ws = emit(
            &mut tx,
            &ws,
            NewEvent {
                kind: EventKind::EvalRunProgress,
                conversation: None,
                channel: None,
                data: serde_json::json!({"run_id": id, "cases_done": done, "cases_total": total}),
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([ws]);
        Ok(())
    }

    async fn finish_eval_run(
        &self,
        id: EvalRunId,
        finished: FinishedEvalRun,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE eval_runs SET status = $2, summary = $3, results = $4, error = $5,
                updated_at = $6, finished_at = $6
             WHERE id = $1 AND status = 'running' RETURNING workspace_id",
        )
        .bind(id.to_string())
        .bind(finished.status.as_str())
        .bind(finished.summary.as_ref().map(to_text))
        .bind(finished.results.as_ref().map(to_text))
        .bind(finished.error.as_deref())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = done else {
            return Err(StoreError::NotFound(format!("running eval run {id}")));
        };
        let ws: String = get(&row, "workspace_id")?;
        let ws = emit(
            &mut tx,
            &ws,
            NewEvent {
                kind: EventKind::EvalRunFinished,
                conversation: None,
                channel: None,
                data: serde_json::json!({
                    "run_id": id,
                    "status": finished.status.as_str(),
                    "summary": finished.summary,
                    "error": finished.error,
                }),
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([ws]);
        Ok(())
    }

    async fn eval_run(&self, id: EvalRunId) -> Result<Option<EvalRun>, StoreError> {
        let row = sqlx::query("SELECT * FROM eval_runs WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.map(|r| eval_run_from_row(&r, true)).transpose()
    }

    async fn list_eval_runs(
        &self,
        ws: WorkspaceId,
        limit: u32,
    ) -> Result<Vec<EvalRun>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, workspace_id, status, request, cases_done, cases_total, summary, error,
                created_at, updated_at, finished_at
             FROM eval_runs WHERE workspace_id = $2 ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(limit as i64)
        .bind(ws.to_string())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(|r| eval_run_from_row(r, false)).collect()
    }

    async fn interrupt_eval_runs(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE eval_runs SET status = 'error', error = 'interrupted: the server stopped during the run',
                updated_at = $1, finished_at = $1
             WHERE status = 'running' AND updated_at < $2",
        )
        .bind(now)
        .bind(crate::domain::to_millis(before))
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
