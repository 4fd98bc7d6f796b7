//! The SQL store: the source of truth for agents, API keys, knowledge (documents, chunks and
//! their embeddings), channels, conversations, messages, escalations and the job queue.
//!
//! [`Store`] speaks in domain verbs. One SQL implementation ([`sql::SqlStore`]) serves both
//! backends through sqlx's `Any` driver; what differs between SQLite ([`sqlite`]) and Postgres
//! ([`postgres`]) — connection setup, full-text search, job claiming — lives in those files.

mod sql;
pub mod postgres;
pub mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{
    Agent, AgentConfig, AgentId, ApiKeyId, Chunk, ChunkId, Document, DocumentId,
};

pub use sql::SqlStore;

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
    /// Any other database error.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Which SQL engine is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A local SQLite file (WAL).
    Sqlite,
    /// A Postgres server.
    Postgres,
}

/// An API key's stored form (the key itself is never stored).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// A label.
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// The store's domain verbs.
#[async_trait]
pub trait Store: Send + Sync {
    /// Which engine this is.
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates an agent; [`StoreError::Conflict`] if the name is taken.
    async fn create_agent(&self, name: &str, active: bool, config: &AgentConfig) -> Result<Agent, StoreError>;
    /// An agent by id.
    async fn agent(&self, id: AgentId) -> Result<Option<Agent>, StoreError>;
    /// An agent by name.
    async fn agent_by_name(&self, name: &str) -> Result<Option<Agent>, StoreError>;
    /// All agents, by name.
    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError>;
    /// Saves an agent's name, active flag and configuration.
    async fn update_agent(&self, agent: &Agent) -> Result<Agent, StoreError>;
    /// Deletes an agent; false if it did not exist.
    async fn delete_agent(&self, id: AgentId) -> Result<bool, StoreError>;

    /// Stores a new API key by its hash.
    async fn create_api_key(&self, name: &str, key_hash: &str, prefix: &str) -> Result<ApiKey, StoreError>;
    /// The live (unrevoked) key with this hash.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;
    /// All keys, newest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Revokes a key; false if it did not exist or was already revoked.
    async fn revoke_api_key(&self, id: ApiKeyId) -> Result<bool, StoreError>;

    /// The document stored for this source, if any.
    async fn document_by_source(&self, collection: &str, source: &str) -> Result<Option<Document>, StoreError>;
    /// A document by id.
    async fn document(&self, id: DocumentId) -> Result<Option<Document>, StoreError>;
    /// A collection's documents, by source.
    async fn list_documents(&self, collection: &str) -> Result<Vec<Document>, StoreError>;
    /// Stores a document and its chunks in one transaction, replacing the earlier version.
    async fn replace_document(&self, doc: NewDocument, chunks: Vec<NewChunk>) -> Result<ReplacedDocument, StoreError>;
    /// Deletes a document and its chunks; `None` if it did not exist.
    async fn delete_document(&self, id: DocumentId) -> Result<Option<DeletedDocument>, StoreError>;
    /// Passages by chunk id (missing ids are skipped), in the order asked.
    async fn passages(&self, ids: &[ChunkId]) -> Result<Vec<Passage>, StoreError>;
    /// Stored embeddings of these chunks (missing ids are skipped).
    async fn embeddings(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Vec<f32>>, StoreError>;
    /// Passages of one document with positions in `from..=to`, in order.
    async fn passages_in_range(&self, document: DocumentId, from: i64, to: i64) -> Result<Vec<Passage>, StoreError>;
    /// A page of a collection's chunks (with embeddings), ordered by id, after `after`.
    async fn chunk_page(&self, collection: &str, after: Option<ChunkId>, limit: usize) -> Result<Vec<Chunk>, StoreError>;
    /// Replaces one document's stored embeddings (after a change of embedder) and records the
    /// model; returns the collection's new version.
    async fn update_embeddings(&self, document: DocumentId, model: &str, vectors: &[(ChunkId, Vec<f32>)]) -> Result<i64, StoreError>;
    /// Chunks whose normalised text matches any of `terms`, best first.
    async fn keyword_search(&self, collection: &str, terms: &[String], limit: usize) -> Result<Vec<KeywordHit>, StoreError>;
    /// Every collection with its counts and versions.
    async fn collections(&self) -> Result<Vec<CollectionState>, StoreError>;
    /// Records that the vector index holds the collection as of `version`.
    async fn mark_collection_indexed(&self, collection: &str, version: i64) -> Result<(), StoreError>;
}

/// Opens the store named by a database URL, creating the SQLite file's directory if needed.
pub async fn open(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    let store = SqlStore::connect(url, max_connections).await?;
    Ok(Arc::new(store))
}
