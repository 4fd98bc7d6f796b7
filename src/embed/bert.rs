//! The BERT encoder shared by the local embedders: embeddings, the layers and mean pooling,
//! with the projections run through candle's matrix multiply and the rest of the encoder
//! written out as in-place steps on those products, because on a small machine the generic
//! tensor path spends more time synchronising threads and allocating than computing. Each
//! batch packs its sequences end to end with no padding (attention stays within a sequence), and
//! every elementwise step (bias, GELU, residual, layer norm) is one pass over memory.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{CpuStorage, DType, Device, InplaceOp1, InplaceOp2, Layout, Storage, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;
use tokio::sync::Semaphore;

use super::EmbedError;
use crate::config::EmbeddingSettings;

/// A failure to load a model.
pub fn model_err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model(e.to_string())
}

/// A failure while embedding.
pub fn inference_err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Inference(e.to_string())
}

/// The thread pool a local model spreads its batches over: one thread per core.
pub fn thread_pool() -> Result<rayon::ThreadPool, EmbedError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("embed-{i}"))
        .build()
        .map_err(model_err)
}

/// Appends to `windows` the windows of text number `text`, whose tokens are `content`: runs of
/// at most `width` tokens, each between the `start` and `end` tokens and weighted by its
/// content tokens (an empty text is one window of weight 1), for models that average a long
/// text's windows.
pub fn push_windows(
    windows: &mut Vec<(usize, Vec<u32>, f32)>,
    text: usize,
    content: &[u32],
    width: usize,
    (start, end): (u32, u32),
) {
    if content.is_empty() {
        windows.push((text, vec![start, end], 1.0));
    }
    for chunk in content.chunks(width.max(1)) {
        let mut ids = Vec::with_capacity(chunk.len() + 2);
        ids.push(start);
        ids.extend_from_slice(chunk);
        ids.push(end);
        windows.push((text, ids, chunk.len() as f32));
    }
}

/// A local model called from async code: at most `embedding.max_concurrent` jobs run at once on
/// the blocking pool, each with the configured batch size.
pub struct Runner<M> {
    model: Arc<M>,
    batch_size: usize,
    permits: Arc<Semaphore>,
}

