//! Plain domain types shared by every module: agents, channels, contacts, conversations,
//! messages, knowledge documents and chunks, jobs, escalations. No I/O here.

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies an agent.
    AgentId
);
id_type!(
    /// Identifies a channel (one number or instance).
    ChannelId
);
id_type!(
    /// Identifies a contact (a customer on one channel).
    ContactId
);
id_type!(
    /// Identifies a conversation.
    ConversationId
);
id_type!(
    /// Identifies a stored message.
    MessageId
);
id_type!(
    /// Identifies a knowledge document.
    DocumentId
);
id_type!(
    /// Identifies a knowledge chunk; also its point id in the vector index.
    ChunkId
);
id_type!(
    /// Identifies a job in the durable queue.
    JobId
);
id_type!(
    /// Identifies an escalation.
    EscalationId
);
id_type!(
    /// Identifies an API key.
    ApiKeyId
);
id_type!(
    /// Identifies an eval run.
    EvalRunId
);
id_type!(
    /// Identifies a workspace: one business, with its own agents, channels, knowledge,
    /// conversations, keys and people.
    WorkspaceId
);

id_type!(
    /// Identifies a person who signs in.
    UserId
);
id_type!(
    /// Identifies an outgoing webhook subscription.
    HookId
);
id_type!(
    /// Identifies one delivery of an event to an outgoing webhook.
    HookDeliveryId
);
id_type!(
    /// Identifies a conversation label of a workspace.
    LabelId
);
id_type!(
    /// Identifies a canned response of a workspace.
    CannedResponseId
);
id_type!(
    /// Identifies a satisfaction survey sent after a conversation was resolved.
    SurveyId
);
id_type!(
    /// Identifies a private note on a conversation.
    NoteId
);
id_type!(
    /// Identifies a team of a workspace.
    TeamId
);
id_type!(
    /// Identifies a proposed FAQ entry.
    FaqProposalId
);

impl WorkspaceId {
    /// The workspace every installation starts with. Data made before workspaces existed
    /// belongs to it, and its knowledge collections keep their unqualified names.
    pub const DEFAULT: WorkspaceId = WorkspaceId(Uuid::from_u128(1));
}

/// The name of `collection` of workspace `ws` in the store and the vector index: names are
/// chosen per workspace, so every workspace but the default one qualifies them with its id
/// (`<32 hex>.<name>`; a `.` never occurs in a name, so no two workspaces' keys can meet).
pub fn collection_key(ws: WorkspaceId, collection: &str) -> String {
    if ws == WorkspaceId::DEFAULT {
        collection.to_string()
    } else {
        format!("{}.{collection}", ws.0.simple())
    }
}

/// The name a workspace gave a collection, from its [`collection_key`].
pub fn collection_name(key: &str) -> &str {
    key.split_once('.').map_or(key, |(_, name)| name)
}

/// The workspace a [`collection_key`] belongs to.
pub fn collection_workspace(key: &str) -> WorkspaceId {
    key.split_once('.')
        .filter(|(prefix, _)| prefix.len() == 32)
        .and_then(|(prefix, _)| uuid::Uuid::try_parse(prefix).ok())
        .map_or(WorkspaceId::DEFAULT, WorkspaceId)
}

/// Milliseconds since the Unix epoch, the storage form of every timestamp.
pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The inverse of [`to_millis`]; out-of-range values clamp to the epoch.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Which answerer writes an agent's replies.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Answerer {
    /// Picks the best sentences of the retrieved passages; no language model.
    #[default]
    Extractive,
    /// A GGUF model run in-process.
    Local,
    /// An OpenAI-compatible server.
    Openai,
}

impl Answerer {
    /// The lowercase name used in settings and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Answerer::Extractive => "extractive",
            Answerer::Local => "local",
            Answerer::Openai => "openai",
        }
    }
}

/// What to do when no source is good enough to answer from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LowConfidence {
    /// Tell the customer a colleague will follow up and escalate.
    #[default]
    Escalate,
    /// Answer anyway.
    Answer,
}

/// A template message registered with WhatsApp, used outside the 24-hour window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    /// Template name as approved by Meta.
    pub name: String,
    /// Language code, e.g. `en_US`.
    pub language: String,
    /// Values by placeholder (`body.1`, `body.customer_name`, `header.image`, `button.0`). In an
    /// agent's re-engagement template a value may say `{customer_name}` or `{customer_number}`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub parameters: std::collections::BTreeMap<String, String>,
}

impl TemplateRef {
    /// The parameters with `{customer_name}` and `{customer_number}` filled in for `contact`
    /// (a customer without a profile name is called by their number).
    pub fn parameters_for(&self, contact: &Contact) -> std::collections::BTreeMap<String, String> {
        let name = contact
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(&contact.wa_id);
        self.parameters
            .iter()
            .map(|(k, v)| {
                let v = v
                    .replace("{customer_name}", name)
                    .replace("{customer_number}", &contact.wa_id);
                (k.clone(), v)
            })
            .collect()
    }
}

/// Voice-note handling for one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct VoiceSettings {
    /// Transcribe voice notes and answer them like text.
    pub transcribe: bool,
    /// Sent when transcription is off or fails.
    pub default_reply: String,
    /// Spoken language (ISO 639-1), or `None` to detect it.
    pub language: Option<String>,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        Self {
            transcribe: true,
            default_reply:
                "Sorry, I can't listen to audio messages yet. Could you write your question to me?"
                    .into(),
            language: None,
        }
    }
}

/// Escalation rules and messages for one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationSettings {
    /// Words or phrases that hand the conversation to a human (case- and accent-insensitive,
    /// whole words).
    pub keywords: Vec<String>,
    /// Escalate when the customer asks for a person in their own words.
    pub detect_human_request: bool,
    /// What to do when no source reaches the thresholds.
    pub on_low_confidence: LowConfidence,
    /// WhatsApp number (digits, with country code) told about each escalation.
    pub support_contact: Option<String>,
    /// Sent to the customer when the conversation is escalated.
    pub customer_message: String,
    /// Sent to the support contact; may use `{customer}`, `{reason}`, `{summary}`, `{link}`.
    pub support_note: String,
    /// Template sent instead of a reply outside the 24-hour window; none means escalate.
    pub reengagement_template: Option<TemplateRef>,
    /// Minutes an escalation may go without a person writing before it ends (`on_idle`);
    /// none: it waits for a person however long.
    pub idle_minutes: Option<u32>,
    /// How an idle escalation ends.
    pub on_idle: IdleAction,
    /// Sent to the customer when the bot takes the conversation back (idle, or asked to).
    pub handback_message: String,
    /// Sent to the customer when an idle escalation is closed.
    pub closed_message: String,
    /// Words or phrases with which a customer waiting for a person asks for the bot again.
    pub back_to_bot: Vec<String>,
}

/// How an escalation no person answered ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdleAction {
    /// The bot answers again.
    #[default]
    HandBack,
    /// The conversation is resolved.
    Close,
}

impl Default for EscalationSettings {
    fn default() -> Self {
        Self {
            keywords: vec![
                "human".into(),
                "agent".into(),
                "humano".into(),
                "atendente".into(),
                "Mensch".into(),
            ],
            detect_human_request: true,
            on_low_confidence: LowConfidence::Escalate,
            support_contact: None,
            customer_message:
                "I'll pass this to a colleague, who will get back to you here shortly.".into(),
            support_note: String::new(),
            reengagement_template: None,
            idle_minutes: None,
            on_idle: IdleAction::HandBack,
            handback_message: "No colleague is free right now, so I am back to help: ask me anything. Write \"talk to a person\" to reach the team again.".into(),
            closed_message: "We are closing this conversation for now. Write to us again whenever you need.".into(),
            back_to_bot: vec![
                "bot".into(),
                "back to the bot".into(),
                "voltar ao bot".into(),
                "volver al bot".into(),
            ],
        }
    }
}

