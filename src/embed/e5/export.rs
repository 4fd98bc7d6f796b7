//! An E5 model file written out as a Hugging Face BERT checkpoint and a sentence-transformers
//! folder, so PyTorch can run the very weights Palaver runs (`bench embed --baseline-python`).
//!
//! The model reached us 4-bit: every tensor is expanded to f32 exactly as Palaver expands it
//! ([`dequantize_q4`]), so the checkpoint holds the same numbers, not an approximation of some
//! other copy. The architecture is BERT (Multilingual-MiniLM, which multilingual-e5-small is
//! trained from), with absolute positions counted from 0 as [`super::super::bert`] counts them,
//! not XLM-RoBERTa's, which start after the padding id. The tokenizer is Hugging Face's
//! `tokenizers` Unigram over the file's pieces and scores, with the file's character map as a
//! SentencePiece `precompiled_charsmap`, runs of spaces collapsed, the metaspace pre-tokenizer
//! and `<s> … </s>` around each text: what [`super::Unigram`] does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use candle_core::{Device, Tensor};
use serde_json::{json, Value};

use super::{encoder_tensors, read, FormatError, ModelFile, Role};
use crate::embed::bert::dequantize_q4;

/// The name of the prompt for passages in the folder's `config_sentence_transformers.json`
/// (sentence-transformers' own name for the texts searched in).
pub const PASSAGE_PROMPT: &str = "document";

/// Why a model could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The model file is damaged or of another format.
    #[error("model file: {0}")]
    Format(#[from] FormatError),
    /// The tensors could not be written.
    #[error("writing the weights: {0}")]
    Weights(String),
    /// The character map does not fit SentencePiece's format.
    #[error("normalisation map: {0}")]
    Charsmap(String),
}

/// Writes the E5 model file `model` into `dir` (created if missing) as a sentence-transformers
/// folder: `config.json`, `model.safetensors` (f32), `tokenizer.json`, `tokenizer_config.json`
/// and the modules (mean pooling, then L2 normalisation), with the `query: ` and `passage: `
/// prompts.
pub fn export(model: &Path, dir: &Path) -> Result<(), ExportError> {
    let bytes = std::fs::read(model).map_err(|source| ExportError::File {
        path: model.to_path_buf(),
        source,
    })?;
    let file = read(&bytes)?;
    let files = folder_files(&file)?;
    let write = |name: &str, contents: &[u8]| {
        let path = dir.join(name);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::write(&path, contents))
            .map_err(|source| ExportError::File { path, source })
    };
    for (name, value) in &files {
        write(
            name,
            &serde_json::to_vec_pretty(value).expect("JSON values serialise"),
        )?;
    }
    // The normalisation module has no configuration, only a folder.
    let normalize = dir.join("2_Normalize");
    std::fs::create_dir_all(&normalize).map_err(|source| ExportError::File {
        path: normalize,
        source,
    })?;
    let weights = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors(&file)?, &weights)
        .map_err(|e| ExportError::Weights(format!("{}: {e}", weights.display())))
}

/// Every tensor under its Hugging Face name, expanded to f32.
fn tensors(file: &ModelFile) -> Result<HashMap<String, Tensor>, ExportError> {
    let s = file.shape;
    let mut out = HashMap::new();
    let word = file.word_table()?;
    let mut floats = vec![0f32; word.values];
    dequantize_q4(word.bytes, &mut floats);
    let put = |floats: Vec<f32>, shape: &[usize]| {
        Tensor::from_vec(floats, shape, &Device::Cpu)
            .map_err(|e| ExportError::Weights(e.to_string()))
    };
    out.insert(
        "embeddings.word_embeddings.weight".to_string(),
        put(floats, &[s.vocabulary, s.hidden])?,
    );
    for (to, from, shape) in encoder_tensors(&s) {
        let floats = file.tensor(&from, shape.iter().product())?.floats(&from)?;
        out.insert(to, put(floats, &shape)?);
    }
    Ok(out)
}

