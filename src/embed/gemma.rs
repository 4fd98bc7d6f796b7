//! EmbeddingGemma-300M run in-process: Gemma 3's decoder layers used as a bidirectional
//! encoder (every token attends to every other within the 512-token window the model was
//! trained with), mean pooling, two dense projections (768 → 3072 → 768) and L2 normalisation,
//! matching sentence-transformers. Texts carry the prompts the model was trained with:
//! `task: search result | query: ` for what a customer asks, `title: none | text: ` for what is
//! searched. A text longer than the window is cut into windows whose pooled states are averaged,
//! weighted by their token counts.
//!
//! It reads meaning across languages and paraphrases that multilingual-e5-small misses ("a flat
//! tyre" for "puncture repair", "whitening" for "branqueamento"), at about ten times its cost
//! per text; see the README's model table for the measurements.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;
use serde::Deserialize;
use tokenizers::{PaddingParams, Tokenizer};

use super::bert::{inference_err, model_err, normalise, push_windows, thread_pool, Runner};
use super::{EmbedError, Embedder};
use crate::config::EmbeddingSettings;
use crate::models::ModelStore;

/// Catalogue name of the model, also its [`Embedder::model_id`].
pub const MODEL: &str = "embeddinggemma-300m";
/// Vector size.
pub const DIMENSIONS: usize = 768;
/// Tokens per window, the start and end tokens included: the layers' attention window, so the
/// sliding-window layers see what the full ones see.
pub const WINDOW: usize = 512;

/// The files of the catalogue entry.
pub const WEIGHTS: &str = "model.safetensors";
/// Tokenizer file.
pub const TOKENIZER: &str = "tokenizer.json";
/// Configuration file.
pub const CONFIG: &str = "config.json";
/// First dense projection (hidden → 3072).
pub const DENSE_IN: &str = "2_Dense.safetensors";
/// Second dense projection (3072 → hidden).
pub const DENSE_OUT: &str = "3_Dense.safetensors";

/// Whether a text is searched for or searched in.
#[derive(Debug, Clone, Copy)]
enum Role {
    Query,
    Passage,
}

impl Role {
    fn prompt(self) -> &'static str {
        match self {
            Role::Query => "task: search result | query: ",
            Role::Passage => "title: none | text: ",
        }
    }
}

/// The parts of Gemma 3's `config.json` the encoder reads.
#[derive(Debug, Clone, Deserialize)]
struct Config {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: usize,
    head_dim: usize,
    rms_norm_eps: f64,
    rope_theta: f64,
    rope_local_base_freq: f64,
    query_pre_attn_scalar: f64,
    layer_types: Vec<String>,
    sliding_window: usize,
    hidden_activation: String,
    #[serde(default)]
    use_bidirectional_attention: bool,
}

impl Config {
    fn check(&self) -> Result<(), String> {
        if !self.use_bidirectional_attention {
            return Err("not a bidirectional (embedding) Gemma model".into());
        }
        if self.hidden_activation != "gelu_pytorch_tanh" {
            return Err(format!(
                "activation {} is not handled",
                self.hidden_activation
            ));
        }
        if self.layer_types.len() != self.num_hidden_layers {
            return Err("layer_types does not list every layer".into());
        }
        if self.num_key_value_heads == 0 || self.num_attention_heads % self.num_key_value_heads != 0
        {
            return Err("attention heads are not a multiple of key/value heads".into());
        }
        if self.sliding_window < WINDOW {
            return Err(format!(
                "sliding window {} is shorter than {WINDOW} tokens",
                self.sliding_window
            ));
        }
        Ok(())
    }
}

