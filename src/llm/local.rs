//! The `local` answerer: a llama-architecture GGUF model run in-process with candle's
//! `quantized_llama`. It owns everything between a prompt and a reply without a server: the
//! tokenizer rebuilt from the GGUF metadata, the chat template (the file's own Jinja template,
//! or ChatML), the context check, and sampling with a KV cache — one generation at a time per
//! loaded model, on a blocking thread.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use minijinja::{Environment, ErrorKind};
use serde::Serialize;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::{ChatMessage, ChatModel, ChatRequest, Completion, FinishReason, LlmError};
use crate::config::LocalLlmSettings;
use crate::models::{ModelError, ModelStore};

/// Sampling seed: the same prompt at the same temperature gives the same reply, so a reply
/// can be reproduced from the stored prompt.
const SEED: u64 = 299_792_458;
/// Prompt tokens fed to the model per forward pass; bounds the attention scratch memory of a
/// long prompt (9 heads x 512 x context floats per layer for SmolLM2) without slowing it down.
const PREFILL_CHUNK: usize = 512;

/// Used when a GGUF carries no chat template, or one this renderer cannot run.
const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// End-of-turn markers of the common chat formats; any of them present in the vocabulary ends
/// generation, besides the file's own EOS and EOT ids.
const STOP_TEXTS: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
    "</s>",
];

/// Llama 3's pre-tokenizer split (`tokenizer.ggml.pre = llama-bpe`): digits in runs of up to
/// three, letters with one leading non-letter, punctuation runs, newlines, spaces.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A GGUF chat model loaded in memory.
pub struct LocalChat {
    name: String,
    context: usize,
    prompter: Arc<Prompter>,
    engine: Arc<tokio::sync::Mutex<Engine>>,
}

impl std::fmt::Debug for LocalChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChat")
            .field("name", &self.name)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl LocalChat {
    /// Loads `s.model`: a path to a `.gguf` file, or a catalogue name (`smollm2-135m`) whose
    /// files the model store provides, fetching and verifying them first when needed.
    pub async fn load(models: &ModelStore, s: &LocalLlmSettings) -> Result<Self, LlmError> {
        if is_gguf_path(&s.model) {
            return Self::load_from_path(Path::new(&s.model), s).await;
        }
        let in_setting = |e: ModelError| {
            let message = format!("llm.local.model = {}: {e}", s.model);
            match e {
                // A download that failed may well work on the next start.
                ModelError::Fetch(_) => LlmError::Transient(message),
                _ => LlmError::Permanent(message),
            }
        };
        let gguf = crate::models::spec(&s.model)
            .map_err(in_setting)?
            .outputs()
            .into_iter()
            .find(|f| is_gguf_path(f.name))
            .ok_or_else(|| {
                LlmError::Permanent(format!(
                    "llm.local.model = {}: this model has no GGUF file",
                    s.model
                ))
            })?;
        let files = models.ensure(&s.model).await.map_err(in_setting)?;
        let path = files.path(gguf.name).ok_or_else(|| {
            LlmError::Permanent(format!(
                "llm.local.model = {}: the model store has no {}",
                s.model, gguf.name
            ))
        })?;
        Self::load_from_path(path, s).await
    }

    /// Loads the GGUF file at `path` (reading it and building the tokenizer on a blocking
    /// thread). `s.model` only names the model in logs and stored replies.
    pub async fn load_from_path(path: &Path, s: &LocalLlmSettings) -> Result<Self, LlmError> {
        let path = path.to_path_buf();
        let name = model_name(&s.model, &path);
        let wanted_context = s.context_tokens;
        let threads = s.threads;
        tokio::task::spawn_blocking(move || load_blocking(&path, name, wanted_context, threads))
            .await
            .map_err(|e| LlmError::Permanent(format!("model loading failed: {e}")))?
    }

    /// Tokens the model can attend to: the prompt and the reply together.
    pub fn context_tokens(&self) -> usize {
        self.context
    }
}

