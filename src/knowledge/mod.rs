//! A business's knowledge: loading documents ([`loaders`]), cutting them into token-sized
//! passages ([`chunker`]), ingesting them into the SQL store and the vector index ([`ingest`]),
//! hybrid retrieval ([`retrieve`]), what the documents say about the business ([`outline`]),
//! the questions people had to answer ([`gaps`]) and the FAQ entries approved from their
//! replies ([`faq`]). [`Knowledge`] ties these to the store, the embedder and the vector index.

pub mod chunker;
pub mod faq;
pub mod gaps;
pub mod ingest;
pub mod lexicon;
pub mod loaders;
pub mod outline;
pub mod quantity;
pub mod relevance;
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
pub use relevance::{Centre, Typical};
pub use retrieve::{Found, Query, Retrieved};

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
    /// For an index of this process's own (not [`VectorStore::shared`]): the collection
    /// version it holds. The store's `indexed_version` says what some process indexed, which
    /// is this one's only when no other process writes to the database.
    held: std::sync::Mutex<HashMap<String, i64>>,
    /// The means of the typical questions' vectors, all together and in each language (see
    /// [`relevance`]), embedded once.
    question_mean: tokio::sync::OnceCell<Arc<relevance::QuestionMeans>>,
    /// Each collection's passage mean, with the collection version it was computed at.
    passage_means: std::sync::Mutex<relevance::PassageMeans>,
    /// Question vectors by who asks and text: customers of one business ask the same things
    /// ("horário?"), and a question costs an encoder pass. Kept per collection (and per
    /// workspace for its gap report), so how fast one business's question is answered says
    /// nothing of what another's customers asked.
    queries: Option<QuestionVectors>,
}

/// Whose question a kept vector is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Asker {
    /// A collection's customers, at retrieval.
    Collection(String),
    /// A workspace's customers, in its knowledge-gap report.
    Workspace(crate::domain::WorkspaceId),
}

/// Question vectors by who asked and question text.
type QuestionVectors = quick_cache::sync::Cache<(Asker, String), Arc<Vec<f32>>>;

/// Question vectors kept (about 1.5 KB each at 384 dimensions).
pub const QUERY_CACHE_ENTRIES: usize = 8192;

impl Knowledge {
    /// The vectors of questions `texts` asked by `asker`, in order, each embedded once while
    /// it is kept (the embedder called in batches for the rest); with how many were kept.
    async fn question_vectors(
        &self,
        asker: Asker,
        texts: &[String],
    ) -> Result<(Vec<Arc<Vec<f32>>>, usize), KnowledgeError> {
        let key = |text: &String| (asker.clone(), text.clone());
        let mut vectors: Vec<Option<Arc<Vec<f32>>>> = texts
            .iter()
            .map(|t| self.queries.as_ref().and_then(|q| q.get(&key(t))))
            .collect();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| vectors[i].is_none()).collect();
        for batch in missing.chunks(64) {
            let batch_texts: Vec<String> = batch.iter().map(|&i| texts[i].clone()).collect();
            let embedded = self.embedder.embed_queries(&batch_texts).await?;
            if embedded.len() != batch.len() {
                return Err(KnowledgeError::Embed(crate::embed::EmbedError::Inference(
                    format!("{} vectors for {} questions", embedded.len(), batch.len()),
                )));
            }
            for (&i, v) in batch.iter().zip(embedded) {
                let v = Arc::new(v);
                if let Some(queries) = &self.queries {
                    queries.insert(key(&texts[i]), v.clone());
                }
                vectors[i] = Some(v);
            }
        }
        let kept = texts.len() - missing.len();
        Ok((vectors.into_iter().flatten().collect(), kept))
    }

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
            held: std::sync::Mutex::new(HashMap::new()),
            question_mean: tokio::sync::OnceCell::new(),
            passage_means: std::sync::Mutex::new(HashMap::new()),
            queries: Some(quick_cache::sync::Cache::new(QUERY_CACHE_ENTRIES)),
        }
    }

    /// The same, embedding every question anew (for measuring what keeping them saves).
    pub fn without_question_cache(mut self) -> Self {
        self.queries = None;
        self
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

    /// The version of `collection` this process's own index holds, if known.
    fn held(&self, collection: &str) -> Option<i64> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(collection).copied()
    }

    /// Records that this process's index holds `collection` as of `version`; with `after`, only
    /// if it held exactly that version before (a write by another process in between is not
    /// in it, and the next search catches up). A collection never seen holds version 0.
    fn hold(&self, collection: &str, version: i64, after: Option<i64>) {
        if self.vectors.shared() {
            return;
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if after.is_none_or(|after| held.get(collection).copied().unwrap_or(0) == after) {
            held.insert(collection.to_string(), version);
        }
    }

    /// Brings this process's own index of `collection` up to the store's `version` of it when
    /// another process (a replica on the same database) changed the collection since; nothing
    /// to do when nothing changed. A shared index is kept by whoever writes.
    pub(crate) async fn follow_store(
        &self,
        collection: &str,
        version: Option<i64>,
    ) -> Result<(), KnowledgeError> {
        if self.vectors.shared() {
            return Ok(());
        }
        let Some(version) = version else {
            return Ok(());
        };
        if self.held(collection).is_some_and(|held| held >= version) {
            return Ok(());
        }
        let report = self.reindex(Some(collection), true).await?;
        for (name, points) in &report.rebuilt {
            tracing::info!(collection = %name, points, "vector index caught up with the store");
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;
    use std::sync::Arc;

    use super::Knowledge;
    use crate::store::Store;

    /// A migrated SQLite store in `dir`.
    pub async fn store(dir: &Path) -> Arc<dyn Store> {
        let url = format!("sqlite://{}", dir.join("palaver.db").display());
        let store = crate::store::open(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// Knowledge over `store` with the test embedder and a vector index of its own, as one
    /// process has.
    pub fn knowledge(store: Arc<dyn Store>) -> Knowledge {
        knowledge_with(store, Arc::new(crate::testing::HashEmbedder::default()))
    }

    /// [`knowledge`] with `embedder`.
    pub fn knowledge_with(
        store: Arc<dyn Store>,
        embedder: Arc<dyn crate::embed::Embedder>,
    ) -> Knowledge {
        Knowledge::new(
            store,
            embedder,
            Arc::new(crate::vectors::memory::MemoryStore::new()),
            Default::default(),
            Default::default(),
        )
    }
}