/// Gemma's RMS norm: `x / rms(x) * (1 + w)`.
struct RmsNorm {
    scale: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(t: &HashMap<String, Tensor>, name: &str, eps: f64) -> candle_core::Result<Self> {
        Ok(Self {
            scale: (get(t, name)? + 1.0)?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let rms = (x.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?;
        x.broadcast_div(&rms)?.broadcast_mul(&self.scale)
    }
}

fn get(t: &HashMap<String, Tensor>, name: &str) -> candle_core::Result<Tensor> {
    t.get(name)
        .cloned()
        .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))
}

/// A projection without bias, its weight stored transposed `(in, out)` for the multiply.
fn linear(t: &HashMap<String, Tensor>, name: &str) -> candle_core::Result<Tensor> {
    get(t, name)?.t()?.contiguous()
}

struct Layer {
    input_norm: RmsNorm,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    post_attention_norm: RmsNorm,
    pre_feedforward_norm: RmsNorm,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
    post_feedforward_norm: RmsNorm,
    /// Index into [`Network::rope`]: the local (sliding) or the global frequencies.
    rope: usize,
}

/// The encoder, pooling and projections.
struct Network {
    config: Config,
    words: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    dense_in: Tensor,
    dense_out: Tensor,
    /// `(cos, sin)` for positions `0..WINDOW`, for the local and the global base frequency.
    rope: [(Tensor, Tensor); 2],
}

fn rope_tables(base: f64, head_dim: usize) -> candle_core::Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| (1.0 / base.powf(2.0 * i as f64 / head_dim as f64)) as f32)
        .collect();
    let inv = Tensor::from_vec(inv, (1, half), &Device::Cpu)?;
    let positions: Vec<f32> = (0..WINDOW).map(|p| p as f32).collect();
    let positions = Tensor::from_vec(positions, (WINDOW, 1), &Device::Cpu)?;
    let angles = positions.broadcast_mul(&inv)?;
    Ok((angles.cos()?, angles.sin()?))
}

impl Network {
    fn load(
        config: Config,
        mut t: HashMap<String, Tensor>,
        dense_in: HashMap<String, Tensor>,
        dense_out: HashMap<String, Tensor>,
    ) -> candle_core::Result<Self> {
        let eps = config.rms_norm_eps;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for (l, kind) in config.layer_types.iter().enumerate() {
            let p = format!("layers.{l}.");
            let n = |name: &str| RmsNorm::load(&t, &format!("{p}{name}.weight"), eps);
            let w = |name: &str| linear(&t, &format!("{p}{name}.weight"));
            layers.push(Layer {
                input_norm: n("input_layernorm")?,
                q: w("self_attn.q_proj")?,
                k: w("self_attn.k_proj")?,
                v: w("self_attn.v_proj")?,
                o: w("self_attn.o_proj")?,
                q_norm: n("self_attn.q_norm")?,
                k_norm: n("self_attn.k_norm")?,
                post_attention_norm: n("post_attention_layernorm")?,
                pre_feedforward_norm: n("pre_feedforward_layernorm")?,
                gate: w("mlp.gate_proj")?,
                up: w("mlp.up_proj")?,
                down: w("mlp.down_proj")?,
                post_feedforward_norm: n("post_feedforward_layernorm")?,
                rope: usize::from(kind != "sliding_attention"),
            });
        }
        let words = t
            .remove("embed_tokens.weight")
            .ok_or_else(|| candle_core::Error::Msg("missing tensor embed_tokens.weight".into()))?;
        let (_, hidden) = words.dims2()?;
        if hidden != config.hidden_size {
            candle_core::bail!(
                "embed_tokens is {hidden} wide, config says {}",
                config.hidden_size
            );
        }
        let rope = [
            rope_tables(config.rope_local_base_freq, config.head_dim)?,
            rope_tables(config.rope_theta, config.head_dim)?,
        ];
        Ok(Self {
            norm: RmsNorm::load(&t, "norm.weight", eps)?,
            dense_in: linear(&dense_in, "linear.weight")?,
            dense_out: linear(&dense_out, "linear.weight")?,
            words,
            layers,
            rope,
            config,
        })
    }