fn is_gguf_path(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

fn model_name(configured: &str, path: &Path) -> String {
    if is_gguf_path(configured) {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        format!("local:{}", stem.unwrap_or_else(|| "gguf".into()))
    } else {
        format!("local:{configured}")
    }
}

fn load_blocking(
    path: &Path,
    name: String,
    wanted_context: usize,
    threads: usize,
) -> Result<LocalChat, LlmError> {
    let started = Instant::now();
    let mut file = std::fs::File::open(path)
        .map_err(|e| LlmError::Permanent(format!("cannot open {}: {e}", path.display())))?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| LlmError::Permanent(format!("{} is not a GGUF file: {e}", path.display())))?;
    let metadata = Metadata(&content.metadata);
    let arch = metadata.string("general.architecture").unwrap_or_default();
    if arch != "llama" {
        return Err(LlmError::Permanent(format!(
            "{}: architecture `{arch}` is not supported; only llama-architecture GGUF models run locally",
            path.display()
        )));
    }
    let prompter = Prompter::from_metadata(&metadata)?;
    let trained_context = metadata
        .u32("llama.context_length")
        .map_or(MAX_SEQ_LEN, |n| n as usize);
    // candle precomputes rotary tables for MAX_SEQ_LEN positions; past that it cannot go.
    let context = wanted_context.min(trained_context).min(MAX_SEQ_LEN);
    if context < 2 {
        return Err(LlmError::Permanent(format!(
            "llm.local.context_tokens = {wanted_context} leaves no room for a reply"
        )));
    }
    let weights = ModelWeights::from_gguf(content, &mut file, &Device::Cpu).map_err(|e| {
        LlmError::Permanent(format!("cannot load weights from {}: {e}", path.display()))
    })?;
    let effective_threads = candle_threads();
    if effective_threads != threads {
        // candle sizes its compute pool once per process from these variables.
        tracing::warn!(
            configured = threads,
            effective = effective_threads,
            "llm.local.threads differs from candle's thread pool; set CANDLE_NUM_THREADS before start to change it"
        );
    }
    tracing::info!(
        model = %name,
        context,
        threads = effective_threads,
        load_ms = started.elapsed().as_millis() as u64,
        "local chat model loaded"
    );
    Ok(LocalChat {
        name,
        context,
        prompter: Arc::new(prompter),
        engine: Arc::new(tokio::sync::Mutex::new(Engine {
            weights,
            device: Device::Cpu,
        })),
    })
}

/// The thread count candle's CPU kernels use (its own rule: `CANDLE_NUM_THREADS`, then
/// `RAYON_NUM_THREADS`, then the physical cores).
fn candle_threads() -> usize {
    std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(candle_core::utils::get_num_threads)
}

#[async_trait]
impl ChatModel for LocalChat {
    fn name(&self) -> &str {
        &self.name
    }

    #[tracing::instrument(skip_all, fields(model = %self.name))]
    async fn complete(&self, request: &ChatRequest<'_>) -> Result<Completion, LlmError> {
        if request.messages.is_empty() {
            return Err(LlmError::Permanent("prompt has no messages".into()));
        }
        if request.max_tokens == 0 {
            return Err(LlmError::Permanent("max_tokens is 0".into()));
        }
        if !(0.0..=2.0).contains(&request.temperature) {
            return Err(LlmError::Permanent(format!(
                "temperature {} is outside 0-2",
                request.temperature
            )));
        }
        let prompter = Arc::clone(&self.prompter);
        let messages = request.messages.to_vec();
        let prompt = tokio::task::spawn_blocking(move || prompter.encode(&messages))
            .await
            .map_err(|e| LlmError::Permanent(format!("prompt preparation failed: {e}")))??;
        if prompt.len() >= self.context {
            return Err(LlmError::ContextLengthExceeded(format!(
                "prompt is {} tokens; the model's context is {}",
                prompt.len(),
                self.context
            )));
        }
        let job = Generation {
            budget: (request.max_tokens as usize).min(self.context - prompt.len()),
            // llama.cpp's default cut-offs: the long tail of a small model's distribution is
            // where the nonsense lives.
            sampling: if request.temperature > 0.0 {
                Sampling::TopKThenTopP {
                    k: 40,
                    p: 0.95,
                    temperature: f64::from(request.temperature),
                }
            } else {
                Sampling::ArgMax
            },
            tokens_in: prompt.len(),
            prompt,
            stops: self.prompter.stops.clone(),
        };

        // Waiting for the model happens here, not on a blocking thread.
        let mut engine = Arc::clone(&self.engine).lock_owned().await;
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancelled));
        let out = tokio::task::spawn_blocking(move || engine.generate(job, &cancelled))
            .await
            .map_err(|e| LlmError::Permanent(format!("generation failed: {e}")))??;

        let text = self.prompter.decode(&out.tokens)?.trim().to_string();
        if text.is_empty() {
            return Err(LlmError::Permanent("empty answer: no text".into()));
        }
        Ok(Completion {
            text,
            model: self.name.clone(),
            tokens_in: count_u32(out.tokens_in),
            tokens_out: count_u32(out.tokens.len()),
            finish: out.finish,
            confidence: None,
            cited: Vec::new(),
            options: Vec::new(),
        })
    }
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Stops a generation whose caller has gone away (a timeout, a shutdown), so the model is free
/// for the next one instead of finishing a reply nobody reads.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Typed reads of GGUF metadata.
struct Metadata<'a>(&'a HashMap<String, gguf_file::Value>);

