//! all-MiniLM-L6-v2 run in-process with candle: tokenisation, BERT forward pass, mean pooling
//! over the attention mask and L2 normalisation, matching sentence-transformers.

use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Encoding, PaddingParams, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

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
    model: Arc<Model>,
    batch_size: usize,
    permits: Arc<Semaphore>,
}

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

fn model_err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model(e.to_string())
}

fn inference_err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Inference(e.to_string())
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
            let device = Device::Cpu;
            let config: Config =
                serde_json::from_slice(&std::fs::read(&config).map_err(model_err)?)
                    .map_err(|e| EmbedError::Model(format!("{}: {e}", config.display())))?;
            let tensors = candle_core::safetensors::load(&weights, &device)
                .map_err(|e| EmbedError::Model(format!("{}: {e}", weights.display())))?;
            let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
            let bert = BertModel::load(vb, &config).map_err(model_err)?;
            let mut tokenizer = Tokenizer::from_file(&tokenizer)
                .map_err(|e| EmbedError::Model(format!("{}: {e}", tokenizer.display())))?;
            // The shipped tokenizer.json pads and truncates everything to 128 tokens; batches are
            // padded here instead, and sentence-transformers truncates at 256.
            tokenizer.with_padding(None::<PaddingParams>);
            tokenizer
                .with_truncation(Some(TruncationParams {
                    max_length: MAX_TOKENS,
                    ..Default::default()
                }))
                .map_err(model_err)?;
            Ok(Model {
                bert,
                tokenizer,
                device,
            })
        })
        .await
        .map_err(model_err)??;
        tracing::info!(
            model = MODEL,
            batch_size = s.batch_size,
            "local embedder loaded"
        );
        Ok(Self {
            model: Arc::new(model),
            batch_size: s.batch_size.max(1),
            permits: Arc::new(Semaphore::new(s.max_concurrent.max(1))),
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

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(inference_err)?;
        let model = self.model.clone();
        let texts = texts.to_vec();
        let batch_size = self.batch_size;
        tokio::task::spawn_blocking(move || model.embed(&texts, batch_size))
            .await
            .map_err(inference_err)?
    }
}

impl Model {
    fn embed(&self, texts: &[String], batch_size: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch_fast(inputs, true)
            .map_err(inference_err)?;
        // Longest first, so each batch holds inputs of similar length and carries little padding.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size) {
            let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let vectors = self.embed_batch(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let len = batch
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut ids = vec![0u32; batch.len() * len];
        let mut mask = vec![0u32; batch.len() * len];
        for (row, e) in batch.iter().enumerate() {
            let n = e.get_ids().len();
            ids[row * len..row * len + n].copy_from_slice(e.get_ids());
            mask[row * len..row * len + n].copy_from_slice(e.get_attention_mask());
        }
        let shape = (batch.len(), len);
        let ids = Tensor::from_vec(ids, shape, &self.device).map_err(inference_err)?;
        let mask = Tensor::from_vec(mask, shape, &self.device).map_err(inference_err)?;
        let types = ids.zeros_like().map_err(inference_err)?;
        let hidden = self
            .bert
            .forward(&ids, &types, Some(&mask))
            .map_err(inference_err)?;
        mean_pool_normalised(&hidden, &mask).map_err(inference_err)
    }
}

/// Mean of the token vectors where `mask` is 1, scaled to unit length.
fn mean_pool_normalised(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12f32, f32::MAX)?;
    mean.broadcast_div(&norm)?.to_vec2()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::embed::cosine;
    use crate::models::ModelStatus;

    /// The model store for tests that need the real model, or `None` (with a note) when it is not
    /// cached. With `PALAVER_REQUIRE_MODELS=1` a missing model is fetched, and failing that the
    /// test fails.
    async fn store_with_model() -> Option<ModelStore> {
        let dir = std::env::var_os("PALAVER_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::Settings::default().models_dir());
        let store = ModelStore::new(dir, BTreeMap::new());
        if std::env::var("PALAVER_REQUIRE_MODELS").is_ok_and(|v| v == "1") {
            store
                .ensure(MODEL)
                .await
                .expect("PALAVER_REQUIRE_MODELS=1 but the model is unavailable");
            return Some(store);
        }
        match store.status(MODEL).await {
            Ok(ModelStatus::Ready { .. }) => Some(store),
            other => {
                eprintln!("skipping: {MODEL} not in {} ({other:?}); set PALAVER_REQUIRE_MODELS=1 to fetch it", store.dir().display());
                None
            }
        }
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