    /// The mean of the last hidden states of one window of token ids (at most [`WINDOW`]).
    fn pooled(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let len = ids.len();
        let ids = Tensor::new(ids, &Device::Cpu)?;
        let mut h = (self.words.index_select(&ids, 0)? * (c.hidden_size as f64).sqrt())?;
        let (heads, kv_heads, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let group = heads / kv_heads;
        let scale = c.query_pre_attn_scalar.powf(-0.5);
        for layer in &self.layers {
            let (cos, sin) = &self.rope[layer.rope];
            let (cos, sin) = (cos.narrow(0, 0, len)?, sin.narrow(0, 0, len)?);
            let x = layer.input_norm.forward(&h)?;
            // (len, heads · d) → (1, heads, len, d), normed per head, rotated.
            let split = |w: &Tensor, n: usize, norm: &RmsNorm| -> candle_core::Result<Tensor> {
                let y = x.matmul(w)?.reshape((len, n, d))?;
                let y = norm
                    .forward(&y)?
                    .transpose(0, 1)?
                    .unsqueeze(0)?
                    .contiguous()?;
                candle_nn::rotary_emb::rope(&y, &cos, &sin)
            };
            let q = split(&layer.q, heads, &layer.q_norm)?;
            let k = split(&layer.k, kv_heads, &layer.k_norm)?;
            let v = x
                .matmul(&layer.v)?
                .reshape((len, kv_heads, d))?
                .transpose(0, 1)?
                .contiguous()?;
            // Each key/value head serves `group` query heads: their rows are stacked.
            let q = q.reshape((kv_heads, group * len, d))?;
            let k = k.reshape((kv_heads, len, d))?;
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let weights = candle_nn::ops::softmax_last_dim(&scores)?;
            let attended = weights
                .matmul(&v)?
                .reshape((heads, len, d))?
                .transpose(0, 1)?
                .reshape((len, heads * d))?;
            let out = attended.matmul(&layer.o)?;
            h = (h + layer.post_attention_norm.forward(&out)?)?;
            let x = layer.pre_feedforward_norm.forward(&h)?;
            let ff =
                (x.matmul(&layer.gate)?.gelu()? * x.matmul(&layer.up)?)?.matmul(&layer.down)?;
            h = (h + layer.post_feedforward_norm.forward(&ff)?)?;
        }
        self.norm.forward(&h)?.mean(0)
    }

    /// Pooled states (already averaged over windows) through the dense projections.
    fn project(&self, pooled: &Tensor) -> candle_core::Result<Tensor> {
        pooled.matmul(&self.dense_in)?.matmul(&self.dense_out)
    }
}

/// EmbeddingGemma on the CPU.
pub struct GemmaEmbedder {
    runner: Runner<Model>,
    /// The words its vocabulary holds whole ([`whole_words`]).
    words: HashSet<String>,
}

struct Model {
    network: Network,
    tokenizer: Tokenizer,
    start: u32,
    end: u32,
    pool: rayon::ThreadPool,
}

/// The pieces of a SentencePiece vocabulary that begin a word (`▁` first) and are lower-case
/// letters only, without the marker: the words the model's training text holds whole.
fn whole_words(pieces: impl Iterator<Item = String>) -> HashSet<String> {
    pieces
        .filter_map(|piece| {
            let word = piece.strip_prefix('\u{2581}')?;
            (word.chars().count() > 1
                && word.chars().all(|c| c.is_alphabetic() && !c.is_uppercase()))
            .then(|| word.to_string())
        })
        .collect()
}

fn load_tensors(path: &std::path::Path) -> Result<HashMap<String, Tensor>, EmbedError> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| EmbedError::Model(format!("{}: {e}", path.display())))
}

impl GemmaEmbedder {
    /// Loads the model (fetching it into the model cache on first use).
    pub async fn load(models: &ModelStore, s: &EmbeddingSettings) -> Result<Self, EmbedError> {
        let files = models.ensure(MODEL).await?;
        let path = |name: &str| {
            files
                .path(name)
                .map(|p| p.to_path_buf())
                .ok_or_else(|| EmbedError::Model(format!("{MODEL} has no {name}")))
        };
        let paths = [
            path(WEIGHTS)?,
            path(TOKENIZER)?,
            path(CONFIG)?,
            path(DENSE_IN)?,
            path(DENSE_OUT)?,
        ];
        let model = tokio::task::spawn_blocking(move || -> Result<Model, EmbedError> {
            let [weights, tokenizer, config, dense_in, dense_out] = paths;
            let config: Config =
                serde_json::from_slice(&std::fs::read(&config).map_err(model_err)?)
                    .map_err(|e| EmbedError::Model(format!("{}: {e}", config.display())))?;
            config
                .check()
                .map_err(|e| EmbedError::Model(format!("{MODEL}: {e}")))?;
            let network = Network::load(
                config,
                load_tensors(&weights)?,
                load_tensors(&dense_in)?,
                load_tensors(&dense_out)?,
            )
            .map_err(|e| EmbedError::Model(format!("{}: {e}", weights.display())))?;
            let mut tokenizer = Tokenizer::from_file(&tokenizer)
                .map_err(|e| EmbedError::Model(format!("{}: {e}", tokenizer.display())))?;
            tokenizer.with_padding(None::<PaddingParams>);
            tokenizer.with_truncation(None).map_err(model_err)?;
            let special = |t: &str| {
                tokenizer
                    .token_to_id(t)
                    .ok_or_else(|| EmbedError::Model(format!("{MODEL}: no {t} token")))
            };
            let (start, end) = (special("<bos>")?, special("<eos>")?);
            Ok(Model {
                network,
                tokenizer,
                start,
                end,
                pool: thread_pool()?,
            })
        })
        .await
        .map_err(model_err)??;
        let words = whole_words(model.tokenizer.get_vocab(false).into_keys());
        tracing::info!(
            model = MODEL,
            threads = model.pool.current_num_threads(),
            words = words.len(),
            "local embedder loaded"
        );
        Ok(Self {
            runner: Runner::new(model, s),
            words,
        })
    }