impl Metadata<'_> {
    fn string(&self, key: &str) -> Option<String> {
        self.0.get(key)?.to_string().ok().cloned()
    }

    fn u32(&self, key: &str) -> Option<u32> {
        let v = self.0.get(key)?;
        v.to_u32()
            .ok()
            .or_else(|| v.to_i32().ok().and_then(|n| u32::try_from(n).ok()))
            .or_else(|| v.to_u64().ok().and_then(|n| u32::try_from(n).ok()))
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.0.get(key)?.to_bool().ok()
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, LlmError> {
        let values = self
            .0
            .get(key)
            .ok_or_else(|| LlmError::Permanent(format!("GGUF metadata lacks {key}")))?
            .to_vec()
            .map_err(|e| LlmError::Permanent(format!("GGUF metadata {key}: {e}")))?;
        values
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| LlmError::Permanent(format!("GGUF metadata {key}: {e}")))
            })
            .collect()
    }

    fn ints(&self, key: &str) -> Option<Vec<i32>> {
        let values = self.0.get(key)?.to_vec().ok()?;
        values
            .iter()
            .map(|v| {
                v.to_i32()
                    .ok()
                    .or_else(|| v.to_u32().ok().and_then(|n| i32::try_from(n).ok()))
            })
            .collect()
    }
}

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

/// Everything between chat messages and token ids: the tokenizer, the chat template and the
/// ids that end a turn.
struct Prompter {
    tokenizer: Tokenizer,
    template: Environment<'static>,
    bos: Option<(u32, String)>,
    eos_text: String,
    add_bos: bool,
    stops: BTreeSet<u32>,
}

#[derive(Serialize)]
struct TemplateMessage<'a> {
    role: &'a str,
    content: &'a str,
}

impl Prompter {
    fn from_metadata(md: &Metadata<'_>) -> Result<Self, LlmError> {
        let tokenizer = tokenizer_from_metadata(md)?;
        let text_of = |id: u32| tokenizer.id_to_token(id);
        let bos = md
            .u32("tokenizer.ggml.bos_token_id")
            .and_then(|id| text_of(id).map(|t| (id, t)));
        let eos_id = md.u32("tokenizer.ggml.eos_token_id");
        let eos_text = eos_id.and_then(text_of).unwrap_or_default();
        let mut stops: BTreeSet<u32> = [eos_id, md.u32("tokenizer.ggml.eot_token_id")]
            .into_iter()
            .flatten()
            .collect();
        stops.extend(STOP_TEXTS.iter().filter_map(|t| tokenizer.token_to_id(t)));
        if stops.is_empty() {
            return Err(LlmError::Permanent(
                "GGUF names no end-of-sequence token; generation could not stop".into(),
            ));
        }
        let mut prompter = Self {
            tokenizer,
            template: chat_environment(CHATML_TEMPLATE)?,
            bos,
            eos_text,
            add_bos: md.bool("tokenizer.ggml.add_bos_token").unwrap_or(false),
            stops,
        };
        match md.string("tokenizer.chat_template") {
            Some(source) => match chat_environment(&source) {
                Ok(env) => {
                    let own = std::mem::replace(&mut prompter.template, env);
                    // A template that cannot render a plain system + user prompt (it calls
                    // Python string methods, or refuses system messages) is of no use here.
                    let probe = [
                        ChatMessage::new(super::ChatRole::System, "You help."),
                        ChatMessage::new(super::ChatRole::User, "Hello?"),
                    ];
                    if let Err(e) = prompter.render(&probe) {
                        tracing::warn!(error = %e, "GGUF chat template does not render; using ChatML");
                        prompter.template = own;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "GGUF chat template does not compile; using ChatML")
                }
            },
            None => tracing::warn!("GGUF has no chat template; using ChatML"),
        }
        if prompter.tokenizer.token_to_id("<|im_start|>").is_none()
            && md.string("tokenizer.chat_template").is_none()
        {
            tracing::warn!("vocabulary has no ChatML markers; replies may be poor");
        }
        Ok(prompter)
    }

