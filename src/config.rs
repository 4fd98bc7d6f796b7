//! Settings: compiled-in defaults < optional `palaver.toml` < `PALAVER__SECTION__KEY` environment
//! variables. Unknown keys and bad values stop the program at start with a message naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A setting that could not be loaded or is out of range. The message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read into `Settings` (unknown key, wrong type).
    #[error("invalid configuration: {0}")]
    Load(String),
    /// A value was read but is not acceptable.
    #[error("invalid configuration: `{key}`: {reason}")]
    Invalid {
        /// Dotted key, e.g. `server.bind`.
        key: &'static str,
        /// Why the value was refused.
        reason: String,
    },
}

impl ConfigError {
    fn invalid(key: &'static str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key,
            reason: reason.into(),
        }
    }
}

/// All of Palaver's settings. Every section has defaults that run the demo with nothing set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// HTTP server.
    pub server: ServerSettings,
    /// Where local state lives.
    pub data: DataSettings,
    /// SQL store (SQLite by default, Postgres for several replicas).
    pub database: DatabaseSettings,
    /// Local model files.
    pub models: ModelSettings,
    /// Embedding backend.
    pub embedding: EmbeddingSettings,
    /// Vector index backend.
    pub vectors: VectorSettings,
    /// Ingestion and chunking.
    pub knowledge: KnowledgeSettings,
    /// Hybrid retrieval.
    pub retrieval: RetrievalSettings,
    /// Chat model backends.
    pub llm: LlmSettings,
    /// Conversation handling.
    pub pipeline: PipelineSettings,
    /// Background job runner.
    pub workers: WorkerSettings,
    /// Voice-note transcription.
    pub speech: SpeechSettings,
    /// WhatsApp channels.
    pub channels: ChannelSettings,
    /// Eval suites and their LLM judge.
    pub eval: EvalSettings,
    /// People: sessions, invitations, sign-in throttling, the first owner.
    pub accounts: AccountSettings,
    /// The event log and its streams.
    pub events: EventSettings,
}

/// The event log and its live streams.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventSettings {
    /// How long events are kept, in hours; older ones are pruned.
    pub retention_hours: u64,
    /// Events held for the live streams of this process; a stream that falls this far behind
    /// is cut off (its client resumes from the log with `Last-Event-ID`).
    pub buffer: usize,
    /// Seconds between heartbeats on an idle stream.
    pub heartbeat_secs: u64,
    /// Failed delivery attempts in a row after which an outgoing webhook is paused.
    pub hook_pause_after: u32,
    /// Seconds an outgoing webhook's receiver has to answer.
    pub hook_timeout_secs: u64,
    /// Outgoing webhook subscriptions a workspace may have.
    pub hooks_per_workspace: usize,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            retention_hours: 7 * 24,
            buffer: 1024,
            heartbeat_secs: 15,
            hook_pause_after: 20,
            hook_timeout_secs: 10,
            hooks_per_workspace: 20,
        }
    }
}

/// People and their sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountSettings {
    /// How long a sign-in lasts, in seconds.
    pub session_ttl_secs: u64,
    /// How long an invitation link stays valid, in hours.
    pub invitation_hours: u64,
    /// Failed sign-ins (per email, and per client address) before sign-in is refused for a while.
    pub sign_in_attempts: u32,
    /// The window those failures are counted in, and how long sign-in is then refused, in seconds.
    pub sign_in_window_secs: u64,
    /// Unattended installs: the instance owner created at first start (with `owner_password`)
    /// instead of a printed set-up link.
    pub owner_email: Option<String>,
    /// That owner's password.
    pub owner_password: Option<SecretString>,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            session_ttl_secs: 7 * 24 * 3600,
            invitation_hours: 72,
            sign_in_attempts: 5,
            sign_in_window_secs: 15 * 60,
            owner_email: None,
            owner_password: None,
        }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on.
    pub bind: String,
    /// URL at which providers reach this server; used to show each channel's webhook URL.
    pub public_url: String,
    /// Bootstrap admin API key. When unset, `serve` creates one on first start and prints it once.
    pub admin_api_key: Option<SecretString>,
    /// Largest accepted webhook body, in bytes.
    pub max_webhook_bytes: usize,
    /// Largest accepted upload (documents, audio), in bytes.
    pub max_upload_bytes: usize,
    /// Per-request timeout for API calls, in seconds.
    pub request_timeout_secs: u64,
    /// How long a webhook's body may take to arrive once its headers have, in seconds: anyone
    /// may send one, so it is far shorter than the request timeout.
    pub webhook_body_secs: u64,
    /// On SIGTERM, how long `/readyz` says "draining" while requests are still served, so a
    /// load balancer stops sending new ones before the listener closes, in seconds.
    pub drain_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            admin_api_key: None,
            max_webhook_bytes: 1024 * 1024,
            max_upload_bytes: 20 * 1024 * 1024,
            request_timeout_secs: 120,
            webhook_body_secs: 10,
            drain_secs: 5,
        }
    }
}