impl<M: Send + Sync + 'static> Runner<M> {
    /// A runner for `model` under the embedding settings.
    pub fn new(model: M, s: &EmbeddingSettings) -> Self {
        Self {
            model: Arc::new(model),
            batch_size: s.batch_size.max(1),
            permits: Arc::new(Semaphore::new(s.max_concurrent.max(1))),
        }
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// `embed(model, texts, batch_size)` on the blocking pool once a permit is free; no texts
    /// need no work.
    pub async fn run(
        &self,
        texts: &[String],
        embed: impl FnOnce(&M, &[String], usize) -> Result<Vec<Vec<f32>>, EmbedError> + Send + 'static,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
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
        tokio::task::spawn_blocking(move || embed(&model, &texts, batch_size))
            .await
            .map_err(inference_err)?
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

/// The word embedding table: plain floats, or rows of 4-bit blocks (ggml's Q4_0: an f16 scale
/// and 32 nibbles, byte `j` holding weight `j` in its low half and `j + 16` in its high half),
/// expanded one row at a time as tokens are looked up.
pub enum WordTable {
    /// `vocabulary x hidden` floats.
    Dense(Vec<f32>),
    /// `vocabulary` rows of `hidden / 32` blocks of 18 bytes.
    Q4(Vec<u8>),
}

/// Bytes of one Q4_0 block of 32 weights.
pub const Q4_BLOCK_BYTES: usize = 18;

/// Expands Q4_0 blocks into `out` (32 floats per block).
pub fn dequantize_q4(blocks: &[u8], out: &mut [f32]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    add_q4(blocks, out);
}

/// Adds the weights of Q4_0 blocks to `out` (32 floats per block).
fn add_q4(blocks: &[u8], out: &mut [f32]) {
    for (block, out) in blocks
        .chunks_exact(Q4_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(32))
    {
        let scale = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        for (j, &q) in block[2..].iter().enumerate() {
            out[j] += ((q & 0x0f) as f32 - 8.0) * scale;
            out[j + 16] += ((q >> 4) as f32 - 8.0) * scale;
        }
    }
}

impl WordTable {
    fn rows(&self, hidden: usize) -> usize {
        match self {
            WordTable::Dense(v) => v.len() / hidden.max(1),
            WordTable::Q4(b) => b.len() / (hidden / 32 * Q4_BLOCK_BYTES).max(1),
        }
    }

    /// Adds row `id` to `out`.
    fn add_row(&self, id: u32, out: &mut [f32]) -> candle_core::Result<()> {
        let h = out.len();
        let missing = || candle_core::Error::Msg(format!("token id {id} out of range"));
        match self {
            WordTable::Dense(v) => {
                let row = v
                    .get(id as usize * h..(id as usize + 1) * h)
                    .ok_or_else(missing)?;
                out.iter_mut().zip(row).for_each(|(o, w)| *o += w);
            }
            WordTable::Q4(b) => {
                let width = h / 32 * Q4_BLOCK_BYTES;
                let row = b
                    .get(id as usize * width..(id as usize + 1) * width)
                    .ok_or_else(missing)?;
                add_q4(row, out);
            }
        }
        Ok(())
    }
}

/// The BERT encoder with mean pooling.
pub struct Encoder {
    word: WordTable,
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

/// Tensor names start with `bert.` in some checkpoints.
fn root(tensors: &HashMap<String, Tensor>) -> &'static str {
    if tensors.contains_key("bert.embeddings.word_embeddings.weight") {
        "bert."
    } else {
        ""
    }
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
}

impl Encoder {
    /// Loads a BERT model from its tensors (Hugging Face names, with or without `bert.`).
    pub fn load(tensors: &HashMap<String, Tensor>, config: &Config) -> candle_core::Result<Self> {
        let word = floats(tensor(
            tensors,
            &format!("{}embeddings.", root(tensors)),
            "word_embeddings.weight",
        )?)?;
        Self::load_with_words(tensors, config, WordTable::Dense(word))
    }

    /// Loads a BERT model whose word embeddings come separately (they are the largest table,
    /// and may stay 4-bit).
    pub fn load_with_words(
        tensors: &HashMap<String, Tensor>,
        config: &Config,
        word: WordTable,
    ) -> candle_core::Result<Self> {
        if config.hidden_act != HiddenAct::Gelu {
            candle_core::bail!("unsupported activation {:?}", config.hidden_act);
        }
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || hidden % heads != 0 || !HEAD_DIMS.contains(&(hidden / heads)) {
            candle_core::bail!("unsupported attention shape: {hidden} values in {heads} heads");
        }
        let root = root(tensors);
        let e = format!("{root}embeddings.");
        let position = floats(tensor(tensors, &e, "position_embeddings.weight")?)?;
        let token_type = floats(tensor(tensors, &e, "token_type_embeddings.weight")?)?;
        if hidden % 32 != 0
            || word.rows(hidden) != config.vocab_size
            || position.len() < config.max_position_embeddings * hidden
            || token_type.len() < hidden
        {
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
            if layer.qkv.outputs() != 3 * hidden
                || layer.attn_out.outputs() != hidden
                || layer.ff_out.outputs() != hidden
            {
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

    /// Vector size.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Longest sequence, in tokens.
    pub fn max_tokens(&self) -> usize {
        self.position.len() / self.hidden
    }

    /// [`Encoder::pooled_sums`] of many sequences on `pool`: sequences of similar length share
    /// a batch of at most `batch_size`, so the parallel batches cost about the same. The sums
    /// come back in the order of `sequences`.
    pub fn pooled_sums_batched(
        &self,
        pool: &rayon::ThreadPool,
        sequences: &[&[u32]],
        batch_size: usize,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..sequences.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(sequences[i].len()));
        let batches: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
        let sums: Vec<Vec<Vec<f32>>> = pool.install(|| {
            batches
                .par_iter()
                .map(|batch| {
                    let seqs: Vec<&[u32]> = batch.iter().map(|&i| sequences[i]).collect();
                    self.pooled_sums(&seqs)
                })
                .collect::<candle_core::Result<_>>()
        })?;
        let mut out = vec![Vec::new(); sequences.len()];
        for (batch, batch_sums) in batches.iter().zip(sums) {
            for (&i, v) in batch.iter().zip(batch_sums) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// The sum of each sequence's final hidden states (each at most [`Encoder::max_tokens`]).
    pub fn pooled_sums(&self, sequences: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        let lens: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        let rows: usize = lens.iter().sum();
        let mut x = vec![0f32; rows * h];
        let mut at = 0;
        for seq in sequences {
            for (pos, &id) in seq.iter().enumerate() {
                let row = &mut x[at * h..(at + 1) * h];
                let position = self.position.get(pos * h..(pos + 1) * h).ok_or_else(|| {
                    candle_core::Error::Msg(format!("position {pos} out of range"))
                })?;
                for ((o, p), t) in row.iter_mut().zip(position).zip(&self.token_type) {
                    *o = p + t;
                }
                self.word.add_row(id, row)?;
                at += 1;
            }
        }
        self.embed_norm.apply(&mut x);
        let mut x = Tensor::from_vec(x, (rows, h), &Device::Cpu)?;
        // Written by every layer's attention; allocated once per batch.
        let context = Tensor::zeros((rows, h), DType::F32, &Device::Cpu)?;
        let attention = SelfAttention {
            lens: &lens,
            heads: self.heads,
        };
        for layer in &self.layers {
            x = layer.forward(&x, &context, &attention)?;
        }
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            candle_core::bail!("embedding runs on the CPU only");
        };
        let x = f32s(cpu, layout)?;
        let mut out = Vec::with_capacity(sequences.len());
        let mut start = 0;
        for &len in &lens {
            let mut total = vec![0f32; h];
            for row in x[start * h..(start + len) * h].chunks_exact(h) {
                total.iter_mut().zip(row).for_each(|(m, v)| *m += v);
            }
            out.push(total);
            start += len;
        }
        Ok(out)
    }
}

impl Layer {
    /// One encoder layer. Each step after a matrix multiply works in place on its output, so
    /// a layer allocates only the four products.
    fn forward(
        &self,
        x: &Tensor,
        context: &Tensor,
        attention: &SelfAttention<'_>,
    ) -> candle_core::Result<Tensor> {
        let qkv = x.matmul(&self.qkv.weight_t)?;
        qkv.inplace_op1(&Bias {
            bias: &self.qkv.bias,
            gelu: false,
        })?;
        context.inplace_op2(&qkv, attention)?;
        let attended = context.matmul(&self.attn_out.weight_t)?;
        attended.inplace_op2(
            x,
            &BiasResidualNorm {
                bias: &self.attn_out.bias,
                norm: &self.attn_norm,
            },
        )?;
        let inner = attended.matmul(&self.ff_in.weight_t)?;
        inner.inplace_op1(&Bias {
            bias: &self.ff_in.bias,
            gelu: true,
        })?;
        let out = inner.matmul(&self.ff_out.weight_t)?;
        out.inplace_op2(
            &attended,
            &BiasResidualNorm {
                bias: &self.ff_out.bias,
                norm: &self.ff_norm,
            },
        )?;
        Ok(out)
    }
}

fn f32s<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("expected a contiguous tensor".into()))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

fn f32s_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a mut [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("expected a contiguous tensor".into()))?;
    match storage {
        CpuStorage::F32(v) => Ok(&mut v[start..end]),
        _ => candle_core::bail!("expected f32 values"),
    }
}

/// Adds a bias to every row, then optionally applies GELU.
struct Bias<'a> {
    bias: &'a [f32],
    gelu: bool,
}

impl InplaceOp1 for Bias<'_> {
    fn name(&self) -> &'static str {
        "bias"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let y = f32s_mut(storage, layout)?;
        let n = self.bias.len();
        if self.gelu {
            for row in y.chunks_exact_mut(n) {
                for (v, b) in row.iter_mut().zip(self.bias) {
                    *v = gelu(*v + b);
                }
            }
        } else {
            for row in y.chunks_exact_mut(n) {
                for (v, b) in row.iter_mut().zip(self.bias) {
                    *v += b;
                }
            }
        }
        Ok(())
    }
}

