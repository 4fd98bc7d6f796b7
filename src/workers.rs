//! The job runner: workers claim due jobs from the durable queue with a lease (kept alive while
//! the job runs), run them — [`Task::Handle`] a conversation's new messages, [`Task::Send`] an
//! outbox message, [`Task::Hook`] an event to an outgoing webhook, [`Task::Wake`] a snoozed
//! conversation whose time came — and complete them, retry them with capped exponential backoff and jitter
//! until their deadline (as long as a reply is worth sending), or give them up. Giving up is
//! never silent: an undelivered message is marked failed and its conversation goes to a person,
//! and so does a conversation whose messages could not be answered. Waiting for a channel's send
//! rate is not an attempt. A job that panics fails that job, not its worker; a worker loop that
//! ends anyway is restarted, and [`WorkerHealth`] tells readiness how many are running. Jobs of
//! one conversation run one at a time, in order (the store's queue keys guarantee it across
//! processes).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::channels::{Attempt, Channels};
use crate::config::WorkerSettings;
use crate::domain::{ConversationId, Task};
use crate::events::hooks::{HookError, HookOutcome, Hooks};
use crate::pipeline::{Pipeline, PipelineError};
use crate::store::{Job, Store};

/// Why a job attempt did not finish it.
#[derive(Debug, thiserror::Error)]
enum JobError {
    /// Try again later (after the given delay, when the cause asked for one).
    #[error("{0}")]
    Retry(String, Option<Duration>),
    /// Not an attempt: come back after this long.
    #[error("waiting {0:?}")]
    Wait(Duration),
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

impl From<HookError> for JobError {
    fn from(e: HookError) -> Self {
        match e {
            HookError::Store(_) => JobError::Retry(e.to_string(), None),
            HookError::Invalid { .. } | HookError::Limit(_) | HookError::Sealed => {
                JobError::Fatal(e.to_string())
            }
        }
    }
}

impl From<crate::channels::ChannelError> for JobError {
    fn from(e: crate::channels::ChannelError) -> Self {
        JobError::Retry(e.to_string(), None)
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

/// `delay` after `now`, saturating instead of overflowing.
fn later(now: chrono::DateTime<Utc>, delay: Duration) -> chrono::DateTime<Utc> {
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC)
}

/// What the runner does with a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Run it again at this delay.
    RetryIn(Duration),
    /// Stop trying: the job has failed for good.
    GiveUp(String),
}

/// Decides whether a failed job is retried: while its deadline and the attempt cap allow, after
/// the delay the cause asked for or else the backoff; a delay past the deadline is shortened so
/// the last attempt happens at it.
pub fn retry_verdict(
    settings: &WorkerSettings,
    job: &Job,
    why: &str,
    asked: Option<Duration>,
    now: chrono::DateTime<Utc>,
) -> Verdict {
    if job.attempts >= settings.max_attempts {
        return Verdict::GiveUp(format!("{why} (after {} attempts)", job.attempts));
    }
    let delay = asked
        .unwrap_or_else(|| backoff(settings, job.attempts))
        .max(Duration::from_millis(50));
    let next = later(now, delay);
    match job.expires_at {
        Some(deadline) if now >= deadline => Verdict::GiveUp(format!(
            "{why} (retried for {}s)",
            (deadline - job.created_at).num_seconds()
        )),
        // The last attempt is made at the deadline rather than not at all.
        Some(deadline) if next > deadline => Verdict::RetryIn(
            (deadline - now)
                .to_std()
                .unwrap_or_default()
                .max(Duration::from_millis(50)),
        ),
        _ => Verdict::RetryIn(delay),
    }
}

/// How many worker loops are running, for readiness.
#[derive(Debug, Default)]
pub struct WorkerHealth {
    expected: AtomicUsize,
    running: AtomicUsize,
    draining: std::sync::atomic::AtomicBool,
}

impl WorkerHealth {
    /// The process is shutting down: readiness turns false so no new work is routed here.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the process is shutting down.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Worker loops that should be running.
    pub fn expected(&self) -> usize {
        self.expected.load(Ordering::Relaxed)
    }

