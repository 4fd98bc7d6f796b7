//! The job runner: workers claim due jobs from the durable queue with a lease (kept alive while
//! the job runs), run them — `handle` a conversation's new messages, `send` an outbox message —
//! and complete them, retry them with exponential backoff and jitter, or dead-letter them after
//! the configured attempts. Jobs of one conversation run one at a time, in order (the store's
//! queue keys guarantee it across processes).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::channels::{Channels, DeliveryFailure};
use crate::config::WorkerSettings;
use crate::domain::{ConversationId, MessageId};
use crate::pipeline::{Pipeline, PipelineError};
use crate::store::{Job, Store};

/// Why a job attempt failed.
#[derive(Debug, thiserror::Error)]
enum JobError {
    /// Try again later (after the given delay, when the cause asked for one).
    #[error("{0}")]
    Retry(String, Option<Duration>),
    /// Retrying cannot help.
    #[error("{0}")]
    Fatal(String),
}

impl From<PipelineError> for JobError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::MissingConversation(_) | PipelineError::Prompt(_) => {
                JobError::Fatal(e.to_string())
            }
            PipelineError::Store(_) | PipelineError::Knowledge(_) | PipelineError::Media(_) => {
                JobError::Retry(e.to_string(), None)
            }
        }
    }
}

/// The delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, capped, with ±25 % jitter so
/// retries of a burst spread out.
pub fn backoff(settings: &WorkerSettings, attempt: u32) -> Duration {
    let base = settings.backoff_base_ms as f64 / 1000.0;
    let exp = base * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
    let capped = exp.min(settings.backoff_max_secs as f64);
    let jitter = rand::rng().random_range(0.75..=1.25);
    Duration::from_secs_f64((capped * jitter).min(settings.backoff_max_secs as f64))
}

/// Runs jobs until told to stop.
pub struct Workers {
    store: Arc<dyn Store>,
    pipeline: Arc<Pipeline>,
    channels: Arc<Channels>,
    settings: WorkerSettings,
    id: String,
}