/// The folder's JSON files, by path.
fn folder_files(file: &ModelFile) -> Result<Vec<(&'static str, Value)>, ExportError> {
    let s = file.shape;
    let piece = |id: u32| file.pieces[id as usize].0.clone();
    let config = json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": s.vocabulary,
        "hidden_size": s.hidden,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "intermediate_size": s.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": s.positions,
        "type_vocab_size": s.token_types,
        "initializer_range": 0.02,
        "layer_norm_eps": f64::from(s.eps),
        "pad_token_id": file.pad,
        "position_embedding_type": "absolute",
    });
    // The generic class reads tokenizer.json as written; a model-specific one may rebuild its
    // own pipeline around the vocabulary.
    let mut tokenizer_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": s.positions,
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": false,
        "bos_token": piece(file.start),
        "cls_token": piece(file.start),
        "eos_token": piece(file.end),
        "sep_token": piece(file.end),
        "pad_token": piece(file.pad),
        "unk_token": piece(file.unknown),
    });
    if let Some(mask) = mask_id(file) {
        tokenizer_config["mask_token"] = json!(piece(mask));
    }
    let modules = json!([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]);
    let st_config = json!({
        "prompts": {"query": Role::Query.prefix(), PASSAGE_PROMPT: Role::Passage.prefix()},
        "default_prompt_name": null,
        "similarity_fn_name": "cosine",
    });
    let pooling = json!({
        "word_embedding_dimension": s.hidden,
        "pooling_mode_cls_token": false,
        "pooling_mode_mean_tokens": true,
        "pooling_mode_max_tokens": false,
        "include_prompt": true,
    });
    Ok(vec![
        ("config.json", config),
        ("tokenizer.json", tokenizer_json(file)?),
        ("tokenizer_config.json", tokenizer_config),
        ("modules.json", modules),
        ("config_sentence_transformers.json", st_config),
        // Inputs are cut at the model's positions (with `<s>` and `</s>`); Palaver averages
        // windows of that length over a longer text, sentence-transformers keeps the first.
        (
            "sentence_bert_config.json",
            json!({"max_seq_length": s.positions, "do_lower_case": false}),
        ),
        ("1_Pooling/config.json", pooling),
    ])
}

/// XLM-RoBERTa's mask piece, when the vocabulary has it.
fn mask_id(file: &ModelFile) -> Option<u32> {
    file.pieces
        .iter()
        .position(|(p, _)| p == "<mask>")
        .map(|i| i as u32)
}

/// `tokenizer.json` for Hugging Face's `tokenizers`.
fn tokenizer_json(file: &ModelFile) -> Result<Value, ExportError> {
    let charsmap = precompiled_charsmap(&file.normalise)?;
    let mut specials: Vec<u32> = vec![file.start, file.pad, file.end, file.unknown];
    specials.extend(mask_id(file));
    specials.sort_unstable();
    specials.dedup();
    let added: Vec<Value> = specials
        .iter()
        .map(|&id| {
            json!({
                "id": id,
                "content": file.pieces[id as usize].0,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": true,
            })
        })
        .collect();
    let (start, end) = (
        &file.pieces[file.start as usize].0,
        &file.pieces[file.end as usize].0,
    );
    let special = |t: &str| json!({"SpecialToken": {"id": t, "type_id": 0}});
    let sequence = |s: &str, type_id: u32| json!({"Sequence": {"id": s, "type_id": type_id}});
    let metaspace = json!({
        "type": "Metaspace",
        "replacement": "\u{2581}",
        "prepend_scheme": "always",
        "split": true,
    });
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {
                    "type": "Precompiled",
                    "precompiled_charsmap": base64::engine::general_purpose::STANDARD.encode(charsmap),
                },
                {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
            ],
        },
        "pre_tokenizer": metaspace,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special(start), sequence("A", 0), special(end)],
            "pair": [
                special(start), sequence("A", 0), special(end),
                special(end), sequence("B", 1), special(end),
            ],
            "special_tokens": {
                start: {"id": start, "ids": [file.start], "tokens": [start]},
                end: {"id": end, "ids": [file.end], "tokens": [end]},
            },
        },
        "decoder": metaspace,
        "model": {
            "type": "Unigram",
            "unk_id": file.unknown,
            "vocab": file.pieces,
            "byte_fallback": false,
        },
    }))
}

/// A node of the byte trie the character map is stored as.
#[derive(Default)]
struct TrieNode {
    children: BTreeMap<u8, usize>,
    /// Where the node's replacement starts in the replacements blob.
    value: Option<u32>,
}

/// Largest offset a double-array unit holds without its shift flag (and with the top bit,
/// which marks value units, clear).
const MAX_OFFSET: usize = 1 << 21;

