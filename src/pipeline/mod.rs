//! The conversation engine: [`Pipeline::handle`], the one function that production webhooks (via
//! the job runner), the sandbox and the eval runner all call. A turn (the customer messages not
//! yet answered) goes through the stages gate → voice → rules → retrieve → prompt → generate →
//! reply, each instrumented and timed; the reply is recorded in the outbox exactly once.

mod citation;
mod follow_up;
mod handoff;
mod language;
pub mod rules;
pub mod sandbox;
pub mod voice;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::OnceCell;

use crate::channels::ReadReceipts;
use crate::config::Settings;
use crate::domain::{
    Agent, AgentConfig, Answerer, Choices, Conversation, ConversationStatus, Direction, Generation,
    LowConfidence, Message, MessageDetails, MessageId, MessageKind, Role, SourceRef,
};
use crate::knowledge::{Found, Knowledge, KnowledgeError, Query, Retrieved};
use crate::llm::{ChatMessage, ChatModel, ChatRequest, ChatRole, LlmError, Source};
use crate::prompts::{Budget, PromptError, PromptInput, Prompts, NO_ANSWER};
use crate::store::{
    Closing, Delivery, NewEscalation, NewOutbound, NewTurn, Store, StoreError, SupportNote,
};
use rules::Trigger;

/// A failure that stops a turn; the job runner retries it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Retrieval failed (embedder or vector index).
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    /// A prompt template is broken or missing.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// A voice note could not be fetched (worth retrying).
    #[error("voice note unavailable: {0}")]
    Media(String),
    /// The conversation does not exist.
    #[error("no conversation {0}")]
    MissingConversation(String),
}

/// Why the bot stayed silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Silence {
    /// Nothing new to answer (already handled).
    NothingNew,
    /// No agent is linked to the channel.
    NoAgent,
    /// The agent is switched off.
    AgentInactive,
    /// A person owns the conversation.
    HumanOwned,
    /// Reactions and similar messages need no reply.
    NoReplyNeeded,
    /// The sender is the agent's own support contact.
    SupportContact,
    /// The message answered the satisfaction survey (stored with the conversation).
    SurveyAnswer,
}

/// What the turn led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A reply was recorded (and queued for sending).
    Replied,
    /// The conversation was handed to a person.
    Escalated,
    /// Nothing was sent.
    Silent,
    /// The bot took the conversation back from a person (the customer asked, or no person
    /// answered in time), or closed it.
    HandedBack,
}

/// A source as shown to people (sandbox, eval reports).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ShownSource {
    /// Number in the prompt.
    pub n: usize,
    /// Document source.
    pub source: String,
    /// Document title.
    pub title: String,
    /// Heading path.
    pub heading: Option<String>,
    /// Passage text.
    pub text: String,
    /// Cosine similarity to the question.
    pub similarity: f32,
    /// Relevance to the question (centred similarity, the confidence scale).
    pub relevance: f32,
    /// Fused retrieval score.
    pub score: f32,
}

/// Everything a turn did, for the sandbox, the eval runner and logs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    /// What happened.
    pub action: Action,
    /// The reply (or the escalation message) sent to the customer.
    pub reply: Option<String>,
    /// The recorded outbound message.
    pub reply_message_id: Option<MessageId>,
    /// Why the bot stayed silent.
    pub silence: Option<Silence>,
    /// Why the conversation was escalated.
    pub escalation: Option<Trigger>,
    /// The note for the support contact, when one was written.
    pub support_note: Option<String>,
    /// The customer's words this turn answered (transcripts included).
    pub question: String,
    /// Sources retrieved.
    pub sources: Vec<ShownSource>,
    /// How the reply was produced (prompt, model, tokens, timings).
    pub generation: Option<Generation>,
    /// The customer messages this turn covered.
    pub handled: Vec<MessageId>,
    /// Options offered with the reply.
    pub choices: Option<Choices>,
}

impl Outcome {
    fn silent(reason: Silence, handled: Vec<MessageId>) -> Self {
        Self {
            action: Action::Silent,
            reply: None,
            reply_message_id: None,
            silence: Some(reason),
            escalation: None,
            support_note: None,
            question: String::new(),
            sources: Vec::new(),
            generation: None,
            handled,
            choices: None,
        }
    }
}

/// Per-request changes to an agent, for trying a prompt before saving it.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Instructions used instead of the agent's.
    pub system_prompt: Option<String>,
    /// Temperature.
    pub temperature: Option<f32>,
    /// Answerer.
    pub answerer: Option<Answerer>,
    /// Model name.
    pub model: Option<String>,
    /// Passages retrieved.
    pub top_k: Option<u32>,
    /// Minimum retrieval similarity.
    pub min_score: Option<f32>,
    /// Confidence threshold.
    pub confidence_threshold: Option<f32>,
    /// The time the turn happens at (business hours), instead of now: what a customer writing
    /// at 3 a.m. is told, tried at noon.
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

