//! A business's knowledge: loading documents ([`loaders`]), cutting them into token-sized
//! passages ([`chunker`]), ingesting them into the SQL store and the vector index ([`ingest`]),
//! and hybrid retrieval ([`retrieve`]). [`Knowledge`] ties these to the store, the embedder and
//! the vector index.

pub mod chunker;
pub mod ingest;
pub mod loaders;
pub mod retrieve;
pub mod text;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::config::{KnowledgeSettings, RetrievalSettings};
use crate::embed::{EmbedError, Embedder};
use crate::store::{Store, StoreError};
use crate::vectors::{VectorError, VectorStore};

pub use ingest::{IngestOutcome, IngestReport, ReindexReport};
pub use retrieve::{Query, Retrieved};

/// A knowledge operation failure.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The document could not be read or parsed.
    #[error(transparent)]
    Load(#[from] loaders::LoadError),
    /// The file is larger than `knowledge.max_file_bytes`.
    #[error("{name}: {bytes} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// File name.
        name: String,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// Reading a file failed.
    #[error("{name}: {source}")]
    Io {
        /// File name.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The collection name is not usable.
    #[error("invalid collection name `{0}`")]
    InvalidCollection(String),
    /// Embedding failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The vector index failed.
    #[error(transparent)]
    Vectors(#[from] VectorError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Ingestion and retrieval over the store, the embedder and the vector index.
pub struct Knowledge {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) embedder: Arc<dyn Embedder>,
    pub(crate) vectors: Arc<dyn VectorStore>,
    pub(crate) settings: KnowledgeSettings,
    pub(crate) retrieval: RetrievalSettings,
    /// One writer per collection in this process, so vector writes land in version order.
    writers: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Knowledge {
    /// Ties the parts together.
    pub fn new(
        store: Arc<dyn Store>,
        embedder: Arc<dyn Embedder>,
        vectors: Arc<dyn VectorStore>,
        settings: KnowledgeSettings,
        retrieval: RetrievalSettings,
    ) -> Self {
        Self {
            store,
            embedder,
            vectors,
            settings,
            retrieval,
            writers: Mutex::new(HashMap::new()),
        }
    }

    /// The embedder in use.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// The vector index in use.
    pub fn vectors(&self) -> &Arc<dyn VectorStore> {
        &self.vectors
    }

    async fn writer(&self, collection: &str) -> Arc<Mutex<()>> {
        let mut writers = self.writers.lock().await;
        writers.entry(collection.to_string()).or_default().clone()
    }
}
