//! all-MiniLM-L6-v2 run in-process: tokenisation, the BERT encoder, mean pooling over the
//! tokens and L2 normalisation, matching sentence-transformers.
//!
//! The weights are loaded with candle and the large projections run through candle's matrix
//! multiply; the rest of the encoder is written out here because on a small machine the generic
//! tensor path spends more time synchronising threads than computing. Each batch packs its
//! sequences end to end with no padding (attention stays within a sequence), whole batches run
//! in parallel on a dedicated thread pool, and every elementwise step (bias, GELU, residual,
//! layer norm) is one pass over memory.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Storage, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};
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
    encoder: Encoder,
    tokenizer: Tokenizer,
    pool: rayon::ThreadPool,
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
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("embed-{i}"))
                .build()
                .map_err(model_err)?;
            Ok(Model {
                encoder,
                tokenizer,
                pool,
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
        // Similar lengths share a batch, so the parallel batches cost about the same.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
        let batches: Vec<&[usize]> = order.chunks(batch_size).collect();
        let vectors: Vec<Vec<Vec<f32>>> = self.pool.install(|| {
            batches
                .par_iter()
                .map(|batch| {
                    let ids: Vec<&[u32]> = batch.iter().map(|&i| encodings[i].get_ids()).collect();
                    self.encoder.embed(&ids)
                })
                .collect::<candle_core::Result<_>>()
                .map_err(inference_err)
        })?;
        let mut out = vec![Vec::new(); texts.len()];
        for (batch, batch_vectors) in batches.iter().zip(vectors) {
            for (&i, v) in batch.iter().zip(batch_vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

/// A layer norm's scale and shift.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

/// A projection `x W^T + b`, with `W^T` stored `(in, out)` for the matrix multiply.
struct Linear {
    weight_t: Tensor,
    bias: Vec<f32>,
}

struct Layer {
    /// Query, key and value projections fused into one `(hidden, 3 hidden)` multiply.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    ff_in: Linear,
    ff_out: Linear,
    ff_norm: Norm,
}

/// The BERT encoder with mean pooling.
struct Encoder {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
}

fn tensor<'a>(
    tensors: &'a HashMap<String, Tensor>,
    prefix: &str,
    name: &str,
) -> candle_core::Result<&'a Tensor> {
    tensors
        .get(&format!("{prefix}{name}"))
        .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {prefix}{name}")))
}

fn floats(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

impl Norm {
    fn load(
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
        eps: f64,
        hidden: usize,
    ) -> candle_core::Result<Self> {
        let weight = floats(tensor(tensors, prefix, "weight")?)?;
        let bias = floats(tensor(tensors, prefix, "bias")?)?;
        if weight.len() != hidden || bias.len() != hidden {
            candle_core::bail!("{prefix}: expected {hidden} values");
        }
        Ok(Self {
            weight,
            bias,
            eps: eps as f32,
        })
    }

    /// Normalises each row of `x` in place.
    fn apply(&self, x: &mut [f32]) {
        let n = self.weight.len();
        for row in x.chunks_exact_mut(n) {
            let mean = sum(row) / n as f32;
            row.iter_mut().for_each(|v| *v -= mean);
            let var = dot(row, row) / n as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *v = *v * inv * w + b;
            }
        }
    }
}

impl Linear {
    fn load(parts: &[&Tensor], biases: &[&Tensor]) -> candle_core::Result<Self> {
        let weight = Tensor::cat(parts, 0)?.to_dtype(DType::F32)?;
        let weight_t = weight.t()?.contiguous()?;
        let mut bias = Vec::new();
        for b in biases {
            bias.extend(floats(b)?);
        }
        if bias.len() != weight_t.dim(1)? {
            candle_core::bail!("bias and weight sizes differ");
        }
        Ok(Self { weight_t, bias })
    }

    fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// `x W^T + b` for `x` of `rows` rows, then `then` applied to every output value.
    fn forward(
        &self,
        x: Vec<f32>,
        rows: usize,
        then: impl Fn(f32) -> f32,
    ) -> candle_core::Result<Vec<f32>> {
        let inputs = x.len() / rows.max(1);
        let y = Tensor::from_vec(x, (rows, inputs), &Device::Cpu)?.matmul(&self.weight_t)?;
        let (storage, layout) = y.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            candle_core::bail!("embedding runs on the CPU only");
        };
        let n = self.outputs();
        let data = &cpu.as_slice::<f32>()?[layout.start_offset()..][..rows * n];
        let mut out = Vec::with_capacity(rows * n);
        for row in data.chunks_exact(n) {
            out.extend(row.iter().zip(&self.bias).map(|(v, b)| then(v + b)));
        }
        Ok(out)
    }
}

impl Encoder {
    fn load(tensors: &HashMap<String, Tensor>, config: &Config) -> candle_core::Result<Self> {
        if config.hidden_act != HiddenAct::Gelu {
            candle_core::bail!("unsupported activation {:?}", config.hidden_act);
        }
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || hidden % heads != 0 {
            candle_core::bail!("hidden size {hidden} does not split into {heads} heads");
        }
        let root = if tensors.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let e = format!("{root}embeddings.");
        let word = floats(tensor(tensors, &e, "word_embeddings.weight")?)?;
        let position = floats(tensor(tensors, &e, "position_embeddings.weight")?)?;
        let token_type = floats(tensor(tensors, &e, "token_type_embeddings.weight")?)?;
        if word.len() != config.vocab_size * hidden || position.len() < MAX_TOKENS * hidden {
            candle_core::bail!("embedding tables do not match config.json");
        }
        let embed_norm = Norm::load(
            tensors,
            &format!("{e}LayerNorm."),
            config.layer_norm_eps,
            hidden,
        )?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("{root}encoder.layer.{i}.");
            let t = |name: &str| tensor(tensors, &p, name);
            let layer = Layer {
                qkv: Linear::load(
                    &[
                        t("attention.self.query.weight")?,
                        t("attention.self.key.weight")?,
                        t("attention.self.value.weight")?,
                    ],
                    &[
                        t("attention.self.query.bias")?,
                        t("attention.self.key.bias")?,
                        t("attention.self.value.bias")?,
                    ],
                )?,
                attn_out: Linear::load(
                    &[t("attention.output.dense.weight")?],
                    &[t("attention.output.dense.bias")?],
                )?,
                attn_norm: Norm::load(
                    tensors,
                    &format!("{p}attention.output.LayerNorm."),
                    config.layer_norm_eps,
                    hidden,
                )?,
                ff_in: Linear::load(
                    &[t("intermediate.dense.weight")?],
                    &[t("intermediate.dense.bias")?],
                )?,
                ff_out: Linear::load(&[t("output.dense.weight")?], &[t("output.dense.bias")?])?,
                ff_norm: Norm::load(
                    tensors,
                    &format!("{p}output.LayerNorm."),
                    config.layer_norm_eps,
                    hidden,
                )?,
            };
            if layer.qkv.outputs() != 3 * hidden || layer.ff_out.outputs() != hidden {
                candle_core::bail!("layer {i} does not match config.json");
            }
            layers.push(layer);
        }
        Ok(Self {
            word,
            position,
            token_type: token_type[..hidden].to_vec(),
            embed_norm,
            layers,
            hidden,
            heads,
        })
    }

    /// Unit-length mean-pooled embeddings of token sequences (each at most [`MAX_TOKENS`]).
    fn embed(&self, sequences: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        let lens: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        let rows: usize = lens.iter().sum();
        let mut x = Vec::with_capacity(rows * h);
        for seq in sequences {
            for (pos, &id) in seq.iter().enumerate() {
                let word = self
                    .word
                    .get(id as usize * h..(id as usize + 1) * h)
                    .ok_or_else(|| {
                        candle_core::Error::Msg(format!("token id {id} out of range"))
                    })?;
                let position = self.position.get(pos * h..(pos + 1) * h).ok_or_else(|| {
                    candle_core::Error::Msg(format!("position {pos} out of range"))
                })?;
                x.extend(
                    word.iter()
                        .zip(position)
                        .zip(&self.token_type)
                        .map(|((w, p), t)| w + p + t),
                );
            }
        }
        self.embed_norm.apply(&mut x);
        for layer in &self.layers {
            x = layer.forward(x, &lens, self.heads)?;
        }
        let mut out = Vec::with_capacity(sequences.len());
        let mut start = 0;
        for &len in &lens {
            // Summing is enough: dividing by the token count would cancel in the normalisation.
            let mut mean = vec![0f32; h];
            for row in x[start * h..(start + len) * h].chunks_exact(h) {
                mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
            }
            let norm = dot(&mean, &mean).sqrt().max(1e-12);
            mean.iter_mut().for_each(|m| *m /= norm);
            out.push(mean);
            start += len;
        }
        Ok(out)
    }
}