/// `http://` and the listening address `bind`, with an unspecified address (`0.0.0.0`, `[::]`)
/// read as this machine's loopback. `bind` is returned as given when it is not an address, for
/// validation to refuse.
fn local_url(bind: &str) -> String {
    match bind.parse::<SocketAddr>() {
        Ok(mut addr) => {
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{addr}")
        }
        Err(_) => format!("http://{bind}"),
    }
}

/// Location of local state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSettings {
    /// Directory holding the SQLite file and the embedded vector index.
    pub dir: PathBuf,
}

impl Default for DataSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data"),
        }
    }
}

/// SQL store settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://...`. Empty: `sqlite://<data.dir>/palaver.db`.
    pub url: Option<SecretString>,
    /// Connection pool size (Postgres; SQLite readers).
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 8,
        }
    }
}

/// Local model files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    /// Cache directory for fetched models. `PALAVER_MODELS_DIR` overrides it; default
    /// `$XDG_CACHE_HOME/palaver/models` or `~/.cache/palaver/models`.
    pub dir: Option<PathBuf>,
    /// Use these local files instead of fetching: model name -> file or directory path.
    pub paths: BTreeMap<String, PathBuf>,
}

/// Which embedder turns text into vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingBackend {
    /// A model of the catalogue run in-process (`embedding.local_model`).
    Local,
    /// Any OpenAI-compatible `/v1/embeddings` endpoint.
    Openai,
}

/// Embedding settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingSettings {
    /// `local` or `openai`.
    pub backend: EmbeddingBackend,
    /// The local model: `embeddinggemma-300m` (100+ languages, the default),
    /// `multilingual-e5-small` (about 100 languages, smaller and faster), `portuguese-e5-small`
    /// (English and Portuguese) or `all-minilm-l6-v2` (English).
    pub local_model: String,
    /// Sentences per batch for the local model.
    pub batch_size: usize,
    /// Concurrent embedding jobs on the blocking pool (local model).
    pub max_concurrent: usize,
    /// OpenAI-compatible base URL, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// API key for the OpenAI-compatible server.
    pub api_key: Option<SecretString>,
    /// Embedding model name on the server.
    pub model: String,
    /// Vector size the server returns (checked on first use).
    pub dimensions: usize,
    /// Timeout for one request, in seconds.
    pub timeout_secs: u64,
}

/// The local embedding models `embedding.local_model` may name, the default first:
/// multilingual, because customers write in their own language about documents in the
/// business's.
pub const LOCAL_EMBEDDING_MODELS: [&str; 4] = [
    "embeddinggemma-300m",
    "multilingual-e5-small",
    "portuguese-e5-small",
    "all-minilm-l6-v2",
];

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            backend: EmbeddingBackend::Local,
            local_model: LOCAL_EMBEDDING_MODELS[0].into(),
            batch_size: 32,
            max_concurrent: 1,
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            model: "text-embedding-3-small".into(),
            dimensions: 1536,
            timeout_secs: 30,
        }
    }
}

/// Which vector index holds the embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorBackend {
    /// qdrant-edge, embedded in the data directory.
    Edge,
    /// A Qdrant server or cluster through qdrant-client (gRPC).
    Qdrant,
}

/// Vector index settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VectorSettings {
    /// `edge` (embedded) or `qdrant` (server).
    pub backend: VectorBackend,
    /// Qdrant gRPC URL, e.g. `http://127.0.0.1:6334`.
    pub url: String,
    /// Qdrant API key.
    pub api_key: Option<SecretString>,
    /// Prefix of collection names on the Qdrant server.
    pub collection_prefix: String,
    /// HNSW search breadth; higher is slower and more exact.
    pub hnsw_ef: usize,
}

