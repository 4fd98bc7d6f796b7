//! Instructions under review. [`draft`] writes an agent's instructions from its documents: a
//! model writes them when the agent answers with the `openai` answerer (each call counted
//! against the workspace's monthly limit, [`crate::accounts::quota`]), otherwise they are
//! assembled from the outline of the documents ([`crate::knowledge::outline`]) without a
//! model. [`compare`] runs the agent's eval suites — the suites of the eval directory that start
//! from the agent (`agent: {from: <name>}`) — once with the saved instructions and once with
//! other ones, and sets the verdicts side by side. Nothing here changes the agent: saving a
//! draft is an ordinary agent update.

use std::collections::HashMap;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::results::{CaseResult, CaseStatus, RunResults, Summary};
use super::suite::{self, Suite};
use super::{run, runs, EvalError};
use crate::accounts::quota::{self, QuotaError};
use crate::domain::{Agent, Answerer, Chunk, Document, DocumentId, FieldError, WorkspaceId};
use crate::knowledge::outline::{self, DocumentText, Outline, Passage, Settled};
use crate::llm::{ChatMessage, ChatRequest, ChatRole, LlmError};
use crate::prompts::PromptError;
use crate::store::StoreError;
use crate::App;

/// Longest instructions, in bytes (an agent's `system_prompt` holds no more).
pub const MAX_INSTRUCTIONS_BYTES: usize = 32_000;
/// Words a model is asked to keep the instructions under.
const MODEL_DRAFT_WORDS: u32 = 400;
/// Tokens a model may write for a draft.
const MODEL_DRAFT_TOKENS: u32 = 1200;
/// Sampling temperature of a model draft: close to the documents, a little free in wording.
const MODEL_DRAFT_TEMPERATURE: f32 = 0.2;

/// How to draft.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DraftMode {
    /// With the model when the agent answers with `openai` and a server is configured, else
    /// offline.
    #[default]
    Auto,
    /// From the outline of the documents, without a model (never counted).
    Offline,
    /// With the OpenAI-compatible server (counted against the monthly limit).
    Model,
}

/// What made a draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MadeBy {
    /// Assembled from the outline of the documents.
    Offline,
    /// Written by the model.
    Model,
}

/// Instructions drafted from an agent's documents.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Draft {
    /// The drafted instructions.
    pub text: String,
    /// What made them.
    pub made_by: MadeBy,
    /// The model that wrote them, as its server names it, when a model did.
    pub model: Option<String>,
    /// What the documents say about the business, as read without a model.
    pub outline: Outline,
}