/// SentencePiece's `precompiled_charsmap` for a character map: a little-endian `u32` byte
/// length, a Darts double-array trie over each character's UTF-8 bytes (`u32` units: label in
/// the low byte, bit 8 "has a value", offset to the children from bit 10; value units have
/// the top bit set), then the replacements, each ending in a NUL.
fn precompiled_charsmap(map: &HashMap<char, Box<[char]>>) -> Result<Vec<u8>, ExportError> {
    let mut entries: Vec<(&char, &Box<[char]>)> = map.iter().collect();
    entries.sort();
    let mut replacements: Vec<u8> = Vec::new();
    let mut at: HashMap<String, u32> = HashMap::new();
    let mut nodes = vec![TrieNode::default()];
    for (from, to) in entries {
        let to: String = to.iter().collect();
        let offset = *at.entry(to.clone()).or_insert_with(|| {
            let offset = replacements.len() as u32;
            replacements.extend_from_slice(to.as_bytes());
            replacements.push(0);
            offset
        });
        let mut node = 0;
        for &b in from.to_string().as_bytes() {
            node = match nodes[node].children.get(&b) {
                Some(&child) => child,
                None => {
                    nodes.push(TrieNode::default());
                    let child = nodes.len() - 1;
                    nodes[node].children.insert(b, child);
                    child
                }
            };
        }
        nodes[node].value = Some(offset);
    }

    // Each node's children sit at `base ^ label` and its value at `base`; bases are found first
    // fit, and a cell holds one unit.
    let mut units: Vec<u32> = vec![0; 256];
    let mut used: Vec<bool> = vec![false; 256];
    used[0] = true;
    let mut position = vec![0usize; nodes.len()];
    let mut labels = vec![0u8; nodes.len()];
    let mut first_free = 1;
    let mut queue = std::collections::VecDeque::from([0usize]);
    while let Some(n) = queue.pop_front() {
        while used.get(first_free).copied().unwrap_or(false) {
            first_free += 1;
        }
        let fits = |b: usize, used: &[bool]| {
            let free = |i: usize| !used.get(i).copied().unwrap_or(false);
            free(b) && nodes[n].children.keys().all(|&c| free(b ^ c as usize))
        };
        let mut base = first_free;
        while !fits(base, &used) {
            base += 1;
        }
        // Every byte a lookup may try from this base must be inside the array.
        let end = (base | 0xff) + 1;
        if used.len() < end {
            used.resize(end, false);
            units.resize(end, 0);
        }
        used[base] = true;
        if let Some(v) = nodes[n].value {
            units[base] = v | 1 << 31;
        }
        for (&c, &child) in &nodes[n].children {
            let p = base ^ c as usize;
            used[p] = true;
            position[child] = p;
            labels[child] = c;
            queue.push_back(child);
        }
        let offset = position[n] ^ base;
        if offset >= MAX_OFFSET {
            return Err(ExportError::Charsmap(format!(
                "{} characters need a larger trie than the format holds",
                map.len()
            )));
        }
        units[position[n]] =
            (offset as u32) << 10 | u32::from(nodes[n].value.is_some()) << 8 | u32::from(labels[n]);
    }

    let mut out = Vec::with_capacity(4 + units.len() * 4 + replacements.len());
    out.extend(((units.len() * 4) as u32).to_le_bytes());
    for u in &units {
        out.extend(u.to_le_bytes());
    }
    out.extend(replacements);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    /// The replacement for `key` the way `tokenizers` finds it (the `spm_precompiled` crate's
    /// `common_prefix_search` and `transform`), or `None` when the trie has no entry.
    fn lookup(charsmap: &[u8], key: &str) -> Option<String> {
        let size = u32::from_le_bytes(charsmap[..4].try_into().unwrap()) as usize;
        let array: Vec<usize> = charsmap[4..4 + size]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
            .collect();
        let normalized = &charsmap[4 + size..];
        let offset = |u: usize| (u >> 10) << ((u & (1 << 9)) >> 6);
        let mut pos = offset(array[0]);
        let mut found: Option<usize> = None;
        for &c in key.as_bytes() {
            pos ^= c as usize;
            let unit = array[pos];
            if unit & ((1 << 31) | 0xff) != c as usize {
                break;
            }
            pos ^= offset(unit);
            if (unit >> 8) & 1 == 1 && found.is_none() {
                found = Some(array[pos] & ((1 << 31) - 1));
            }
        }
        found.map(|at| {
            let end = normalized[at..].iter().position(|&b| b == 0).unwrap() + at;
            String::from_utf8(normalized[at..end].to_vec()).unwrap()
        })
    }

    /// A tiny E5 model file: 1 layer, hidden 32 in 2 heads, 4 positions, 8 table rows, 7
    /// pieces; weights as Q4_0 blocks, the rest as floats, every value distinct.
    struct Synthetic {
        bytes: Vec<u8>,
        /// Each tensor's name in the file, with its stored bytes.
        tensors: Vec<(String, bool, usize, Vec<u8>)>,
    }

    fn synthetic() -> Synthetic {
        let (hidden, intermediate, vocabulary, positions, types) = (32usize, 64, 8, 4, 2);
        let mut state = 11u32;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            state >> 8
        };
        let mut tensors: Vec<(String, bool, usize, Vec<u8>)> = Vec::new();
        let mut add = |name: String, quantized: bool, values: usize| {
            let bytes: Vec<u8> = if quantized {
                (0..values / 32)
                    .flat_map(|_| {
                        let scale = half::f16::from_f32((next() % 1000) as f32 / 1e5 + 1e-3);
                        let mut block = scale.to_le_bytes().to_vec();
                        block.extend((0..16).map(|_| next() as u8));
                        block
                    })
                    .collect()
            } else {
                (0..values)
                    .flat_map(|_| ((next() % 2000) as f32 / 1000.0 - 1.0).to_le_bytes())
                    .collect()
            };
            tensors.push((name, quantized, values, bytes));
        };
        add("emb.word".into(), true, vocabulary * hidden);
        add("emb.pos".into(), false, positions * hidden);
        add("emb.type".into(), false, types * hidden);
        add("emb.ln.w".into(), false, hidden);
        add("emb.ln.b".into(), false, hidden);
        for (name, quantized, values) in [
            ("q.w", true, hidden * hidden),
            ("q.b", false, hidden),
            ("k.w", true, hidden * hidden),
            ("k.b", false, hidden),
            ("v.w", true, hidden * hidden),
            ("v.b", false, hidden),
            ("ao.w", true, hidden * hidden),
            ("ao.b", false, hidden),
            ("aln.w", false, hidden),
            ("aln.b", false, hidden),
            ("fi.w", true, intermediate * hidden),
            ("fi.b", false, intermediate),
            ("fo.w", true, hidden * intermediate),
            ("fo.b", false, hidden),
            ("oln.w", false, hidden),
            ("oln.b", false, hidden),
        ] {
            add(format!("l0.{name}"), quantized, values);
        }

        let mut b = b"E5S1".to_vec();
        b.extend(1u32.to_le_bytes());
        for v in [hidden, 1, 2, intermediate, vocabulary, positions, types] {
            b.extend((v as i32).to_le_bytes());
        }
        b.extend(1e-12f32.to_le_bytes());
        b.extend(32i32.to_le_bytes());
        let pieces = [
            ("<s>", 0.0f32),
            ("<pad>", 0.0),
            ("</s>", 0.0),
            ("<unk>", 0.0),
            ("\u{2581}a", -1.5),
            ("\u{2581}b", -2.5),
            ("<mask>", 0.0),
        ];
        for v in [pieces.len(), 0, 2, 1, 3] {
            b.extend((v as i32).to_le_bytes());
        }
        let blob: String = pieces.iter().map(|(p, _)| *p).collect();
        b.extend((blob.len() as u64).to_le_bytes());
        let mut offset = 0u32;
        b.extend(offset.to_le_bytes());
        for (p, _) in pieces {
            offset += p.len() as u32;
            b.extend(offset.to_le_bytes());
        }
        for (_, score) in pieces {
            b.extend(score.to_le_bytes());
        }
        b.extend(blob.as_bytes());
        // One entry: a full-width A becomes A.
        b.extend(1i32.to_le_bytes());
        b.extend(9u32.to_le_bytes());
        b.extend(0xff21u32.to_le_bytes());
        b.push(1);
        b.extend(('A' as u32).to_le_bytes());

        b.extend((tensors.len() as i32).to_le_bytes());
        let directory: usize = tensors
            .iter()
            .map(|(n, ..)| 2 + n.len() + 1 + 4 + 8 + 8)
            .sum();
        let mut at = b.len() + directory;
        for (name, quantized, values, bytes) in &tensors {
            b.extend((name.len() as u16).to_le_bytes());
            b.extend(name.as_bytes());
            b.push(u8::from(*quantized));
            b.extend((*values as u32).to_le_bytes());
            b.extend((at as u64).to_le_bytes());
            b.extend((bytes.len() as u64).to_le_bytes());
            at += bytes.len();
        }
        for (.., bytes) in &tensors {
            b.extend(bytes);
        }
        Synthetic { bytes: b, tensors }
    }

    /// The names and shapes Hugging Face's `BertModel` loads, from its `config.json`.
    fn bert_shapes(config: &Value) -> HashMap<String, Vec<usize>> {
        let n = |key: &str| config[key].as_u64().unwrap() as usize;
        let (h, i) = (n("hidden_size"), n("intermediate_size"));
        let mut out = HashMap::from([
            (
                "embeddings.word_embeddings.weight".to_string(),
                vec![n("vocab_size"), h],
            ),
            (
                "embeddings.position_embeddings.weight".to_string(),
                vec![n("max_position_embeddings"), h],
            ),
            (
                "embeddings.token_type_embeddings.weight".to_string(),
                vec![n("type_vocab_size"), h],
            ),
            ("embeddings.LayerNorm.weight".to_string(), vec![h]),
            ("embeddings.LayerNorm.bias".to_string(), vec![h]),
        ]);
        for l in 0..n("num_hidden_layers") {
            for (name, shape) in [
                ("attention.self.query.weight", vec![h, h]),
                ("attention.self.query.bias", vec![h]),
                ("attention.self.key.weight", vec![h, h]),
                ("attention.self.key.bias", vec![h]),
                ("attention.self.value.weight", vec![h, h]),
                ("attention.self.value.bias", vec![h]),
                ("attention.output.dense.weight", vec![h, h]),
                ("attention.output.dense.bias", vec![h]),
                ("attention.output.LayerNorm.weight", vec![h]),
                ("attention.output.LayerNorm.bias", vec![h]),
                ("intermediate.dense.weight", vec![i, h]),
                ("intermediate.dense.bias", vec![i]),
                ("output.dense.weight", vec![h, i]),
                ("output.dense.bias", vec![h]),
                ("output.LayerNorm.weight", vec![h]),
                ("output.LayerNorm.bias", vec![h]),
            ] {
                out.insert(format!("encoder.layer.{l}.{name}"), shape);
            }
        }
        out
    }

    fn json_file(dir: &Path, name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
    }

    #[test]
    fn the_checkpoint_holds_the_files_weights_under_bert_names() {
        let model = synthetic();
        // The synthetic file is one Palaver loads.
        parse(&model.bytes).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("e5.bin");
        std::fs::write(&path, &model.bytes).unwrap();
        let dir = scratch.path().join("st");
        export(&path, &dir).unwrap();

        let config = json_file(&dir, "config.json");
        assert_eq!(config["model_type"], "bert");
        assert_eq!(config["max_position_embeddings"], 4);
        assert_eq!(config["position_embedding_type"], "absolute");
        assert!((config["layer_norm_eps"].as_f64().unwrap() - 1e-12).abs() < 1e-18);
        let got =
            candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
        let want = bert_shapes(&config);
        let mut names: Vec<&String> = got.keys().collect();
        names.sort();
        let mut want_names: Vec<&String> = want.keys().collect();
        want_names.sort();
        assert_eq!(names, want_names);
        for (name, t) in &got {
            assert_eq!(t.dims(), want[name].as_slice(), "{name}");
            assert_eq!(t.dtype(), candle_core::DType::F32, "{name}");
        }

        let hf_name = |file_name: &str| match file_name {
            "emb.word" => "embeddings.word_embeddings.weight".to_string(),
            "emb.pos" => "embeddings.position_embeddings.weight".to_string(),
            "l0.fi.w" => "encoder.layer.0.intermediate.dense.weight".to_string(),
            "l0.oln.b" => "encoder.layer.0.output.LayerNorm.bias".to_string(),
            _ => String::new(),
        };
        let mut checked = 0;
        for (name, quantized, values, bytes) in &model.tensors {
            let Some(t) = got.get(&hf_name(name)) else {
                continue;
            };
            let floats: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(floats.len(), *values);
            let want: Vec<f32> = if *quantized {
                // Q4_0 by hand: weight j of a block is (nibble - 8) x scale, low nibbles first.
                bytes
                    .chunks_exact(18)
                    .flat_map(|block| {
                        let scale = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                        let low = block[2..]
                            .iter()
                            .map(move |q| ((q & 15) as f32 - 8.0) * scale);
                        let high = block[2..]
                            .iter()
                            .map(move |q| ((q >> 4) as f32 - 8.0) * scale);
                        low.chain(high).collect::<Vec<_>>()
                    })
                    .collect()
            } else {
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect()
            };
            assert_eq!(floats, want, "{name}");
            checked += 1;
        }
        assert_eq!(checked, 4);

        let tokenizer = json_file(&dir, "tokenizer.json");
        assert_eq!(tokenizer["model"]["unk_id"], 3);
        assert_eq!(tokenizer["model"]["vocab"][4], json!(["\u{2581}a", -1.5]));
        let charsmap = base64::engine::general_purpose::STANDARD
            .decode(
                tokenizer["normalizer"]["normalizers"][0]["precompiled_charsmap"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(lookup(&charsmap, "Ａ").as_deref(), Some("A"));
        let tokenizer_config = json_file(&dir, "tokenizer_config.json");
        assert_eq!(tokenizer_config["pad_token"], "<pad>");
        assert_eq!(tokenizer_config["mask_token"], "<mask>");
        let prompts = &json_file(&dir, "config_sentence_transformers.json")["prompts"];
        assert_eq!(prompts[PASSAGE_PROMPT], "passage: ");
        assert_eq!(prompts["query"], "query: ");
        assert_eq!(
            json_file(&dir, "sentence_bert_config.json")["max_seq_length"],
            4
        );
        assert!(dir.join("2_Normalize").is_dir());
        assert_eq!(
            json_file(&dir, "1_Pooling/config.json")["pooling_mode_mean_tokens"],
            true
        );
    }

    #[tokio::test]
    async fn the_real_model_exports_as_bert_with_its_whole_character_map() {
        let Some(files) = crate::testing::test_model(super::super::MODEL).await else {
            return;
        };
        let bytes = std::fs::read(files.path("e5-small-q4.bin").unwrap()).unwrap();
        let file = read(&bytes).unwrap();
        let config = folder_files(&file)
            .unwrap()
            .into_iter()
            .find(|(name, _)| *name == "config.json")
            .unwrap()
            .1;
        // multilingual-e5-small's published config: BERT, positions from 0.
        for (key, want) in [
            ("num_hidden_layers", 12),
            ("hidden_size", 384),
            ("num_attention_heads", 12),
            ("intermediate_size", 1536),
            ("vocab_size", 250_037),
            ("max_position_embeddings", 512),
            ("type_vocab_size", 2),
        ] {
            assert_eq!(config[key], want, "{key}");
        }
        let shapes = bert_shapes(&config);
        assert_eq!(shapes.len(), 5 + 12 * 16);
        for (hf, from, shape) in encoder_tensors(&file.shape) {
            assert_eq!(shapes[&hf], shape, "{hf}");
            file.tensor(&from, shape.iter().product()).unwrap();
        }
        let charsmap = precompiled_charsmap(&file.normalise).unwrap();
        for (from, to) in &file.normalise {
            let want: String = to.iter().collect();
            assert_eq!(lookup(&charsmap, &from.to_string()), Some(want), "{from:?}");
        }
        assert_eq!(lookup(&charsmap, "a"), None);
    }

    #[test]
    fn the_charsmap_finds_every_replacement_and_nothing_else() {
        let map: HashMap<char, Box<[char]>> = [
            ('\t', " "),
            ('\u{7}', ""),
            ('ﬁ', "fi"),
            ('Ａ', "A"),
            ('Ｂ', "B"),
            ('\u{3000}', " "),
            ('\u{1d400}', "A"),
            ('é', "é"),
        ]
        .into_iter()
        .map(|(from, to)| (from, to.chars().collect()))
        .collect();
        let charsmap = precompiled_charsmap(&map).unwrap();
        for (from, to) in &map {
            let want: String = to.iter().collect();
            assert_eq!(lookup(&charsmap, &from.to_string()), Some(want), "{from:?}");
        }
        for other in ["a", " ", "Ｃ", "\u{1d401}", "ê", "\u{8}"] {
            assert_eq!(lookup(&charsmap, other), None, "{other:?}");
        }
    }
}