impl Default for VectorSettings {
    fn default() -> Self {
        Self {
            backend: VectorBackend::Edge,
            url: "http://127.0.0.1:6334".into(),
            api_key: None,
            collection_prefix: "palaver_".into(),
            hnsw_ef: 128,
        }
    }
}

/// Ingestion settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeSettings {
    /// Target chunk size in tokens (cl100k).
    pub chunk_tokens: usize,
    /// Tokens repeated between consecutive chunks of one section.
    pub chunk_overlap: usize,
    /// Largest file ingested, in bytes.
    pub max_file_bytes: u64,
}

impl Default for KnowledgeSettings {
    fn default() -> Self {
        Self {
            chunk_tokens: 200,
            chunk_overlap: 30,
            max_file_bytes: 20 * 1024 * 1024,
        }
    }
}

/// Retrieval settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrievalSettings {
    /// Candidates taken from each of the dense and keyword searches before fusion.
    pub candidates: usize,
    /// Reciprocal rank fusion constant.
    pub rrf_k: f32,
    /// Weight of the dense (embedding) ranking in the fusion; the keyword ranking weighs 1.
    /// Unset: the embedder's own ([`crate::embed::Embedder::fusion_weight`]), 2 for the
    /// multilingual models and OpenAI-compatible servers, 1 for English-only MiniLM. Keywords
    /// find codes and names but mislead across languages and on words every passage shares
    /// ("bike" in a bike shop): with multilingual-e5 and weight 2, `palaver eval` over the
    /// shipped suites answered 2 more cases right and none fewer than with 1 (hit@3 on the
    /// bike shop 0.92 -> 0.96); with 3 it lost one of them again.
    pub dense_weight: Option<f32>,
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        Self {
            candidates: 40,
            rrf_k: 60.0,
            dense_weight: None,
        }
    }
}

/// Chat model settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSettings {
    /// OpenAI-compatible server.
    pub openai: OpenAiSettings,
    /// In-process GGUF model.
    pub local: LocalLlmSettings,
}

/// An OpenAI-compatible chat server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiSettings {
    /// Base URL, e.g. `https://api.openai.com/v1` or Ollama's `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// API key (Ollama and llama.cpp accept any).
    pub api_key: Option<SecretString>,
    /// Model used when an agent names none.
    pub model: String,
    /// Timeout for one request, in seconds.
    pub timeout_secs: u64,
    /// Retries of transient failures (429, 5xx, timeouts).
    pub max_retries: u32,
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            model: "gpt-4o-mini".into(),
            timeout_secs: 60,
            max_retries: 3,
        }
    }
}

/// The in-process GGUF answerer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalLlmSettings {
    /// Model name from the catalogue (`palaver models list`) or a path to a GGUF file.
    pub model: String,
    /// Threads used by one generation.
    pub threads: usize,
    /// Context window in tokens.
    pub context_tokens: usize,
}

impl Default for LocalLlmSettings {
    fn default() -> Self {
        Self {
            model: "smollm2-135m".into(),
            threads: 2,
            context_tokens: 2048,
        }
    }
}

/// Conversation handling settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Most history turns given to the model.
    pub history_turns: usize,
    /// Token budget for history.
    pub history_tokens: usize,
    /// Token budget for the whole prompt.
    pub prompt_tokens: usize,
    /// A conversation idle longer than this starts a fresh context, in hours.
    pub idle_reset_hours: u64,
    /// Messages from one customer within this window become one turn, in milliseconds.
    pub debounce_ms: u64,
    /// Longest wait for the answerer in one turn, retries included, in seconds. A turn with no
    /// answer by then goes to a person: a customer is better served by a hand-over within a
    /// minute or two than by a reply after the model server's timeouts and retries add up.
    pub answer_deadline_secs: u64,
    /// Directory of prompt files overriding the shipped templates by name and holding the files
    /// agents name in `prompt_file` (ignored when it does not exist).
    pub prompts_dir: Option<PathBuf>,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            history_turns: 10,
            history_tokens: 1000,
            prompt_tokens: 3000,
            idle_reset_hours: 24,
            debounce_ms: 2000,
            answer_deadline_secs: 90,
            prompts_dir: Some(PathBuf::from("prompts")),
        }
    }
}

