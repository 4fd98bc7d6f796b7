//! Job-queue figures: how long a worker's claim of the next job takes with a backlog of due
//! jobs waiting (as after a provider outage, when every customer's reply waits for its retry),
//! against the same claims on a queue holding a handful, measured in the same run on the same
//! database. Jobs come in per-conversation queues of a few, as replies do, so a claim also
//! checks that the job heads its queue.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::pipeline::{latency, Latency};
use super::BenchError;
use crate::domain::{MessageId, Task, WorkspaceId};
use crate::store::{NewJob, Store};

/// Jobs in each conversation's queue.
const PER_QUEUE: usize = 5;

/// The figures.
#[derive(Debug, Clone)]
pub struct QueueReport {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Due jobs waiting in the measured run.
    pub backlog: usize,
    /// Due jobs waiting in the baseline run.
    pub baseline: usize,
    /// Claims with the backlog waiting.
    pub claim: Latency,
    /// Claims with the baseline's handful waiting.
    pub claim_baseline: Latency,
    /// Seconds the backlog took to enqueue (one job a transaction).
    pub fill_seconds: f64,
}

impl fmt::Display for QueueReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "job claims on {} (the next due job at the head of its queue, leased)",
            self.backend
        )?;
        super::latency_table(
            f,
            28,
            [
                (format!("{} jobs due", self.backlog), &self.claim),
                (
                    format!("{} jobs due (baseline)", self.baseline),
                    &self.claim_baseline,
                ),
            ],
        )?;
        writeln!(
            f,
            "  backlog / baseline p50 ratio: {:.1}x ({} claims each; backlog enqueued in {:.1} s)",
            self.claim.p50.as_secs_f64() / self.claim_baseline.p50.as_secs_f64().max(1e-9),
            self.claim.samples,
            self.fill_seconds
        )
    }
}

/// Enqueues `jobs` due now, [`PER_QUEUE`] to a queue, the queues numbered from `first`.
async fn enqueue(store: &dyn Store, jobs: usize, first: usize) -> Result<(), BenchError> {
    let now = Utc::now();
    for n in 0..jobs {
        store
            .enqueue(NewJob {
                workspace_id: WorkspaceId::DEFAULT,
                task: Task::Send {
                    message_id: MessageId::new(),
                },
                queue_key: Some(format!("conversation-{}", first + n / PER_QUEUE)),
                run_at: now,
                limits: Default::default(),
            })
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
    }
    Ok(())
}

/// Times `claims` claims, completing each claimed job (untimed) as a worker would.
async fn claims(store: &dyn Store, claims: usize) -> Result<Latency, BenchError> {
    let lease = Duration::from_secs(60);
    let mut samples = Vec::with_capacity(claims);
    for _ in 0..claims {
        let started = Instant::now();
        let job = store
            .claim_next_job("bench-worker", lease)
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        samples.push(started.elapsed());
        let job = job.ok_or_else(|| BenchError::Setup("the queue ran dry".into()))?;
        store
            .complete_job(job.id, "bench-worker")
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
    }
    Ok(latency(samples))
}

/// Runs the benchmark on a fresh SQLite file under `data_dir`, or on the (empty) Postgres
/// database at `database_url` (a pool of `max_connections`): first `baseline` due jobs and as
/// many claims, then a backlog of `backlog` due jobs and `repeats` claims.
pub async fn run(
    data_dir: &Path,
    database_url: Option<&str>,
    max_connections: u32,
    backlog: usize,
    baseline: usize,
    repeats: usize,
) -> Result<QueueReport, BenchError> {
    let setup = |e: &dyn fmt::Display| BenchError::Setup(e.to_string());
    let scratch = super::scratch_dir(data_dir, "queue")?;
    let url = match database_url {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", scratch.join("palaver.db").display()),
    };
    let store: Arc<dyn Store> = crate::store::open(&url, max_connections)
        .await
        .map_err(|e| setup(&e))?;
    store.migrate().await.map_err(|e| setup(&e))?;
    let backend = format!("{:?}", store.backend()).to_lowercase();

    let baseline = baseline.max(1);
    let repeats = repeats.clamp(1, backlog.max(1));
    enqueue(store.as_ref(), baseline, 0).await?;
    let claim_baseline = claims(store.as_ref(), baseline).await?;

    eprintln!("enqueueing {backlog} due jobs...");
    let started = Instant::now();
    enqueue(store.as_ref(), backlog, baseline).await?;
    let fill_seconds = started.elapsed().as_secs_f64();
    let claim = claims(store.as_ref(), repeats).await?;
    drop(store);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(QueueReport {
        backend,
        backlog,
        baseline,
        claim,
        claim_baseline,
        fill_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small run claims every job it times, from a backlog spread over several queues, and
    /// leaves nothing behind in the data directory.
    #[tokio::test]
    async fn claims_are_timed_against_a_backlog_and_a_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(dir.path(), None, 2, 30, 4, 25).await.unwrap();
        assert_eq!(report.backend, "sqlite");
        assert_eq!((report.backlog, report.baseline), (30, 4));
        assert_eq!(
            (report.claim.samples, report.claim_baseline.samples),
            (25, 4)
        );
        assert!(report.to_string().contains("30 jobs due"));
        assert!(!dir.path().join("bench").read_dir().unwrap().any(|_| true));
    }
}