/// Everything configurable about an agent, stored as one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Name of the business, used in prompts.
    pub business_name: String,
    /// The agent's instructions, inline.
    pub system_prompt: String,
    /// A prompt file under `prompts/` used instead of `system_prompt` when set.
    pub prompt_file: Option<String>,
    /// Knowledge collection searched for this agent; defaults to the agent's name.
    pub collection: Option<String>,
    /// Which answerer writes replies.
    pub answerer: Answerer,
    /// Model name for the `openai` and `local` answerers; `None` uses the server default.
    pub model: Option<String>,
    /// Sampling temperature, 0 to 2.
    pub temperature: f32,
    /// Longest reply, in tokens.
    pub max_tokens: u32,
    /// Passages retrieved per question, 1 to 50.
    pub top_k: u32,
    /// Passages scoring below this (cosine) are not used, but for the most similar one, 0 to 1.
    pub min_score: f32,
    /// Replies whose confidence (the best passage's relevance: its similarity to the question
    /// with both centred, see `knowledge::relevance`) is below this are not sent as answers,
    /// 0 to 1.
    pub confidence_threshold: f32,
    /// Reply in this language (a hint to the model), e.g. `es`.
    pub language: Option<String>,
    /// End each reply with where it came from ("(Source: FAQ)"). Off, customers get the answer
    /// alone; the inbox and the sandbox show the sources beside it either way.
    pub cite_sources: bool,
    /// Voice notes.
    pub voice: VoiceSettings,
    /// Escalation rules.
    pub escalation: EscalationSettings,
    /// When people answer escalations; none: any time.
    pub hours: Option<crate::hours::BusinessHours>,
    /// Quick replies offered with the bot's answers.
    pub interactive: InteractiveSettings,
    /// The satisfaction survey sent after a person resolves a conversation.
    pub csat: CsatSettings,
    /// The bot's own messages in other languages, by ISO 639-1 code, over the shipped ones
    /// (`prompts/messages.yaml`); used when a customer writes in that language.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub messages: std::collections::BTreeMap<String, MessageSet>,
}

/// The bot's own messages in one language; each one left out falls back to the shipped text
/// for that language, then to the agent's own message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageSet {
    /// Handing the conversation to a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
    /// Handing over out of hours; `{opens}` is the next opening time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_hours: Option<String>,
    /// The bot answering again after an escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handback: Option<String>,
    /// An idle escalation closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
    /// A voice note that cannot be transcribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_unavailable: Option<String>,
    /// A message with nothing to answer (a sticker, a location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// Said before a reply quoted from documents written in another language than the
    /// customer's (the extractive answerer quotes; it cannot translate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_language: Option<String>,
    /// Said before the names of the things the documents price differently, when the customer
    /// asked the price of one without saying which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub which_one: Option<String>,
}

impl MessageSet {
    /// The messages by key, as written in settings.
    pub fn entries(&self) -> [(&'static str, Option<&str>); 8] {
        [
            ("escalation", self.escalation.as_deref()),
            ("after_hours", self.after_hours.as_deref()),
            ("handback", self.handback.as_deref()),
            ("closed", self.closed.as_deref()),
            ("voice_unavailable", self.voice_unavailable.as_deref()),
            ("unsupported", self.unsupported.as_deref()),
            ("other_language", self.other_language.as_deref()),
            ("which_one", self.which_one.as_deref()),
        ]
    }

    /// Message `key` (one of [`MessageSet::entries`]' keys), when set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries().into_iter().find(|(k, _)| *k == key)?.1
    }
}

/// Quick replies under the bot's answers: buttons (up to three) or a list (up to ten), and on
/// providers without either, numbered options the customer answers with a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InteractiveSettings {
    /// Offer them at all.
    pub enabled: bool,
    /// Title of the option that hands the conversation to a person; none: no such option.
    pub talk_to_person: Option<String>,
    /// Questions offered as options; a tap asks it.
    pub suggestions: Vec<String>,
    /// Label of the button that opens the list, when there are more than three options.
    pub list_button: String,
}

impl Default for InteractiveSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            talk_to_person: Some("Talk to a person".into()),
            suggestions: Vec::new(),
            list_button: "Options".into(),
        }
    }
}

/// The id of the option that hands a conversation to a person.
pub const TALK_TO_PERSON: &str = "palaver:person";

impl InteractiveSettings {
    /// The options to offer, suggestions first; `None` when switched off or empty.
    pub fn choices(&self) -> Option<Choices> {
        if !self.enabled {
            return None;
        }
        let mut options: Vec<Choice> = self
            .suggestions
            .iter()
            .enumerate()
            .map(|(i, title)| Choice {
                id: format!("palaver:ask:{}", i + 1),
                title: title.clone(),
            })
            .collect();
        if let Some(title) = &self.talk_to_person {
            options.push(Choice {
                id: TALK_TO_PERSON.into(),
                title: title.clone(),
            });
        }
        if options.is_empty() {
            return None;
        }
        let button = (options.len() > 3).then(|| self.list_button.clone());
        Some(Choices { button, options })
    }

    fn validate(&self, errors: &mut Vec<FieldError>) {
        // WhatsApp's limits: reply buttons 20 characters, list rows 24, ten rows, button 20.
        let total = self.suggestions.len() + usize::from(self.talk_to_person.is_some());
        if total > 10 {
            errors.push(FieldError::new(
                "interactive.suggestions",
                "at most ten options in all (WhatsApp lists hold ten rows)",
            ));
        }
        let longest = if total > 3 { 24 } else { 20 };
        let titles = self
            .suggestions
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("interactive.suggestions[{i}]"), t))
            .chain(
                self.talk_to_person
                    .iter()
                    .map(|t| ("interactive.talk_to_person".to_string(), t)),
            );
        for (field, title) in titles {
            let n = title.trim().chars().count();
            if n == 0 || n > longest {
                errors.push(FieldError::new(
                    field,
                    format!("must be 1-{longest} characters (WhatsApp's limit for an option)"),
                ));
            }
        }
        let n = self.list_button.trim().chars().count();
        if n == 0 || n > 20 {
            errors.push(FieldError::new(
                "interactive.list_button",
                "must be 1-20 characters",
            ));
        }
    }
}

/// A short satisfaction survey (CSAT) sent to the customer when a person resolves their
/// conversation: a question and the scores 1 to 5, as a WhatsApp list (numbered options where
/// a provider has no lists). The answer is stored with the conversation and counted in the
/// reports; it is not a question for the bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CsatSettings {
    /// Send it at all (off unless asked for).
    pub enabled: bool,
    /// What the customer is asked.
    pub question: String,
    /// Label of the button that opens the list of scores.
    pub button: String,
    /// The five scores' titles, from 1 (worst) to 5 (best).
    pub scores: Vec<String>,
}

impl Default for CsatSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            question:
                "How did we do? Please rate the help you got, from 1 (poor) to 5 (excellent)."
                    .into(),
            button: "Rate us".into(),
            scores: vec![
                "1 - Poor".into(),
                "2 - Fair".into(),
                "3 - Good".into(),
                "4 - Very good".into(),
                "5 - Excellent".into(),
            ],
        }
    }
}

/// The prefix of a survey score's option id (`csat:4`).
pub const CSAT_OPTION: &str = "csat:";

impl CsatSettings {
    /// The scores as a list's rows, 1 first, so that a typed number is its score.
    pub fn choices(&self) -> Choices {
        Choices {
            button: Some(self.button.trim().to_string()),
            options: self
                .scores
                .iter()
                .enumerate()
                .map(|(i, title)| Choice {
                    id: format!("{CSAT_OPTION}{}", i + 1),
                    title: title.trim().to_string(),
                })
                .collect(),
        }
    }

