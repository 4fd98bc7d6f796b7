//! all-MiniLM-L6-v2 run in-process: tokenisation, the BERT encoder ([`super::bert`]), mean
//! pooling over the tokens and L2 normalisation, matching sentence-transformers. The weights are
//! loaded with candle; whole batches run in parallel on a dedicated thread pool.

use async_trait::async_trait;
use candle_core::Device;
use candle_transformers::models::bert::Config;
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use super::bert::{inference_err, model_err, normalise, thread_pool, Encoder, Runner};
use super::{EmbedError, Embedder};
use crate::config::EmbeddingSettings;
use crate::models::ModelStore;

/// Catalogue name of the model, also its [`Embedder::model_id`].
pub const MODEL: &str = "all-minilm-l6-v2";
/// Vector size.
pub const DIMENSIONS: usize = 384;
/// Longest input in tokens (including `[CLS]` and `[SEP]`); sentence-transformers' setting.
pub const MAX_TOKENS: usize = 256;

/// all-MiniLM-L6-v2 on the CPU.
pub struct LocalEmbedder {
    runner: Runner<Model>,
}

struct Model {
    encoder: Encoder,
    tokenizer: Tokenizer,
    pool: rayon::ThreadPool,
}

impl LocalEmbedder {
    /// Loads the model (fetching it into the model cache on first use).
    pub async fn load(models: &ModelStore, s: &EmbeddingSettings) -> Result<Self, EmbedError> {
        let files = models.ensure(MODEL).await?;
        let path = |name: &str| {
            files
                .path(name)
                .map(|p| p.to_path_buf())
                .ok_or_else(|| EmbedError::Model(format!("{MODEL} has no {name}")))
        };
        let (weights, tokenizer, config) = (
            path("model.safetensors")?,
            path("tokenizer.json")?,
            path("config.json")?,
        );
        let model = tokio::task::spawn_blocking(move || -> Result<Model, EmbedError> {
            let config: Config =
                serde_json::from_slice(&std::fs::read(&config).map_err(model_err)?)
                    .map_err(|e| EmbedError::Model(format!("{}: {e}", config.display())))?;
            let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
                .map_err(|e| EmbedError::Model(format!("{}: {e}", weights.display())))?;
            let encoder = Encoder::load(&tensors, &config)
                .map_err(|e| EmbedError::Model(format!("{}: {e}", weights.display())))?;
            let mut tokenizer = Tokenizer::from_file(&tokenizer)
                .map_err(|e| EmbedError::Model(format!("{}: {e}", tokenizer.display())))?;
            // The shipped tokenizer.json pads and truncates everything to 128 tokens; batches
            // are packed here instead, and sentence-transformers truncates at 256.
            tokenizer.with_padding(None::<PaddingParams>);
            tokenizer
                .with_truncation(Some(TruncationParams {
                    max_length: MAX_TOKENS,
                    ..Default::default()
                }))
                .map_err(model_err)?;
            Ok(Model {
                encoder,
                tokenizer,
                pool: thread_pool()?,
            })
        })
        .await
        .map_err(model_err)??;
        tracing::info!(
            model = MODEL,
            batch_size = s.batch_size,
            threads = model.pool.current_num_threads(),
            "local embedder loaded"
        );
        Ok(Self {
            runner: Runner::new(model, s),
        })
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model_id(&self) -> &str {
        MODEL
    }

    fn dimensions(&self) -> usize {
        DIMENSIONS
    }

    /// English only: across languages its ranking is no better than the keywords' (with
    /// weight 2, `palaver eval` answered 2 cases fewer than with 1).
    fn fusion_weight(&self) -> f32 {
        1.0
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.runner.run(texts, Model::embed).await
    }
}

impl Model {
    fn embed(&self, texts: &[String], batch_size: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch_fast(inputs, true)
            .map_err(inference_err)?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        // Mean pooling: the sum is enough, dividing by the token count cancels in normalising.
        let mut out = self
            .encoder
            .pooled_sums_batched(&self.pool, &ids, batch_size)
            .map_err(inference_err)?;
        out.iter_mut().for_each(|v| normalise(v));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::cosine;

    /// The model store for tests that need the real model, or `None` when it is not cached.
    async fn store_with_model() -> Option<ModelStore> {
        crate::testing::test_model(MODEL).await?;
        Some(crate::testing::test_model_store())
    }

    fn settings(batch_size: usize) -> EmbeddingSettings {
        EmbeddingSettings {
            batch_size,
            ..Default::default()
        }
    }

    #[derive(serde::Deserialize)]
    struct Reference {
        sentences: Vec<String>,
        embeddings: Vec<Vec<f32>>,
    }

    fn reference() -> Reference {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/embeddings/minilm_reference.json"
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn matches_sentence_transformers() {
        let Some(store) = store_with_model().await else {
            return;
        };
        let embedder = LocalEmbedder::load(&store, &settings(32)).await.unwrap();
        assert_eq!(
            (embedder.model_id(), embedder.dimensions()),
            ("all-minilm-l6-v2", 384)
        );
        let r = reference();
        let got = embedder.embed(&r.sentences).await.unwrap();
        assert_eq!(got.len(), r.sentences.len());
        for ((text, want), v) in r.sentences.iter().zip(&r.embeddings).zip(&got) {
            assert_eq!(v.len(), 384);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
            let c = cosine(v, want);
            assert!(
                c >= 0.9999,
                "cosine {c} for {:?}",
                text.chars().take(40).collect::<String>()
            );
        }
    }

    #[tokio::test]
    async fn order_is_preserved_across_batches() {
        let Some(store) = store_with_model().await else {
            return;
        };
        let embedder = LocalEmbedder::load(&store, &settings(3)).await.unwrap();
        let r = reference();
        // Mixed lengths, so sorting moves texts between batches of 3.
        let mixed: Vec<String> = r
            .sentences
            .iter()
            .rev()
            .cloned()
            .chain(["ok".to_string()])
            .collect();
        let together = embedder.embed(&mixed).await.unwrap();
        for (text, v) in mixed.iter().zip(&together) {
            let alone = embedder.embed(std::slice::from_ref(text)).await.unwrap();
            let c = cosine(v, &alone[0]);
            assert!(
                c >= 0.9999,
                "cosine {c} for {:?}",
                text.chars().take(40).collect::<String>()
            );
        }
        assert!(embedder.embed(&[]).await.unwrap().is_empty());
    }
}
