//! The SQL store: the source of truth for agents, API keys, knowledge (documents, chunks and
//! their embeddings), channels, conversations, messages, escalations, eval runs and the job
//! queue.
//!
//! [`Store`] speaks in domain verbs. One SQL implementation ([`sql::SqlStore`]) serves both
//! backends through sqlx's `Any` driver; what differs between SQLite ([`sqlite`]) and Postgres
//! ([`postgres`]) — connection setup, full-text search, job claiming — lives in those files.

mod accounts;
mod activity;
mod canned;
mod channels;
mod contacts;
mod conversations;
mod evals;
mod event_log;
mod events;
mod faq;
mod files;
mod group;
mod hooks;
mod inbound;
mod intake;
mod jobs;
mod journal;
mod journal_store;
mod labels;
mod messages;
mod notes;
mod people;
pub mod postgres;
mod reports;
mod rows;
mod sql;
pub mod sqlite;
mod surveys;
mod teams;
mod writes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{
    Agent, AgentConfig, AgentId, ApiKeyId, Channel, ChannelConfig, ChannelId, ChannelState, Chunk,
    ChunkId, Conversation, ConversationId, ConversationStatus, Document, DocumentId, Escalation,
    EscalationReason, Generation, JobId, MemberRole, Message, MessageDetails, MessageId,
    MessageKind, ProviderKind, Resolution, Role, Task, UserId, WorkspaceId,
};

pub use accounts::{AccountStore, WorkspaceUsage};
pub use canned::CannedStore;
pub use channels::ChannelStore;
pub use contacts::{
    ContactFilter, ContactImport, ContactPatch, ContactProfile, ContactStore, CustomerConversation,
    ImportCounts,
};
pub use conversations::ConversationStore;
pub use evals::{EvalRun, EvalRunStatus, EvalStore, FinishedEvalRun};
pub use event_log::EventSignal;
pub use events::EventStore;
pub use faq::{FaqFilter, FaqStore, GapQuestion, GapReply, NewFaqProposal};
pub use files::{FileStore, NewFile, StoredFile};
pub use hooks::{HookAttempt, HookChanges, HookStore, NewHook, NewHookDelivery};
pub use journal::{JournalBacklog, JournalEntry, JournalStore, NewJournalEntry};
pub use labels::LabelStore;
pub use messages::MessageStore;
pub use notes::{NewNote, NoteStore};
pub use people::{AuditEntry, Invitation, Member, PeopleStore, Session};
pub use reports::{DayActivity, EscalationTimes, ReportScope, ReportStore, SurveyCounts};
pub use sql::SqlStore;
pub use surveys::{Survey, SurveyStore};
pub use teams::TeamStore;

pub use crate::config::JobLimits;

/// A store failure. Callers act on the kind; the cause is for logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (e.g. an agent name already taken).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The referenced row does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored data could not be read back (corrupt JSON, bad id).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Connecting or migrating failed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database aborted the transaction to break a deadlock or keep it serializable;
    /// the same work tried again can succeed.
    #[error("transaction aborted by the database: {0}")]
    Aborted(String),
    /// Any other database error.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether trying the same work again can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Aborted(_))
    }
}

/// Which SQL engine is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A local SQLite file (WAL).
    Sqlite,
    /// A Postgres server.
    Postgres,
}

/// An API key's stored form (the key itself is never stored).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The workspace it opens.
    pub workspace_id: WorkspaceId,
    /// What it may do there.
    pub role: MemberRole,
    /// A label.
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used (to the minute), if ever.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A document to store with its chunks, replacing any earlier version with the same source.
#[derive(Debug, Clone)]
pub struct NewDocument {
    /// Collection it belongs to.
    pub collection: String,
    /// Path relative to the ingested root, or the upload's file name.
    pub source: String,
    /// Title.
    pub title: String,
    /// Detected format (`markdown`, `text`, `csv`, `html`, `pdf`).
    pub format: String,
    /// sha256 of the bytes.
    pub content_hash: String,
    /// File size.
    pub bytes: i64,
    /// Embedder that produced the chunks' vectors.
    pub embedding_model: String,
}

/// A chunk to store; `search_text` is its normalised form for keyword search.
#[derive(Debug, Clone)]
pub struct NewChunk {
    /// Pre-assigned id (the vector point id).
    pub id: ChunkId,
    /// Order in the document.
    pub position: i64,
    /// Heading path.
    pub heading: Option<String>,
    /// Passage text.
    pub text: String,
    /// Lowercased, accent-free text indexed for keyword search.
    pub search_text: String,
    /// Token count.
    pub token_count: i64,
    /// Unit-length embedding.
    pub embedding: Vec<f32>,
}