    fn validate(&self, errors: &mut Vec<FieldError>) {
        let n = self.question.trim().chars().count();
        if n == 0 || n > 1024 {
            errors.push(FieldError::new(
                "csat.question",
                "must be 1-1024 characters (WhatsApp's limit for a list's text)",
            ));
        }
        let n = self.button.trim().chars().count();
        if n == 0 || n > 20 {
            errors.push(FieldError::new("csat.button", "must be 1-20 characters"));
        }
        if self.scores.len() != 5 {
            errors.push(FieldError::new(
                "csat.scores",
                "must be five titles, for the scores 1 to 5",
            ));
        }
        for (i, title) in self.scores.iter().enumerate() {
            let n = title.trim().chars().count();
            if n == 0 || n > 24 {
                errors.push(FieldError::new(
                    format!("csat.scores[{i}]"),
                    "must be 1-24 characters (WhatsApp's limit for a list row)",
                ));
            }
        }
    }
}

/// The score (1 to 5) a customer's message gives a survey: the list row they tapped, or the
/// number they typed ("4", "4.", "(4)"); `None` for anything else.
pub fn csat_score(kind: MessageKind, text: Option<&str>, details: &MessageDetails) -> Option<u8> {
    let score = match (kind, &details.interactive) {
        (MessageKind::Interactive, Some(reply)) => {
            reply.id.strip_prefix(CSAT_OPTION)?.parse().ok()?
        }
        (MessageKind::Text, _) => {
            let t = text?.trim().trim_matches(|c: char| "().# ".contains(c));
            if t.len() != 1 {
                return None;
            }
            t.parse().ok()?
        }
        _ => return None,
    };
    (1..=5).contains(&score).then_some(score)
}

/// A message's text followed by its options numbered from 1, for providers that cannot show
/// buttons: a customer answers with the number ([`Choices::picked`]).
pub fn numbered_options<'a>(text: &str, titles: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.trim_end().to_string();
    out.push('\n');
    for (i, title) in titles.into_iter().enumerate() {
        out.push_str(&format!("\n{}. {title}", i + 1));
    }
    out
}

/// Options offered with a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Choices {
    /// Label of the button that opens a list; `None`: reply buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<String>,
    /// The options, in order.
    pub options: Vec<Choice>,
}

/// One option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Choice {
    /// Our id, returned when tapped.
    pub id: String,
    /// What it says.
    pub title: String,
}

impl Choices {
    /// The option a customer's text picks: its number ("2", "2.", "(2)") or its exact title.
    pub fn picked(&self, text: &str) -> Option<&Choice> {
        let t = text.trim().trim_matches(|c: char| "().# ".contains(c));
        if let Ok(n) = t.parse::<usize>() {
            return n.checked_sub(1).and_then(|i| self.options.get(i));
        }
        let t = crate::language::normalize(text.trim());
        self.options
            .iter()
            .find(|c| crate::language::normalize(&c.title) == t)
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            business_name: String::new(),
            system_prompt: "You are a friendly, concise customer support assistant.".into(),
            prompt_file: None,
            collection: None,
            answerer: Answerer::Extractive,
            model: None,
            temperature: 0.2,
            max_tokens: 300,
            top_k: 4,
            min_score: 0.25,
            confidence_threshold: 0.22,
            language: None,
            cite_sources: false,
            voice: VoiceSettings::default(),
            escalation: EscalationSettings::default(),
            hours: None,
            interactive: InteractiveSettings::default(),
            csat: CsatSettings::default(),
            messages: Default::default(),
        }
    }
}

/// Whether `id` is a business-scoped user id: a two-letter country code, a dot, `ENT.` for a
/// parent id, then up to 128 letters and digits (`US.13491208655302741918`,
/// `US.ENT.11815799212886844830`). Phone numbers are digits only.
pub fn is_business_scoped_user_id(id: &str) -> bool {
    let Some((country, rest)) = id.split_once('.') else {
        return false;
    };
    let rest = rest.strip_prefix("ENT.").unwrap_or(rest);
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && (1..=128).contains(&rest.len())
        && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// One field that failed validation and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Dotted field path, e.g. `escalation.keywords[2]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks an agent name: 1-64 characters of `a-z`, `0-9`, `-` and `_`, starting with a letter or digit.
pub fn validate_name(field: &str, name: &str) -> Option<FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    (!ok).then(|| {
        FieldError::new(
            field,
            "must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
        )
    })
}

impl AgentConfig {
    /// Every problem with this configuration; empty when valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, field: &str, message: &str| {
            if !ok {
                errors.push(FieldError::new(field, message));
            }
        };
        check(
            self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature),
            "temperature",
            "must be between 0 and 2",
        );
        check(
            (1..=8192).contains(&self.max_tokens),
            "max_tokens",
            "must be between 1 and 8192",
        );
        check(
            (1..=50).contains(&self.top_k),
            "top_k",
            "must be between 1 and 50",
        );
        check(
            self.min_score.is_finite() && (0.0..=1.0).contains(&self.min_score),
            "min_score",
            "must be between 0 and 1",
        );
        check(
            self.confidence_threshold.is_finite()
                && (0.0..=1.0).contains(&self.confidence_threshold),
            "confidence_threshold",
            "must be between 0 and 1",
        );
        check(
            self.system_prompt.len() <= 32_000,
            "system_prompt",
            "must be at most 32000 bytes",
        );
        check(
            self.business_name.len() <= 200,
            "business_name",
            "must be at most 200 bytes",
        );
        if let Some(file) = &self.prompt_file {
            check(
                !file.is_empty()
                    && !file.contains("..")
                    && !file.starts_with('/')
                    && file
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)),
                "prompt_file",
                "must be a relative file name under prompts/",
            );
        }
        if let Some(collection) = &self.collection {
            if let Some(e) = validate_name("collection", collection) {
                errors.push(e);
            }
        }
        if let Some(model) = &self.model {
            if model.trim().is_empty() || model.len() > 200 {
                errors.push(FieldError::new("model", "must be 1-200 characters"));
            }
        }
        for (field, lang) in [
            ("language", &self.language),
            ("voice.language", &self.voice.language),
        ] {
            if let Some(lang) = lang {
                if !(2..=3).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_lowercase()) {
                    errors.push(FieldError::new(
                        field,
                        "must be an ISO 639 code such as `en` or `pt`",
                    ));
                }
            }
        }
        if self.voice.default_reply.trim().is_empty() {
            errors.push(FieldError::new("voice.default_reply", "must not be empty"));
        }
        for (i, k) in self.escalation.keywords.iter().enumerate() {
            if k.trim().is_empty() || k.len() > 100 {
                errors.push(FieldError::new(
                    format!("escalation.keywords[{i}]"),
                    "must be 1-100 characters",
                ));
            }
        }
        if let Some(contact) = &self.escalation.support_contact {
            if !is_phone_number(contact) {
                errors.push(FieldError::new(
                    "escalation.support_contact",
                    "must be a phone number in international form, digits only (e.g. 5511988887777)",
                ));
            }
        }
        if self.escalation.customer_message.trim().is_empty() {
            errors.push(FieldError::new(
                "escalation.customer_message",
                "must not be empty",
            ));
        }
        if let Some(t) = &self.escalation.reengagement_template {
            if t.name.trim().is_empty() {
                errors.push(FieldError::new(
                    "escalation.reengagement_template.name",
                    "must not be empty",
                ));
            }
            if t.language.trim().is_empty() {
                errors.push(FieldError::new(
                    "escalation.reengagement_template.language",
                    "must not be empty",
                ));
            }
        }
        if self
            .escalation
            .idle_minutes
            .is_some_and(|m| !(1..=43_200).contains(&m))
        {
            errors.push(FieldError::new(
                "escalation.idle_minutes",
                "must be between 1 and 43200 (30 days)",
            ));
        }
        for (field, text) in [
            (
                "escalation.handback_message",
                &self.escalation.handback_message,
            ),
            ("escalation.closed_message", &self.escalation.closed_message),
        ] {
            if text.trim().is_empty() || text.len() > 1000 {
                errors.push(FieldError::new(field, "must be 1-1000 bytes"));
            }
        }
        for (i, k) in self.escalation.back_to_bot.iter().enumerate() {
            if k.trim().is_empty() || k.len() > 100 {
                errors.push(FieldError::new(
                    format!("escalation.back_to_bot[{i}]"),
                    "must be 1-100 characters",
                ));
            }
        }
        if let Some(hours) = &self.hours {
            errors.extend(
                hours
                    .problems()
                    .into_iter()
                    .map(|p| FieldError::new(format!("hours.{}", p.field), p.message)),
            );
            if let Some(contact) = &hours.on_call_contact {
                if !is_phone_number(contact) {
                    errors.push(FieldError::new(
                        "hours.on_call_contact",
                        "must be a phone number in international form, digits only (e.g. 5511988887777)",
                    ));
                }
            }
        }
        self.interactive.validate(&mut errors);
        self.csat.validate(&mut errors);
        for (language, set) in &self.messages {
            if !crate::language::is_iso639_1(language) {
                errors.push(FieldError::new(
                    format!("messages.{language}"),
                    "must be keyed by an ISO 639-1 language code such as `pt`",
                ));
            }
            for (key, text) in set.entries() {
                if text.is_some_and(|t| t.trim().is_empty() || t.len() > 1000) {
                    errors.push(FieldError::new(
                        format!("messages.{language}.{key}"),
                        "must be 1-1000 bytes",
                    ));
                }
            }
        }
        errors
    }
}