/// Background job runner settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Jobs run at once by this process.
    pub concurrency: usize,
    /// Attempts before a job is given up, whatever its deadline (a safety net: jobs are
    /// normally bounded by `retry_for_secs`).
    pub max_attempts: u32,
    /// How long a failing job (answering a customer, sending a reply) keeps being retried, in
    /// seconds: as long as a reply is still worth sending. At most a day (WhatsApp's
    /// customer-service window).
    pub retry_for_secs: u64,
    /// Times a job's lease may expire (its process died while running it) before it is given
    /// up, so a job that kills its worker cannot take down every replica in turn.
    pub max_abandoned: u32,
    /// How long a claimed job is leased, in seconds.
    pub lease_secs: u64,
    /// First retry delay, in milliseconds (doubles each attempt, with jitter).
    pub backoff_base_ms: u64,
    /// Longest retry delay, in seconds.
    pub backoff_max_secs: u64,
    /// How often idle workers look for due jobs, in milliseconds.
    pub poll_ms: u64,
    /// How often escalations are checked for the agents' idle limits, in seconds.
    pub idle_check_secs: u64,
}

/// How long a job is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// Retried until this long after it was enqueued (a reply is still worth sending).
    pub retry_for: Duration,
    /// Given up when its lease expired this many times without a result (the process died
    /// while running it: a job that kills its worker must not kill every replica in turn).
    pub max_abandoned: u32,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            retry_for: Duration::from_secs(6 * 3600),
            max_abandoned: 3,
        }
    }
}

impl WorkerSettings {
    /// How long jobs are retried, as the store records it.
    pub fn limits(&self) -> JobLimits {
        JobLimits {
            retry_for: std::time::Duration::from_secs(self.retry_for_secs),
            max_abandoned: self.max_abandoned,
        }
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 8,
            max_attempts: 1000,
            retry_for_secs: 6 * 3600,
            max_abandoned: 3,
            lease_secs: 120,
            backoff_base_ms: 500,
            backoff_max_secs: 60,
            poll_ms: 250,
            idle_check_secs: 30,
        }
    }
}

/// Speech settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpeechSettings {
    /// Whisper model name from the catalogue or a path to a ggml file.
    pub model: String,
    /// Threads per transcription (ggml threads busy-wait: keep at most the free cores).
    pub threads: usize,
    /// Transcriptions run at once.
    pub max_concurrent: usize,
    /// Longest accepted audio, in seconds.
    pub max_audio_secs: u64,
    /// Seconds from the start of a note that language detection hears (1-30): whisper's
    /// detection encodes this much instead of a whole 30 s window.
    pub detect_seconds: u64,
    /// Detect a shorter note's language through a window cut to its length (rounded up to 5 s)
    /// instead of `detect_seconds`: the rest would be padding silence.
    pub detect_to_note: bool,
    /// Cut the quiet before a note's first and after its last speech before transcribing.
    pub trim_silence: bool,
    /// Keep transcription states (whisper's caches and buffers) between notes.
    pub warm_state: bool,
    /// Size the encoder's window to a note of under 30 s plus this many seconds (unset: the
    /// whole 30 s window, whatever the note's length).
    pub window_margin_secs: Option<u64>,
}

impl Default for SpeechSettings {
    fn default() -> Self {
        Self {
            model: "whisper-base".into(),
            threads: 2,
            max_concurrent: 1,
            max_audio_secs: 600,
            detect_seconds: 10,
            detect_to_note: true,
            trim_silence: false,
            warm_state: true,
            window_margin_secs: None,
        }
    }
}