/// Why there is no draft or no comparison.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    /// The agent has no documents.
    #[error("the agent has no documents to draft from: upload some first")]
    NoKnowledge,
    /// A model draft was asked for and no OpenAI-compatible server is configured.
    #[error("no OpenAI-compatible server is configured (llm.openai): draft offline instead")]
    NoModel,
    /// Instructions to compare are not usable.
    #[error("invalid instructions")]
    Invalid(Vec<FieldError>),
    /// The month's model calls are used up.
    #[error(transparent)]
    Quota(#[from] QuotaError),
    /// The model failed (nothing was counted).
    #[error(transparent)]
    Model(LlmError),
    /// A prompt template is broken.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The eval suites could not be run.
    #[error(transparent)]
    Eval(#[from] EvalError),
}

/// An agent's documents with their passages, in order.
async fn documents(app: &App, agent: &Agent) -> Result<Vec<(Document, Vec<Chunk>)>, StoreError> {
    let key = agent.collection();
    let mut chunks: HashMap<DocumentId, Vec<Chunk>> = HashMap::new();
    let mut after = None;
    loop {
        let page = app.store.chunk_page(&key, after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for chunk in page {
            chunks.entry(chunk.document_id).or_default().push(chunk);
        }
    }
    let mut out = Vec::new();
    for doc in app.store.list_documents(&key).await? {
        let mut passages = chunks.remove(&doc.id).unwrap_or_default();
        passages.sort_by_key(|c| c.position);
        out.push((doc, passages));
    }
    Ok(out)
}

/// `text` cut to at most `bytes` bytes, at a character boundary.
fn cut_to(text: &str, bytes: usize) -> &str {
    if text.len() <= bytes {
        return text;
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Drafts `agent`'s instructions from its documents (see the module documentation for which
/// way). Nothing is saved.
#[tracing::instrument(skip_all, fields(agent = %agent.name, ?mode))]
pub async fn draft(
    app: &App,
    ws: WorkspaceId,
    agent: &Agent,
    mode: DraftMode,
) -> Result<Draft, DraftError> {
    let docs = documents(app, agent).await?;
    if docs.iter().all(|(_, passages)| passages.is_empty()) {
        return Err(DraftError::NoKnowledge);
    }
    let texts: Vec<DocumentText<'_>> = docs
        .iter()
        .map(|(doc, passages)| DocumentText {
            source: &doc.source,
            title: &doc.title,
            passages: passages
                .iter()
                .map(|c| Passage {
                    heading: c.heading.as_deref(),
                    text: &c.text,
                })
                .collect(),
        })
        .collect();
    let config = &agent.config;
    let outline = outline::outline(
        &texts,
        Settled {
            business_name: &config.business_name,
            language: config.language.as_deref(),
            handover_keywords: &config.escalation.keywords,
        },
    );
    let offline = app.prompts.draft_instructions(&outline)?;
    let model = app.pipeline.answerers.get(Answerer::Openai).await.ok();
    let model = match (mode, model) {
        (DraftMode::Offline, _) => None,
        (DraftMode::Auto, model) if config.answerer == Answerer::Openai => model,
        (DraftMode::Auto, _) => None,
        (DraftMode::Model, Some(model)) => Some(model),
        (DraftMode::Model, None) => return Err(DraftError::NoModel),
    };
    let Some(model) = model else {
        tracing::info!(documents = docs.len(), "instructions drafted offline");
        return Ok(Draft {
            text: cut_to(&offline, MAX_INSTRUCTIONS_BYTES).to_string(),
            made_by: MadeBy::Offline,
            model: None,
            outline,
        });
    };
    let passages: Vec<(String, String)> = texts
        .iter()
        .flat_map(|d| {
            d.passages
                .iter()
                .map(|p| (d.source.to_string(), p.text.to_string()))
        })
        .collect();
    let business = outline.business_name.as_deref().unwrap_or("the business");
    let prompt =
        app.prompts
            .instructions_request(business, &offline, &passages, MODEL_DRAFT_WORDS)?;
    let counted = quota::count_call(app.store.as_ref(), ws, Utc::now()).await?;
    let messages = [ChatMessage::new(ChatRole::User, prompt)];
    let request = ChatRequest {
        messages: &messages,
        question: "",
        previous: None,
        sources: &[],
        lexicon: None,
        centre: None,
        embedded: None,
        model: config.model.as_deref(),
        temperature: MODEL_DRAFT_TEMPERATURE,
        max_tokens: MODEL_DRAFT_TOKENS,
    };
    match model.complete(&request).await {
        Ok(completion) if !completion.text.trim().is_empty() => {
            tracing::info!(model = %completion.model, used = counted.used, tokens_out = completion.tokens_out, "instructions drafted by a model");
            Ok(Draft {
                text: cut_to(completion.text.trim(), MAX_INSTRUCTIONS_BYTES).to_string(),
                made_by: MadeBy::Model,
                model: Some(completion.model),
                outline,
            })
        }
        Ok(_) => {
            // Answered, so counted; but an empty answer is no draft.
            Err(DraftError::Model(LlmError::Permanent(
                "the model answered with no text".into(),
            )))
        }
        Err(e) => {
            quota::give_back(app.store.as_ref(), counted).await;
            tracing::warn!(error = %e, "drafting instructions with a model failed");
            Err(DraftError::Model(e))
        }
    }
}

/// What a set of instructions made of the suites.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Totals {
    /// Cases run.
    pub cases: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped (nothing could be checked).
    pub skipped: usize,
    /// The engine failed.
    pub errors: usize,
    /// passed / (passed + failed + errors); `None` when every case was skipped.
    pub pass_rate: Option<f64>,
}

impl From<&Summary> for Totals {
    fn from(s: &Summary) -> Self {
        Self {
            cases: s.cases,
            passed: s.passed,
            failed: s.failed,
            skipped: s.skipped,
            errors: s.errors,
            pass_rate: s.pass_rate,
        }
    }
}

/// How one case ended with one set of instructions.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Verdict {
    /// `passed`, `failed`, `skipped` or `error`.
    pub status: String,
    /// Why it did not pass: the first failed assertion, or the engine's error.
    pub reason: Option<String>,
    /// The last reply.
    pub reply: Option<String>,
}

impl From<&CaseResult> for Verdict {
    fn from(c: &CaseResult) -> Self {
        let reason = match c.status {
            CaseStatus::Passed | CaseStatus::Skipped => None,
            CaseStatus::Error => c.error.clone(),
            CaseStatus::Failed => c
                .assertions
                .iter()
                .find(|a| a.checked.verdict == super::assertions::Verdict::Fail)
                .map(|a| format!("{}: {}", a.expected, a.checked.reason)),
        };
        Self {
            status: c.status.as_str().to_string(),
            reason,
            reply: c.turns.last().and_then(|t| t.reply.clone()),
        }
    }
}

/// One case with both sets of instructions.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaseComparison {
    /// The suite.
    pub suite: String,
    /// The case's id.
    pub id: String,
    /// What it checks.
    pub description: Option<String>,
    /// What the customer says first.
    pub said: String,
    /// With the saved instructions.
    pub saved: Verdict,
    /// With the other instructions.
    pub draft: Verdict,
}

/// The agent's eval suites run with the saved instructions and with other ones.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    /// The suites run (those of the eval directory that start from the agent).
    pub suites: Vec<String>,
    /// Why nothing was run, when nothing was.
    pub message: Option<String>,
    /// The saved instructions' totals (none when nothing was run).
    pub saved: Option<Totals>,
    /// The other instructions' totals.
    pub draft: Option<Totals>,
    /// Every case, with both verdicts.
    pub cases: Vec<CaseComparison>,
}