/// `y = LayerNorm(y + bias + residual)`, the end of each half of a layer.
struct BiasResidualNorm<'a> {
    bias: &'a [f32],
    norm: &'a Norm,
}

impl InplaceOp2 for BiasResidualNorm<'_> {
    fn name(&self) -> &'static str {
        "bias-residual-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let residual = f32s(s2, l2)?;
        let y = f32s_mut(s1, l1)?;
        if residual.len() != y.len() {
            candle_core::bail!("residual shape differs");
        }
        let n = self.bias.len();
        for (row, res) in y.chunks_exact_mut(n).zip(residual.chunks_exact(n)) {
            for ((v, b), r) in row.iter_mut().zip(self.bias).zip(res) {
                *v += b + r;
            }
        }
        self.norm.apply(y);
        Ok(())
    }
}

/// Self-attention within each packed sequence, written into the context tensor from the
/// `[queries | keys | values]` projections.
struct SelfAttention<'a> {
    lens: &'a [usize],
    heads: usize,
}

impl InplaceOp2 for SelfAttention<'_> {
    fn name(&self) -> &'static str {
        "self-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let qkv = f32s(s2, l2)?;
        let context = f32s_mut(s1, l1)?;
        if qkv.len() != 3 * context.len() {
            candle_core::bail!("attention input and output sizes differ");
        }
        attention(qkv, self.lens, self.heads, context)
    }
}