impl Workers {
    /// Workers over the store, running the pipeline and the outbox.
    pub fn new(
        store: Arc<dyn Store>,
        pipeline: Arc<Pipeline>,
        channels: Arc<Channels>,
        settings: WorkerSettings,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "palaver".into());
        Self {
            store,
            pipeline,
            channels,
            settings,
            id: format!(
                "{host}-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        }
    }

    /// Starts `settings.concurrency` workers; they finish their current job and stop once
    /// `stop` turns true.
    pub fn spawn(self: Arc<Self>, stop: watch::Receiver<bool>) -> JoinSet<()> {
        let mut set = JoinSet::new();
        for n in 0..self.settings.concurrency {
            let workers = self.clone();
            let stop = stop.clone();
            set.spawn(async move { workers.run(format!("{}-{n}", workers.id), stop).await });
        }
        set
    }

    async fn run(&self, worker: String, mut stop: watch::Receiver<bool>) {
        let lease = Duration::from_secs(self.settings.lease_secs);
        let poll = Duration::from_millis(self.settings.poll_ms);
        tracing::debug!(%worker, "worker started");
        while !*stop.borrow() {
            match self.store.claim_next_job(&worker, lease).await {
                Ok(Some(job)) => self.run_job(&worker, job, lease).await,
                Ok(None) => {
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::error!(%worker, error = %e, "cannot claim jobs");
                    tokio::time::sleep(poll * 4).await;
                }
            }
        }
        tracing::debug!(%worker, "worker stopped");
    }

    /// Runs one job with its lease kept alive, then records the result.
    #[tracing::instrument(skip_all, fields(job = %job.id, kind = %job.kind, attempt = job.attempts))]
    pub async fn run_job(&self, worker: &str, job: Job, lease: Duration) {
        if job.attempts > job.max_attempts {
            // Leased too many times without finishing (crashes): stop trying.
            let why = format!("abandoned after {} attempts", job.max_attempts);
            if let Err(e) = self.store.dead_letter_job(job.id, worker, &why).await {
                tracing::error!(error = %e, "cannot dead-letter job");
            }
            return;
        }
        let keeper = {
            let store = self.store.clone();
            let worker = worker.to_string();
            let id = job.id;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match store.extend_lease(id, &worker, lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(job = %id, "lease lost");
                            break;
                        }
                        Err(e) => tracing::warn!(job = %id, error = %e, "cannot extend lease"),
                    }
                }
            })
        };
        let started = std::time::Instant::now();
        let result = self.execute(&job).await;
        keeper.abort();
        metrics::histogram!("palaver_job_duration_seconds", "kind" => job.kind.clone())
            .record(started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(()) => self
                .store
                .complete_job(job.id, worker)
                .await
                .map(|_| "done"),
            Err(JobError::Retry(why, after)) if job.attempts < job.max_attempts => {
                let delay = after
                    .unwrap_or_else(|| backoff(&self.settings, job.attempts))
                    .max(Duration::from_millis(50));
                tracing::warn!(error = %why, retry_in_ms = delay.as_millis() as u64, "job failed, will retry");
                let run_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                self.store
                    .retry_job(job.id, worker, run_at, &why)
                    .await
                    .map(|_| "retry")
            }
            Err(JobError::Retry(why, _)) | Err(JobError::Fatal(why)) => {
                tracing::error!(error = %why, "job dead-lettered");
                self.store
                    .dead_letter_job(job.id, worker, &why)
                    .await
                    .map(|_| "dead")
            }
        };
        match outcome {
            Ok(result) => metrics::counter!("palaver_jobs_total", "kind" => job.kind.clone(), "result" => result).increment(1),
            Err(e) => tracing::error!(error = %e, "cannot record job result"),
        }
    }

    async fn execute(&self, job: &Job) -> Result<(), JobError> {
        let id = |key: &str| {
            job.payload
                .get(key)
                .and_then(|v| v.as_str())
                .ok_or_else(|| JobError::Fatal(format!("payload has no {key}")))
        };
        match job.kind.as_str() {
            "handle" => {
                let conversation: ConversationId = id("conversation_id")?
                    .parse()
                    .map_err(|_| JobError::Fatal("bad conversation id".into()))?;
                if let (Ok(Some(conv)), Ok(turn)) = (
                    self.store.conversation(conversation).await,
                    self.store.unhandled_inbound(conversation).await,
                ) {
                    if let Some(last) = turn.last().and_then(|m| m.provider_message_id.as_deref()) {
                        if !conv.sandbox {
                            self.channels.mark_read(&conv, last).await;
                        }
                    }
                }
                let outcome = self.pipeline.handle_pending(conversation).await?;
                tracing::info!(action = ?outcome.action, silence = ?outcome.silence, "turn handled");
                Ok(())
            }
            "send" => {
                let message: MessageId = id("message_id")?
                    .parse()
                    .map_err(|_| JobError::Fatal("bad message id".into()))?;
                match self.channels.deliver(message).await {
                    Ok(()) => Ok(()),
                    Err(DeliveryFailure::Retry { message, after }) => {
                        Err(JobError::Retry(message, after))
                    }
                    // The message is marked failed; the job is done.
                    Err(DeliveryFailure::Failed(why)) => {
                        tracing::warn!(%message, error = %why, "message not delivered");
                        Ok(())
                    }
                }
            }
            other => Err(JobError::Fatal(format!("unknown job kind `{other}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let s = WorkerSettings {
            backoff_base_ms: 500,
            backoff_max_secs: 10,
            ..Default::default()
        };
        let first = backoff(&s, 1).as_secs_f64();
        assert!((0.375..=0.625).contains(&first), "{first}");
        let third = backoff(&s, 3).as_secs_f64();
        assert!((1.5..=2.5).contains(&third), "{third}");
        for attempt in [10, 20, 100, u32::MAX] {
            assert!(backoff(&s, attempt) <= Duration::from_secs(10));
        }
        let samples: std::collections::HashSet<u128> =
            (0..20).map(|_| backoff(&s, 2).as_micros()).collect();
        assert!(samples.len() > 1, "jitter varies the delay");
    }
}
