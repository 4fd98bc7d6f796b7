//! [`JobStore`] on SQL: a durable queue with leases. Jobs sharing a `queue_key` run one at a
//! time and in order: a job can be claimed only when no earlier job of its queue is pending or
//! running. On Postgres, `FOR UPDATE SKIP LOCKED` lets any number of workers and replicas claim
//! concurrently; on SQLite, claims go through the single writer connection. A job claimed
//! again after its lease expired counts as abandoned (its process died running it).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::AssertSqlSafe;

use super::rows::{db_err, get, now_ms, opt_time, parse_id, time};
use super::sql::SqlStore;
use super::{Backend, Job, JobStore, NewJob, StoreError};
use crate::domain::{to_millis, JobId, WorkspaceId};

fn job_from_row(row: &AnyRow) -> Result<Job, StoreError> {
    let payload: String = get(row, "payload")?;
    Ok(Job {
        id: parse_id(row, "id")?,
        kind: get(row, "kind")?,
        queue_key: get(row, "queue_key")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("job payload: {e}")))?,
        attempts: get::<i64>(row, "attempts")? as u32,
        abandoned: get::<i64>(row, "abandoned")? as u32,
        max_abandoned: get::<i64>(row, "max_attempts")? as u32,
        expires_at: opt_time(row, "expires_at")?,
        run_at: time(row, "run_at")?,
        status: get(row, "status")?,
        last_error: get(row, "last_error")?,
        created_at: time(row, "created_at")?,
    })
}

const JOB_COLUMNS: &str =
    "id, kind, queue_key, payload, attempts, abandoned, max_attempts, expires_at,
    run_at, status, last_error, created_at";

