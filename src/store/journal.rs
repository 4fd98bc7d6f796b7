//! The webhook journal: where a verified webhook delivery is kept, durably, between its
//! acknowledgement and the recording of what it carries.
//!
//! Webhooks are small and arrive concurrently. Recording a message touches a contact, a
//! conversation, the message, its search index, a job and an event, and on SQLite every one of
//! those writes waits for the single writer. Appending the delivery's bytes to a journal costs
//! one row. So a webhook is acknowledged once its delivery is in the journal: appends are
//! grouped, many deliveries to a commit (one fsync), and each caller is answered only after the
//! commit holding its delivery. What the deliveries carry is then recorded from the journal in
//! batches far larger than concurrent webhooks make (see `crate::channels::intake`), and an
//! entry is removed only once that is committed. Recording is idempotent (a message already
//! stored is a duplicate), so an entry recorded twice, after a crash between the two commits,
//! changes nothing.
//!
//! On SQLite the journal is a file of its own beside the database (`<database>.intake`), with
//! its own writer, so appends never wait behind the recording of earlier deliveries. On
//! Postgres it is a table of the database; entries are leased (`FOR UPDATE SKIP LOCKED`) so
//! replicas record disjoint batches, and a replica that dies holding a lease leaves its batch
//! to another once the lease expires.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AnyPool, AssertSqlSafe};

use super::group::{GroupCommit, Request};
use super::rows::{db_err, now_ms, placeholders};
use super::{Backend, StoreError};
use crate::domain::{ChannelId, ProviderKind};

/// The most deliveries one append commits.
const MAX_APPEND: usize = 256;

/// The journal's table on SQLite, in its own file (created at open).
pub(super) const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS webhook_journal (
    seq INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    channels TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
)";

/// A verified webhook delivery to keep.
#[derive(Debug, Clone)]
pub struct NewJournalEntry {
    /// The provider whose webhook received it.
    pub provider: ProviderKind,
    /// The channels whose secret verified it (its events are routed among them).
    pub channels: Vec<ChannelId>,
    /// The body, as received.
    pub body: Vec<u8>,
}

/// A kept delivery whose content is still to be recorded.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    /// Its place in the journal: entries are taken in this order.
    pub seq: i64,
    pub provider: ProviderKind,
    pub channels: Vec<ChannelId>,
    pub body: Vec<u8>,
    /// When its webhook was acknowledged.
    pub received_at: DateTime<Utc>,
    /// Earlier tries that failed.
    pub attempts: u32,
}

/// Verified webhook deliveries between their acknowledgement and their recording.
#[async_trait]
pub trait JournalStore: Send + Sync {
    /// Appends a delivery, answering once it is durable.
    async fn journal(&self, entry: NewJournalEntry) -> Result<(), StoreError>;
    /// Up to `limit` entries not leased and not waiting for a retry, oldest first, leased to
    /// the caller for `lease`.
    async fn take_journal(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<JournalEntry>, StoreError>;
    /// Removes entries whose content is recorded.
    async fn finish_journal(&self, seqs: &[i64]) -> Result<(), StoreError>;
    /// Keeps an entry whose recording failed, to be taken again at `retry_at`.
    async fn retry_journal(
        &self,
        seq: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// How many entries are kept, and how many of them failed at least once.
    async fn journal_backlog(&self) -> Result<JournalBacklog, StoreError>;
}

/// The entries kept in the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct JournalBacklog {
    /// Deliveries acknowledged and not yet recorded.
    pub entries: u64,
    /// Of those, the ones whose recording failed, waiting to be tried again.
    pub failing: u64,
}

impl JournalBacklog {
    /// Whether every entry left has failed and waits for a retry: all that could be recorded
    /// is.
    pub fn settled(&self) -> bool {
        self.entries == self.failing
    }
}

type Pending = Request<NewJournalEntry, ()>;

/// The journal's pool and its appenders.
pub(super) struct Journal {
    pub(super) backend: Backend,
    pub(super) pool: AnyPool,
    pub(super) appenders: GroupCommit<NewJournalEntry, ()>,
}

impl Journal {
    /// The journal on `pool`, with `appenders` tasks committing appends (one is all SQLite's
    /// single writer can use). They stop when the store is dropped.
    pub(super) fn start(backend: Backend, pool: AnyPool, appenders: usize) -> Self {
        let writer = pool.clone();
        let appenders = GroupCommit::start(
            "the webhook journal",
            appenders,
            MAX_APPEND,
            "palaver_journal_append_size",
            move |batch| append_and_answer(writer.clone(), batch),
        );
        Journal {
            backend,
            pool,
            appenders,
        }
    }
}

/// Appends `batch` and answers each of its callers.
async fn append_and_answer(pool: AnyPool, batch: Vec<Pending>) {
    let result = append(&pool, &batch).await.map_err(|e| e.to_string());
    if let Err(e) = &result {
        tracing::error!(error = %e, size = batch.len(), "cannot append to the webhook journal");
    }
    for p in batch {
        // A caller that went away (its webhook timed out) has its delivery kept anyway; the
        // provider's retry of it is recorded as a duplicate.
        p.answer(result.clone().map_err(StoreError::Unavailable));
    }
}

/// One multi-row insert, committed on its own: one fsync for the whole batch.
async fn append(pool: &AnyPool, batch: &[Pending]) -> Result<(), StoreError> {
    let rows = (0..batch.len())
        .map(|i| format!("({})", placeholders(i * 4 + 1, 4)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO webhook_journal (provider, channels, body, received_at) VALUES {rows}"
    );
    let now = now_ms();
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for p in batch {
        let channels = p
            .item
            .channels
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",");
        query = query
            .bind(p.item.provider.as_str())
            .bind(channels)
            .bind(p.item.body.clone())
            .bind(now);
    }
    query.execute(pool).await.map_err(db_err)?;
    Ok(())
}