impl Layer {
    fn forward(&self, x: Vec<f32>, lens: &[usize], heads: usize) -> candle_core::Result<Vec<f32>> {
        let rows: usize = lens.iter().sum();
        let qkv = self.qkv.forward(x.clone(), rows, |v| v)?;
        let context = attention(&qkv, lens, heads, x.len() / rows.max(1));
        let mut attended = self.attn_out.forward(context, rows, |v| v)?;
        attended.iter_mut().zip(&x).for_each(|(a, r)| *a += r);
        self.attn_norm.apply(&mut attended);
        let inner = self.ff_in.forward(attended.clone(), rows, gelu)?;
        let mut out = self.ff_out.forward(inner, rows, |v| v)?;
        out.iter_mut().zip(&attended).for_each(|(o, r)| *o += r);
        self.ff_norm.apply(&mut out);
        Ok(out)
    }
}

/// Self-attention within each packed sequence. `qkv` rows hold the query, key and value of one
/// token; the result holds each token's attended value, heads side by side.
fn attention(qkv: &[f32], lens: &[usize], heads: usize, hidden: usize) -> Vec<f32> {
    let stride = 3 * hidden;
    let dh = hidden / heads;
    let scale = 1.0 / (dh as f32).sqrt();
    let rows: usize = lens.iter().sum();
    let mut context = vec![0f32; rows * hidden];
    let mut scores = Vec::new();
    let mut start = 0;
    for &len in lens {
        let seq = &qkv[start * stride..(start + len) * stride];
        for head in 0..heads {
            let q_at = head * dh;
            let k_at = hidden + head * dh;
            let v_at = 2 * hidden + head * dh;
            for i in 0..len {
                let q = &seq[i * stride + q_at..][..dh];
                scores.clear();
                scores.extend(
                    seq.chunks_exact(stride)
                        .map(|row| dot(q, &row[k_at..k_at + dh]) * scale),
                );
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut total = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    total += *s;
                }
                let inv = 1.0 / total;
                let out = &mut context[(start + i) * hidden + q_at..][..dh];
                for (row, p) in seq.chunks_exact(stride).zip(&scores) {
                    let weight = p * inv;
                    out.iter_mut()
                        .zip(&row[v_at..v_at + dh])
                        .for_each(|(o, v)| *o += weight * v);
                }
            }
        }
        start += len;
    }
    context
}