    async fn run(&self, texts: &[String], role: Role) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.runner
            .run(texts, move |model, texts, _| model.embed(texts, role))
            .await
    }
}

#[async_trait]
impl Embedder for GemmaEmbedder {
    fn model_id(&self) -> &str {
        MODEL
    }

    fn dimensions(&self) -> usize {
        DIMENSIONS
    }

    /// Its centred cosines run higher than multilingual-e5-small's: over the development split
    /// of `eval/dev` and the shipped suites (255 turns with an escalation assertion), its best
    /// confidence threshold is 0.26 where e5's is 0.22. The area under the ROC curve of
    /// answerable against escalation-worthy turns is 0.94 against e5's 0.87.
    fn relevance_scale(&self) -> f32 {
        0.22 / 0.26
    }

    fn spells(&self, word: &str) -> bool {
        self.words.contains(word)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.run(texts, Role::Passage).await
    }

    async fn embed_queries(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.run(texts, Role::Query).await
    }
}

impl Model {
    /// Embeds `texts`: every window of every text runs on the thread pool, each window's mean
    /// state is weighted by its content tokens, and each text's weighted mean goes through the
    /// projections.
    fn embed(&self, texts: &[String], role: Role) -> Result<Vec<Vec<f32>>, EmbedError> {
        let width = WINDOW - 2;
        let mut windows: Vec<(usize, Vec<u32>, f32)> = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let encoding = self
                .tokenizer
                .encode_fast(format!("{}{}", role.prompt(), text), false)
                .map_err(inference_err)?;
            push_windows(
                &mut windows,
                i,
                encoding.get_ids(),
                width,
                (self.start, self.end),
            );
        }
        // Longest first, so the pool's threads finish together.
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.sort_by_key(|&w| std::cmp::Reverse(windows[w].1.len()));
        let pooled: Vec<(usize, Tensor)> = self
            .pool
            .install(|| {
                order
                    .par_iter()
                    .map(|&w| Ok((w, self.network.pooled(&windows[w].1)?)))
                    .collect::<candle_core::Result<_>>()
            })
            .map_err(inference_err)?;
        let mut sums: Vec<Option<Tensor>> = vec![None; texts.len()];
        let mut weights = vec![0f64; texts.len()];
        for (w, state) in pooled {
            let (text, _, weight) = &windows[w];
            let weight = f64::from(*weight);
            let state = (state * weight).map_err(inference_err)?;
            weights[*text] += weight;
            sums[*text] = Some(match sums[*text].take() {
                None => state,
                Some(sum) => (sum + state).map_err(inference_err)?,
            });
        }
        let means = sums
            .into_iter()
            .zip(weights)
            .map(|(sum, weight)| {
                let sum = sum.ok_or_else(|| inference_err("a text without windows"))?;
                (sum / weight).map_err(inference_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stacked = Tensor::stack(&means, 0).map_err(inference_err)?;
        let projected = self
            .network
            .project(&stacked)
            .and_then(|t| t.to_dtype(DType::F32)?.to_vec2::<f32>())
            .map_err(inference_err)?;
        Ok(projected
            .into_iter()
            .map(|mut v| {
                normalise(&mut v);
                v
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::cosine;

    #[test]
    fn the_words_a_vocabulary_holds_whole_begin_a_word_and_are_letters() {
        let pieces = [
            "▁whole",
            "▁Whole",
            "whole",
            "▁filha",
            "▁manhã",
            "▁12",
            "▁a",
            "ing",
            "▁e-",
        ];
        let words = whole_words(pieces.into_iter().map(String::from));
        let mut words: Vec<&str> = words.iter().map(String::as_str).collect();
        words.sort();
        assert_eq!(words, ["filha", "manhã", "whole"]);
    }

    async fn store_with_model() -> Option<ModelStore> {
        crate::testing::test_model(MODEL).await?;
        Some(crate::testing::test_model_store())
    }

    fn settings() -> EmbeddingSettings {
        EmbeddingSettings::default()
    }

    #[derive(serde::Deserialize)]
    struct Reference {
        sentences: Vec<String>,
        query: Vec<Vec<f32>>,
        passage: Vec<Vec<f32>>,
    }

    /// Vectors sentence-transformers made from the same files, as questions and as passages
    /// (several languages and scripts, chat shorthand, a table row, odd spacing, emoji, empty).
    #[tokio::test]
    async fn matches_sentence_transformers() {
        let Some(store) = store_with_model().await else {
            return;
        };
        let embedder = GemmaEmbedder::load(&store, &settings()).await.unwrap();
        // Its vocabulary says which words are words: "whole" and "filha" are, "pilatis" is not.
        assert!(embedder.spells("whole") && embedder.spells("filha"));
        assert!(!embedder.spells("pilatis") && !embedder.spells("Whole"));
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/embeddings/gemma_reference.json"
        );
        let r: Reference = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let queries = embedder.embed_queries(&r.sentences).await.unwrap();
        let passages = embedder.embed(&r.sentences).await.unwrap();
        for (got, want) in [(queries, &r.query), (passages, &r.passage)] {
            assert_eq!(got.len(), r.sentences.len());
            for ((text, want), v) in r.sentences.iter().zip(want).zip(&got) {
                let c = cosine(v, want);
                assert!(c >= 0.9999, "cosine {c} for {text:?}");
            }
        }
    }

    /// The example of the model's card, whose similarities the card prints.
    #[tokio::test]
    async fn ranks_the_model_cards_example_as_the_card_prints() {
        let Some(store) = store_with_model().await else {
            return;
        };
        let embedder = GemmaEmbedder::load(&store, &settings()).await.unwrap();
        let query = embedder
            .embed_queries(&["Which planet is known as the Red Planet?".to_string()])
            .await
            .unwrap();
        let documents: Vec<String> = [
            "Venus is often called Earth's twin because of its similar size and proximity.",
            "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
            "Jupiter, the largest planet in our solar system, has a prominent red spot.",
            "Saturn, famous for its rings, is sometimes mistaken for the Red Planet.",
        ]
        .map(String::from)
        .to_vec();
        let vectors = embedder.embed(&documents).await.unwrap();
        let got: Vec<f32> = vectors.iter().map(|d| cosine(&query[0], d)).collect();
        for (g, want) in got.iter().zip([0.3011, 0.6359, 0.4930, 0.4889]) {
            assert!((g - want).abs() < 2e-3, "{got:?}");
        }
    }

    #[tokio::test]
    async fn a_long_text_and_a_batch_embed_as_each_text_alone() {
        let Some(store) = store_with_model().await else {
            return;
        };
        let embedder = GemmaEmbedder::load(&store, &settings()).await.unwrap();
        let long = "Puncture repair costs 9.50 EUR and is done the same day. ".repeat(60);
        let texts = vec!["ok".to_string(), long, String::new()];
        let together = embedder.embed(&texts).await.unwrap();
        assert_eq!(together.len(), 3);
        for (text, v) in texts.iter().zip(&together) {
            assert_eq!(v.len(), DIMENSIONS);
            let alone = embedder.embed(std::slice::from_ref(text)).await.unwrap();
            assert!(cosine(v, &alone[0]) > 0.9999);
        }
    }
}