/// WhatsApp channel settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelSettings {
    /// 32-byte key (base64) encrypting channel credentials at rest. When unset, a key is
    /// generated once into `<data.dir>/secret.key`.
    pub encryption_key: Option<SecretString>,
    /// Messages a channel may send per minute (token bucket refill rate).
    pub rate_per_minute: u32,
    /// Burst size of the send token bucket.
    pub burst: u32,
    /// Meta Graph API address, without a version: each Meta channel calls the Graph API version
    /// it chose (`v23.0` unless it chose another). A version at its end, as earlier releases
    /// took it (`https://graph.facebook.com/v22.0`), becomes the version of the channels that
    /// chose none; it must be one Meta publishes.
    pub meta_graph_url: String,
    /// Kapso API base URL.
    pub kapso_url: String,
    /// Timeout for provider calls, in seconds.
    pub timeout_secs: u64,
    /// After a send timed out (the provider may have accepted it), how long to wait for its
    /// status webhook before sending again, in seconds. Providers that deduplicate sends by key
    /// (Kapso) are sent again at once.
    pub unconfirmed_grace_secs: u64,
    /// Let channel URLs (an Evolution server) point to loopback, private and link-local
    /// addresses. Off by default: with several businesses on one installation such a URL would
    /// reach the host's internal services. Turn it on for Evolution running beside Palaver.
    pub allow_private_urls: bool,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            encryption_key: None,
            rate_per_minute: 60,
            burst: 10,
            meta_graph_url: "https://graph.facebook.com".into(),
            kapso_url: "https://api.kapso.ai".into(),
            timeout_secs: 20,
            unconfirmed_grace_secs: 30,
            allow_private_urls: false,
        }
    }
}

/// Eval runner settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSettings {
    /// Directory of suites; the API runs suites from here only, and reads no file outside the
    /// directory that contains it.
    pub dir: PathBuf,
    /// Where `palaver eval` writes its reports.
    pub out_dir: PathBuf,
    /// Cases run at once.
    pub concurrency: usize,
    /// The OpenAI-compatible server that grades `judge` assertions. Unset: the `llm.openai`
    /// server when one is configured; with neither, `judge` assertions are reported as skipped.
    pub judge: Option<OpenAiSettings>,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("eval"),
            out_dir: PathBuf::from("eval-results"),
            concurrency: 4,
            judge: None,
        }
    }
}

impl LlmSettings {
    /// True when an OpenAI-compatible server is set up (a key, or a base URL of its own).
    pub fn openai_configured(&self) -> bool {
        self.openai.api_key.is_some() || self.openai.base_url != OpenAiSettings::default().base_url
    }
}

/// Where the settings come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// A TOML file; `None` reads `palaver.toml` in the working directory when it exists.
    pub file: Option<PathBuf>,
}