/// The eval directory's suites that start from the agent named `name`. A broken suite file is
/// left out (and logged): it says nothing about this agent until mended.
fn agent_suites(app: &App, name: &str) -> Result<Vec<Suite>, EvalError> {
    let dir = &app.settings.eval.dir;
    let mut found = Vec::new();
    for file in suite::suite_files(dir).unwrap_or_default() {
        match suite::load(std::slice::from_ref(&file)) {
            Ok(suites) => found.extend(
                suites
                    .into_iter()
                    .filter(|s| s.agent.from.as_deref() == Some(name)),
            ),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "a broken suite file is left out of the comparison");
            }
        }
    }
    runs::confine(app, &found)?;
    Ok(found)
}

/// Checks instructions to compare.
pub fn validate_instructions(text: &str) -> Result<(), DraftError> {
    let problem = if text.trim().is_empty() {
        Some("must not be empty".to_string())
    } else if text.len() > MAX_INSTRUCTIONS_BYTES {
        Some(format!("must be at most {MAX_INSTRUCTIONS_BYTES} bytes"))
    } else {
        None
    };
    match problem {
        Some(message) => Err(DraftError::Invalid(vec![FieldError::new(
            "instructions",
            message,
        )])),
        None => Ok(()),
    }
}

/// Runs `agent`'s eval suites with its saved instructions and with `instructions`, each in a
/// throwaway copy (see [`run`]); the agent is not changed.
#[tracing::instrument(skip_all, fields(agent = %agent.name))]
pub async fn compare(
    app: &App,
    ws: WorkspaceId,
    agent: &Agent,
    instructions: &str,
) -> Result<Comparison, DraftError> {
    validate_instructions(instructions)?;
    let suites = agent_suites(app, &agent.name)?;
    if suites.is_empty() {
        return Ok(Comparison {
            suites: Vec::new(),
            message: Some(format!(
                "No eval suite runs this agent: add one to the eval directory with `agent: {{from: {}}}` and its cases.",
                agent.name
            )),
            saved: None,
            draft: None,
            cases: Vec::new(),
        });
    }
    let env = run::Environment {
        settings: (*app.settings).clone(),
        embedder: app.knowledge.embedder().clone(),
        agents: Some((app.store.clone(), ws)),
    };
    let options = |label: &str, overrides: Map<String, Value>| run::Options {
        concurrency: app.settings.eval.concurrency.max(1),
        overrides,
        label: Some(label.to_string()),
        progress: run::Progress::Hidden,
        on_progress: None,
    };
    let saved = run::run(&suites, &env, &options("saved", Map::new())).await?;
    let mut changed = Map::new();
    changed.insert("system_prompt".into(), Value::String(instructions.into()));
    // A prompt file would stand in for the instructions under review.
    changed.insert("prompt_file".into(), Value::Null);
    let draft = run::run(&suites, &env, &options("draft", changed)).await?;
    tracing::info!(
        suites = suites.len(),
        saved = ?saved.summary.pass_rate,
        draft = ?draft.summary.pass_rate,
        "instructions compared"
    );
    Ok(side_by_side(&saved, &draft))
}

/// Sets two runs of the same suites side by side, case by case.
fn side_by_side(saved: &RunResults, draft: &RunResults) -> Comparison {
    let mut cases = Vec::new();
    for (s, d) in saved.suites.iter().zip(&draft.suites) {
        for (a, b) in s.cases.iter().zip(&d.cases) {
            cases.push(CaseComparison {
                suite: s.name.clone(),
                id: a.id.clone(),
                description: a.description.clone(),
                said: a.turns.first().map(|t| t.said.clone()).unwrap_or_default(),
                saved: a.into(),
                draft: b.into(),
            });
        }
    }
    Comparison {
        suites: saved.suites.iter().map(|s| s.name.clone()).collect(),
        message: None,
        saved: Some((&saved.summary).into()),
        draft: Some((&draft.summary).into()),
        cases,
    }
}