/// Head widths the attention kernel is compiled for (BERT-family models use 32 or 64).
const HEAD_DIMS: [usize; 3] = [16, 32, 64];

/// Self-attention within each packed sequence. `qkv` rows hold the query, key and value of one
/// token; `context` receives each token's attended value, heads side by side.
fn attention(
    qkv: &[f32],
    lens: &[usize],
    heads: usize,
    context: &mut [f32],
) -> candle_core::Result<()> {
    let rows: usize = lens.iter().sum();
    let hidden = context.len() / rows.max(1);
    match hidden / heads.max(1) {
        16 => attend::<16>(qkv, lens, heads, context),
        32 => attend::<32>(qkv, lens, heads, context),
        64 => attend::<64>(qkv, lens, heads, context),
        other => candle_core::bail!("unsupported attention head width {other}"),
    }
    Ok(())
}

/// Attention for heads of width `D`. The width is a constant so a query, an output accumulator
/// and a block of 8 keys (stored dimension-major) sit in vector registers: eight scores cost `D`
/// multiply-adds, with no horizontal sums.
fn attend<const D: usize>(qkv: &[f32], lens: &[usize], heads: usize, context: &mut [f32]) {
    let hidden = heads * D;
    let stride = 3 * hidden;
    let scale = 1.0 / (D as f32).sqrt();
    let mut blocks: Vec<[[f32; 8]; D]> = Vec::new();
    let mut scores: Vec<f32> = Vec::new();
    let mut start = 0;
    for &len in lens {
        let seq = &qkv[start * stride..(start + len) * stride];
        let out_rows = &mut context[start * hidden..(start + len) * hidden];
        for head in 0..heads {
            let (q_at, k_at, v_at) = (head * D, hidden + head * D, 2 * hidden + head * D);
            blocks.clear();
            blocks.resize(len.div_ceil(8), [[0.0; 8]; D]);
            for (j, row) in seq.chunks_exact(stride).enumerate() {
                let block = &mut blocks[j / 8];
                for (d, k) in row[k_at..k_at + D].iter().enumerate() {
                    block[d][j % 8] = *k;
                }
            }
            for (i, row) in seq.chunks_exact(stride).enumerate() {
                let mut q = [0f32; D];
                q.iter_mut()
                    .zip(&row[q_at..q_at + D])
                    .for_each(|(a, b)| *a = b * scale);
                scores.clear();
                for block in &blocks {
                    let mut acc = [0f32; 8];
                    for (qd, keys) in q.iter().zip(block) {
                        for (a, k) in acc.iter_mut().zip(keys) {
                            *a = qd.mul_add(*k, *a);
                        }
                    }
                    scores.extend_from_slice(&acc);
                }
                // Lanes past the sequence's end belong to no key.
                scores.truncate(len);
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut total = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    total += *s;
                }
                let mut acc = [0f32; D];
                for (p, value_row) in scores.iter().zip(seq.chunks_exact(stride)) {
                    for (a, v) in acc.iter_mut().zip(&value_row[v_at..v_at + D]) {
                        *a = p.mul_add(*v, *a);
                    }
                }
                let inv = 1.0 / total;
                for (o, a) in out_rows[i * hidden + q_at..][..D].iter_mut().zip(acc) {
                    *o = a * inv;
                }
            }
        }
        start += len;
    }
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let norm = dot(v, v).sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
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
    use super::*;

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
        // One head of width 16 (only the first two dimensions used); sequences of 1 and 2 tokens
        // packed together.
        let vec16 = |a: f32, b: f32| {
            let mut v = vec![0f32; 16];
            v[0] = a;
            v[1] = b;
            v
        };
        let row = |q: [f32; 2], k: [f32; 2], v: [f32; 2]| {
            [vec16(q[0], q[1]), vec16(k[0], k[1]), vec16(v[0], v[1])].concat()
        };
        let qkv = [
            row([1.0, 0.0], [1.0, 0.0], [5.0, 6.0]),
            row([0.0, 0.0], [0.0, 0.0], [1.0, 1.0]),
            row([0.0, 0.0], [0.0, 0.0], [3.0, 5.0]),
        ]
        .concat();
        let mut out = vec![f32::NAN; 3 * 16];
        attention(&qkv, &[1, 2], 1, &mut out).unwrap();
        // A lone token attends only to itself; equal scores average the other sequence's values.
        for (token, want) in [[5.0, 6.0], [2.0, 3.0], [2.0, 3.0]].iter().enumerate() {
            assert_eq!(&out[token * 16..token * 16 + 2], want);
            assert!(out[token * 16 + 2..(token + 1) * 16]
                .iter()
                .all(|v| *v == 0.0));
        }
    }

    /// Plain softmax attention for one sequence, to check the blocked kernel against.
    fn attention_naive(qkv: &[f32], len: usize, heads: usize, dh: usize) -> Vec<f32> {
        let hidden = heads * dh;
        let at = |t: usize, part: usize, h: usize, d: usize| {
            qkv[t * 3 * hidden + part * hidden + h * dh + d]
        };
        let mut out = vec![0f32; len * hidden];
        for h in 0..heads {
            for i in 0..len {
                let scores: Vec<f32> = (0..len)
                    .map(|j| {
                        (0..dh)
                            .map(|d| at(i, 0, h, d) * at(j, 1, h, d))
                            .sum::<f32>()
                            / (dh as f32).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f32 = e.iter().sum();
                for d in 0..dh {
                    out[i * hidden + h * dh + d] =
                        (0..len).map(|j| e[j] * at(j, 2, h, d)).sum::<f32>() / total;
                }
            }
        }
        out
    }

    #[test]
    fn blocked_attention_matches_plain_softmax() {
        let mut state = 7u32;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for (heads, dh) in [(12, 32), (2, 64), (3, 16)] {
            let hidden = heads * dh;
            let lens = [13, 1, 8, 20];
            let rows: usize = lens.iter().sum();
            let qkv: Vec<f32> = (0..rows * 3 * hidden).map(|_| next() * 4.0).collect();
            let mut out = vec![0f32; rows * hidden];
            attention(&qkv, &lens, heads, &mut out).unwrap();
            let mut start = 0;
            for len in lens {
                let want = attention_naive(
                    &qkv[start * 3 * hidden..(start + len) * 3 * hidden],
                    len,
                    heads,
                    dh,
                );
                for (a, b) in out[start * hidden..(start + len) * hidden]
                    .iter()
                    .zip(&want)
                {
                    assert!((a - b).abs() < 1e-5, "heads {heads} x {dh}: {a} vs {b}");
                }
                start += len;
            }
        }
        let mut out = vec![0f32; 10];
        assert!(
            attention(&[0.0; 30], &[1], 1, &mut out).is_err(),
            "width 10 is not compiled"
        );
    }
}