/// Dot product with eight independent partial sums, so the compiler can use SIMD lanes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for l in 0..8 {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// GELU with the exact (erf) form BERT uses.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf for f32 as a branch-free rational function (the approximation Eigen and XLA use;
/// absolute error below 4e-7), so loops over it vectorise.
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    for c in [
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.9546e-3,
        -1.609_603_3e-2,
    ] {
        p = p.mul_add(x2, c);
    }
    let mut q = -1.456_607_2e-5_f32;
    for c in [-2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2] {
        q = q.mul_add(x2, c);
    }
    x * p / q
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

    /// erf in f64, exact enough to judge an f32 approximation: the Taylor series near zero,
    /// the continued fraction for erfc further out (where the series cancels badly).
    fn erf_reference(x: f64) -> f64 {
        if x.abs() > 2.5 {
            let mut k = x.abs();
            for n in (1..200).rev() {
                k = x.abs() + (n as f64 / 2.0) / k;
            }
            let erfc = (-x * x).exp() / (std::f64::consts::PI.sqrt() * k);
            return (1.0 - erfc).copysign(x);
        }
        let (mut term, mut total, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 {
            n += 1.0;
            term *= -x * x / n;
            total += term / (2.0 * n + 1.0);
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_and_gelu_are_accurate() {
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f64 / 10_000.0;
            worst = worst.max((erf(x as f32) as f64 - erf_reference(x)).abs());
        }
        assert!(worst < 5e-7, "erf error {worst}");
        for (x, want) in [
            (0.0f32, 0.0f32),
            (1.0, 0.841_344_7),
            (-1.0, -0.158_655_3),
            (10.0, 10.0),
            (-10.0, 0.0),
        ] {
            assert!((gelu(x) - want).abs() < 1e-6, "gelu({x}) = {}", gelu(x));
        }
    }

    #[test]
    fn dot_and_norm_handle_any_length() {
        for n in [0usize, 3, 8, 19, 384] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!(
                (dot(&a, &b) - naive).abs() <= 1e-3 * naive.abs().max(1.0),
                "n={n}"
            );
            assert!((sum(&a) - a.iter().sum::<f32>()).abs() < 1e-3, "n={n}");
        }
        let norm = Norm {
            weight: vec![2.0; 4],
            bias: vec![1.0; 4],
            eps: 0.0,
        };
        let mut rows = vec![1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 7.0];
        norm.apply(&mut rows);
        let s = 1.0 / 1.25f32.sqrt();
        let want = [1.0 - 3.0 * s, 1.0 - s, 1.0 + s, 1.0 + 3.0 * s];
        for (got, want) in rows[..4].iter().zip(want) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert!((rows[4..].iter().sum::<f32>() - 4.0).abs() < 1e-5);
    }

    #[test]
    fn attention_stays_within_each_sequence() {
        // One head of width 2; sequences of 1 and 2 tokens packed together.
        let row = |q: [f32; 2], k: [f32; 2], v: [f32; 2]| [q, k, v].concat();
        let qkv = [
            row([1.0, 0.0], [1.0, 0.0], [5.0, 6.0]),
            row([0.0, 0.0], [0.0, 0.0], [1.0, 1.0]),
            row([0.0, 0.0], [0.0, 0.0], [3.0, 5.0]),
        ]
        .concat();
        let out = attention(&qkv, &[1, 2], 1, 2);
        // A lone token attends only to itself; equal scores average the other sequence's values.
        assert_eq!(out, vec![5.0, 6.0, 2.0, 3.0, 2.0, 3.0]);
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