impl Settings {
    /// Loads defaults, then the TOML file, then `PALAVER__SECTION__KEY` variables, and validates.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        match &sources.file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::Load(format!(
                        "configuration file {} does not exist",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None => {
                let default = Path::new("palaver.toml");
                if default.exists() {
                    figment = figment.merge(Toml::file_exact(default));
                }
            }
        }
        figment = figment.merge(Env::prefixed("PALAVER__").split("__"));
        let mut settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Load(describe_figment_error(e)))?;
        if figment.find_value("server.public_url").is_err() {
            // Unset, the public URL follows the listening address, so the links `serve` prints
            // (the set-up page, webhook URLs) point where it listens.
            settings.server.public_url = local_url(&settings.server.bind);
        }
        if let Some(dir) = std::env::var_os("PALAVER_MODELS_DIR") {
            settings.models.dir = Some(PathBuf::from(dir));
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks ranges and formats that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.bind.parse::<SocketAddr>().map_err(|e| {
            ConfigError::invalid(
                "server.bind",
                format!("`{}` is not an address: {e}", self.server.bind),
            )
        })?;
        url_like("server.public_url", &self.server.public_url)?;
        if let Some(key) = &self.server.admin_api_key {
            if key.expose_secret().len() < 16 {
                return Err(ConfigError::invalid(
                    "server.admin_api_key",
                    "must be at least 16 characters",
                ));
            }
        }
        positive(
            "server.max_webhook_bytes",
            self.server.max_webhook_bytes as u64,
        )?;
        positive(
            "server.max_upload_bytes",
            self.server.max_upload_bytes as u64,
        )?;
        positive(
            "server.request_timeout_secs",
            self.server.request_timeout_secs,
        )?;
        positive("server.webhook_body_secs", self.server.webhook_body_secs)?;
        if self.data.dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("data.dir", "must not be empty"));
        }
        if let Some(url) = &self.database.url {
            let url = url.expose_secret();
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return Err(ConfigError::invalid(
                    "database.url",
                    "must start with sqlite:, postgres:// or postgresql://",
                ));
            }
        }
        positive(
            "database.max_connections",
            self.database.max_connections as u64,
        )?;
        for (name, path) in &self.models.paths {
            if path.as_os_str().is_empty() {
                return Err(ConfigError::Load(format!(
                    "`models.paths.{name}`: path must not be empty"
                )));
            }
        }
        positive("embedding.batch_size", self.embedding.batch_size as u64)?;
        positive(
            "embedding.max_concurrent",
            self.embedding.max_concurrent as u64,
        )?;
        positive("embedding.timeout_secs", self.embedding.timeout_secs)?;
        if self.embedding.backend == EmbeddingBackend::Local
            && !LOCAL_EMBEDDING_MODELS.contains(&self.embedding.local_model.as_str())
        {
            return Err(ConfigError::invalid(
                "embedding.local_model",
                format!(
                    "unknown local embedding model `{}` (known: {})",
                    self.embedding.local_model,
                    LOCAL_EMBEDDING_MODELS.join(", ")
                ),
            ));
        }
        if self.embedding.backend == EmbeddingBackend::Openai {
            url_like("embedding.base_url", &self.embedding.base_url)?;
            positive("embedding.dimensions", self.embedding.dimensions as u64)?;
            if self.embedding.model.trim().is_empty() {
                return Err(ConfigError::invalid("embedding.model", "must not be empty"));
            }
        }
        if self.vectors.backend == VectorBackend::Qdrant {
            url_like("vectors.url", &self.vectors.url)?;
        }
        positive("vectors.hnsw_ef", self.vectors.hnsw_ef as u64)?;
        positive("knowledge.chunk_tokens", self.knowledge.chunk_tokens as u64)?;
        if self.knowledge.chunk_tokens < 32 || self.knowledge.chunk_tokens > 2000 {
            return Err(ConfigError::invalid(
                "knowledge.chunk_tokens",
                "must be between 32 and 2000",
            ));
        }
        if self.knowledge.chunk_overlap >= self.knowledge.chunk_tokens / 2 {
            return Err(ConfigError::invalid(
                "knowledge.chunk_overlap",
                "must be less than half of knowledge.chunk_tokens",
            ));
        }
        positive("knowledge.max_file_bytes", self.knowledge.max_file_bytes)?;
        positive("retrieval.candidates", self.retrieval.candidates as u64)?;
        if self.retrieval.rrf_k.is_nan() || self.retrieval.rrf_k <= 0.0 {
            return Err(ConfigError::invalid(
                "retrieval.rrf_k",
                "must be greater than 0",
            ));
        }
        if self
            .retrieval
            .dense_weight
            .is_some_and(|w| !w.is_finite() || w <= 0.0)
        {
            return Err(ConfigError::invalid(
                "retrieval.dense_weight",
                "must be a number greater than 0",
            ));
        }
        url_like("llm.openai.base_url", &self.llm.openai.base_url)?;
        positive("llm.openai.timeout_secs", self.llm.openai.timeout_secs)?;
        positive("llm.local.threads", self.llm.local.threads as u64)?;
        positive(
            "llm.local.context_tokens",
            self.llm.local.context_tokens as u64,
        )?;
        positive(
            "pipeline.history_tokens",
            self.pipeline.history_tokens as u64,
        )?;
        if self.pipeline.prompt_tokens < 256 {
            return Err(ConfigError::invalid(
                "pipeline.prompt_tokens",
                "must be at least 256",
            ));
        }
        positive("pipeline.idle_reset_hours", self.pipeline.idle_reset_hours)?;
        if self.pipeline.debounce_ms > 60_000 {
            return Err(ConfigError::invalid(
                "pipeline.debounce_ms",
                "must be at most 60000",
            ));
        }
        if !(1..=3600).contains(&self.pipeline.answer_deadline_secs) {
            return Err(ConfigError::invalid(
                "pipeline.answer_deadline_secs",
                "must be between 1 and 3600",
            ));
        }
        positive("workers.concurrency", self.workers.concurrency as u64)?;
        positive("workers.max_attempts", self.workers.max_attempts as u64)?;
        positive("workers.retry_for_secs", self.workers.retry_for_secs)?;
        if self.workers.retry_for_secs > 24 * 3600 {
            return Err(ConfigError::invalid(
                "workers.retry_for_secs",
                "must be at most 86400 (a reply older than WhatsApp's 24-hour window cannot be sent)",
            ));
        }
        positive("workers.max_abandoned", self.workers.max_abandoned as u64)?;
        positive("workers.lease_secs", self.workers.lease_secs)?;
        positive("workers.backoff_base_ms", self.workers.backoff_base_ms)?;
        positive("workers.backoff_max_secs", self.workers.backoff_max_secs)?;
        positive("workers.poll_ms", self.workers.poll_ms)?;
        positive("workers.idle_check_secs", self.workers.idle_check_secs)?;
        positive("speech.threads", self.speech.threads as u64)?;
        positive("speech.max_concurrent", self.speech.max_concurrent as u64)?;
        positive("speech.max_audio_secs", self.speech.max_audio_secs)?;
        if !(1..=30).contains(&self.speech.detect_seconds) {
            return Err(ConfigError::invalid(
                "speech.detect_seconds",
                "must be between 1 and 30 (whisper hears 30 s at most)",
            ));
        }
        if self.speech.window_margin_secs.is_some_and(|m| m > 30) {
            return Err(ConfigError::invalid(
                "speech.window_margin_secs",
                "must be at most 30 (whisper's window is 30 s; leave it unset for the whole window)",
            ));
        }
        if let Some(key) = &self.channels.encryption_key {
            crate::crypto::parse_key(key.expose_secret())
                .map_err(|e| ConfigError::invalid("channels.encryption_key", e.to_string()))?;
        }
        positive(
            "channels.rate_per_minute",
            self.channels.rate_per_minute as u64,
        )?;
        positive("channels.burst", self.channels.burst as u64)?;
        url_like("channels.meta_graph_url", &self.channels.meta_graph_url)?;
        url_like("channels.kapso_url", &self.channels.kapso_url)?;
        positive("channels.timeout_secs", self.channels.timeout_secs)?;
        if self.eval.dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("eval.dir", "must not be empty"));
        }
        positive("eval.concurrency", self.eval.concurrency as u64)?;
        if let Some(judge) = &self.eval.judge {
            url_like("eval.judge.base_url", &judge.base_url)?;
            positive("eval.judge.timeout_secs", judge.timeout_secs)?;
            if judge.model.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "eval.judge.model",
                    "must not be empty",
                ));
            }
        }
        positive("accounts.session_ttl_secs", self.accounts.session_ttl_secs)?;
        positive("events.retention_hours", self.events.retention_hours)?;
        positive("events.buffer", self.events.buffer as u64)?;
        positive("events.heartbeat_secs", self.events.heartbeat_secs)?;
        positive(
            "events.hook_pause_after",
            self.events.hook_pause_after as u64,
        )?;
        positive("events.hook_timeout_secs", self.events.hook_timeout_secs)?;
        positive("accounts.invitation_hours", self.accounts.invitation_hours)?;
        positive(
            "accounts.sign_in_attempts",
            self.accounts.sign_in_attempts as u64,
        )?;
        positive(
            "accounts.sign_in_window_secs",
            self.accounts.sign_in_window_secs,
        )?;
        if self.accounts.owner_email.is_some() != self.accounts.owner_password.is_some() {
            return Err(ConfigError::invalid(
                "accounts.owner_email",
                "set both owner_email and owner_password, or neither",
            ));
        }
        Ok(())
    }

    /// The database URL, with the SQLite default under the data directory.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.expose_secret().to_string(),
            None => format!("sqlite://{}", self.data.dir.join("palaver.db").display()),
        }
    }

    /// The directory fetched models are cached in.
    pub fn models_dir(&self) -> PathBuf {
        if let Some(dir) = &self.models.dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"));
        base.join("palaver").join("models")
    }
}