/// Merges `patch` (a JSON object; nested objects merge key by key) into `base`.
fn merge_json(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_json(existing, value)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

impl AgentConfig {
    /// `base` with the fields present in `patch` replaced (nested sections merge field by
    /// field; a message set to null falls back to the shipped one), then validated. Unknown
    /// fields and wrong types are reported by path.
    pub fn patched(
        base: &AgentConfig,
        patch: serde_json::Value,
    ) -> Result<AgentConfig, Vec<FieldError>> {
        if !patch.is_object() {
            return Err(vec![FieldError::new("body", "must be a JSON object")]);
        }
        let mut value =
            serde_json::to_value(base).map_err(|e| vec![FieldError::new("body", e.to_string())])?;
        merge_json(&mut value, patch);
        let mut config: AgentConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string();
            vec![FieldError::new(
                if path == "." {
                    "body".to_string()
                } else {
                    path
                },
                message,
            )]
        })?;
        // A language whose every message was cleared (set to null) falls back whole.
        config
            .messages
            .retain(|_, set| *set != MessageSet::default());
        let errors = config.validate();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
}

/// True for 7-15 digits, optionally with a leading `+` (E.164).
pub fn is_phone_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

/// A configured bot persona.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// Slug, unique in its workspace, e.g. `demo`.
    pub name: String,
    /// Whether the agent answers at all.
    pub active: bool,
    /// Everything else.
    pub config: AgentConfig,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Agent {
    /// The name of the knowledge collection this agent searches, as its workspace calls it.
    pub fn collection_name(&self) -> &str {
        self.config.collection.as_deref().unwrap_or(&self.name)
    }

    /// The key of that collection in the store and the vector index (see [`collection_key`]).
    pub fn collection(&self) -> String {
        collection_key(self.workspace_id, self.collection_name())
    }
}

/// A knowledge document as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Document {
    /// Its id.
    pub id: DocumentId,
    /// Collection it belongs to.
    pub collection: String,
    /// Where it came from: a path relative to the ingested root, or an upload's file name.
    pub source: String,
    /// Title (first heading or file name).
    pub title: String,
    /// Detected format.
    pub format: String,
    /// sha256 of the file's bytes.
    pub content_hash: String,
    /// File size.
    pub bytes: i64,
    /// Number of chunks.
    pub chunk_count: i64,
    /// The embedder that produced the stored vectors.
    pub embedding_model: String,
    /// When it was first ingested.
    pub created_at: DateTime<Utc>,
    /// When its content last changed.
    pub updated_at: DateTime<Utc>,
}

/// A passage of a document, with its embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Its id (also the vector point id).
    pub id: ChunkId,
    /// Owning document.
    pub document_id: DocumentId,
    /// Order within the document, from 0.
    pub position: i64,
    /// Heading path the passage sits under, e.g. `Delivery > Costs`.
    pub heading: Option<String>,
    /// The passage text.
    pub text: String,
    /// Tokens (cl100k) in `text`.
    pub token_count: i64,
    /// Unit-length embedding.
    pub embedding: Vec<f32>,
}

/// Which WhatsApp provider serves a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Meta WhatsApp Cloud API.
    Meta,
    /// Evolution API (QR-linked numbers).
    Evolution,
    /// Kapso.
    Kapso,
    /// The prompt-testing sandbox: replies are recorded, never sent.
    Sandbox,
}

/// Connection state of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelState {
    /// Configured, not yet linked (Evolution) or not yet seen working.
    Created,
    /// Waiting for the QR code to be scanned.
    Connecting,
    /// Working.
    Connected,
    /// Logged out or disconnected.
    Disconnected,
    /// The provider refused our credentials; needs attention.
    Broken,
}

/// Status of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// The bot answers.
    Active,
    /// A person owns it; the bot is silent.
    Escalated,
    /// Closed by a person; the next customer message reopens it for the bot.
    Resolved,
}

/// Direction of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// To the customer.
    Outbound,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The customer.
    Customer,
    /// Palaver.
    Bot,
    /// A human agent (from the inbox, or typed on the business's phone).
    Agent,
    /// Notices such as escalation notes to the support contact.
    System,
}

/// What a message contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Text.
    Text,
    /// Voice note or audio file.
    Audio,
    /// Image.
    Image,
    /// Video.
    Video,
    /// Document.
    Document,
    /// Sticker.
    Sticker,
    /// Location.
    Location,
    /// Button or list reply.
    Interactive,
    /// Reaction.
    Reaction,
    /// Template (outbound).
    Template,
    /// Anything else.
    Unsupported,
}

/// Delivery status of a message. Statuses only move forward (`rank`), because providers deliver
/// them out of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Inbound, stored.
    Received,
    /// Outbound, waiting in the outbox.
    Queued,
    /// Accepted by the provider.
    Sent,
    /// On the customer's phone.
    Delivered,
    /// Read.
    Read,
    /// Voice message played.
    Played,
    /// Not delivered.
    Failed,
}

impl DeliveryStatus {
    /// Order of precedence: a status never replaces one of higher rank.
    pub fn rank(self) -> i64 {
        match self {
            DeliveryStatus::Received | DeliveryStatus::Queued => 0,
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered => 2,
            DeliveryStatus::Read => 3,
            DeliveryStatus::Played => 4,
            DeliveryStatus::Failed => 5,
        }
    }
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    other => Err(format!("unknown {} `{other}`", stringify!($ty))),
                }
            }
        }
    };
}

text_enum!(ProviderKind { Meta => "meta", Evolution => "evolution", Kapso => "kapso", Sandbox => "sandbox" });
text_enum!(ChannelState {
    Created => "created", Connecting => "connecting", Connected => "connected",
    Disconnected => "disconnected", Broken => "broken",
});
text_enum!(ConversationStatus { Active => "active", Escalated => "escalated", Resolved => "resolved" });
text_enum!(Direction { Inbound => "inbound", Outbound => "outbound" });
text_enum!(Role { Customer => "customer", Bot => "bot", Agent => "agent", System => "system" });
text_enum!(MessageKind {
    Text => "text", Audio => "audio", Image => "image", Video => "video", Document => "document",
    Sticker => "sticker", Location => "location", Interactive => "interactive", Reaction => "reaction",
    Template => "template", Unsupported => "unsupported",
});
text_enum!(EscalationReason {
    Keyword => "keyword", HumanRequest => "human_request", LowConfidence => "low_confidence",
    AnswererFailed => "answerer_failed", HumanTakeover => "human_takeover",
    WindowClosed => "window_closed", DeliveryFailed => "delivery_failed", TurnFailed => "turn_failed",
});