    fn render(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        let messages: Vec<TemplateMessage<'_>> = messages
            .iter()
            .map(|m| TemplateMessage {
                role: match m.role {
                    super::ChatRole::System => "system",
                    super::ChatRole::User => "user",
                    super::ChatRole::Assistant => "assistant",
                },
                content: &m.content,
            })
            .collect();
        let template = self
            .template
            .get_template("chat")
            .map_err(|e| LlmError::Permanent(format!("chat template: {e}")))?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => self.bos.as_ref().map(|(_, t)| t.as_str()).unwrap_or(""),
                eos_token => self.eos_text.as_str(),
            })
            .map_err(|e| LlmError::Permanent(format!("chat template: {e}")))
    }

    /// The prompt as token ids: rendered, then tokenized with the template's own markers read
    /// as special tokens, with BOS in front when the model wants it and the template left it out.
    fn encode(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, LlmError> {
        let text = self.render(messages)?;
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| LlmError::Permanent(format!("tokenizer: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        if let Some((bos, _)) = self.bos {
            if self.add_bos && ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    fn decode(&self, ids: &[u32]) -> Result<String, LlmError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| LlmError::Permanent(format!("tokenizer: {e}")))
    }
}

fn chat_environment(source: &str) -> Result<Environment<'static>, LlmError> {
    let mut env = Environment::new();
    // What transformers' apply_chat_template sets; templates are written for it.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function(
        "raise_exception",
        |message: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        },
    );
    env.add_template_owned("chat", source.to_string())
        .map_err(|e| LlmError::Permanent(format!("chat template: {e}")))?;
    Ok(env)
}

