//! Test doubles that ship with the crate (feature `test-utils`): a deterministic bag-of-words
//! [`Embedder`], a scripted [`ChatModel`], and a ready [`App`](crate::App) on a temporary data
//! directory with the in-memory vector index. Real backends are tested against real servers
//! and models elsewhere; these make pipeline and HTTP behaviour testable without them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::embed::{EmbedError, Embedder};
use crate::knowledge::text::terms;
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
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; self.dims];
                for w in terms(t) {
                    let h = w.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
                    });
                    v[(h % self.dims as u64) as usize] += 1.0;
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|x| *x /= norm);
                } else {
                    v[0] = 1.0;
                }
                v
            })
            .collect())
    }
}

/// A chat model that answers from a script, and records what it was asked.
#[derive(Default)]
pub struct ScriptedChat {
    script: Mutex<VecDeque<Result<String, LlmError>>>,
    requests: Mutex<Vec<Recorded>>,
}

/// What a scripted model was asked.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The rendered prompt, one string per message.
    pub messages: Vec<String>,
    /// The question.
    pub question: String,
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
        }
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
                sources: request.sources.len(),
                temperature: request.temperature,
            });
        let next = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .unwrap_or_else(|| Err(LlmError::Permanent("script exhausted".into())));
        next.map(|text| Completion {
            tokens_out: text.split_whitespace().count() as u32,
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
