//! Answerers: the [`ChatModel`] trait and its three implementations, chosen per agent —
//! [`extractive`] (the embedded default: the best sentences of the retrieved passages, no
//! language model), [`local`] (a llama-architecture GGUF run in-process with candle) and
//! [`openai`] (any OpenAI-compatible server through async-openai).

pub mod extractive;
pub mod local;
pub mod openai;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A failure of an answerer, split by what the caller does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// Worth retrying: rate limits, 5xx, timeouts, connection errors.
    #[error("model temporarily unavailable: {0}")]
    Transient(String),
    /// Retrying will not help: bad request, auth, unknown model, unusable answer.
    #[error("model error: {0}")]
    Permanent(String),
    /// The prompt does not fit the model's context: trim and try again, or give up.
    #[error("prompt too long for the model: {0}")]
    ContextLengthExceeded(String),
}

/// Who says a prompt message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// Instructions.
    System,
    /// The customer.
    User,
    /// The assistant (earlier replies).
    Assistant,
}

/// One message of a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who says it.
    pub role: ChatRole,
    /// What is said.
    pub content: String,
}

impl ChatMessage {
    /// A message.
    pub fn new(role: ChatRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A retrieved passage as given to an answerer, numbered as in the prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    /// Its number in the prompt, from 1.
    pub n: usize,
    /// Document source (path or file name).
    pub source: String,
    /// Document title.
    pub title: String,
    /// Heading path.
    pub heading: Option<String>,
    /// Passage text.
    pub text: String,
    /// Cosine similarity to the question.
    pub similarity: f32,
    /// Relevance to the question: the similarity with both centred, one scale for every
    /// embedder (see [`crate::knowledge::relevance`]).
    pub relevance: f32,
    /// Its rank in the retrieval's dense search (1-based), if it was found there.
    pub dense_rank: Option<usize>,
    /// Its rank in the retrieval's keyword search (1-based), if it was found there.
    pub keyword_rank: Option<usize>,
    /// The passage with its neighbours in the document (before and after), for answerers that
    /// read around the passage; equal to `text` when there are none.
    pub context: String,
    /// The opening passage of its document, when it is another one: where a document says
    /// what its terms mean ("Temporada alta: del 1 de julio al 15 de septiembre") for the
    /// sections below.
    pub lead: Option<String>,
}

/// Everything an answerer may use: the rendered prompt for language models, and the question
/// with its sources for answerers that work on passages directly.
#[derive(Debug, Clone)]
pub struct ChatRequest<'a> {
    /// The rendered prompt (system, history, question).
    pub messages: &'a [ChatMessage],
    /// The customer's latest turn.
    pub question: &'a str,
    /// The customer's previous question, when the latest turn reads as a follow-up of it
    /// ("and how long does it take?"): answerers that read passages take both together.
    pub previous: Option<&'a str>,
    /// The numbered sources given in the prompt.
    pub sources: &'a [Source],
    /// The vocabulary of the documents the sources come from, for answerers that compare the
    /// question's words with theirs.
    pub lexicon: Option<&'a crate::knowledge::lexicon::Lexicon>,
    /// What the question and the passages are centred on when their relevance is measured
    /// (see [`crate::knowledge::relevance`]), for answerers that measure it for single
    /// sentences.
    pub centre: Option<&'a crate::knowledge::Centre>,
    /// The question as retrieval embedded it (alone, or after the previous one), for
    /// answerers that would embed the same text with the same model again.
    pub embedded: Option<&'a crate::embed::Embedded>,
    /// Model name; `None` uses the answerer's default.
    pub model: Option<&'a str>,
    /// Sampling temperature (0-2).
    pub temperature: f32,
    /// Longest reply, in tokens.
    pub max_tokens: u32,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// Anything else the server reported.
    Other,
}

/// An answerer's reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completion {
    /// The reply text (empty when the answerer declines to answer).
    pub text: String,
    /// The model that produced it.
    pub model: String,
    /// Prompt tokens.
    pub tokens_in: u32,
    /// Reply tokens.
    pub tokens_out: u32,
    /// Why it stopped.
    pub finish: FinishReason,
    /// How sure the answerer is that the reply answers the question from the sources (0-1),
    /// when it can tell.
    pub confidence: Option<f32>,
    /// Numbers of the sources the reply is based on.
    pub cited: Vec<usize>,
    /// When not empty, the reply asks which of these the customer means (the names of things
    /// the sources price differently, asked about without saying which), and `text` lists
    /// them.
    pub options: Vec<String>,
}

/// Writes replies.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Name for logs and stored replies (e.g. `extractive`, `openai:gpt-4o-mini`).
    fn name(&self) -> &str;
    /// Produces a reply.
    async fn complete(&self, request: &ChatRequest<'_>) -> Result<Completion, LlmError>;
}