/// What replacing a document changed.
#[derive(Debug, Clone)]
pub struct ReplacedDocument {
    /// The document as now stored.
    pub document: Document,
    /// Chunks of the earlier version that were removed.
    pub removed_chunks: Vec<ChunkId>,
    /// The collection's version after the write (see [`Store::mark_collection_indexed`]).
    pub version: i64,
}

/// What deleting a document changed.
#[derive(Debug, Clone)]
pub struct DeletedDocument {
    /// The removed chunks.
    pub removed_chunks: Vec<ChunkId>,
    /// The collection's version after the write.
    pub version: i64,
}

/// A passage with its document, as returned to retrieval (without the embedding).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Passage {
    /// Chunk id.
    pub chunk_id: ChunkId,
    /// Document id.
    pub document_id: DocumentId,
    /// Document source (path or file name).
    pub source: String,
    /// Document title.
    pub title: String,
    /// Position in the document.
    pub position: i64,
    /// Heading path.
    pub heading: Option<String>,
    /// Text.
    pub text: String,
}

/// A keyword-search hit: higher scores are better.
#[derive(Debug, Clone, PartialEq)]
pub struct KeywordHit {
    /// The chunk.
    pub chunk_id: ChunkId,
    /// Engine-specific relevance (BM25 for SQLite, ts_rank for Postgres); only the order matters.
    pub score: f32,
}

/// A collection's bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CollectionState {
    /// Collection name.
    pub name: String,
    /// Bumped by every knowledge write.
    pub version: i64,
    /// Last version known to be fully in the vector index.
    pub indexed_version: i64,
    /// Documents in it.
    pub documents: i64,
    /// Chunks in it.
    pub chunks: i64,
}

/// A channel to create.
#[derive(Debug, Clone)]
pub struct NewChannel {
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// A label.
    pub name: String,
    /// Its provider.
    pub provider: ProviderKind,
    /// Routing key (phone number id, instance name).
    pub route_key: String,
    /// The agent answering on it.
    pub agent_id: Option<AgentId>,
    /// Non-secret settings.
    pub settings: ChannelConfig,
    /// The Graph API version it chose (Meta), if any.
    pub graph_version: Option<String>,
    /// Sealed credentials.
    pub sealed_credentials: Vec<u8>,
    /// Initial state.
    pub state: ChannelState,
}

/// A customer message to record.
#[derive(Debug, Clone)]
pub struct NewInbound {
    /// The provider's id; unique per channel (duplicates are dropped).
    pub provider_message_id: String,
    /// Customer's WhatsApp id.
    pub from: String,
    /// Reply address when it differs from `from`.
    pub reply_to: Option<String>,
    /// Meta's business-scoped user id, when given.
    pub user_id: Option<String>,
    /// Profile name.
    pub contact_name: Option<String>,
    /// Kind.
    pub kind: MessageKind,
    /// Text or caption.
    pub text: Option<String>,
    /// Everything else.
    pub details: MessageDetails,
    /// When the customer sent it.
    pub sent_at: DateTime<Utc>,
}

/// How recording an inbound message schedules its handling.
#[derive(Debug, Clone, Copy)]
pub struct InboundPolicy {
    /// Wait this long for more messages of the same burst before handling.
    pub debounce: Duration,
    /// Never delay handling longer than this after the first message of a burst.
    pub max_delay: Duration,
    /// A conversation idle longer than this starts a fresh context.
    pub idle_reset: Duration,
    /// How long the handling job is retried.
    pub limits: JobLimits,
    /// Schedule a handling job (false for the sandbox, which handles the message itself).
    pub schedule: bool,
}

/// What recording an inbound message did.
#[derive(Debug, Clone)]
pub enum RecordedInbound {
    /// Already stored (a provider retry); nothing was done.
    Duplicate,
    /// Stored, and a handling job is scheduled.
    New {
        /// The stored message.
        message: Box<Message>,
        /// Its conversation after the update.
        conversation: Box<Conversation>,
    },
}

/// How an outbound message leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Through the outbox: a send job delivers it through the channel's provider.
    Outbox(JobLimits),
    /// Through the outbox, not before the given instant (a note held until opening time).
    At(JobLimits, DateTime<Utc>),
    /// Nowhere: recorded as sent (messages that only document what happened).
    RecordOnly,
}