impl EscalationReason {
    /// The reason in words, as people read it in the inbox.
    pub fn describe(self) -> &'static str {
        match self {
            EscalationReason::Keyword => "an escalation keyword",
            EscalationReason::HumanRequest => "the customer asked for a person",
            EscalationReason::LowConfidence => "the bot was not sure of the answer",
            EscalationReason::AnswererFailed => "the bot could not answer",
            EscalationReason::HumanTakeover => "a person took over",
            EscalationReason::WindowClosed => "outside the 24-hour window",
            EscalationReason::DeliveryFailed => "a reply could not be delivered",
            EscalationReason::TurnFailed => "the bot could not answer in time",
        }
    }
}
text_enum!(MemberRole { Owner => "owner", Author => "author", Agent => "agent" });
text_enum!(Resolution { Resolved => "resolved", HandedBack => "handed_back" });
text_enum!(LabelColour {
    Grey => "grey", Red => "red", Orange => "orange", Yellow => "yellow", Green => "green",
    Teal => "teal", Blue => "blue", Purple => "purple", Pink => "pink",
});
text_enum!(EventKind {
    MessageReceived => "message.received", MessageSent => "message.sent",
    MessageStatus => "message.status", MessageTranscribed => "message.transcribed",
    MessageEdited => "message.edited", MessageDeleted => "message.deleted",
    ConversationCreated => "conversation.created", ConversationEscalated => "conversation.escalated",
    ConversationAssigned => "conversation.assigned", ConversationResolved => "conversation.resolved",
    ConversationHandedBack => "conversation.handed_back",
    ConversationLabelsChanged => "conversation.labels_changed",
    ConversationSnoozed => "conversation.snoozed", ConversationUnsnoozed => "conversation.unsnoozed",
    ConversationRated => "conversation.rated",
    NoteCreated => "note.created", NoteMentioned => "note.mentioned",
    LabelUpdated => "label.updated", LabelDeleted => "label.deleted",
    ChannelState => "channel.state",
    DocumentIngested => "document.ingested", EvalRunProgress => "eval.run.progress",
    EvalRunFinished => "eval.run.finished",
});
text_enum!(DeliveryStatus {
    Received => "received", Queued => "queued", Sent => "sent", Delivered => "delivered",
    Read => "read", Played => "played", Failed => "failed",
});

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 23] = [
        EventKind::MessageReceived,
        EventKind::MessageSent,
        EventKind::MessageStatus,
        EventKind::MessageTranscribed,
        EventKind::MessageEdited,
        EventKind::MessageDeleted,
        EventKind::ConversationCreated,
        EventKind::ConversationEscalated,
        EventKind::ConversationAssigned,
        EventKind::ConversationResolved,
        EventKind::ConversationHandedBack,
        EventKind::ConversationLabelsChanged,
        EventKind::ConversationSnoozed,
        EventKind::ConversationUnsnoozed,
        EventKind::ConversationRated,
        EventKind::NoteCreated,
        EventKind::NoteMentioned,
        EventKind::LabelUpdated,
        EventKind::LabelDeleted,
        EventKind::ChannelState,
        EventKind::DocumentIngested,
        EventKind::EvalRunProgress,
        EventKind::EvalRunFinished,
    ];

    /// Whether a member with `role` may see events of this kind: conversations and messages
    /// are everyone's (the inbox); documents and evals are for owners and authors; channel
    /// states (with their QR codes, which link a phone to the number) for owners only.
    pub fn visible_to(self, role: MemberRole) -> bool {
        match self {
            EventKind::ChannelState => role == MemberRole::Owner,
            EventKind::DocumentIngested
            | EventKind::EvalRunProgress
            | EventKind::EvalRunFinished => role != MemberRole::Agent,
            _ => true,
        }
    }

    /// Whether events of this kind stay inside the workspace's people: private notes and their
    /// mentions are never POSTed to outgoing webhooks, whatever a subscription asks for.
    pub fn internal(self) -> bool {
        matches!(self, EventKind::NoteCreated | EventKind::NoteMentioned)
    }
}

/// What kind of change an [`Event`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A customer's message was stored.
    MessageReceived,
    /// An outbound message (the bot's, a person's, a support note) was recorded and queued;
    /// `message.status` follows its delivery.
    MessageSent,
    /// An outbound message's delivery status moved (sent, delivered, read, played, failed).
    MessageStatus,
    /// A voice note was transcribed.
    MessageTranscribed,
    /// Its sender edited a message (the earlier text is kept in its details).
    MessageEdited,
    /// Its sender deleted a message for everyone.
    MessageDeleted,
    /// A customer's first message opened a conversation.
    ConversationCreated,
    /// A conversation was handed to a person.
    ConversationEscalated,
    /// A conversation was given to a person, or to nobody.
    ConversationAssigned,
    /// A person resolved a conversation.
    ConversationResolved,
    /// A person gave a conversation back to the bot.
    ConversationHandedBack,
    /// A label was put on a conversation or taken off it (`labels` lists them all now).
    ConversationLabelsChanged,
    /// A person snoozed a conversation until a time (`until`).
    ConversationSnoozed,
    /// A snoozed conversation is back in the open list: its time came, or a person woke it
    /// (`by`: `time` or `person`). A customer's message wakes it too, as its `message.received`
    /// shows.
    ConversationUnsnoozed,
    /// The customer answered the satisfaction survey sent when their conversation was resolved
    /// (`score`, 1 to 5); the conversation their answer reopened is resolved again.
    ConversationRated,
    /// A person wrote a private note on a conversation (`note`). Internal: never sent to the
    /// customer nor to outgoing webhooks.
    NoteCreated,
    /// A private note mentioned a person (`user_id`, with the `note`): delivered only to that
    /// person's streams. Internal, as [`EventKind::NoteCreated`].
    NoteMentioned,
    /// An owner renamed a label or changed its colour (`label` as it is now, `previous` as it
    /// was): the conversations it is on keep it.
    LabelUpdated,
    /// An owner deleted a label (`label` as it was), taking it off every conversation.
    LabelDeleted,
    /// A channel's connection changed, or it has a new QR code.
    ChannelState,
    /// A knowledge document was ingested.
    DocumentIngested,
    /// An eval run moved on.
    EvalRunProgress,
    /// An eval run finished.
    EvalRunFinished,
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl utoipa::PartialSchema for EventKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(EventKind::ALL.map(EventKind::as_str)))
            .description(Some("What kind of change an event records."))
            .into()
    }
}

impl utoipa::ToSchema for EventKind {}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One change in a workspace, as the event log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Its position in the workspace's log: counts up by one.
    pub id: i64,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The conversation it is about, if any.
    pub conversation_id: Option<ConversationId>,
    /// The channel it is about, if any.
    pub channel_id: Option<ChannelId>,
    /// When.
    pub at: DateTime<Utc>,
    /// What changed (the message, the new status...).
    pub data: serde_json::Value,
}

impl Event {
    /// The one person an event is for, when it is for one person only (a mention): other
    /// callers' streams and pages never carry it.
    pub fn addressee(&self) -> Option<UserId> {
        match self.kind {
            EventKind::NoteMentioned => self
                .data
                .get("user_id")
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse().ok())
                // Unreadable, it is for nobody rather than for everyone.
                .or(Some(UserId(Uuid::nil()))),
            _ => None,
        }
    }
}

/// A MIME type's essence: `type/subtype`, lowercased, without parameters
/// (`Text/CSV; charset=utf-8` is `text/csv`).
pub fn mime_essence(mime_type: &str) -> String {
    mime_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A media attachment as the provider describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct MediaRef {
    /// Provider media id (Meta, Kapso) or message id (Evolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Direct URL, when the provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// MIME type, e.g. `audio/ogg; codecs=opus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// sha256 the provider reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Original file name (documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Caption typed with the media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// A push-to-talk voice note (rather than an attached audio file).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub voice: bool,
    /// Duration in seconds, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u32>,
    /// The stored file a person sent from the inbox (its id), uploaded to the provider when
    /// the message is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Inline bytes (base64), when the webhook carried them (Evolution `base64: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_base64: Option<String>,
}

/// A shared location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Place name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A reaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reaction {
    /// Provider id of the message reacted to.
    pub message_id: String,
    /// The emoji; `None` when the reaction was removed.
    #[serde(default)]
    pub emoji: Option<String>,
}

