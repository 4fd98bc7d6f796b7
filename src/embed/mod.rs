//! Text embeddings: the [`Embedder`] trait and its implementations, the local models run
//! in-process (EmbeddingGemma-300M, [`gemma`], the default; multilingual-e5-small, [`e5`];
//! all-MiniLM-L6-v2, [`local`]) and any OpenAI-compatible `/v1/embeddings` server
//! ([`openai`]).

pub mod batch;
pub mod bert;
pub mod e5;
pub mod gemma;
pub mod local;
pub mod openai;
pub mod sentencepiece;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{EmbeddingBackend, EmbeddingSettings, Settings};
use crate::models::{ModelError, ModelStore};

/// An embedding failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    /// The model files could not be obtained or loaded.
    #[error("embedding model unavailable: {0}")]
    Model(String),
    /// Inference failed.
    #[error("embedding failed: {0}")]
    Inference(String),
    /// A remote server failed in a way worth retrying (429, 5xx, timeout).
    #[error("embedding server unavailable: {0}")]
    Transient(String),
    /// A remote server refused the request or answered something unusable.
    #[error("embedding server error: {0}")]
    Permanent(String),
}

impl From<ModelError> for EmbedError {
    fn from(e: ModelError) -> Self {
        EmbedError::Model(e.to_string())
    }
}

/// Turns texts into unit-length vectors.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Identifies the model and its settings; vectors from different ids are not comparable.
    fn model_id(&self) -> &str;
    /// Length of every vector.
    fn dimensions(&self) -> usize;
    /// One vector per text searched in (a passage, a sentence), in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// One vector per text searched for (a customer's question), in order. Models trained to
    /// tell the two apart (E5's `query:` and `passage:`) embed them differently.
    async fn embed_queries(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed(texts).await
    }
    /// How much this model's ranking weighs against the keyword ranking (1) in hybrid
    /// retrieval, unless `retrieval.dense_weight` says: twice, for models that read meaning
    /// across languages better than keywords match it (measured with `palaver eval`, see
    /// [`crate::config::RetrievalSettings::dense_weight`]).
    fn fusion_weight(&self) -> f32 {
        2.0
    }
    /// What this model's centred cosines are multiplied by to become relevance
    /// ([`crate::knowledge::Centre::relevance`]), so that an agent's confidence threshold means
    /// the same with every model: 1 for the model the threshold was measured with
    /// (multilingual-e5-small), and for another the ratio of that model's best threshold to its
    /// own, measured with `palaver eval` on the same suites.
    fn relevance_scale(&self) -> f32 {
        1.0
    }
    /// Whether this model's vectors say what a text is about, so that how like a customer's
    /// question to a business a question is can be read from them
    /// ([`crate::knowledge::Typical::typicality`]). A bag of words says which words it has.
    fn reads_meaning(&self) -> bool {
        true
    }
    /// Whether the model's vocabulary holds `word` (lower-case, as typed) whole, as a piece
    /// that begins a word: a word of some language that text is written in, not a
    /// misspelling of another ("whole" is not "while", "filha" is not "ficha"). False for a
    /// model that does not say.
    fn spells(&self, word: &str) -> bool {
        let _ = word;
        false
    }
}

/// A text as an embedder read it: what another step that reads the same text with the same
/// model can take instead of embedding it again (the question retrieval searched with, for the
/// answerer that compares it with sentences).
#[derive(Debug, Clone)]
pub struct Embedded {
    /// The embedder's [`Embedder::model_id`].
    pub model: String,
    /// The text, as embedded.
    pub text: String,
    /// Its vector, embedded as a question ([`Embedder::embed_queries`]).
    pub vector: Arc<Vec<f32>>,
}

/// The local model used unless `embedding.local_model` names another.
pub const DEFAULT_MODEL: &str = LOCAL_MODELS[0];

/// The models `embedding.local_model` may name, as the settings list them.
pub const LOCAL_MODELS: [&str; 4] = crate::config::LOCAL_EMBEDDING_MODELS;

/// Loads local embedding model `name` (one of [`LOCAL_MODELS`]), fetching it on first use.
pub async fn load_local(
    name: &str,
    models: &ModelStore,
    settings: &EmbeddingSettings,
) -> Result<Arc<dyn Embedder>, EmbedError> {
    match name {
        local::MODEL => Ok(Arc::new(
            local::LocalEmbedder::load(models, settings).await?,
        )),
        gemma::MODEL => Ok(Arc::new(
            gemma::GemmaEmbedder::load(models, settings).await?,
        )),
        _ => Ok(Arc::new(
            e5::E5Embedder::load(models, name, settings).await?,
        )),
    }
}

/// Builds the embedder chosen in the settings (fetching the local model on first use).
pub async fn from_settings(
    settings: &Settings,
    models: &ModelStore,
) -> Result<Arc<dyn Embedder>, EmbedError> {
    match settings.embedding.backend {
        // A local model answers one call at a time: questions that arrive meanwhile go
        // together (see [`batch`]).
        EmbeddingBackend::Local => Ok(Arc::new(batch::QueryBatches::new(
            load_local(&settings.embedding.local_model, models, &settings.embedding).await?,
        ))),
        EmbeddingBackend::Openai => Ok(Arc::new(openai::OpenAiEmbedder::new(&settings.embedding)?)),
    }
}

/// A vector without a model: each word of `text` hashed into one of `dims` buckets, unit
/// length. Texts sharing words are close and nothing is random; tests and benchmarks that
/// measure everything but the model use it.
pub fn bag_of_words(text: &str, dims: usize) -> Vec<f32> {
    let dims = dims.max(1);
    let mut v = vec![0f32; dims];
    for w in crate::knowledge::text::terms(text) {
        let h = w.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        v[(h % dims as u64) as usize] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        v[0] = 1.0;
    }
    v
}

/// Cosine similarity of two vectors (not assumed unit length).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_the_settings_name_is_one_this_module_loads() {
        assert_eq!(
            LOCAL_MODELS,
            [gemma::MODEL, e5::MODEL, e5::PORTUGUESE_MODEL, local::MODEL]
        );
        assert_eq!(DEFAULT_MODEL, gemma::MODEL);
    }
}
