//! Group commit: requests from concurrent callers wait in a queue, a few worker tasks each take
//! everything queued (up to a batch) while they are free and commit it at once, and every
//! caller is answered once the batch holding its request is done. Nothing waits to fill a
//! batch: a lone request is taken at once, and batches grow only while a commit is under way.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::StoreError;

/// A queued request and the way to its caller's answer.
pub(super) struct Request<T, R> {
    pub(super) item: T,
    done: oneshot::Sender<Result<R, StoreError>>,
}

impl<T, R> Request<T, R> {
    /// Answers the caller. One that went away (its webhook timed out) is not waited for: what
    /// it asked for is done anyway, and the provider's retry of it finds it done.
    pub(super) fn answer(self, result: Result<R, StoreError>) {
        let _ = self.done.send(result);
    }
}

/// The way into the workers.
pub(super) struct GroupCommit<T, R> {
    /// Names the workers in the error a caller gets once they have stopped.
    name: &'static str,
    queue: mpsc::Sender<Request<T, R>>,
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// Starts `workers` tasks handing batches of at most `max_batch` requests to `commit`, which
    /// answers each of them; `batch_metric` records the batch sizes. Callers wait once four
    /// batches are queued. The workers stop when this is dropped.
    pub(super) fn start<F, Fut>(
        name: &'static str,
        workers: usize,
        max_batch: usize,
        batch_metric: &'static str,
        commit: F,
    ) -> Self
    where
        F: Fn(Vec<Request<T, R>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (queue, pending) = mpsc::channel(4 * max_batch);
        let pending = Arc::new(Mutex::new(pending));
        let commit = Arc::new(commit);
        for _ in 0..workers.max(1) {
            let (pending, commit) = (pending.clone(), commit.clone());
            tokio::spawn(async move {
                loop {
                    let mut batch = Vec::new();
                    {
                        // One worker at a time takes what is queued; the others commit meanwhile.
                        let mut pending = pending.lock().await;
                        if pending.recv_many(&mut batch, max_batch).await == 0 {
                            return;
                        }
                    }
                    metrics::histogram!(batch_metric).record(batch.len() as f64);
                    commit(batch).await;
                }
            });
        }
        GroupCommit { name, queue }
    }

    /// Queues `item` and waits for its answer.
    pub(super) async fn call(&self, item: T) -> Result<R, StoreError> {
        let stopped = || StoreError::Unavailable(format!("{} has stopped", self.name));
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Request { item, done })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