/// A picked button or list row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InteractiveReply {
    /// The id we gave the button or row.
    pub id: String,
    /// Its title.
    pub title: String,
    /// List row description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Everything a message may carry besides its text, stored as one JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct MessageDetails {
    /// Media (image, audio, video, document, sticker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaRef>,
    /// Shared location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Reaction to one of the conversation's messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reaction: Option<Reaction>,
    /// The button or list row the customer picked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interactive: Option<InteractiveReply>,
    /// Provider id of the message this one quotes or answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_message_id: Option<String>,
    /// Provider-side type name for unsupported or unknown messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_type: Option<String>,
    /// Provider-side transcript of a voice note (Kapso), when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_transcript: Option<String>,
    /// Language detected in a voice note (ISO 639-1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript_language: Option<String>,
    /// Probability of the detected language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript_language_probability: Option<f32>,
    /// Template name and language, for outbound templates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRef>,
    /// Options offered with an outbound message (buttons, a list, or numbered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Choices>,
    /// Earlier versions of an edited message, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<Edit>,
    /// When its sender deleted it for everyone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// An earlier version of an edited message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Edit {
    /// What it said.
    pub text: Option<String>,
    /// When it was replaced.
    pub replaced_at: DateTime<Utc>,
}

/// A change its sender made to a message already sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum MessageChange {
    /// New text (or caption).
    Edited {
        /// The text now.
        text: String,
    },
    /// Deleted for everyone.
    Deleted,
}

/// Why a message failed, as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryError {
    /// Provider error code (e.g. Meta 131047).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// Short title.
    pub title: String,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A passage a reply was based on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceRef {
    /// Its number in the prompt, from 1.
    pub n: usize,
    /// The chunk.
    pub chunk_id: ChunkId,
    /// Document source (path or file name).
    pub source: String,
    /// Heading path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<String>,
    /// Cosine similarity to the question.
    pub similarity: f32,
    /// Fused retrieval score.
    pub score: f32,
}

/// How a bot reply was produced, kept with the reply for inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct Generation {
    /// The answerer used.
    pub answerer: Answerer,
    /// The model, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The passages given to the answerer.
    pub sources: Vec<SourceRef>,
    /// Numbers of the sources the reply cites.
    pub cited: Vec<usize>,
    /// The prompt given to the model (system and history included), as rendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The answerer's confidence, 0-1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Prompt tokens.
    pub tokens_in: u32,
    /// Completion tokens.
    pub tokens_out: u32,
    /// Time spent retrieving, in milliseconds.
    pub retrieve_ms: f64,
    /// Time spent generating, in milliseconds.
    pub generate_ms: f64,
    /// Time from the start of handling to the reply, in milliseconds.
    pub total_ms: f64,
    /// Why a fixed reply was sent instead of a generated one (e.g. a voice note that could not
    /// be transcribed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The things the reply asks the customer to choose between ("which of these do you
    /// mean?"), in order: their answer is read with the question they were asked about.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A WhatsApp number or instance, linked to an agent. Credentials are kept apart, sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Channel {
    /// Its id.
    pub id: ChannelId,
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// A label.
    pub name: String,
    /// Which provider serves it.
    pub provider: ProviderKind,
    /// Meta/Kapso `phone_number_id`, Evolution instance name, or the sandbox agent.
    pub route_key: String,
    /// The agent answering on it.
    pub agent_id: Option<AgentId>,
    /// Non-secret settings.
    pub settings: ChannelConfig,
    /// The Graph API version it calls (Meta), when it chose one rather than the installation's
    /// default.
    pub graph_version: Option<String>,
    /// Connection state.
    pub state: ChannelState,
    /// Why it is in that state (provider's words), if known.
    pub state_detail: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Non-secret settings of a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelConfig {
    /// Messages per minute this channel may send; `None` uses the global setting.
    pub rate_per_minute: Option<u32>,
    /// Reject incoming calls (Evolution).
    pub reject_calls: bool,
    /// Sent to callers when a call is rejected.
    pub call_message: Option<String>,
    /// Ignore group chats.
    pub ignore_groups: bool,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            rate_per_minute: None,
            reject_calls: true,
            call_message: Some(
                "Sorry, we can't take calls on this number. Please send us a message.".into(),
            ),
            ignore_groups: true,
        }
    }
}

/// A customer on one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Contact {
    /// Its id.
    pub id: ContactId,
    /// The channel.
    pub channel_id: ChannelId,
    /// WhatsApp id (digits).
    pub wa_id: String,
    /// Address replies go to when it differs from `wa_id` (Evolution LID addressing).
    pub reply_to: Option<String>,
    /// Meta's business-scoped user id, when known (a customer with a WhatsApp username may have
    /// no phone number: then `wa_id` is this id too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Profile name.
    pub name: Option<String>,
}

impl Contact {
    /// Where replies to this contact are sent.
    pub fn address(&self) -> &str {
        self.reply_to.as_deref().unwrap_or(&self.wa_id)
    }
}

/// A conversation between a contact and a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// The workspace it belongs to (its channel's).
    pub workspace_id: WorkspaceId,
    /// The channel.
    pub channel_id: ChannelId,
    /// The customer.
    pub contact: Contact,
    /// The agent that answers (the channel's, or the sandbox's).
    pub agent_id: Option<AgentId>,
    /// A sandbox conversation (prompt testing), kept apart from real ones.
    pub sandbox: bool,
    /// Who owns it.
    pub status: ConversationStatus,
    /// Why it is in that status (e.g. the escalation reason).
    pub status_reason: Option<String>,
    /// Last customer message: the 24-hour customer-service window starts here.
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Last message either way.
    pub last_activity_at: DateTime<Utc>,
    /// History before this instant is not given to the model (idle reset, `/reset`).
    pub context_started_at: DateTime<Utc>,
    /// Customer messages not yet read by a human.
    pub unread_count: i64,
    /// The person it is assigned to.
    pub assignee_id: Option<UserId>,
    /// Out of the open list until then; a customer's message wakes it sooner.
    pub snoozed_until: Option<DateTime<Utc>>,
    /// When it started.
    pub created_at: DateTime<Utc>,
}

/// The colours a label may have: a fixed palette, so every label reads well on the console's
/// light background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LabelColour {
    /// Grey.
    Grey,
    /// Red.
    Red,
    /// Orange.
    Orange,
    /// Yellow.
    Yellow,
    /// Green.
    Green,
    /// Teal.
    Teal,
    /// Blue.
    Blue,
    /// Purple.
    Purple,
    /// Pink.
    Pink,
}

impl LabelColour {
    /// Every colour, in the order the console offers them.
    pub const ALL: [LabelColour; 9] = [
        LabelColour::Grey,
        LabelColour::Red,
        LabelColour::Orange,
        LabelColour::Yellow,
        LabelColour::Green,
        LabelColour::Teal,
        LabelColour::Blue,
        LabelColour::Purple,
        LabelColour::Pink,
    ];
}

/// A workspace's label for conversations ("vip", "refund"), shown as a coloured chip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Label {
    /// Its id.
    pub id: LabelId,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Its name: unique in the workspace.
    pub name: String,
    /// Its chip's colour.
    pub colour: LabelColour,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A private note on a conversation: written by a person of the workspace for the others,
/// shown in the thread, never sent to the customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Note {
    /// Always `note`: what tells it apart from a message in a thread.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "note")]
    pub note_type: NoteType,
    /// Its id.
    pub id: NoteId,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The person who wrote it (none when an API key did).
    pub author_id: Option<UserId>,
    /// Their name as it was then (an API key's label for a key).
    pub author_name: String,
    /// What it says.
    pub text: String,
    /// The people it mentions, resolved when it was written.
    pub mentions: Vec<UserId>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// The `type` of a [`Note`]: always `note`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoteType {
    /// A private note.
    #[default]
    Note,
}