impl Overrides {
    /// The agent's configuration with these changes, validated.
    pub fn apply(
        &self,
        config: &AgentConfig,
    ) -> Result<AgentConfig, Vec<crate::domain::FieldError>> {
        let mut c = config.clone();
        if let Some(p) = &self.system_prompt {
            c.system_prompt = p.clone();
            c.prompt_file = None;
        }
        if let Some(t) = self.temperature {
            c.temperature = t;
        }
        if let Some(a) = self.answerer {
            c.answerer = a;
        }
        if let Some(m) = &self.model {
            c.model = Some(m.clone());
        }
        if let Some(k) = self.top_k {
            c.top_k = k;
        }
        if let Some(s) = self.min_score {
            c.min_score = s;
        }
        if let Some(t) = self.confidence_threshold {
            c.confidence_threshold = t;
        }
        let errors = c.validate();
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }

    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.system_prompt.is_none()
            && self.temperature.is_none()
            && self.answerer.is_none()
            && self.model.is_none()
            && self.top_k.is_none()
            && self.min_score.is_none()
            && self.confidence_threshold.is_none()
            && self.now.is_none()
    }
}

type LocalLoader = Box<
    dyn Fn() -> futures::future::BoxFuture<'static, Result<Arc<dyn ChatModel>, LlmError>>
        + Send
        + Sync,
>;

/// The three answerers; the local model is loaded on first use.
pub struct Answerers {
    extractive: Arc<dyn ChatModel>,
    openai: Option<Arc<dyn ChatModel>>,
    local: OnceCell<Arc<dyn ChatModel>>,
    load_local: LocalLoader,
}

impl Answerers {
    /// Answerers from their parts.
    pub fn new(
        extractive: Arc<dyn ChatModel>,
        openai: Option<Arc<dyn ChatModel>>,
        load_local: LocalLoader,
    ) -> Self {
        Self {
            extractive,
            openai,
            local: OnceCell::new(),
            load_local,
        }
    }

    /// The answerer of this kind.
    pub async fn get(&self, kind: Answerer) -> Result<Arc<dyn ChatModel>, LlmError> {
        match kind {
            Answerer::Extractive => Ok(self.extractive.clone()),
            Answerer::Openai => self.openai.clone().ok_or_else(|| {
                LlmError::Permanent("no OpenAI-compatible server is configured (llm.openai)".into())
            }),
            Answerer::Local => self
                .local
                .get_or_try_init(|| (self.load_local)())
                .await
                .cloned(),
        }
    }
}

/// The engine.
pub struct Pipeline {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) knowledge: Arc<Knowledge>,
    pub(crate) prompts: Arc<Prompts>,
    pub(crate) answerers: Arc<Answerers>,
    pub(crate) voice: Option<Arc<voice::Voice>>,
    pub(crate) receipts: Option<Arc<dyn ReadReceipts>>,
    pub(crate) settings: Arc<Settings>,
}