    /// Worker loops running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Every worker that should run is running.
    pub fn ok(&self) -> bool {
        self.running() >= self.expected()
    }
}

/// Counts a running loop while alive.
struct Running(Arc<WorkerHealth>);

impl Running {
    fn new(health: Arc<WorkerHealth>) -> Self {
        health.running.fetch_add(1, Ordering::Relaxed);
        Self(health)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs `work` as a task named `worker` until `stop` turns true, starting it again (after
/// `pause`) whenever it ends or panics before that.
async fn supervised<F, Fut>(worker: String, stop: watch::Receiver<bool>, pause: Duration, work: F)
where
    F: Fn(String, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let ended = tokio::spawn(work(worker.clone(), stop.clone())).await;
        if *stop.borrow() {
            break;
        }
        match ended {
            Err(e) if e.is_panic() => tracing::error!(%worker, "worker panicked; restarting it"),
            _ => tracing::error!(%worker, "worker stopped unexpectedly; restarting it"),
        }
        tokio::time::sleep(pause).await;
    }
}

/// Runs jobs until told to stop.
pub struct Workers {
    store: Arc<dyn Store>,
    pipeline: Arc<Pipeline>,
    channels: Arc<Channels>,
    hooks: Arc<Hooks>,
    settings: WorkerSettings,
    health: Arc<WorkerHealth>,
    id: String,
}

impl Workers {
    /// Workers over the store, running the pipeline, the outbox and outgoing webhooks,
    /// reporting to `health`.
    pub fn new(
        store: Arc<dyn Store>,
        pipeline: Arc<Pipeline>,
        channels: Arc<Channels>,
        hooks: Arc<Hooks>,
        settings: WorkerSettings,
        health: Arc<WorkerHealth>,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "palaver".into());
        Self {
            store,
            pipeline,
            channels,
            hooks,
            settings,
            health,
            id: format!(
                "{host}-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        }
    }

    /// Starts `settings.concurrency` supervised workers; they finish their current job and stop
    /// once `stop` turns true. A worker loop that ends before that is started again.
    pub fn spawn(self: Arc<Self>, stop: watch::Receiver<bool>) -> JoinSet<()> {
        let mut set = JoinSet::new();
        self.health
            .expected
            .store(self.settings.concurrency + 1, Ordering::Relaxed);
        {
            let workers = self.clone();
            let name = format!("{}-idle", workers.id);
            let pause = Duration::from_secs(1);
            set.spawn(supervised(name, stop.clone(), pause, move |_, stop| {
                let workers = workers.clone();
                async move { workers.end_idle_handoffs(stop).await }
            }));
        }
        for n in 0..self.settings.concurrency {
            let workers = self.clone();
            let stop = stop.clone();
            let name = format!("{}-{n}", workers.id);
            let pause = Duration::from_millis(workers.settings.poll_ms);
            set.spawn(supervised(name, stop, pause, move |name, stop| {
                let workers = workers.clone();
                async move { workers.run(name, stop).await }
            }));
        }
        set
    }

    async fn run(&self, worker: String, mut stop: watch::Receiver<bool>) {
        let _running = Running::new(self.health.clone());
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

    /// Every `idle_check_secs`, ends the escalations no person answered within their agent's
    /// limit (every replica may run this: each escalation ends once).
    async fn end_idle_handoffs(&self, mut stop: watch::Receiver<bool>) {
        let _running = Running::new(self.health.clone());
        let every = Duration::from_secs(self.settings.idle_check_secs);
        while !*stop.borrow() {
            if let Err(e) = self.pipeline.end_idle_handoffs(Utc::now()).await {
                tracing::error!(error = %e, "cannot end idle escalations");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Runs one job with its lease kept alive, then records the result.
    #[tracing::instrument(skip_all, fields(job = %job.id, kind = %job.kind, attempt = job.attempts))]
    pub async fn run_job(&self, worker: &str, job: Job, lease: Duration) {
        let task = match job.task() {
            Ok(task) => task,
            Err(why) => {
                tracing::error!(error = %why, "unreadable job dead-lettered");
                if let Err(e) = self.store.dead_letter_job(job.id, worker, &why).await {
                    tracing::error!(error = %e, "cannot dead-letter job");
                }
                return;
            }
        };
        if job.abandoned >= job.max_abandoned {
            // Its process died while running it, again and again: stop before it takes down
            // another one.
            let why = format!(
                "abandoned {} times (its worker's process died running it)",
                job.abandoned
            );
            self.give_up(worker, &job, &task, &why).await;
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
        // A panic fails this job, not the worker.
        let result = std::panic::AssertUnwindSafe(self.execute(&task))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                tracing::error!(panic = %what, "job panicked");
                Err(JobError::Fatal(format!("the job panicked: {what}")))
            });
        keeper.abort();
        metrics::histogram!("palaver_job_duration_seconds", "kind" => task.kind())
            .record(started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(()) => self
                .store
                .complete_job(job.id, worker)
                .await
                .map(|_| "done"),
            Err(JobError::Wait(wait)) => {
                let run_at = later(Utc::now(), wait);
                self.store
                    .defer_job(job.id, worker, run_at)
                    .await
                    .map(|_| "deferred")
            }
            Err(JobError::Retry(why, after)) => {
                match retry_verdict(&self.settings, &job, &why, after, Utc::now()) {
                    Verdict::RetryIn(delay) => {
                        tracing::warn!(error = %why, retry_in_ms = delay.as_millis() as u64, "job failed, will retry");
                        let run_at = later(Utc::now(), delay);
                        self.store
                            .retry_job(job.id, worker, run_at, &why)
                            .await
                            .map(|_| "retry")
                    }
                    Verdict::GiveUp(why) => {
                        self.give_up(worker, &job, &task, &why).await;
                        Ok("dead")
                    }
                }
            }
            Err(JobError::Fatal(why)) => {
                self.give_up(worker, &job, &task, &why).await;
                Ok("dead")
            }
        };
        match outcome {
            Ok(result) => {
                metrics::counter!("palaver_jobs_total", "kind" => task.kind(), "result" => result)
                    .increment(1)
            }
            Err(e) => tracing::error!(error = %e, "cannot record job result"),
        }
    }

    /// A job failed for good: what it was for goes to a person, then it is dead-lettered. When
    /// the hand-over itself fails the job is retried instead, so nothing is dropped silently.
    async fn give_up(&self, worker: &str, job: &Job, task: &Task, why: &str) {
        tracing::error!(error = %why, "job given up");
        let handed_over = match task {
            Task::Send { message_id } => self
                .channels
                .give_up(*message_id, why)
                .await
                .map_err(|e| e.to_string()),
            Task::Handle { conversation_id } => self
                .pipeline
                .give_up(*conversation_id, why)
                .await
                .map_err(|e| e.to_string()),
            Task::Hook { delivery_id } => self
                .hooks
                .give_up(*delivery_id, why)
                .await
                .map_err(|e| e.to_string()),
            // Nobody but the conversation waits on a wake-up: one last try.
            Task::Wake { conversation_id } => self
                .store
                .wake_conversation(*conversation_id, Utc::now())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        let recorded = match handed_over {
            Ok(()) => self.store.dead_letter_job(job.id, worker, why).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot hand the failure to a person; retrying");
                let run_at = Utc::now() + chrono::Duration::seconds(30);
                self.store.retry_job(job.id, worker, run_at, &e).await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record job result");
        }
    }

    async fn execute(&self, task: &Task) -> Result<(), JobError> {
        match task {
            Task::Handle { conversation_id } => self.handle(*conversation_id).await,
            Task::Send { message_id } => match self.channels.deliver(*message_id).await? {
                Attempt::Done => Ok(()),
                Attempt::Retry { why, after } => Err(JobError::Retry(why, after)),
                Attempt::Wait(wait) => Err(JobError::Wait(wait)),
            },
            Task::Hook { delivery_id } => match self.hooks.deliver(*delivery_id).await? {
                HookOutcome::Done => Ok(()),
                HookOutcome::Retry { why, after } => Err(JobError::Retry(why, after)),
            },
            Task::Wake { conversation_id } => {
                let woken = self
                    .store
                    .wake_conversation(*conversation_id, Utc::now())
                    .await
                    .map_err(|e| JobError::Retry(e.to_string(), None))?;
                tracing::info!(conversation = %conversation_id, woken, "snooze ended");
                Ok(())
            }
        }
    }

    async fn handle(&self, conversation: ConversationId) -> Result<(), JobError> {
        let outcome = self.pipeline.handle_pending(conversation).await?;
        tracing::info!(action = ?outcome.action, silence = ?outcome.silence, "turn handled");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JobId, MessageId};

    #[test]
    fn readiness_sees_a_worker_loop_that_is_not_running() {
        let health = Arc::new(WorkerHealth::default());
        assert!(
            health.ok(),
            "no workers expected (a process that only serves the API)"
        );
        health.expected.store(2, Ordering::Relaxed);
        assert!(!health.ok());
        let first = Running::new(health.clone());
        let second = Running::new(health.clone());
        assert!(health.ok());
        drop(second);
        assert!(!health.ok(), "a loop that ended is reported");
        assert_eq!((health.running(), health.expected()), (1, 2));
        drop(first);
    }

    #[tokio::test]
    async fn a_worker_loop_that_ends_is_started_again() {
        // The first run of the loop panics; the supervisor starts it again.
        let health = Arc::new(WorkerHealth::default());
        let restarts = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = watch::channel(false);
        let counted = restarts.clone();
        let probe = health.clone();
        let supervisor = tokio::spawn(supervised(
            "w".into(),
            stopped,
            Duration::from_millis(5),
            move |_name, _stop| {
                let counted = counted.clone();
                let probe = probe.clone();
                async move {
                    let _running = Running::new(probe);
                    if counted.fetch_add(1, Ordering::Relaxed) == 0 {
                        panic!("first run panics");
                    }
                    std::future::pending::<()>().await;
                }
            },
        ));
        // (Printing the panic's backtrace can take a while.)
        for _ in 0..500 {
            if restarts.load(Ordering::Relaxed) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(restarts.load(Ordering::Relaxed), 2, "restarted once");
        assert_eq!(health.running(), 1);
        stop.send(true).unwrap();
        supervisor.abort();
    }

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

    fn job(attempts: u32, age_secs: i64, retry_for_secs: i64) -> Job {
        let created_at = Utc::now() - chrono::Duration::seconds(age_secs);
        let task = Task::Send {
            message_id: MessageId::new(),
        };
        Job {
            id: JobId::new(),
            kind: task.kind().into(),
            queue_key: None,
            payload: task.payload(),
            attempts,
            abandoned: 0,
            max_abandoned: 3,
            expires_at: Some(created_at + chrono::Duration::seconds(retry_for_secs)),
            run_at: created_at,
            status: "running".into(),
            last_error: None,
            created_at,
        }
    }

    #[test]
    fn retries_last_as_long_as_the_deadline_not_a_count() {
        let s = WorkerSettings {
            backoff_base_ms: 100,
            backoff_max_secs: 60,
            ..Default::default()
        };
        let now = Utc::now();
        let secs = Duration::from_secs;
        // A 25 s outage at base 100 ms: the 9th attempt (~50 s in) is still retried.
        assert!(matches!(
            retry_verdict(&s, &job(9, 50, 6 * 3600), "503", None, now),
            Verdict::RetryIn(_)
        ));
        // Past the deadline: given up, whatever the count.
        assert!(matches!(
            retry_verdict(&s, &job(2, 7 * 3600, 6 * 3600), "503", None, now),
            Verdict::GiveUp(_)
        ));
        // The cause's delay is kept, and shortened to land on the deadline.
        assert_eq!(
            retry_verdict(&s, &job(1, 10, 3600), "429", Some(secs(120)), now),
            Verdict::RetryIn(secs(120))
        );
        let Verdict::RetryIn(last) =
            retry_verdict(&s, &job(1, 3590, 3600), "429", Some(secs(120)), now)
        else {
            panic!("one last attempt at the deadline")
        };
        assert!(last <= secs(11) && last >= secs(9), "{last:?}");
        // The attempt cap is a safety net.
        let capped = WorkerSettings {
            max_attempts: 5,
            ..s.clone()
        };
        assert!(matches!(
            retry_verdict(&capped, &job(5, 10, 3600), "503", None, now),
            Verdict::GiveUp(_)
        ));
    }
}