/// A workspace's prepared reply, inserted in the reply box by its short code (`/refund`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CannedResponse {
    /// Its id.
    pub id: CannedResponseId,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// What is typed after `/` to find it: unique in the workspace.
    pub short_code: String,
    /// The text, with `{{contact.name}}`, `{{contact.phone}}` and `{{agent.name}}` filled in
    /// when it is inserted.
    pub content: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A stored message, either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Direction.
    pub direction: Direction,
    /// Who wrote it.
    pub role: Role,
    /// What it contains.
    pub kind: MessageKind,
    /// Text or caption.
    pub text: Option<String>,
    /// Transcript of a voice note.
    pub transcript: Option<String>,
    /// Everything else.
    pub details: MessageDetails,
    /// The provider's id.
    pub provider_message_id: Option<String>,
    /// Delivery status.
    pub status: DeliveryStatus,
    /// Why delivery failed.
    pub error: Option<DeliveryError>,
    /// How a bot reply was produced.
    pub generation: Option<Generation>,
    /// The person who wrote it (a reply from the inbox).
    pub sent_by: Option<UserId>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Message {
    /// What the customer said: the transcript of a voice note, else the text; nothing once
    /// deleted.
    pub fn said(&self) -> Option<&str> {
        if self.details.deleted_at.is_some() {
            return None;
        }
        self.transcript
            .as_deref()
            .or(self.text.as_deref())
            .filter(|t| !t.trim().is_empty())
    }
}

/// Why a conversation was handed to a person: one list, used by the pipeline, the store, the
/// API and eval assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// A configured keyword or phrase was said.
    Keyword,
    /// The customer asked for a person.
    HumanRequest,
    /// No source was good enough to answer from.
    LowConfidence,
    /// The answerer failed after its retries.
    AnswererFailed,
    /// A person replied from the business's own phone or the inbox.
    HumanTakeover,
    /// Outside the 24-hour window with no template to send.
    WindowClosed,
    /// A reply could not be delivered: a person must reach the customer.
    DeliveryFailed,
    /// The customer's messages could not be handled (the engine kept failing): a person must
    /// answer them.
    TurnFailed,
}

impl EscalationReason {
    /// Every reason, in the order the API documents them.
    pub const ALL: [EscalationReason; 8] = [
        Self::Keyword,
        Self::HumanRequest,
        Self::LowConfidence,
        Self::AnswererFailed,
        Self::HumanTakeover,
        Self::WindowClosed,
        Self::DeliveryFailed,
        Self::TurnFailed,
    ];
}

/// What a person (or an API key) may do in a workspace.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// Everything: channels and their credentials, people, keys, webhooks, and all below.
    Owner,
    /// Agents, prompts, knowledge, the sandbox and evals; reads conversations.
    Author,
    /// The inbox: reads conversations, replies, assigns, resolves and hands back.
    Agent,
}

impl MemberRole {
    /// Every role, most powerful first.
    pub const ALL: [MemberRole; 3] = [MemberRole::Owner, MemberRole::Author, MemberRole::Agent];
}

/// How much a workspace may hold; `None` is no limit. Set by the instance's operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorkspaceLimits {
    /// Channels (numbers and instances), sandbox channels not counted.
    pub channels: Option<u32>,
    /// Agents.
    pub agents: Option<u32>,
    /// Knowledge documents.
    pub documents: Option<u32>,
    /// Bytes of knowledge documents.
    pub storage_bytes: Option<u64>,
}

/// Who gets a conversation when it is escalated and nobody has it yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum AssignmentRule {
    /// Nobody: people in the inbox take conversations themselves.
    #[default]
    Manual,
    /// Always this person (while they are a member who answers the inbox).
    Default {
        /// The person.
        user: UserId,
    },
    /// The workspace's members with the `agent` role in turn, the one waiting longest first.
    RoundRobin,
}

/// Who gets a channel's conversations when they are escalated and nobody has them yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelAssignment {
    /// The workspace's [`AssignmentRule`] decides (the default).
    #[default]
    Workspace,
    /// Nobody: people in the inbox take this channel's conversations themselves.
    Manual,
    /// Always this person (while they are a member who answers the inbox).
    Default {
        /// The person.
        user: UserId,
    },
    /// The team's members in turn, the one waiting longest first (members who answer the
    /// inbox only).
    Team {
        /// The team.
        team: TeamId,
    },
}

/// A group of the workspace's people who answer the inbox, to whom a channel's escalations go
/// in turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Team {
    /// Its id.
    pub id: TeamId,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Its name: unique in the workspace.
    pub name: String,
    /// Its members who are still members of the workspace, by name.
    pub members: Vec<TeamMember>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A member of a team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TeamMember {
    /// The person.
    pub id: UserId,
    /// Their name.
    pub name: String,
    /// Their email.
    pub email: String,
    /// Their role in the workspace.
    pub role: MemberRole,
}

/// A person who signs in with an email and a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Email, lowercased: the sign-in name.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Runs the installation: manages workspaces and their limits, and is an owner everywhere.
    pub instance_owner: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A tenant: one business and everything it owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Workspace {
    /// Its id.
    pub id: WorkspaceId,
    /// Short unique name, e.g. `acme`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// What it may hold.
    pub limits: WorkspaceLimits,
    /// Who gets escalated conversations.
    pub assignment: AssignmentRule,
    /// Model calls people may ask for in a calendar month (drafting instructions with a
    /// model), set by its owners; `None`: no limit.
    pub model_calls_limit: Option<u64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// How an escalation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A person closed the conversation.
    Resolved,
    /// A person gave the conversation back to the bot.
    HandedBack,
}

/// A durable unit of work, with its arguments: the contract between whoever enqueues jobs (the
/// store, in the same transaction as the change that calls for them) and the job runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Answer a conversation's unhandled customer messages.
    Handle {
        /// The conversation.
        conversation_id: ConversationId,
    },
    /// Deliver an outbox message through its channel's provider.
    Send {
        /// The message.
        message_id: MessageId,
    },
    /// Deliver an event to an outgoing webhook.
    Hook {
        /// The delivery.
        delivery_id: HookDeliveryId,
    },
    /// Bring a snoozed conversation back to the open list, if its time has come.
    Wake {
        /// The conversation.
        conversation_id: ConversationId,
    },
}

impl Task {
    /// The stored kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Task::Handle { .. } => "handle",
            Task::Send { .. } => "send",
            Task::Hook { .. } => "hook",
            Task::Wake { .. } => "wake",
        }
    }

    /// The stored arguments (the task without its kind).
    pub fn payload(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.remove("kind");
        }
        value
    }

    /// The task stored as `kind` and `payload`, or why it cannot be read.
    pub fn from_parts(kind: &str, payload: &serde_json::Value) -> Result<Self, String> {
        let mut value = payload.clone();
        let map = value
            .as_object_mut()
            .ok_or_else(|| format!("the payload of a `{kind}` job is not an object"))?;
        map.insert("kind".into(), serde_json::Value::String(kind.into()));
        serde_json::from_value(value).map_err(|e| format!("unreadable `{kind}` job: {e}"))
    }
}

/// Why a conversation was handed to a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Escalation {
    /// Its id.
    pub id: EscalationId,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Why.
    pub reason: EscalationReason,
    /// Details (the matched keyword, the error...).
    pub detail: Option<String>,
    /// The message that triggered it.
    pub message_id: Option<MessageId>,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub resolution: Option<Resolution>,
    /// Who closed it, as shown (a person's email, or an API key's name).
    pub closed_by: Option<String>,
    /// The person who closed it (none when an API key did).
    pub closed_by_user: Option<UserId>,
}

/// Whether an outgoing webhook receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HookStatus {
    /// Events are delivered.
    Active,
    /// Nothing is sent (it kept failing, or an owner paused it); events wait in the log and are
    /// delivered when it is resumed.
    Paused,
}

/// Where one delivery of an event to an outgoing webhook stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HookDeliveryStatus {
    /// Queued, or being retried.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Its subscription was paused before it got through; resuming sends it again.
    Paused,
    /// Given up after its retries.
    Failed,
}

