//! Plain domain types shared by every module: agents, channels, contacts, conversations,
//! messages, knowledge documents and chunks, jobs, escalations. No I/O here.

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

/// Milliseconds since the Unix epoch, the storage form of every timestamp.
pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The inverse of [`to_millis`]; out-of-range values clamp to the epoch.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Which answerer writes an agent's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LowConfidence {
    /// Tell the customer a colleague will follow up and escalate.
    #[default]
    Escalate,
    /// Answer anyway.
    Answer,
}

/// A template message registered with WhatsApp, used outside the 24-hour window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    /// Template name as approved by Meta.
    pub name: String,
    /// Language code, e.g. `en_US`.
    pub language: String,
}

/// Voice-note handling for one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
            default_reply: "Sorry, I can't listen to audio messages yet. Could you write your question to me?".into(),
            language: None,
        }
    }
}

/// Escalation rules and messages for one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
            customer_message: "I'll pass this to a colleague, who will get back to you here shortly.".into(),
            support_note: String::new(),
            reengagement_template: None,
        }
    }
}

/// Everything configurable about an agent, stored as one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Passages scoring below this (cosine) are not used, 0 to 1.
    pub min_score: f32,
    /// Replies whose confidence is below this are not sent as answers, 0 to 1.
    pub confidence_threshold: f32,
    /// Reply in this language (a hint to the model), e.g. `es`.
    pub language: Option<String>,
    /// Voice notes.
    pub voice: VoiceSettings,
    /// Escalation rules.
    pub escalation: EscalationSettings,
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
            confidence_threshold: 0.45,
            language: None,
            voice: VoiceSettings::default(),
            escalation: EscalationSettings::default(),
        }
    }
}

/// One field that failed validation and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
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
        check((1..=8192).contains(&self.max_tokens), "max_tokens", "must be between 1 and 8192");
        check((1..=50).contains(&self.top_k), "top_k", "must be between 1 and 50");
        check(
            self.min_score.is_finite() && (0.0..=1.0).contains(&self.min_score),
            "min_score",
            "must be between 0 and 1",
        );
        check(
            self.confidence_threshold.is_finite() && (0.0..=1.0).contains(&self.confidence_threshold),
            "confidence_threshold",
            "must be between 0 and 1",
        );
        check(self.system_prompt.len() <= 32_000, "system_prompt", "must be at most 32000 bytes");
        check(self.business_name.len() <= 200, "business_name", "must be at most 200 bytes");
        if let Some(file) = &self.prompt_file {
            check(
                !file.is_empty()
                    && !file.contains("..")
                    && !file.starts_with('/')
                    && file.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)),
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
        for (field, lang) in [("language", &self.language), ("voice.language", &self.voice.language)] {
            if let Some(lang) = lang {
                if !(2..=3).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_lowercase()) {
                    errors.push(FieldError::new(field, "must be an ISO 639 code such as `en` or `pt`"));
                }
            }
        }
        if self.voice.default_reply.trim().is_empty() {
            errors.push(FieldError::new("voice.default_reply", "must not be empty"));
        }
        for (i, k) in self.escalation.keywords.iter().enumerate() {
            if k.trim().is_empty() || k.len() > 100 {
                errors.push(FieldError::new(format!("escalation.keywords[{i}]"), "must be 1-100 characters"));
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
            errors.push(FieldError::new("escalation.customer_message", "must not be empty"));
        }
        if let Some(t) = &self.escalation.reengagement_template {
            if t.name.trim().is_empty() {
                errors.push(FieldError::new("escalation.reengagement_template.name", "must not be empty"));
            }
            if t.language.trim().is_empty() {
                errors.push(FieldError::new("escalation.reengagement_template.language", "must not be empty"));
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
                    Some(existing) if existing.is_object() && value.is_object() => merge_json(existing, value),
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
    /// field), then validated. Unknown fields and wrong types are reported by path.
    pub fn patched(base: &AgentConfig, patch: serde_json::Value) -> Result<AgentConfig, Vec<FieldError>> {
        if !patch.is_object() {
            return Err(vec![FieldError::new("body", "must be a JSON object")]);
        }
        let mut value = serde_json::to_value(base).map_err(|e| vec![FieldError::new("body", e.to_string())])?;
        merge_json(&mut value, patch);
        let config: AgentConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            vec![FieldError::new(if path == "." { "body".to_string() } else { path }, message)]
        })?;
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Unique slug, e.g. `demo`.
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
    /// The knowledge collection this agent searches.
    pub fn collection(&self) -> &str {
        self.config.collection.as_deref().unwrap_or(&self.name)
    }
}

/// A knowledge document as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_merges_nested_sections_and_validates() {
        let base = AgentConfig::default();
        let cfg = AgentConfig::patched(&base, json!({"temperature": 0.7, "escalation": {"support_contact": "5511988887777"}}))
            .unwrap();
        assert_eq!(cfg.temperature, 0.7);
        assert_eq!(cfg.escalation.support_contact.as_deref(), Some("5511988887777"));
        // Untouched nested fields keep their values.
        assert_eq!(cfg.escalation.keywords, base.escalation.keywords);
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
            (json!({"escalation": {"support_contact": "call me"}}), "escalation.support_contact"),
            (json!({"escalation": {"keywords": ["ok", ""]}}), "escalation.keywords[1]"),
            (json!({"language": "Portuguese"}), "language"),
            (json!({"answerer": "gpt"}), "answerer"),
            (json!({"prompt_file": "../../etc/passwd"}), "prompt_file"),
            (json!([1, 2]), "body"),
        ];
        for (patch, field) in cases {
            let errors = AgentConfig::patched(&base, patch.clone()).unwrap_err();
            assert!(
                errors.iter().any(|e| e.field == field || e.message.contains(field)),
                "{patch}: expected an error on {field}, got {errors:?}"
            );
        }
    }

    #[test]
    fn several_errors_are_reported_together() {
        let errors = AgentConfig::patched(&AgentConfig::default(), json!({"temperature": 9.0, "top_k": 0})).unwrap_err();
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