/// The words the customer said in a turn.
fn turn_text(turn: &[Message]) -> String {
    turn.iter()
        .filter_map(|m| m.said())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The newest `n` of `messages` (oldest first, as the store gives them).
fn latest(messages: &[Message], n: usize) -> &[Message] {
    &messages[messages.len().saturating_sub(n)..]
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

impl Pipeline {
    /// Assembles the engine.
    pub fn new(
        store: Arc<dyn Store>,
        knowledge: Arc<Knowledge>,
        prompts: Arc<Prompts>,
        answerers: Arc<Answerers>,
        voice: Option<Arc<voice::Voice>>,
        receipts: Option<Arc<dyn ReadReceipts>>,
        settings: Arc<Settings>,
    ) -> Self {
        Self {
            store,
            knowledge,
            prompts,
            answerers,
            voice,
            receipts,
            settings,
        }
    }

    /// The prompts in use.
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// Handles the conversation's unanswered customer messages (the job runner's entry point).
    pub async fn handle_pending(
        &self,
        conversation: crate::domain::ConversationId,
    ) -> Result<Outcome, PipelineError> {
        let conv = self
            .store
            .conversation(conversation)
            .await?
            .ok_or_else(|| PipelineError::MissingConversation(conversation.to_string()))?;
        let turn = self.store.unhandled_inbound(conversation).await?;
        self.handle(&conv, &turn, &Overrides::default()).await
    }

    /// Handles one turn of a conversation: the customer messages in `turn`, oldest first.
    #[tracing::instrument(skip_all, fields(conversation = %conversation.id, messages = turn.len()))]
    pub async fn handle(
        &self,
        conversation: &Conversation,
        turn: &[Message],
        overrides: &Overrides,
    ) -> Result<Outcome, PipelineError> {
        let started = Instant::now();
        let now = overrides.now.unwrap_or_else(chrono::Utc::now);
        // Answers to the satisfaction survey (a burst may bring two taps) are stored, not
        // answered; what the customer wrote after them is a turn as usual.
        let mut answers = 0;
        for message in turn {
            match crate::inbox::csat::take_answer(self.store.as_ref(), conversation, message)
                .await?
            {
                Some(_) => answers += 1,
                None => break,
            }
        }
        if answers > 0 && answers == turn.len() {
            return self
                .record(
                    conversation,
                    turn,
                    Decision::Silent(Silence::SurveyAnswer),
                    String::new(),
                    Vec::new(),
                )
                .await;
        }
        let turn = &turn[answers..];
        let handled: Vec<MessageId> = turn.iter().map(|m| m.id).collect();
        let agent = match self.gate(conversation, turn).await? {
            Ok(agent) => agent,
            Err(silence) => {
                if silence == Silence::HumanOwned {
                    if let Some(outcome) = self.back_to_bot(conversation, turn).await? {
                        return Ok(outcome);
                    }
                }
                return self
                    .record(
                        conversation,
                        turn,
                        Decision::Silent(silence),
                        String::new(),
                        Vec::new(),
                    )
                    .await;
            }
        };
        // Read receipts and "typing…" only once the bot is going to answer: a conversation a
        // person owns shows the customer nothing from the bot.
        if let (Some(receipts), false) = (&self.receipts, conversation.sandbox) {
            if let Some(last) = turn
                .iter()
                .rev()
                .find_map(|m| m.provider_message_id.as_deref())
            {
                receipts.mark_read(conversation, last).await;
            }
        }
        let config = overrides.apply(&agent.config).map_err(|errors| {
            PipelineError::Prompt(PromptError::Template {
                name: "overrides".into(),
                message: errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            })
        })?;

        // Voice notes become text first (or get the agent's default voice reply).
        let mut turn = turn.to_vec();
        if let Err(why) = voice::transcribe_turn(self, conversation, &config, &mut turn).await? {
            let reply = config.voice.default_reply.clone();
            return self
                .send_plain(conversation, &config, &turn, reply, Some(why), started)
                .await;
        }

        let mut question = turn_text(&turn);
        let lexicon = self.knowledge.lexicon(&agent.collection()).await?;
        // The conversation before this turn, read once for what each stage looks back at:
        // the customer's language, the options of our last message and the chat history.
        let looked_back = (self.settings.pipeline.history_turns * 2)
            .max(language::REMEMBERED_MESSAGES)
            .max(handoff::LAST_FROM_US_WITHIN);
        let earlier = self
            .store
            .history(conversation.id, looked_back as u32, &handled)
            .await?;
        // Nothing the customer wrote tells their language, and the agent says none of its
        // own: the documents' language is the business's.
        let speaks = crate::language::detect(&question)
            .or_else(|| language::remembered(&earlier))
            .or_else(|| {
                config
                    .language
                    .is_none()
                    .then(|| lexicon.language())
                    .flatten()
            });
        let config = language::for_customer(config, &self.prompts, speaks);
        // An answer to "which of these do you mean?" is read with the question it was asked
        // about, whatever words of its own it names.
        let mut answers_which = false;
        match handoff::picked(&turn, &question, &earlier) {
            Some(handoff::Picked::Person(title)) => {
                let trigger = Trigger::HumanRequest(format!("chose \"{title}\""));
                return self
                    .escalate(
                        conversation,
                        now,
                        &config,
                        &turn,
                        trigger,
                        question,
                        Vec::new(),
                        None,
                    )
                    .await;
            }
            Some(handoff::Picked::Ask(title)) => question = title,
            Some(handoff::Picked::Meant(title)) => {
                question = title;
                answers_which = true;
            }
            Some(handoff::Picked::Answering) => answers_which = true,
            None => {}
        }
        if question.is_empty() {
            // Reactions, and messages deleted before they were answered, need no reply.
            if turn
                .iter()
                .all(|m| m.kind == MessageKind::Reaction || m.details.deleted_at.is_some())
            {
                return self
                    .record(
                        conversation,
                        &turn,
                        Decision::Silent(Silence::NoReplyNeeded),
                        question,
                        Vec::new(),
                    )
                    .await;
            }
            let text = language::unsupported(&config, &self.prompts);
            let why = "the message has no text or voice to answer".to_string();
            return self
                .send_plain(conversation, &config, &turn, text, Some(why), started)
                .await;
        }

        if let Some(trigger) = rules::check(&question, &config.escalation) {
            return self
                .escalate(
                    conversation,
                    now,
                    &config,
                    &turn,
                    trigger,
                    question,
                    Vec::new(),
                    None,
                )
                .await;
        }

        let history = self.history(&earlier);
        let previous = match answers_which {
            true => follow_up::asked_before(&history),
            false => follow_up::follow_up_of(&question, &history),
        }
        .map(|p| crate::language::expand_shorthand(&p, speaks));
        let previous = previous.as_deref();
        // Retrieval and the extractive answerer read the question with its chat shorthand
        // written out ("qnto custa pra 2?"); the prompt keeps the customer's words.
        let read = crate::language::expand_shorthand(&question, speaks);
        let (
            Found {
                passages: retrieved,
                centre,
                question: embedded,
            },
            retrieve_ms,
        ) = self.retrieve(&agent, &config, &read, previous).await?;
        let sources = self.sources(&retrieved).await?;
        let shown: Vec<ShownSource> = retrieved
            .iter()
            .zip(&sources)
            .map(|(r, s)| ShownSource {
                n: s.n,
                source: r.source.clone(),
                title: r.title.clone(),
                heading: r.heading.clone(),
                text: r.text.clone(),
                similarity: r.similarity,
                relevance: r.relevance,
                score: r.score,
            })
            .collect();

        // Retrieval finds nothing only in a collection with nothing to find.
        if retrieved.is_empty() && config.escalation.on_low_confidence == LowConfidence::Escalate {
            let trigger = Trigger::LowConfidence("no source found".into());
            return self
                .escalate(
                    conversation,
                    now,
                    &config,
                    &turn,
                    trigger,
                    question,
                    shown,
                    None,
                )
                .await;
        }

        let prompt = self.prompt(&agent, &config, conversation, &sources, &history, &question)?;
        let generate_started = Instant::now();
        let answerer = self.answerers.get(config.answerer).await;
        let completion = match answerer {
            Ok(model) => {
                // One deadline for the turn: the model client's own timeout and retries and
                // ours below would otherwise multiply (4 × 120 s was seen against a busy
                // server) while the customer waits for a person.
                let deadline = Duration::from_secs(self.settings.pipeline.answer_deadline_secs);
                let request = ChatRequest {
                    messages: &prompt.messages,
                    question: &read,
                    previous,
                    sources: &prompt.sources,
                    lexicon: Some(&lexicon),
                    centre: centre.as_ref(),
                    embedded: embedded.as_ref(),
                    model: config.model.as_deref(),
                    temperature: config.temperature,
                    max_tokens: config.max_tokens,
                };
                match tokio::time::timeout(deadline, self.generate(model.as_ref(), &request)).await
                {
                    Ok(done) => done,
                    Err(_) => Err(LlmError::Transient(format!(
                        "no answer within the turn's {} s",
                        deadline.as_secs()
                    ))),
                }
            }
            Err(e) => Err(e),
        };
        let generate_ms = ms(generate_started);
        let mut generation = Generation {
            answerer: config.answerer,
            model: None,
            sources: prompt
                .sources
                .iter()
                .zip(&retrieved)
                .map(|(s, r)| SourceRef {
                    n: s.n,
                    chunk_id: r.chunk_id,
                    source: r.source.clone(),
                    heading: r.heading.clone(),
                    similarity: r.similarity,
                    score: r.score,
                })
                .collect(),
            cited: Vec::new(),
            prompt: Some(prompt.as_text()),
            confidence: None,
            tokens_in: prompt.tokens as u32,
            tokens_out: 0,
            retrieve_ms,
            generate_ms,
            total_ms: 0.0,
            note: None,
            options: Vec::new(),
        };
        let completion = match completion {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "answerer failed");
                let trigger = Trigger::AnswererFailed(e.to_string());
                return self
                    .escalate(
                        conversation,
                        now,
                        &config,
                        &turn,
                        trigger,
                        question,
                        shown,
                        Some(generation),
                    )
                    .await;
            }
        };
        generation.model = Some(completion.model.clone());
        // The model's own count when it gives one; our cl100k estimate otherwise.
        if completion.tokens_in > 0 {
            generation.tokens_in = completion.tokens_in;
        }
        generation.tokens_out = completion.tokens_out;
        generation.confidence = completion.confidence;
        generation.cited = completion.cited.clone();
        generation.options = completion.options.clone();

        let text = completion.text.trim();
        let text = if config.cite_sources {
            text
        } else {
            citation::without_citation(text)
        };
        let declined = text.is_empty()
            || text.trim_matches(|c: char| !c.is_alphanumeric() && c != '_') == NO_ANSWER;
        let unsure = completion
            .confidence
            .is_some_and(|c| c < config.confidence_threshold);
        if declined || unsure {
            let detail = match completion.confidence {
                Some(c) => format!("confidence {c:.2} below {:.2}", config.confidence_threshold),
                None => "the model found no answer in the sources".into(),
            };
            match config.escalation.on_low_confidence {
                LowConfidence::Escalate => {
                    let trigger = Trigger::LowConfidence(detail);
                    return self
                        .escalate(
                            conversation,
                            now,
                            &config,
                            &turn,
                            trigger,
                            question,
                            shown,
                            Some(generation),
                        )
                        .await;
                }
                LowConfidence::Answer if declined => {
                    let fallback = language::unsupported(&config, &self.prompts);
                    generation.total_ms = ms(started);
                    return self
                        .reply(
                            conversation,
                            &config,
                            &turn,
                            fallback,
                            Some(generation),
                            question,
                            shown,
                        )
                        .await;
                }
                LowConfidence::Answer => {}
            }
        }
        // Asked one thing's price without saying which of several, the customer is asked which,
        // in their language. A quote from documents in another language than the customer's
        // says so first, in the customer's language (the other answerers are told to reply in
        // it).
        let which = (!completion.options.is_empty())
            .then(|| language::which_one(&config, &self.prompts, speaks));
        let note = (config.answerer == Answerer::Extractive && which.is_none())
            .then(|| {
                let quoted = prompt
                    .sources
                    .iter()
                    .find(|s| completion.cited.contains(&s.n))?;
                language::other_language_note(&config, &self.prompts, speaks, &quoted.text)
            })
            .flatten();
        let text = match which.or(note) {
            Some(note) => format!("{note}\n\n{text}"),
            None => text.to_string(),
        };
        generation.total_ms = ms(started);
        self.reply(
            conversation,
            &config,
            &turn,
            text,
            Some(generation),
            question,
            shown,
        )
        .await
    }

    /// Stage 1: may the bot answer at all?
    #[tracing::instrument(skip_all)]
    async fn gate(
        &self,
        conversation: &Conversation,
        turn: &[Message],
    ) -> Result<Result<Agent, Silence>, PipelineError> {
        if turn.is_empty()
            || turn
                .iter()
                .all(|m| m.direction != Direction::Inbound || m.role != Role::Customer)
        {
            return Ok(Err(Silence::NothingNew));
        }
        let Some(agent_id) = conversation.agent_id else {
            return Ok(Err(Silence::NoAgent));
        };
        let Some(agent) = self.store.agent(agent_id).await? else {
            return Ok(Err(Silence::NoAgent));
        };
        if !agent.active {
            return Ok(Err(Silence::AgentInactive));
        }
        if conversation.status == ConversationStatus::Escalated {
            return Ok(Err(Silence::HumanOwned));
        }
        let on_call = agent
            .config
            .hours
            .as_ref()
            .and_then(|h| h.on_call_contact.as_deref());
        if [agent.config.escalation.support_contact.as_deref(), on_call]
            .into_iter()
            .flatten()
            .any(|c| c.trim_start_matches('+') == conversation.contact.wa_id)
        {
            return Ok(Err(Silence::SupportContact));
        }
        Ok(Ok(agent))
    }

    /// The chat history the prompt holds: the newest of `earlier` (the conversation's
    /// messages before this turn, oldest first), as many as the settings' turns allow, less
    /// those no chat role fits (system notes).
    fn history(&self, earlier: &[Message]) -> Vec<ChatMessage> {
        latest(earlier, self.settings.pipeline.history_turns * 2)
            .iter()
            .filter_map(|m| {
                let text = m.said()?;
                let role = match (m.direction, m.role) {
                    (Direction::Inbound, _) => ChatRole::User,
                    (Direction::Outbound, Role::Bot | Role::Agent) => ChatRole::Assistant,
                    (Direction::Outbound, _) => return None,
                };
                Some(ChatMessage::new(role, text))
            })
            .collect()
    }

    /// Stage 4: hybrid retrieval over the agent's knowledge. A follow-up ("and on Sunday?")
    /// is searched together with the previous question.
    #[tracing::instrument(skip_all, fields(agent = %agent.name))]
    async fn retrieve(
        &self,
        agent: &Agent,
        config: &AgentConfig,
        question: &str,
        previous: Option<&str>,
    ) -> Result<(Found, f64), PipelineError> {
        let started = Instant::now();
        let query = match previous {
            Some(previous) => format!("{previous} {question}"),
            None => question.to_string(),
        };
        // The agent's workspace qualifies the name, whatever an override says: a sandbox
        // override can choose another of its workspace's collections, never another workspace's.
        let collection = crate::domain::collection_key(
            agent.workspace_id,
            config.collection.as_deref().unwrap_or(&agent.name),
        );
        let found = self
            .knowledge
            .retrieve_centred(&Query {
                collection: &collection,
                text: &query,
                top_k: config.top_k as usize,
                min_score: config.min_score,
            })
            .await?;
        Ok((found, ms(started)))
    }

    /// Numbered sources with their neighbours in the same section as reading context (a
    /// neighbour under another heading is another subject, and the rows of a table, headed by
    /// the document's title alone, are items of their own).
    async fn sources(&self, retrieved: &[Retrieved]) -> Result<Vec<Source>, PipelineError> {
        let around: Vec<_> = retrieved
            .iter()
            .map(|r| (r.document_id, r.position))
            .collect();
        let near = self.store.passages_near(&around, 1).await?;
        // Each document's opening once, however many of its passages were retrieved.
        let mut openings: Vec<_> = around
            .iter()
            .filter(|(_, position)| *position != 0)
            .map(|(document, _)| (*document, 0))
            .collect();
        openings.sort_unstable();
        openings.dedup();
        let openings = self.store.passages_near(&openings, 0).await?;
        Ok(retrieved
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let context: Vec<&str> = near
                    .iter()
                    .filter(|p| {
                        p.document_id == r.document_id
                            && (p.position - r.position).abs() <= 1
                            && p.heading == r.heading
                            && r.heading.as_deref() != Some(r.title.as_str())
                    })
                    .map(|p| p.text.as_str())
                    .collect();
                Source {
                    n: i + 1,
                    source: r.source.clone(),
                    title: r.title.clone(),
                    heading: r.heading.clone(),
                    text: r.text.clone(),
                    similarity: r.similarity,
                    relevance: r.relevance,
                    dense_rank: r.dense_rank,
                    keyword_rank: r.keyword_rank,
                    context: if context.is_empty() {
                        r.text.clone()
                    } else {
                        context.join("\n")
                    },
                    lead: openings
                        .iter()
                        .find(|p| {
                            p.document_id == r.document_id && p.position == 0 && r.position != 0
                        })
                        .map(|p| p.text.clone()),
                }
            })
            .collect())
    }

    /// Stage 5: the prompt, within the token budget.
    #[tracing::instrument(skip_all)]
    fn prompt(
        &self,
        agent: &Agent,
        config: &AgentConfig,
        conversation: &Conversation,
        sources: &[Source],
        history: &[ChatMessage],
        question: &str,
    ) -> Result<crate::prompts::RenderedPrompt, PipelineError> {
        let instructions = match &config.prompt_file {
            Some(file) => self.prompts.file(file)?.to_string(),
            None => config.system_prompt.clone(),
        };
        let mut total = self.settings.pipeline.prompt_tokens;
        if config.answerer == Answerer::Local {
            total = total.min(
                self.settings
                    .llm
                    .local
                    .context_tokens
                    .saturating_sub(config.max_tokens as usize),
            );
        }
        Ok(self.prompts.build(
            &PromptInput {
                business_name: &config.business_name,
                agent_name: &agent.name,
                instructions: &instructions,
                language: config.language.as_deref(),
                cite_sources: config.cite_sources,
                customer_name: conversation.contact.name.as_deref(),
                sources,
                history,
                question,
            },
            Budget {
                total,
                history: self.settings.pipeline.history_tokens,
            },
        )?)
    }

    /// Stage 6: the answerer, retried on transient failures; a prompt over the model's
    /// context is retried once without history and sources beyond the best one.
    #[tracing::instrument(skip_all, fields(answerer = model.name()))]
    async fn generate(
        &self,
        model: &dyn ChatModel,
        request: &ChatRequest<'_>,
    ) -> Result<crate::llm::Completion, LlmError> {
        let attempts = 2;
        let mut delay = Duration::from_millis(300);
        let mut last = None;
        for attempt in 0..attempts {
            match model.complete(request).await {
                Ok(c) => return Ok(c),
                Err(LlmError::Transient(e)) if attempt + 1 < attempts => {
                    tracing::warn!(error = %e, "answerer busy, retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    last = Some(LlmError::Transient(e));
                }
                Err(LlmError::ContextLengthExceeded(e)) => {
                    tracing::warn!(error = %e, "prompt over the model's context, retrying with less");
                    let messages = [
                        request.messages[0].clone(),
                        request.messages[request.messages.len() - 1].clone(),
                    ];
                    let sources = &request.sources[..request.sources.len().min(1)];
                    let smaller = ChatRequest {
                        messages: &messages,
                        sources,
                        ..request.clone()
                    };
                    return model.complete(&smaller).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| LlmError::Transient("no attempt made".into())))
    }

    fn delivery(&self) -> Delivery {
        Delivery::Outbox(self.settings.workers.limits())
    }

    /// Stage 7, a reply (with the agent's options, if it offers any): recorded in the outbox
    /// exactly once per turn.
    #[allow(clippy::too_many_arguments)]
    async fn reply(
        &self,
        conversation: &Conversation,
        config: &AgentConfig,
        turn: &[Message],
        text: String,
        generation: Option<Generation>,
        question: String,
        sources: Vec<ShownSource>,
    ) -> Result<Outcome, PipelineError> {
        self.record(
            conversation,
            turn,
            Decision::Reply {
                text,
                generation,
                choices: config.interactive.choices(),
            },
            question,
            sources,
        )
        .await
    }

    /// A fixed reply with no retrieval (default voice reply, unsupported message).
    async fn send_plain(
        &self,
        conversation: &Conversation,
        config: &AgentConfig,
        turn: &[Message],
        text: String,
        note: Option<String>,
        started: Instant,
    ) -> Result<Outcome, PipelineError> {
        let generation = Generation {
            note,
            total_ms: ms(started),
            ..Default::default()
        };
        let question = turn_text(turn);
        self.reply(
            conversation,
            config,
            turn,
            text,
            Some(generation),
            question,
            Vec::new(),
        )
        .await
    }

    /// Hands the conversation to a person: status, record, message to the customer, and a note
    /// to the agent's support contact, all in one transaction.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(skip_all, fields(reason = trigger.reason().as_str()))]
    async fn escalate(
        &self,
        conversation: &Conversation,
        now: chrono::DateTime<chrono::Utc>,
        config: &AgentConfig,
        turn: &[Message],
        trigger: Trigger,
        question: String,
        sources: Vec<ShownSource>,
        generation: Option<Generation>,
    ) -> Result<Outcome, PipelineError> {
        let handover = handoff::handover(config, now);
        let note = self.note(conversation, config, &handover, &trigger, &question)?;
        self.record(
            conversation,
            turn,
            Decision::Escalate {
                trigger,
                customer_message: Some(handover.customer_message),
                support_note: note,
                generation,
            },
            question,
            sources,
        )
        .await
    }

    /// The note about an escalation for whom `handover` names, if anyone.
    fn note(
        &self,
        conversation: &Conversation,
        config: &AgentConfig,
        handover: &handoff::Handover,
        trigger: &Trigger,
        question: &str,
    ) -> Result<Option<Note>, PipelineError> {
        let Some(to) = handover.note_to.clone() else {
            return Ok(None);
        };
        let customer = conversation.contact.name.as_deref().unwrap_or("a customer");
        let link = crate::inbox::conversation_link(&self.settings.server.public_url, conversation);
        let custom = config.escalation.support_note.trim();
        let note = if custom.is_empty() {
            self.prompts.support_note(
                customer,
                &conversation.contact.wa_id,
                &trigger.describe(),
                Some(question),
                Some(&link),
            )?
        } else {
            custom
                .replace("{customer}", customer)
                .replace("{reason}", &trigger.describe())
                .replace("{summary}", question)
                .replace("{link}", &link)
        };
        Ok(Some(Note {
            to,
            text: note,
            at: handover.note_at,
        }))
    }

    /// Records what the turn decided, in one transaction: the escalation it opens, the
    /// customer's reply (split into WhatsApp-sized parts), the support note, and the customer
    /// messages it covered. Every message has an idempotency key derived from the turn, so a
    /// retried turn records nothing twice.
    async fn record(
        &self,
        conversation: &Conversation,
        turn: &[Message],
        decision: Decision,
        question: String,
        sources: Vec<ShownSource>,
    ) -> Result<Outcome, PipelineError> {
        let key = turn.last().map(|m| m.id.to_string()).unwrap_or_default();
        self.record_keyed(conversation, turn, decision, question, sources, &key)
            .await
    }

    /// [`Pipeline::record`] with the turn's key given (a turn with no customer message).
    async fn record_keyed(
        &self,
        conversation: &Conversation,
        turn: &[Message],
        decision: Decision,
        question: String,
        sources: Vec<ShownSource>,
        key: &str,
    ) -> Result<Outcome, PipelineError> {
        let handled: Vec<MessageId> = turn.iter().map(|m| m.id).collect();
        let bot = |text: &str, generation: &Option<Generation>, key: String| NewOutbound {
            conversation_id: conversation.id,
            role: Role::Bot,
            kind: MessageKind::Text,
            text: Some(text.to_string()),
            details: MessageDetails::default(),
            generation: generation.clone(),
            sent_by: None,
            idempotency_key: Some(key),
            handled: Vec::new(),
            delivery: self.delivery(),
        };
        let parts = |text: &str, generation: &Option<Generation>, prefix: &str, max: usize| {
            crate::channels::delivery::split_text(text, max)
                .iter()
                .enumerate()
                .map(|(i, part)| {
                    let key = match i {
                        0 => format!("{prefix}:{key}"),
                        n => format!("{prefix}:{key}#{}", n + 1),
                    };
                    bot(part, generation, key)
                })
                .collect::<Vec<_>>()
        };
        let mut new = NewTurn {
            conversation_id: conversation.id,
            handled: handled.clone(),
            escalation: None,
            replies: Vec::new(),
            support_note: None,
            close: None,
        };
        let mut outcome = Outcome::silent(Silence::NothingNew, handled.clone());
        outcome.question = question;
        outcome.sources = sources;
        match decision {
            Decision::Silent(silence) => {
                outcome.silence = Some(silence);
                self.store.record_turn(new).await?;
                return Ok(outcome);
            }
            Decision::Reply {
                text,
                generation,
                choices,
            } => {
                // Options go with the last part, which must fit an interactive message's body.
                let max = match choices {
                    Some(_) => crate::channels::MAX_INTERACTIVE_CHARS,
                    None => crate::channels::MAX_TEXT_CHARS,
                };
                new.replies = parts(&text, &generation, "reply", max);
                if let Some(last) = new.replies.last_mut() {
                    last.details.choices = choices.clone();
                }
                outcome.choices = choices;
                outcome.action = Action::Replied;
                outcome.generation = generation;
            }
            Decision::TakeBack { closing, message } => {
                new.close = Some(closing);
                new.replies = parts(&message, &None, "handback", crate::channels::MAX_TEXT_CHARS);
                outcome.action = Action::HandedBack;
            }
            Decision::Escalate {
                trigger,
                customer_message,
                support_note,
                generation,
            } => {
                new.escalation = Some(NewEscalation {
                    reason: trigger.reason(),
                    detail: Some(trigger.detail().to_string()),
                    message_id: handled.last().copied(),
                });
                if let Some(text) = customer_message.filter(|t| !t.trim().is_empty()) {
                    new.replies = parts(
                        &text,
                        &generation,
                        "escalation",
                        crate::channels::MAX_TEXT_CHARS,
                    );
                }
                if let Some(Note {
                    to: wa_id,
                    text: note,
                    at,
                }) = support_note
                {
                    outcome.support_note = Some(note.clone());
                    // The sandbox shows the note; it reaches no real support contact.
                    let channel = match conversation.sandbox {
                        true => None,
                        false => self.store.channel(conversation.channel_id).await?,
                    };
                    if let Some(channel) = channel {
                        new.support_note = Some(SupportNote {
                            channel,
                            wa_id,
                            message: NewOutbound {
                                role: Role::System,
                                generation: None,
                                delivery: match at {
                                    Some(at) => Delivery::At(self.settings.workers.limits(), at),
                                    None => self.delivery(),
                                },
                                ..bot(&note, &None, format!("notify:{key}"))
                            },
                        });
                    }
                }
                outcome.action = Action::Escalated;
                outcome.escalation = Some(trigger);
                outcome.generation = generation;
            }
        }
        outcome.silence = None;
        let closing = new.close.is_some();
        let recorded = self.store.record_turn(new).await?;
        if closing && recorded.closed.is_none() {
            // Someone else ended the escalation first: nothing was sent.
            outcome.action = Action::Silent;
            outcome.silence = Some(Silence::NothingNew);
            return Ok(outcome);
        }
        if let Some(first) = recorded.replies.first() {
            if !first.1 {
                tracing::info!(message = %first.0.id, "reply already recorded for this turn");
            }
            outcome.reply_message_id = Some(first.0.id);
            outcome.generation = first.0.generation.clone().or(outcome.generation);
        }
        let texts: Vec<&str> = recorded
            .replies
            .iter()
            .filter_map(|(m, _)| m.text.as_deref())
            .collect();
        if !texts.is_empty() {
            outcome.reply = Some(texts.join("\n\n"));
        }
        match &outcome.escalation {
            Some(trigger) => {
                let opened = recorded.escalation.as_ref().is_some_and(|(_, now)| *now);
                if !opened {
                    outcome.support_note = None;
                } else {
                    tracing::info!(reason = trigger.reason().as_str(), "conversation escalated");
                    metrics::counter!("palaver_escalations_total", "reason" => trigger.reason().as_str())
                        .increment(1);
                }
            }
            None => metrics::counter!("palaver_replies_total", "outcome" => "replied").increment(1),
        }
        Ok(outcome)
    }

    /// The conversation's messages could not be answered in time (the job runner gave up): a
    /// person takes over, and the customer is told so.
    pub async fn give_up(
        &self,
        conversation: crate::domain::ConversationId,
        why: &str,
    ) -> Result<(), PipelineError> {
        let Some(conv) = self.store.conversation(conversation).await? else {
            return Ok(());
        };
        let turn = self.store.unhandled_inbound(conversation).await?;
        if turn.is_empty() {
            return Ok(());
        }
        let trigger = Trigger::TurnFailed(why.to_string());
        let question = turn_text(&turn);
        let agent = match conv.agent_id {
            Some(id) => self.store.agent(id).await?,
            None => None,
        };
        let decision = match &agent {
            Some(agent) => {
                // The same handover as any escalation, out of hours included.
                let handover = handoff::handover(&agent.config, chrono::Utc::now());
                Decision::Escalate {
                    support_note: self.note(
                        &conv,
                        &agent.config,
                        &handover,
                        &trigger,
                        &question,
                    )?,
                    customer_message: Some(handover.customer_message),
                    trigger,
                    generation: None,
                }
            }
            None => Decision::Escalate {
                trigger,
                customer_message: None,
                support_note: None,
                generation: None,
            },
        };
        self.record(&conv, &turn, decision, question, Vec::new())
            .await?;
        tracing::warn!(conversation = %conversation, error = %why, "turn given up; conversation handed to a person");
        Ok(())
    }
}

/// What a turn decided, before anything is written.
#[derive(Debug, Clone)]
enum Decision {
    /// Nothing is sent.
    Silent(Silence),
    /// The bot answers.
    Reply {
        /// The answer.
        text: String,
        /// How it was produced.
        generation: Option<Generation>,
        /// Options offered with it.
        choices: Option<Choices>,
    },
    /// The bot takes the conversation back from a person (or closes it).
    TakeBack {
        /// How the escalation closes.
        closing: Closing,
        /// What the customer is told.
        message: String,
    },
    /// A person takes over.
    Escalate {
        /// Why.
        trigger: Trigger,
        /// What the customer is told.
        customer_message: Option<String>,
        /// The note to the support side.
        support_note: Option<Note>,
        /// How the declined answer was produced, if one was attempted.
        generation: Option<Generation>,
    },
}

/// A note about an escalation for the support side.
#[derive(Debug, Clone)]
struct Note {
    /// WhatsApp number.
    to: String,
    /// The note.
    text: String,
    /// Held until then (opening time), if set.
    at: Option<chrono::DateTime<chrono::Utc>>,
}