/// An escalation to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEscalation {
    /// Why.
    pub reason: EscalationReason,
    /// Details (the matched keyword, the error...).
    pub detail: Option<String>,
    /// The message that triggered it.
    pub message_id: Option<MessageId>,
}

/// The note to a channel's support contact when an escalation opens.
#[derive(Debug, Clone)]
pub struct SupportNote {
    /// The channel it goes out on.
    pub channel: Channel,
    /// The support contact's WhatsApp id.
    pub wa_id: String,
    /// The message (its `conversation_id` is replaced by the support contact's).
    pub message: NewOutbound,
}

/// Everything one turn of a conversation leads to, recorded in one transaction.
#[derive(Debug, Clone)]
pub struct NewTurn {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Customer messages this turn covered: marked handled.
    pub handled: Vec<MessageId>,
    /// Escalation to open (first), when the turn hands the conversation to a person.
    pub escalation: Option<NewEscalation>,
    /// Messages to the customer, in order.
    pub replies: Vec<NewOutbound>,
    /// Note to the support contact, recorded only when the escalation opens now.
    pub support_note: Option<SupportNote>,
    /// Escalation to close first (the bot takes the conversation back); when none closes,
    /// the turn records no replies.
    pub close: Option<Closing>,
}

/// An escalation waiting for a person.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenEscalation {
    /// The escalation.
    pub escalation: Escalation,
    /// The agent of its conversation.
    pub agent_id: Option<AgentId>,
    /// When a person last wrote in the conversation.
    pub last_person_at: Option<DateTime<Utc>>,
}

/// How an open escalation is closed.
#[derive(Debug, Clone, PartialEq)]
pub struct Closing {
    /// Resolved, or handed back to the bot.
    pub resolution: Resolution,
    /// Who closed it, as shown (a person, an API key, "customer", "idle 30 min").
    pub by: String,
    /// The person who closed it.
    pub user: Option<UserId>,
    /// Close only if no person has written in the conversation since then (an idle timeout
    /// that loses the race with a person's reply does nothing).
    pub quiet_since: Option<DateTime<Utc>>,
}

/// What recording a turn did.
#[derive(Debug, Clone)]
pub struct RecordedTurn {
    /// The replies, each with whether it was recorded now (false: recorded by an earlier
    /// attempt of the same turn).
    pub replies: Vec<(Message, bool)>,
    /// The escalation, with whether it was opened now.
    pub escalation: Option<(Escalation, bool)>,
    /// The support note, when one was recorded.
    pub support_note: Option<Message>,
    /// The escalation closed, when the turn asked to close one and it was open.
    pub closed: Option<Escalation>,
}

/// A message from us (bot, human agent or system notice) to record.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    /// Conversation it belongs to.
    pub conversation_id: ConversationId,
    /// Who writes it.
    pub role: Role,
    /// Kind (`Text` or `Template`).
    pub kind: MessageKind,
    /// Text.
    pub text: Option<String>,
    /// Template and other details.
    pub details: MessageDetails,
    /// How a bot reply was produced.
    pub generation: Option<Generation>,
    /// The person who wrote it (a reply from the inbox).
    pub sent_by: Option<UserId>,
    /// Recording twice with the same key returns the first message (exactly-once replies).
    pub idempotency_key: Option<String>,
    /// Customer messages this reply answers: marked handled in the same transaction.
    pub handled: Vec<MessageId>,
    /// How it leaves.
    pub delivery: Delivery,
}

/// Filter for listing conversations.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only this status.
    pub status: Option<ConversationStatus>,
    /// Only this channel.
    pub channel_id: Option<ChannelId>,
    /// Contact name, number or message text containing this (case-insensitive).
    pub search: Option<String>,
    /// Only conversations assigned to this person (`Some(None)`: assigned to nobody).
    pub assignee: Option<Option<UserId>>,
    /// Only conversations with customer messages no person has read.
    pub unread: bool,
    /// Only conversations whose contact has this label.
    pub label: Option<String>,
    /// Only conversations whose contact has this attribute value (a CRM's case id).
    pub attribute: Option<(String, String)>,
    /// Only conversations carrying the workspace's label of this name.
    pub conversation_label: Option<String>,
    /// Only snoozed conversations (`Some(true)`), or only those not snoozed (`Some(false)`).
    pub snoozed: Option<bool>,
    /// Only the team's conversations: assigned to one of its members, or waiting for it
    /// (nobody's yet, on a channel whose escalations go to it).
    pub team: Option<crate::domain::TeamId>,
    /// Sandbox conversations instead of real ones.
    pub sandbox: bool,
    /// Page size.
    pub limit: u32,
    /// Page offset.
    pub offset: u32,
}