fn positive(key: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be greater than 0"));
    }
    Ok(())
}

fn url_like(key: &'static str, value: &str) -> Result<(), ConfigError> {
    if !(value.starts_with("http://") || value.starts_with("https://")) || value.len() < 10 {
        return Err(ConfigError::invalid(
            key,
            format!("`{value}` is not an http:// or https:// URL"),
        ));
    }
    Ok(())
}

/// Figment's errors carry the key path and the source; render each error on its own line.
fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("`{}`: ", e.path.join("."))
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" (from {} {src})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            format!("{key}{}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// `figment::Jail` closures return figment's (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn the_answer_deadline_is_bounded() {
        for (secs, ok) in [
            (0, false),
            (1, true),
            (90, true),
            (3600, true),
            (3601, false),
        ] {
            let mut s = Settings::default();
            s.pipeline.answer_deadline_secs = secs;
            match s.validate() {
                Ok(()) => assert!(ok, "{secs} s accepted"),
                Err(e) => {
                    assert!(!ok, "{secs} s refused: {e}");
                    assert!(
                        e.to_string().contains("pipeline.answer_deadline_secs"),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn env_overrides_file_and_file_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "palaver.toml",
                "[server]\nbind = \"127.0.0.1:9000\"\n[retrieval]\ncandidates = 7\n",
            )?;
            jail.set_env("PALAVER__SERVER__BIND", "127.0.0.1:9100");
            let s = Settings::load(&Sources::default()).unwrap();
            assert_eq!(s.server.bind, "127.0.0.1:9100");
            assert_eq!(s.retrieval.candidates, 7);
            assert_eq!(s.workers.concurrency, WorkerSettings::default().concurrency);
            Ok(())
        });
    }

    #[test]
    fn the_public_url_follows_the_listening_address_unless_set() {
        Jail::expect_with(|jail| {
            let s = Settings::load(&Sources::default()).unwrap();
            assert_eq!(s.server.public_url, ServerSettings::default().public_url);
            for (bind, url) in [
                ("127.0.0.1:9100", "http://127.0.0.1:9100"),
                ("0.0.0.0:9200", "http://127.0.0.1:9200"),
                ("[::]:9300", "http://[::1]:9300"),
            ] {
                jail.set_env("PALAVER__SERVER__BIND", bind);
                let s = Settings::load(&Sources::default()).unwrap();
                assert_eq!(s.server.public_url, url, "bound to {bind}");
            }
            jail.set_env("PALAVER__SERVER__PUBLIC_URL", "https://bot.example.com");
            let s = Settings::load(&Sources::default()).unwrap();
            assert_eq!(s.server.public_url, "https://bot.example.com");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_named() {
        Jail::expect_with(|jail| {
            jail.create_file("palaver.toml", "[server]\nbindd = \"127.0.0.1:9000\"\n")?;
            let err = Settings::load(&Sources::default()).unwrap_err().to_string();
            assert!(err.contains("bindd"), "{err}");
            assert!(err.contains("server"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_env_key_is_named() {
        Jail::expect_with(|jail| {
            jail.set_env("PALAVER__WORKERS__CONCURENCY", "3");
            let err = Settings::load(&Sources::default()).unwrap_err().to_string();
            assert!(err.contains("concurency"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("PALAVER__SERVER__BIND", "not-an-address", "server.bind"),
            ("PALAVER__WORKERS__CONCURRENCY", "0", "workers.concurrency"),
            (
                "PALAVER__KNOWLEDGE__CHUNK_OVERLAP",
                "500",
                "knowledge.chunk_overlap",
            ),
            ("PALAVER__DATABASE__URL", "mysql://x", "database.url"),
            (
                "PALAVER__EMBEDDING__BACKEND",
                "quantum",
                "embedding.backend",
            ),
            (
                "PALAVER__WORKERS__MAX_ATTEMPTS",
                "many",
                "workers.max_attempts",
            ),
            (
                "PALAVER__RETRIEVAL__DENSE_WEIGHT",
                "0",
                "retrieval.dense_weight",
            ),
            (
                "PALAVER__RETRIEVAL__DENSE_WEIGHT",
                "inf",
                "retrieval.dense_weight",
            ),
        ];
        for (var, value, key) in cases {
            Jail::expect_with(|jail| {
                jail.set_env(var, value);
                let err = Settings::load(&Sources::default()).unwrap_err().to_string();
                assert!(err.contains(key), "{var}={value}: {err}");
                Ok(())
            });
        }
    }

    #[test]
    fn models_dir_env_wins() {
        Jail::expect_with(|jail| {
            jail.set_env("PALAVER_MODELS_DIR", "/tmp/palaver-models-test");
            let s = Settings::load(&Sources::default()).unwrap();
            assert_eq!(s.models_dir(), PathBuf::from("/tmp/palaver-models-test"));
            Ok(())
        });
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = Settings::load(&Sources {
            file: Some(PathBuf::from("/nonexistent/palaver.toml")),
        })
        .unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }
}
