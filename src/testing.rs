//! Test doubles that ship with the crate (feature `test-utils`): a deterministic bag-of-words
//! [`Embedder`], a scripted [`ChatModel`], and a ready [`App`](crate::App) on a temporary data
//! directory with the in-memory vector index. Real backends are tested against real servers
//! and models elsewhere; these make pipeline and HTTP behaviour testable without them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::embed::{EmbedError, Embedder};
use crate::llm::{ChatModel, ChatRequest, Completion, FinishReason, LlmError};

/// Hashes each word of a text into one of `dims` buckets: texts sharing words are close, and
/// nothing is random, so test outcomes do not depend on a model.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dims: usize,
}

impl HashEmbedder {
    /// A bag-of-words embedder with `dims` dimensions.
    pub fn new(dims: usize) -> Self {
        Self { dims }
    }

    /// The unit-length vector of one text.
    pub fn vector(&self, text: &str) -> Vec<f32> {
        crate::embed::bag_of_words(text, self.dims)
    }
}

impl Default for HashEmbedder {
    fn default() -> Self {
        Self::new(256)
    }
}

#[async_trait]
impl Embedder for HashEmbedder {
    fn model_id(&self) -> &str {
        "hash-bag-of-words"
    }

    fn dimensions(&self) -> usize {
        self.dims
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }

    fn reads_meaning(&self) -> bool {
        false
    }
}

/// A [`HashEmbedder`] that counts the questions it embeds (what a cache of question vectors
/// saves is what it does not count).
#[derive(Debug, Default)]
pub struct CountingEmbedder {
    inner: HashEmbedder,
    questions: std::sync::atomic::AtomicUsize,
}

impl CountingEmbedder {
    /// The questions embedded so far.
    pub fn questions(&self) -> usize {
        self.questions.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl Embedder for CountingEmbedder {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed(texts).await
    }

    async fn embed_queries(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.questions
            .fetch_add(texts.len(), std::sync::atomic::Ordering::SeqCst);
        self.inner.embed(texts).await
    }

    fn reads_meaning(&self) -> bool {
        self.inner.reads_meaning()
    }
}

/// A chat model that answers from a script, and records what it was asked.
#[derive(Default)]
pub struct ScriptedChat {
    script: Mutex<VecDeque<Result<String, LlmError>>>,
    requests: Mutex<Vec<Recorded>>,
    delay: Duration,
}

/// What a scripted model was asked.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The rendered prompt, one string per message.
    pub messages: Vec<String>,
    /// The question.
    pub question: String,
    /// The question it was read with, for a follow-up.
    pub previous: Option<String>,
    /// How many sources it was given.
    pub sources: usize,
    /// Temperature.
    pub temperature: f32,
}

impl ScriptedChat {
    /// A model that replies with these results in turn (then fails permanently).
    pub fn new(script: impl IntoIterator<Item = Result<String, LlmError>>) -> Self {
        Self {
            script: Mutex::new(script.into_iter().collect()),
            requests: Mutex::new(Vec::new()),
            delay: Duration::ZERO,
        }
    }

    /// The same model, taking `delay` over every answer (a busy server).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Everything asked so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl ChatModel for ScriptedChat {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn complete(&self, request: &ChatRequest<'_>) -> Result<Completion, LlmError> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Recorded {
                messages: request.messages.iter().map(|m| m.content.clone()).collect(),
                question: request.question.to_string(),
                previous: request.previous.map(str::to_string),
                sources: request.sources.len(),
                temperature: request.temperature,
            });
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let next = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .unwrap_or_else(|| Err(LlmError::Permanent("script exhausted".into())));
        // A reply made of "• " lines asks which of them the customer means, as the extractive
        // answerer's does.
        next.map(|text| Completion {
            tokens_out: text.split_whitespace().count() as u32,
            options: text
                .lines()
                .map(|line| line.strip_prefix("• ").map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .unwrap_or_default(),
            text,
            model: "scripted".into(),
            tokens_in: 0,
            finish: FinishReason::Stop,
            confidence: None,
            cited: Vec::new(),
        })
    }
}

/// An `Arc` of a scripted model, convenient for [`crate::pipeline::Answerers`].
pub fn scripted(script: impl IntoIterator<Item = Result<String, LlmError>>) -> Arc<ScriptedChat> {
    Arc::new(ScriptedChat::new(script))
}

/// The model cache tests use: `PALAVER_MODELS_DIR`, else the default cache directory.
pub fn test_model_store() -> crate::models::ModelStore {
    let dir = std::env::var_os("PALAVER_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::Settings::default().models_dir());
    crate::models::ModelStore::new(dir, Default::default())
}

/// True when `PALAVER_REQUIRE_MODELS=1`: model tests must run, not skip.
pub fn models_required() -> bool {
    std::env::var("PALAVER_REQUIRE_MODELS").is_ok_and(|v| v == "1")
}

/// The files of model `name` for a test, or `None` (after saying why) when it is not in the
/// cache. With `PALAVER_REQUIRE_MODELS=1` a missing model is fetched, and failing that the
/// test fails.
pub async fn test_model(name: &str) -> Option<crate::models::ModelFiles> {
    let store = test_model_store();
    if models_required() {
        return Some(store.ensure(name).await.unwrap_or_else(|e| {
            panic!("PALAVER_REQUIRE_MODELS=1 but {name} is unavailable: {e}")
        }));
    }
    match store.status(name).await {
        Ok(crate::models::ModelStatus::Ready { .. }) => store.ensure(name).await.ok(),
        other => {
            eprintln!(
                "skipping: model {name} is not in {} ({other:?}); fetch it with `palaver models fetch {name}` or set PALAVER_REQUIRE_MODELS=1",
                store.dir().display()
            );
            None
        }
    }
}