#[async_trait]
impl JobStore for SqlStore {
    async fn enqueue(&self, job: NewJob) -> Result<JobId, StoreError> {
        let id = JobId::new();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, workspace_id, kind, queue_key, payload, status, attempts, max_attempts, expires_at, run_at, created_at, updated_at)
             VALUES ($1, $9, $2, $3, $4, 'pending', 0, $5, $6, $7, $8, $8)",
        )
        .bind(id.to_string())
        .bind(job.task.kind())
        .bind(job.queue_key.as_deref())
        .bind(job.task.payload().to_string())
        .bind(job.limits.max_abandoned as i64)
        .bind(now.saturating_add(job.limits.retry_for.as_millis() as i64))
        .bind(to_millis(job.run_at))
        .bind(now)
        .bind(job.workspace_id.to_string())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(id)
    }

    async fn claim_next_job(
        &self,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // An abandoned job (its lease expired) first, then the first due; either at the head
        // of its queue. Each is a walk of the `jobs_due` index in the order wanted that stops
        // at the first job that qualifies: one query for both, ordered by due time, read every
        // due job and sorted them, which a backlog after an outage made tens of milliseconds a
        // claim.
        let head = "(j.queue_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM jobs e WHERE e.queue_key = j.queue_key AND e.seq < j.seq
                  AND e.status IN ('pending', 'running')))";
        let sql = format!(
            "UPDATE jobs SET attempts = attempts + 1,
                abandoned = abandoned + CASE WHEN status = 'running' THEN 1 ELSE 0 END,
                status = 'running', lease_until = $2, locked_by = $3, dedupe_key = NULL, updated_at = $1
             WHERE id = COALESCE(
                (SELECT j.id FROM jobs j WHERE j.status = 'running' AND j.lease_until <= $1 AND {head}
                 ORDER BY j.run_at, j.seq LIMIT 1 {lock}),
                (SELECT j.id FROM jobs j WHERE j.status = 'pending' AND j.run_at <= $1 AND {head}
                 ORDER BY j.run_at, j.seq LIMIT 1 {lock}))
             RETURNING {JOB_COLUMNS}"
        );
        let lease_until = now + lease.as_millis() as i64;
        let row = match self.backend {
            // A claim taken back by a power cut leaves the job to be claimed again.
            Backend::Sqlite => {
                let worker = worker.to_string();
                super::sqlite::unsynced(&self.write, move |conn| {
                    Box::pin(async move {
                        sqlx::query(AssertSqlSafe(sql))
                            .bind(now)
                            .bind(lease_until)
                            .bind(worker)
                            .fetch_optional(conn)
                            .await
                    })
                })
                .await?
            }
            Backend::Postgres => {
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(now)
                    .bind(lease_until)
                    .bind(worker)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                row
            }
        };
        row.as_ref().map(job_from_row).transpose()
    }

    async fn extend_lease(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE jobs SET lease_until = $3 WHERE id = $1 AND locked_by = $2 AND status = 'running'",
        )
        .bind(id.to_string())
        .bind(worker)
        .bind(now_ms() + lease.as_millis() as i64)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(result.rows_affected() > 0)
    }

    async fn complete_job(&self, id: JobId, worker: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM jobs WHERE id = $1 AND locked_by = $2";
        let (id, worker) = (id.to_string(), worker.to_string());
        match self.backend {
            // A completion taken back by a power cut runs the job again, which finds its work
            // done (see `sqlite::unsynced`).
            Backend::Sqlite => {
                super::sqlite::unsynced(&self.write, move |conn| {
                    Box::pin(
                        async move { sqlx::query(SQL).bind(id).bind(worker).execute(conn).await },
                    )
                })
                .await?;
            }
            Backend::Postgres => {
                sqlx::query(SQL)
                    .bind(id)
                    .bind(worker)
                    .execute(&self.write)
                    .await
                    .map_err(db_err)?;
            }
        }
        Ok(())
    }

    async fn defer_job(
        &self,
        id: JobId,
        worker: &str,
        run_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET status = 'pending', run_at = $3, attempts = attempts - 1, lease_until = NULL,
                locked_by = NULL, updated_at = $4 WHERE id = $1 AND locked_by = $2",
        )
        .bind(id.to_string())
        .bind(worker)
        .bind(to_millis(run_at))
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn retry_job(
        &self,
        id: JobId,
        worker: &str,
        run_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET status = 'pending', run_at = $3, last_error = $4, lease_until = NULL, locked_by = NULL,
                updated_at = $5 WHERE id = $1 AND locked_by = $2",
        )
        .bind(id.to_string())
        .bind(worker)
        .bind(to_millis(run_at))
        .bind(error)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn dead_letter_job(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET status = 'dead', last_error = $3, lease_until = NULL, locked_by = NULL, updated_at = $4
             WHERE id = $1 AND locked_by = $2",
        )
        .bind(id.to_string())
        .bind(worker)
        .bind(error)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_jobs(
        &self,
        ws: WorkspaceId,
        status: &str,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status = $1 AND workspace_id = $3 ORDER BY seq LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(status)
            .bind(limit.clamp(1, 1000) as i64)
            .bind(ws.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn requeue_job(&self, ws: WorkspaceId, id: JobId) -> Result<bool, StoreError> {
        let now = now_ms();
        let result = sqlx::query(
            "UPDATE jobs SET status = 'pending', attempts = 0, abandoned = 0, run_at = $2, updated_at = $2,
                expires_at = CASE WHEN expires_at IS NULL THEN NULL ELSE $2 + (expires_at - created_at) END
             WHERE id = $1 AND workspace_id = $3 AND status = 'dead'",
        )
        .bind(id.to_string())
        .bind(now)
        .bind(ws.to_string())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(result.rows_affected() > 0)
    }

    async fn job_counts(
        &self,
        ws: Option<WorkspaceId>,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM jobs WHERE $1 = '' OR workspace_id = $1 GROUP BY status",
        )
        .bind(ws.map(|w| w.to_string()).unwrap_or_default())
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((get::<String>(r, "status")?, get::<i64>(r, "n")?)))
            .collect()
    }
}