/// A byte-level BPE tokenizer from `tokenizer.ggml.*`: vocabulary, merges, token types and the
/// pre-tokenizer named by `tokenizer.ggml.pre`.
fn tokenizer_from_metadata(md: &Metadata<'_>) -> Result<Tokenizer, LlmError> {
    let kind = md.string("tokenizer.ggml.model").unwrap_or_default();
    if kind != "gpt2" {
        return Err(LlmError::Permanent(format!(
            "tokenizer `{kind}` is not supported; only byte-level BPE (`gpt2`) GGUF tokenizers are"
        )));
    }
    let tokens = md.strings("tokenizer.ggml.tokens")?;
    let merges = md.strings("tokenizer.ggml.merges")?;
    let types = md.ints("tokenizer.ggml.token_type").unwrap_or_default();
    let pre = md.string("tokenizer.ggml.pre").unwrap_or_default();

    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), count_u32(id)))
        .collect();
    let merges = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| LlmError::Permanent(format!("GGUF merge `{m}` is not a pair")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        // Llama 3's tokenizer takes whole-word vocabulary hits before merging.
        .ignore_merges(pre == "llama-bpe")
        .build()
        .map_err(|e| LlmError::Permanent(format!("tokenizer: {e}")))?;

    let pre_tokenizer: PreTokenizerWrapper = match pre.as_str() {
        "llama-bpe" => {
            let split = Split::new(
                SplitPattern::Regex(LLAMA3_SPLIT.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| LlmError::Permanent(format!("tokenizer: {e}")))?;
            Sequence::new(vec![
                split.into(),
                ByteLevel::new(false, true, false).into(),
            ])
            .into()
        }
        "smollm" | "starcoder" | "refact" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        other => {
            if other != "gpt2" && other != "default" {
                tracing::warn!(
                    pre = other,
                    "unknown GGUF pre-tokenizer; using GPT-2's, tokens may differ slightly"
                );
            }
            ByteLevel::new(false, true, true).into()
        }
    };

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    // Control and user-defined tokens are matched whole before BPE, so a template's
    // `<|im_start|>` is one token; control tokens are also left out of decoded text.
    let added: Vec<AddedToken> = tokens
        .iter()
        .zip(types.iter().copied().chain(std::iter::repeat(1)))
        .filter_map(|(t, ty)| match ty {
            TOKEN_CONTROL => Some(AddedToken::from(t.clone(), true)),
            TOKEN_USER_DEFINED => Some(AddedToken::from(t.clone(), false).normalized(false)),
            _ => None,
        })
        .collect();
    tokenizer
        .add_special_tokens(added)
        .map_err(|e| LlmError::Permanent(format!("tokenizer: {e}")))?;
    Ok(tokenizer)
}

/// One reply to produce.
struct Generation {
    prompt: Vec<u32>,
    tokens_in: usize,
    budget: usize,
    sampling: Sampling,
    stops: BTreeSet<u32>,
}

/// What the model produced: reply tokens (without the stop token) and why it stopped.
struct Generated {
    tokens: Vec<u32>,
    tokens_in: usize,
    finish: FinishReason,
}

/// The weights with their KV cache: one generation at a time.
struct Engine {
    weights: ModelWeights,
    device: Device,
}

impl Engine {
    fn generate(&mut self, job: Generation, cancelled: &AtomicBool) -> Result<Generated, LlmError> {
        let result = self.run(&job, cancelled);
        // The cache would be overwritten by the next prompt anyway; freeing it now returns the
        // memory while the model sits idle.
        self.weights.clear_kv_cache();
        result.map_err(|e| LlmError::Permanent(format!("generation failed: {e}")))
    }

    fn run(&mut self, job: &Generation, cancelled: &AtomicBool) -> candle_core::Result<Generated> {
        let started = Instant::now();
        let mut logits = None;
        let mut position = 0;
        for chunk in job.prompt.chunks(PREFILL_CHUNK) {
            if cancelled.load(Ordering::Relaxed) {
                candle_core::bail!("cancelled");
            }
            let input = Tensor::new(chunk, &self.device)?.unsqueeze(0)?;
            logits = Some(self.weights.forward(&input, position)?);
            position += chunk.len();
        }
        let Some(mut logits) = logits else {
            candle_core::bail!("empty prompt");
        };
        let prefilled = Instant::now();

        let mut sampler = LogitsProcessor::from_sampling(SEED, job.sampling.clone());
        let mut tokens = Vec::with_capacity(job.budget);
        let finish = loop {
            let next = sampler.sample(&logits.squeeze(0)?.to_dtype(DType::F32)?)?;
            if job.stops.contains(&next) {
                break FinishReason::Stop;
            }
            tokens.push(next);
            if tokens.len() >= job.budget {
                break FinishReason::Length;
            }
            if cancelled.load(Ordering::Relaxed) {
                candle_core::bail!("cancelled");
            }
            let input = Tensor::new(&[next], &self.device)?.unsqueeze(0)?;
            logits = self.weights.forward(&input, position)?;
            position += 1;
        };

        let prefill_s = (prefilled - started).as_secs_f64();
        let generate_s = prefilled.elapsed().as_secs_f64();
        tracing::debug!(
            prompt_tokens = job.tokens_in,
            reply_tokens = tokens.len(),
            prompt_tok_per_s = job.tokens_in as f64 / prefill_s.max(1e-9),
            reply_tok_per_s = tokens.len() as f64 / generate_s.max(1e-9),
            "local generation done"
        );
        Ok(Generated {
            tokens,
            tokens_in: job.tokens_in,
            finish,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ChatRole;
    use std::path::PathBuf;
    use tokio::sync::OnceCell;

    const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// GGUF tokenizer metadata for a tiny byte-level vocabulary: three control tokens, the 256
    /// byte symbols, and merges for `he`, `ll` and `20`.
    fn tiny_metadata(template: Option<&str>, add_bos: bool) -> HashMap<String, gguf_file::Value> {
        use gguf_file::Value;
        let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
        alphabet.sort_unstable();
        let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let controls = tokens.len();
        tokens.extend(alphabet.iter().map(|c| c.to_string()));
        tokens.extend(["he", "ll", "20"].iter().map(|s| s.to_string()));
        let types = (0..tokens.len())
            .map(|i| Value::I32(if i < controls { TOKEN_CONTROL } else { 1 }))
            .collect();
        let strings = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
        let mut md = HashMap::from([
            (
                "tokenizer.ggml.model".to_string(),
                Value::String("gpt2".into()),
            ),
            (
                "tokenizer.ggml.pre".to_string(),
                Value::String("smollm".into()),
            ),
            ("tokenizer.ggml.tokens".to_string(), strings(tokens)),
            (
                "tokenizer.ggml.merges".to_string(),
                strings(vec!["h e".into(), "l l".into(), "2 0".into()]),
            ),
            ("tokenizer.ggml.token_type".to_string(), Value::Array(types)),
            ("tokenizer.ggml.bos_token_id".to_string(), Value::U32(1)),
            ("tokenizer.ggml.eos_token_id".to_string(), Value::U32(2)),
            (
                "tokenizer.ggml.add_bos_token".to_string(),
                Value::Bool(add_bos),
            ),
        ]);
        if let Some(t) = template {
            md.insert(
                "tokenizer.chat_template".to_string(),
                Value::String(t.to_string()),
            );
        }
        md
    }

    fn tiny_prompter(template: Option<&str>) -> Prompter {
        Prompter::from_metadata(&Metadata(&tiny_metadata(template, false))).unwrap()
    }

    fn user(text: &str) -> ChatMessage {
        ChatMessage::new(ChatRole::User, text)
    }

    #[test]
    fn tokenizer_from_metadata_round_trips_text() {
        let p = tiny_prompter(None);
        for text in [
            "hello",
            " leading and trailing spaces ",
            "Olá, ça va? Größe 12 €",
            "line one\nline two\r\n\ttabbed",
            "emoji 🥐🍰 and 中文",
            "",
        ] {
            let ids = p.tokenizer.encode(text, false).unwrap().get_ids().to_vec();
            assert_eq!(p.decode(&ids).unwrap(), text, "{ids:?}");
        }
    }

    #[test]
    fn tokenizer_reads_markers_whole_merges_and_splits_digits() {
        let p = tiny_prompter(None);
        let id = |t: &str| p.tokenizer.token_to_id(t).unwrap();
        let ids = p
            .tokenizer
            .encode("<|im_start|>hello 2024<|im_end|>", false)
            .unwrap()
            .get_ids()
            .to_vec();
        let expected = vec![
            id("<|im_start|>"),
            id("he"),
            id("ll"),
            id("o"),
            id("Ġ"),
            // Digits one by one: the `2 0` merge must not apply.
            id("2"),
            id("0"),
            id("2"),
            id("4"),
            id("<|im_end|>"),
        ];
        assert_eq!(ids, expected);
        // Control tokens never show in a reply.
        assert_eq!(p.decode(&ids).unwrap(), "hello 2024");
        assert_eq!(p.stops, BTreeSet::from([0, 2]));
    }

    #[test]
    fn chat_templates() {
        let smol_default_system = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
        let chatml = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
        let cases = [
            ("the file's own template", Some(SMOLLM2_TEMPLATE), smol_default_system),
            ("no template: ChatML", None, chatml),
            // Python string methods are not Jinja; such a template falls back to ChatML.
            (
                "unrenderable template",
                Some("{% for m in messages %}{{ m['content'].strip() }}{% endfor %}"),
                chatml,
            ),
            ("template with a syntax error", Some("{% for m in messages %}"), chatml),
            (
                "template refusing system messages",
                Some("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}{{ m['content'] }}{% endfor %}"),
                chatml,
            ),
        ];
        for (what, template, expected) in cases {
            let p = tiny_prompter(template);
            assert_eq!(p.render(&[user("Hi")]).unwrap(), expected, "{what}");
        }
        let p = tiny_prompter(Some(SMOLLM2_TEMPLATE));
        let with_system = [
            ChatMessage::new(ChatRole::System, "You answer for a bakery."),
            user("Hi"),
            ChatMessage::new(ChatRole::Assistant, "Hello!"),
            user("Open today?"),
        ];
        assert_eq!(
            p.render(&with_system).unwrap(),
            "<|im_start|>system\nYou answer for a bakery.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nOpen today?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn bos_is_added_once_when_the_model_wants_it() {
        let with_bos = Prompter::from_metadata(&Metadata(&tiny_metadata(
            Some("{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"),
            true,
        )))
        .unwrap();
        let ids = with_bos.encode(&[user("hi")]).unwrap();
        assert_eq!(ids.iter().filter(|&&id| id == 1).count(), 1, "{ids:?}");
        assert_eq!(ids[0], 1);

        let adds = Prompter::from_metadata(&Metadata(&tiny_metadata(None, true))).unwrap();
        assert_eq!(adds.encode(&[user("hi")]).unwrap()[0], 1);
        let does_not = tiny_prompter(None);
        // ChatML starts with <|im_start|>, which is id 1 here too; look one further.
        let ids = does_not.encode(&[user("hi")]).unwrap();
        assert_ne!(ids[1], 1);
        assert_eq!(ids.iter().filter(|&&id| id == 1).count(), 2);
    }

    #[test]
    fn unsupported_tokenizers_are_refused() {
        let mut md = tiny_metadata(None, false);
        md.insert(
            "tokenizer.ggml.model".into(),
            gguf_file::Value::String("llama".into()),
        );
        assert!(matches!(
            Prompter::from_metadata(&Metadata(&md)),
            Err(LlmError::Permanent(_))
        ));
    }

    #[test]
    fn model_names() {
        let path = Path::new("/models/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert_eq!(model_name("smollm2-135m", path), "local:smollm2-135m");
        assert_eq!(
            model_name("/models/SmolLM2-135M-Instruct.Q4_1.gguf", path),
            "local:SmolLM2-135M-Instruct.Q4_1"
        );
    }

    #[tokio::test]
    async fn load_refuses_what_is_not_a_local_chat_model() {
        let tmp = tempfile::tempdir().unwrap();
        // MiniLM's files, as a local override: present, but no GGUF among them.
        let minilm = tmp.path().join("minilm");
        std::fs::create_dir(&minilm).unwrap();
        for f in ["model.safetensors", "tokenizer.json", "config.json"] {
            std::fs::write(minilm.join(f), b"").unwrap();
        }
        let store = ModelStore::new(
            tmp.path().join("cache"),
            [("all-minilm-l6-v2".to_string(), minilm)].into(),
        );
        let cases = [
            ("all-minilm-l6-v2", "no GGUF"),
            ("no-such-model", "unknown model"),
            ("/nowhere/model.gguf", "cannot open"),
        ];
        for (model, why) in cases {
            let s = LocalLlmSettings {
                model: model.into(),
                ..LocalLlmSettings::default()
            };
            let err = LocalChat::load(&store, &s).await.unwrap_err();
            assert!(
                matches!(&err, LlmError::Permanent(m) if m.contains(why)),
                "{model}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn load_finds_the_catalogue_gguf_through_the_model_store() {
        let Some(path) = test_gguf().await else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let store = ModelStore::new(
            tmp.path().to_path_buf(),
            [("smollm2-135m".to_string(), path.clone())].into(),
        );
        let chat = LocalChat::load(&store, &LocalLlmSettings::default())
            .await
            .unwrap();
        assert_eq!(chat.name(), "local:smollm2-135m");
        let by_path = LocalLlmSettings {
            model: path.to_string_lossy().into_owned(),
            ..LocalLlmSettings::default()
        };
        let chat = LocalChat::load(&store, &by_path).await.unwrap();
        assert_eq!(chat.name(), "local:SmolLM2-135M-Instruct.Q4_1");
    }

    /// The SmolLM2 GGUF from the test model cache (see [`crate::testing::test_model`]).
    async fn test_gguf() -> Option<PathBuf> {
        let files = crate::testing::test_model("smollm2-135m").await?;
        files
            .path("SmolLM2-135M-Instruct.Q4_1.gguf")
            .map(Path::to_path_buf)
    }

    /// One loaded model shared by the tests (its mutex serialises them).
    async fn smollm() -> Option<&'static LocalChat> {
        static MODEL: OnceCell<LocalChat> = OnceCell::const_new();
        let path = test_gguf().await?;
        Some(
            MODEL
                .get_or_init(|| async {
                    LocalChat::load_from_path(&path, &LocalLlmSettings::default())
                        .await
                        .unwrap()
                })
                .await,
        )
    }

    fn ask<'a>(messages: &'a [ChatMessage], temperature: f32, max_tokens: u32) -> ChatRequest<'a> {
        ChatRequest {
            messages,
            question: "",
            previous: None,
            sources: &[],
            lexicon: None,
            centre: None,
            embedded: None,
            model: None,
            temperature,
            max_tokens,
        }
    }

    fn capital_question() -> [ChatMessage; 2] {
        [
            ChatMessage::new(ChatRole::System, "You answer questions briefly."),
            user("What is the capital of France?"),
        ]
    }

    #[tokio::test]
    async fn smollm2_tokenizer_matches_llama_cpp() {
        let Some(path) = test_gguf().await else {
            return;
        };
        let mut file = std::fs::File::open(path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        let p = Prompter::from_metadata(&Metadata(&content.metadata)).unwrap();
        // Ids from llama.cpp (llama-cpp-python 0.3.36, `tokenize(text, add_bos=False,
        // special=True)`) for the same file.
        let cases: &[(&str, &[u32])] = &[
            (
                "What time do you open on Saturday?",
                &[1780, 655, 536, 346, 1440, 335, 14986, 47],
            ),
            (
                "Order #12345 costs R$ 1.299,90 — ok?",
                &[
                    22977, 907, 33, 34, 35, 36, 37, 3499, 428, 20, 216, 33, 30, 34, 41, 41, 28, 41,
                    32, 1841, 10907, 47,
                ],
            ),
            (
                "  two leading spaces\n\nand a blank line",
                &[216, 827, 2899, 5600, 198, 198, 397, 253, 8884, 1761],
            ),
            (
                "Ça coûte 3 € 🥐",
                &[
                    142, 225, 81, 857, 41307, 676, 216, 35, 24927, 15107, 115, 234,
                ],
            ),
        ];
        for (text, expected) in cases {
            let ids = p.tokenizer.encode(*text, false).unwrap().get_ids().to_vec();
            assert_eq!(ids, *expected, "{text}");
            assert_eq!(p.decode(&ids).unwrap(), *text);
        }
        let ids = p.encode(&[user("What is the capital of France?")]).unwrap();
        assert_eq!(
            ids,
            [
                1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018,
                411, 407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47,
                2, 198, 1, 520, 9531, 198
            ]
        );
        assert_eq!(p.tokenizer.encode("2024", false).unwrap().len(), 4);
        assert!(p.stops.contains(&2), "{:?}", p.stops);
    }

    #[tokio::test]
    async fn smollm2_answers_a_simple_question() {
        let Some(model) = smollm().await else { return };
        // Without a system message SmolLM2's template adds its own, after which this 135M
        // model wanders off into French (llama.cpp, greedy, does the same); the pipeline always
        // sends one.
        let messages = capital_question();
        let done = model.complete(&ask(&messages, 0.0, 48)).await.unwrap();
        assert_eq!(done.model, "local:smollm2-135m");
        assert!(!done.text.is_empty());
        assert!(done.text.contains("Paris"), "{}", done.text);
        assert!(done.tokens_in > 10 && done.tokens_out > 0, "{done:?}");
        assert_eq!(done.confidence, None);
    }

    #[tokio::test]
    async fn smollm2_stops_at_the_end_of_its_turn() {
        let Some(model) = smollm().await else { return };
        let messages = capital_question();
        let done = model.complete(&ask(&messages, 0.0, 200)).await.unwrap();
        assert_eq!(done.finish, FinishReason::Stop, "{done:?}");
        assert!(done.tokens_out < 200);
        assert!(!done.text.contains("<|im_end|>"), "{}", done.text);
    }

    #[tokio::test]
    async fn smollm2_respects_max_tokens() {
        let Some(model) = smollm().await else { return };
        let messages = [user("Write a long story about a dragon who bakes bread.")];
        let done = model.complete(&ask(&messages, 0.7, 5)).await.unwrap();
        assert_eq!(done.finish, FinishReason::Length);
        assert_eq!(done.tokens_out, 5);
    }

    #[tokio::test]
    async fn smollm2_greedy_output_is_deterministic() {
        let Some(model) = smollm().await else { return };
        let messages = [
            ChatMessage::new(ChatRole::System, "You answer briefly."),
            user("Name three fruits."),
        ];
        let first = model.complete(&ask(&messages, 0.0, 40)).await.unwrap();
        let second = model.complete(&ask(&messages, 0.0, 40)).await.unwrap();
        assert_eq!(first.text, second.text);
        assert_eq!(first.tokens_out, second.tokens_out);
    }

    #[tokio::test]
    async fn smollm2_refuses_a_prompt_longer_than_its_context() {
        let Some(model) = smollm().await else { return };
        let long = "bread ".repeat(model.context_tokens() + 10);
        let messages = [user(&long)];
        let err = model.complete(&ask(&messages, 0.0, 16)).await.unwrap_err();
        assert!(matches!(err, LlmError::ContextLengthExceeded(_)), "{err:?}");
    }
}