/// A conversation with what an inbox list shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConversationSummary {
    /// The conversation.
    #[serde(flatten)]
    pub conversation: Conversation,
    /// Its channel's name.
    pub channel_name: String,
    /// The latest message's text (or kind), shortened.
    pub last_message: Option<String>,
    /// Its labels, by name.
    pub labels: Vec<crate::domain::Label>,
}

/// A durable unit of work.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What to do, as stored (`handle`, `send`): read it with [`Job::task`].
    pub kind: String,
    /// Jobs with the same key run one at a time, in order.
    pub queue_key: Option<String>,
    /// Arguments, as stored.
    pub payload: serde_json::Value,
    /// Attempts so far, this one included (waiting for the channel's send rate is not one).
    pub attempts: u32,
    /// Times its lease expired while it ran (the worker's process died).
    pub abandoned: u32,
    /// Leases that may expire before it is given up.
    pub max_abandoned: u32,
    /// After this it is no longer retried, if set.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it is due.
    pub run_at: DateTime<Utc>,
    /// `pending`, `running` or `dead`.
    pub status: String,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Job {
    /// What to do, or why the stored job cannot be read.
    pub fn task(&self) -> Result<Task, String> {
        Task::from_parts(&self.kind, &self.payload)
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The workspace whose work it is.
    pub workspace_id: WorkspaceId,
    /// What to do.
    pub task: Task,
    /// Serialisation key.
    pub queue_key: Option<String>,
    /// When it is due.
    pub run_at: DateTime<Utc>,
    /// How long it is retried.
    pub limits: JobLimits,
}

/// The durable job queue.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Adds a job.
    async fn enqueue(&self, job: NewJob) -> Result<JobId, StoreError>;
    /// Claims the next due job whose queue is free, leasing it (and its queue) to `worker`.
    async fn claim_next_job(
        &self,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError>;
    /// Extends a running job's lease; false if the lease was lost.
    async fn extend_lease(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StoreError>;
    /// Finishes a job.
    async fn complete_job(&self, id: JobId, worker: &str) -> Result<(), StoreError>;
    /// Puts a job back until `run_at` without counting the attempt (it waited for its
    /// channel's send rate, it did not fail).
    async fn defer_job(
        &self,
        id: JobId,
        worker: &str,
        run_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Schedules another attempt.
    async fn retry_job(
        &self,
        id: JobId,
        worker: &str,
        run_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError>;
    /// Gives up on a job: it stays, visible, with status `dead`.
    async fn dead_letter_job(&self, id: JobId, worker: &str, error: &str)
        -> Result<(), StoreError>;
    /// Jobs by status (`pending`, `running`, `dead`), oldest first.
    async fn list_jobs(
        &self,
        ws: WorkspaceId,
        status: &str,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError>;
    /// Puts a dead job back in the queue with fresh attempts; false if it was not dead.
    async fn requeue_job(&self, ws: WorkspaceId, id: JobId) -> Result<bool, StoreError>;
    /// Counts of jobs by status.
    async fn job_counts(&self, ws: Option<WorkspaceId>)
        -> Result<HashMap<String, i64>, StoreError>;
}

/// The store's domain verbs.
#[async_trait]
pub trait Store:
    ChannelStore
    + ConversationStore
    + MessageStore
    + JobStore
    + EvalStore
    + EventStore
    + HookStore
    + AccountStore
    + PeopleStore
    + FileStore
    + ContactStore
    + JournalStore
    + LabelStore
    + CannedStore
    + NoteStore
    + ReportStore
    + SurveyStore
    + TeamStore
    + FaqStore
    + Send
    + Sync
{
    /// Which engine this is.
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Refreshes the query planner's statistics after a bulk load: Postgres `ANALYZE` (its
    /// autovacuum does the same in time). SQLite's plans here do not depend on statistics.
    async fn refresh_statistics(&self) -> Result<(), StoreError>;

    /// Creates an agent; [`StoreError::Conflict`] if the name is taken.
    async fn create_agent(
        &self,
        ws: WorkspaceId,
        name: &str,
        active: bool,
        config: &AgentConfig,
    ) -> Result<Agent, StoreError>;
    /// An agent by id.
    async fn agent(&self, id: AgentId) -> Result<Option<Agent>, StoreError>;
    /// An agent by name.
    async fn agent_by_name(&self, ws: WorkspaceId, name: &str)
        -> Result<Option<Agent>, StoreError>;
    /// All agents, by name.
    async fn list_agents(&self, ws: WorkspaceId) -> Result<Vec<Agent>, StoreError>;
    /// Saves an agent's name, active flag and configuration.
    async fn update_agent(&self, agent: &Agent) -> Result<Agent, StoreError>;
    /// Deletes an agent; false if it did not exist.
    async fn delete_agent(&self, id: AgentId) -> Result<bool, StoreError>;

    /// Stores a new API key by its hash.
    async fn create_api_key(
        &self,
        ws: WorkspaceId,
        role: MemberRole,
        name: &str,
        key_hash: &str,
        prefix: &str,
    ) -> Result<ApiKey, StoreError>;
    /// The live (unrevoked) key with this hash.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;
    /// All keys, newest first.
    async fn list_api_keys(&self, ws: WorkspaceId) -> Result<Vec<ApiKey>, StoreError>;
    /// Records that a key was used now (at most once a minute per key).
    async fn touch_api_key(&self, id: ApiKeyId, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Revokes a key; false if it did not exist or was already revoked.
    async fn revoke_api_key(&self, ws: WorkspaceId, id: ApiKeyId) -> Result<bool, StoreError>;

    /// The document stored for this source, if any.
    async fn document_by_source(
        &self,
        collection: &str,
        source: &str,
    ) -> Result<Option<Document>, StoreError>;
    /// A document by id.
    async fn document(&self, id: DocumentId) -> Result<Option<Document>, StoreError>;
    /// A collection's documents, by source.
    async fn list_documents(&self, collection: &str) -> Result<Vec<Document>, StoreError>;
    /// Stores a document and its chunks in one transaction, replacing the earlier version.
    async fn replace_document(
        &self,
        doc: NewDocument,
        chunks: Vec<NewChunk>,
    ) -> Result<ReplacedDocument, StoreError>;
    /// Deletes a document and its chunks; `None` if it did not exist.
    async fn delete_document(&self, id: DocumentId) -> Result<Option<DeletedDocument>, StoreError>;
    /// Passages by chunk id (missing ids are skipped), in the order asked.
    async fn passages(&self, ids: &[ChunkId]) -> Result<Vec<Passage>, StoreError>;
    /// Stored embeddings of these chunks (missing ids are skipped).
    async fn embeddings(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Vec<f32>>, StoreError>;
    /// Passages of one document with positions in `from..=to`, in order.
    async fn passages_in_range(
        &self,
        document: DocumentId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Passage>, StoreError>;
    /// Passages within `radius` positions of each `(document, position)`, in document order,
    /// in one query.
    async fn passages_near(
        &self,
        around: &[(DocumentId, i64)],
        radius: i64,
    ) -> Result<Vec<Passage>, StoreError>;
    /// A page of a collection's chunks (with embeddings), ordered by id, after `after`.
    async fn chunk_page(
        &self,
        collection: &str,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<Chunk>, StoreError>;
    /// Replaces one document's stored embeddings (after a change of embedder) and records the
    /// model; returns the collection's new version.
    async fn update_embeddings(
        &self,
        document: DocumentId,
        model: &str,
        vectors: &[(ChunkId, Vec<f32>)],
    ) -> Result<i64, StoreError>;
    /// Chunks whose normalised text matches any of `terms`, best first.
    async fn keyword_search(
        &self,
        collection: &str,
        terms: &[String],
        limit: usize,
    ) -> Result<Vec<KeywordHit>, StoreError>;
    /// Every collection with its counts and versions.
    async fn collections(&self) -> Result<Vec<CollectionState>, StoreError>;
    /// A collection's version (bumped by every knowledge write), if it exists.
    async fn collection_version(&self, collection: &str) -> Result<Option<i64>, StoreError>;
    /// Records that the vector index holds the collection as of `version`.
    async fn mark_collection_indexed(
        &self,
        collection: &str,
        version: i64,
    ) -> Result<(), StoreError>;
}

/// Opens the store named by a database URL, creating the SQLite file's directory if needed.
pub async fn open(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    let store = SqlStore::connect(url, max_connections).await?;
    Ok(Arc::new(store))
}
