//! Group commit for customer messages.
//!
//! Webhooks are small and arrive concurrently. Recorded one transaction each, every message
//! costs a commit (an fsync), and on SQLite they queue one by one for the single writer. So
//! every message to record goes to a committer instead, which takes everything queued since
//! its last commit (up to [`MAX_BATCH`]) and records it in one transaction: one commit, one
//! fsync, many messages. Each caller is answered only after that commit, so a webhook is still
//! acknowledged only once what it carried is durable. Nothing waits to fill a batch: a lone
//! message commits at once, and batches grow only while a commit is under way.
//!
//! A batch costs the same handful of statements as a single message (see [`super::inbound`]),
//! which write rows in one order and append events last, so concurrent transactions never
//! wait for each other in a cycle. When any message of a batch still fails (a concurrent
//! replica stored the same message, a bad row), the batch is rolled back and each of its
//! messages is recorded again in its own transaction, so one message never costs the others
//! theirs; a transaction the database chose to abort (a deadlock, a serialization failure) is
//! tried again.

use std::sync::Arc;

use sqlx::AnyPool;

use super::event_log::EventSignal;
use super::group::{GroupCommit, Request};
use super::inbound::{record_batch, Inbound};
use super::rows::{begin_write_on, db_err, Tx};
use super::{Backend, InboundPolicy, NewInbound, RecordedInbound, StoreError};
use crate::domain::Channel;

/// The most messages one transaction records.
pub(super) const MAX_BATCH: usize = 128;

/// Tries of a message's own transaction the database aborted (deadlock, serialization).
const RETRIES: usize = 4;

/// A message to record.
struct Item {
    channel: Channel,
    inbound: NewInbound,
    policy: InboundPolicy,
}

type Pending = Request<Item, RecordedInbound>;

/// The way into the committers.
pub(super) struct Intake {
    committers: GroupCommit<Item, RecordedInbound>,
}

impl Intake {
    /// Starts `committers` tasks writing through `write` (one is all SQLite's single writer
    /// can use; Postgres commits several batches at once). They stop when the store is dropped.
    pub(super) fn start(
        backend: Backend,
        write: AnyPool,
        signal: Arc<EventSignal>,
        committers: usize,
    ) -> Self {
        let committer = Arc::new(Committer {
            backend,
            write,
            signal,
        });
        let committers = GroupCommit::start(
            "the message committer",
            committers,
            MAX_BATCH,
            "palaver_intake_batch_size",
            move |batch| {
                let committer = committer.clone();
                async move { committer.commit(batch).await }
            },
        );
        Intake { committers }
    }

    /// Records one message, answering once it is committed (or failed).
    pub(super) async fn record(
        &self,
        channel: &Channel,
        inbound: NewInbound,
        policy: InboundPolicy,
    ) -> Result<RecordedInbound, StoreError> {
        self.committers
            .call(Item {
                channel: channel.clone(),
                inbound,
                policy,
            })
            .await
    }
}

struct Committer {
    backend: Backend,
    write: AnyPool,
    signal: Arc<EventSignal>,
}

impl Committer {
    async fn commit(&self, batch: Vec<Pending>) {
        if batch.len() > 1 {
            match self.record_together(&batch).await {
                Ok(recorded) => {
                    for (pending, recorded) in batch.into_iter().zip(recorded) {
                        self.answer(pending, Ok(recorded));
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, size = batch.len(), "batch failed; recording its messages one by one");
                }
            }
        }
        for pending in batch {
            let recorded = self.record_alone(&pending).await;
            self.answer(pending, recorded);
        }
    }

    fn answer(&self, pending: Pending, recorded: Result<RecordedInbound, StoreError>) {
        if let Ok(RecordedInbound::New { .. }) = &recorded {
            self.signal.wake(pending.item.channel.workspace_id);
        }
        pending.answer(recorded);
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        begin_write_on(self.backend, &self.write).await
    }

    async fn record_together(&self, batch: &[Pending]) -> Result<Vec<RecordedInbound>, StoreError> {
        let mut tx = self.begin().await?;
        let recorded = record_batch(&mut tx, &Self::items(batch)).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(recorded)
    }

    fn items(batch: &[Pending]) -> Vec<Inbound<'_>> {
        batch
            .iter()
            .map(|p| Inbound {
                channel: &p.item.channel,
                message: &p.item.inbound,
                policy: &p.item.policy,
            })
            .collect()
    }

    async fn record_alone(&self, p: &Pending) -> Result<RecordedInbound, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_alone(p).await {
                Err(e) if attempt < RETRIES && e.is_transient() => {
                    tracing::debug!(error = %e, attempt, "a message's transaction was aborted; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(10 * attempt as u64)).await;
                }
                other => return other,
            }
        }
    }

    async fn try_alone(&self, p: &Pending) -> Result<RecordedInbound, StoreError> {
        let mut tx = self.begin().await?;
        let recorded = match record_batch(&mut tx, &Self::items(std::slice::from_ref(p))).await {
            Ok(mut recorded) => recorded.remove(0),
            // A concurrent delivery of the same message won the race: that one is handled.
            Err(StoreError::Conflict(_)) => return Ok(RecordedInbound::Duplicate),
            Err(e) => return Err(e),
        };
        match tx.commit().await.map_err(db_err) {
            Ok(()) => Ok(recorded),
            Err(StoreError::Conflict(_)) => Ok(RecordedInbound::Duplicate),
            Err(e) => Err(e),
        }
    }
}