/// Where a proposed FAQ entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaqStatus {
    /// Waiting for an author.
    Proposed,
    /// In its agent's knowledge and eval suite.
    Approved,
    /// Turned down; kept so the same reply is not proposed again.
    Rejected,
}
text_enum!(FaqStatus { Proposed => "proposed", Approved => "approved", Rejected => "rejected" });

/// An FAQ entry proposed from a person's reply to a customer (or written by hand): the
/// customer's words as the question, the reply as the answer. An author edits and approves it;
/// approved entries are part of the agent's knowledge and become eval cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaqProposal {
    /// Its id.
    pub id: FaqProposalId,
    /// The agent whose knowledge it joins (the conversation's, unless an author chose another).
    pub agent_id: Option<AgentId>,
    /// The conversation it came from, if any.
    pub conversation_id: Option<ConversationId>,
    /// The customer's message it came from, if any.
    pub question_message_id: Option<MessageId>,
    /// The person's reply it came from, if any.
    pub answer_message_id: Option<MessageId>,
    /// The question, as the FAQ states it.
    pub question: String,
    /// The answer.
    pub answer: String,
    /// Where it stands.
    pub status: FaqStatus,
    /// Who proposed it (none for an API key).
    pub proposed_by: Option<UserId>,
    /// Their name as it was then.
    pub proposed_by_name: String,
    /// Who approved or rejected it.
    pub decided_by: Option<UserId>,
    /// When it was approved or rejected.
    pub decided_at: Option<DateTime<Utc>>,
    /// When it was proposed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

text_enum!(HookStatus { Active => "active", Paused => "paused" });
text_enum!(HookDeliveryStatus {
    Pending => "pending", Delivered => "delivered", Paused => "paused", Failed => "failed",
});

/// An outgoing webhook: a URL of another system subscribed to a workspace's events. Its signing
/// secret is never part of it (it is shown once, when the subscription is made).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Hook {
    /// Its id.
    pub id: HookId,
    /// The workspace whose events it receives.
    pub workspace_id: WorkspaceId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives (every type when empty).
    pub events: Vec<EventKind>,
    /// A note for people.
    pub description: String,
    /// Active or paused.
    pub status: HookStatus,
    /// Failed attempts in a row.
    pub failures: u32,
    /// Why it was paused.
    pub paused_reason: Option<String>,
    /// The last event of the workspace's log it has been given (or skipped).
    pub cursor: i64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Hook {
    /// Whether it receives events of `kind`: never an internal one (private notes).
    pub fn wants(&self, kind: EventKind) -> bool {
        !kind.internal() && (self.events.is_empty() || self.events.contains(&kind))
    }
}

/// One event's delivery to one outgoing webhook, with its last attempt.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HookDelivery {
    /// Its id (sent as `X-Palaver-Delivery`, so a receiver can drop a repeat).
    pub id: HookDeliveryId,
    /// The subscription.
    pub hook_id: HookId,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The event's number in the workspace's log.
    pub event_id: i64,
    /// The event's type.
    pub event_type: EventKind,
    /// The conversation it is about (deliveries of one conversation go in order).
    pub conversation_id: Option<ConversationId>,
    /// Where it stands.
    pub status: HookDeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The HTTP status of the last answer.
    pub response_status: Option<u16>,
    /// How long the last attempt took, in milliseconds.
    pub response_ms: Option<u64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When the receiver accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// The JSON body sent (the event).
    #[serde(skip)]
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tasks_round_trip_through_their_stored_parts() {
        let tasks = [
            Task::Handle {
                conversation_id: ConversationId::new(),
            },
            Task::Send {
                message_id: MessageId::new(),
            },
            Task::Hook {
                delivery_id: HookDeliveryId::new(),
            },
        ];
        for task in tasks {
            let back = Task::from_parts(task.kind(), &task.payload()).unwrap();
            assert_eq!(back, task);
            assert!(task.payload().get("kind").is_none());
        }
        assert!(Task::from_parts("send", &json!({})).is_err());
        assert!(Task::from_parts("mop_floor", &json!({})).is_err());
        assert!(Task::from_parts("send", &json!("x")).is_err());
    }

    #[test]
    fn escalation_reasons_have_one_name_each() {
        for reason in EscalationReason::ALL {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, json!(reason.as_str()));
            assert_eq!(reason.as_str().parse::<EscalationReason>(), Ok(reason));
        }
    }

    #[test]
    fn patch_merges_nested_sections_and_validates() {
        let base = AgentConfig::default();
        let cfg = AgentConfig::patched(
            &base,
            json!({"temperature": 0.7, "escalation": {"support_contact": "5511988887777"}}),
        )
        .unwrap();
        assert_eq!(cfg.temperature, 0.7);
        assert_eq!(
            cfg.escalation.support_contact.as_deref(),
            Some("5511988887777")
        );
        // Untouched nested fields keep their values.
        assert_eq!(cfg.escalation.keywords, base.escalation.keywords);
    }

    #[test]
    fn bad_hours_are_reported_under_the_agents_hours() {
        let err = AgentConfig::patched(
            &AgentConfig::default(),
            json!({"hours": {"time_zone": "Mars/Olympus", "on_call_contact": "call me"}}),
        )
        .unwrap_err();
        let fields: Vec<String> = err.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["hours.time_zone", "hours.on_call_contact"]);
    }

    #[test]
    fn a_message_set_to_null_falls_back_to_the_shipped_one() {
        let base = AgentConfig::patched(
            &AgentConfig::default(),
            json!({"messages": {"pt": {"escalation": "Já lhe respondo.", "closed": "Até já."}}}),
        )
        .unwrap();
        let one =
            AgentConfig::patched(&base, json!({"messages": {"pt": {"closed": null}}})).unwrap();
        assert_eq!(
            one.messages["pt"].escalation.as_deref(),
            Some("Já lhe respondo.")
        );
        assert_eq!(one.messages["pt"].closed, None);
        // The console sends every message of every language it shows: all cleared, none kept.
        let all = AgentConfig::patched(
            &one,
            json!({"messages": {"pt": {"escalation": null}, "de": {"closed": null}}}),
        )
        .unwrap();
        assert!(all.messages.is_empty(), "{:?}", all.messages);
    }

    #[test]
    fn patch_reports_every_bad_field_by_path() {
        let base = AgentConfig::default();
        let cases = [
            (json!({"temperature": 3.0}), "temperature"),
            (json!({"top_k": 0}), "top_k"),
            (json!({"top_k": 51}), "top_k"),
            (json!({"temperature": "hot"}), "temperature"),
            (json!({"tempreature": 1.0}), "tempreature"),
            (
                json!({"escalation": {"support_contact": "call me"}}),
                "escalation.support_contact",
            ),
            (
                json!({"escalation": {"keywords": ["ok", ""]}}),
                "escalation.keywords[1]",
            ),
            (json!({"language": "Portuguese"}), "language"),
            (json!({"answerer": "gpt"}), "answerer"),
            (json!({"prompt_file": "../../etc/passwd"}), "prompt_file"),
            (json!([1, 2]), "body"),
        ];
        for (patch, field) in cases {
            let errors = AgentConfig::patched(&base, patch.clone()).unwrap_err();
            assert!(
                errors
                    .iter()
                    .any(|e| e.field == field || e.message.contains(field)),
                "{patch}: expected an error on {field}, got {errors:?}"
            );
        }
    }

    #[test]
    fn several_errors_are_reported_together() {
        let errors = AgentConfig::patched(
            &AgentConfig::default(),
            json!({"temperature": 9.0, "top_k": 0}),
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["temperature", "top_k"]);
    }

    #[test]
    fn names_are_slugs() {
        for ok in ["demo", "casa-nube", "a1_b"] {
            assert!(validate_name("name", ok).is_none(), "{ok}");
        }
        for bad in ["", "Demo", "-x", "a b", "ação", &"x".repeat(65)] {
            assert!(validate_name("name", bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn phone_numbers() {
        assert!(is_phone_number("5511988887777"));
        assert!(is_phone_number("+351912345678"));
        assert!(!is_phone_number("12345"));
        assert!(!is_phone_number("55 11 98888"));
    }
}
