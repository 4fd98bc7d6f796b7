//! The vector index: the [`VectorStore`] trait over qdrant-edge, embedded in the data directory
//! ([`edge`]), and a Qdrant server through qdrant-client ([`qdrant`]). The index is derived
//! data: the SQL store keeps every chunk's embedding and `reindex` rebuilds the index from it.

pub mod edge;
pub mod memory;
pub mod qdrant;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::config::{Settings, VectorBackend};

/// A vector index failure.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// The index could not be opened or reached.
    #[error("vector index unavailable: {0}")]
    Unavailable(String),
    /// The collection does not exist.
    #[error("vector collection `{0}` does not exist")]
    MissingCollection(String),
    /// A vector of the wrong length, or another bad request.
    #[error("invalid vector request: {0}")]
    Invalid(String),
    /// The index failed.
    #[error("vector index error: {0}")]
    Backend(String),
}

/// A point to index: a chunk id and its embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorPoint {
    /// The chunk id.
    pub id: Uuid,
    /// Its embedding.
    pub vector: Vec<f32>,
}

/// A search hit: cosine similarity, higher is closer.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    /// The chunk id.
    pub id: Uuid,
    /// Cosine similarity.
    pub score: f32,
}

/// Dense vector search over named collections (one per knowledge collection).
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// A short name for logs and `/readyz` (`edge`, `qdrant`, `memory`).
    fn name(&self) -> &'static str;
    /// Whether every process on the database sees this index (a Qdrant server), rather than
    /// each process keeping its own (embedded indexes): a process's own index follows the
    /// store's changes by itself.
    fn shared(&self) -> bool {
        false
    }
    /// Creates the collection if missing. An existing one with other dimensions is an error.
    async fn ensure_collection(
        &self,
        collection: &str,
        dimensions: usize,
    ) -> Result<(), VectorError>;
    /// Inserts or replaces points, durably (flushed) before returning.
    async fn upsert(&self, collection: &str, points: Vec<VectorPoint>) -> Result<(), VectorError>;
    /// Removes points; unknown ids are ignored.
    async fn delete(&self, collection: &str, ids: &[Uuid]) -> Result<(), VectorError>;
    /// The `limit` nearest points by cosine similarity, best first.
    async fn search(
        &self,
        collection: &str,
        vector: &[f32],
        limit: usize,
    ) -> Result<Vec<VectorHit>, VectorError>;
    /// Points in the collection (0 if it does not exist).
    async fn count(&self, collection: &str) -> Result<u64, VectorError>;
    /// Removes the collection and its points.
    async fn drop_collection(&self, collection: &str) -> Result<(), VectorError>;
    /// Builds search structures (HNSW) after bulk loads; a no-op where the backend does it itself.
    async fn optimize(&self, collection: &str) -> Result<(), VectorError>;
}

/// Builds the vector store chosen in the settings.
pub async fn from_settings(settings: &Settings) -> Result<Arc<dyn VectorStore>, VectorError> {
    match settings.vectors.backend {
        VectorBackend::Edge => Ok(Arc::new(edge::EdgeStore::open(
            &settings.data.dir.join("vectors"),
            settings.vectors.hnsw_ef,
        )?)),
        VectorBackend::Qdrant => Ok(Arc::new(
            qdrant::QdrantStore::connect(&settings.vectors).await?,
        )),
    }
}

/// Longest accepted collection name: a workspace-qualified key (32 hex digits, `.`, a name of
/// up to 64).
const MAX_COLLECTION_NAME: usize = 100;

/// Checks a collection name: 1 to 100 of `a-z`, `0-9`, `_`, `-`, `.`, starting with a letter
/// or digit. Names become directory names (edge) and server collection names (qdrant), so
/// nothing else is let through.
pub(crate) fn validate_collection(collection: &str) -> Result<(), VectorError> {
    let valid = !collection.is_empty()
        && collection.len() <= MAX_COLLECTION_NAME
        && (collection.as_bytes()[0].is_ascii_alphanumeric() || collection.starts_with('_'))
        && collection.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b'.'
        });
    if valid {
        Ok(())
    } else {
        Err(VectorError::Invalid(format!(
            "collection name `{collection}` must be 1-{MAX_COLLECTION_NAME} of a-z, 0-9, `_`, `-`, `.`, starting with a letter, digit or `_`"
        )))
    }
}

/// Checks that `vector` has `dimensions` finite components.
pub(crate) fn check_vector(vector: &[f32], dimensions: usize) -> Result<(), VectorError> {
    if vector.len() != dimensions {
        return Err(VectorError::Invalid(format!(
            "vector has {} dimensions, the collection has {dimensions}",
            vector.len()
        )));
    }
    if !vector.iter().all(|x| x.is_finite()) {
        return Err(VectorError::Invalid(
            "vector has a NaN or infinite component".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names() {
        let long = "a".repeat(MAX_COLLECTION_NAME);
        let too_long = "a".repeat(MAX_COLLECTION_NAME + 1);
        let cases: &[(&str, bool)] = &[
            ("knowledge", true),
            ("agent_7-faq", true),
            ("0", true),
            (&long, true),
            ("", false),
            (&too_long, false),
            ("Knowledge", false),
            ("../etc", false),
            ("..", false),
            (".hidden", false),
            ("-flag", false),
            ("__readiness_probe", true),
            ("0193f1c2aa7e7c3b9d1e5f0a12345678.faq", true),
            ("a/b", false),
            ("a b", false),
            ("café", false),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_collection(name).is_ok(), *ok, "{name:?}");
        }
    }

    #[test]
    fn vector_checks() {
        assert!(check_vector(&[1.0, 0.0], 2).is_ok());
        assert!(matches!(
            check_vector(&[1.0], 2),
            Err(VectorError::Invalid(_))
        ));
        assert!(matches!(
            check_vector(&[1.0, f32::NAN], 2),
            Err(VectorError::Invalid(_))
        ));
        assert!(matches!(
            check_vector(&[f32::INFINITY, 0.0], 2),
            Err(VectorError::Invalid(_))
        ));
    }
}
