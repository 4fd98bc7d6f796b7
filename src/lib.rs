//! Palaver: a self-hosted engine that answers a business's WhatsApp messages from its own
//! documents, and hands conversations to people when it should.
//!
//! The layers, top to bottom (each imports only from those below it):
//!
//! - [`server`]: one router composed of [`http`] (JSON API, provider webhooks) and [`console`]
//!   (pages), which know nothing of each other; [`eval`] beside them;
//! - this file's [`App`] and [`workers`]: the wiring, with every backend chosen once from
//!   [`Settings`] and held as `Arc<dyn Trait>`;
//! - [`pipeline`] and [`inbox`]: one turn of a conversation, and what people do in the inbox;
//! - [`channels`]: numbers and their [`providers`];
//! - [`accounts`] and [`events`];
//! - [`knowledge`] with [`embed`], [`vectors`], [`llm`], [`speech`], [`prompts`], [`models`];
//! - [`store`]: the [`store::Store`] trait and its SQL implementation;
//! - plain types: [`config`], [`domain`], [`hours`], [`language`], [`crypto`], [`net`].

pub mod accounts;
pub mod bench;
pub mod channels;
pub mod config;
pub mod console;
pub mod crypto;
pub mod domain;
pub mod embed;
pub mod eval;
pub mod events;
pub mod hours;
pub mod http;
pub mod inbox;
pub mod knowledge;
pub mod language;
pub mod llm;
pub mod models;
pub mod net;
pub mod pipeline;
pub mod prompts;
pub mod providers;
pub mod server;
pub mod speech;
pub mod store;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
pub mod vectors;
pub mod workers;

use std::sync::Arc;

pub use config::Settings;

use crate::channels::{ChannelError, Channels};
use crate::crypto::{generate_api_key, hash_api_key, Sealer};
use crate::domain::{MemberRole, WorkspaceId};
use crate::embed::{EmbedError, Embedder};
use crate::knowledge::{Knowledge, KnowledgeError, ReindexReport};
use crate::llm::ChatModel;
use crate::models::ModelStore;
use crate::pipeline::voice::Voice;
use crate::pipeline::{Answerers, Pipeline};
use crate::prompts::{PromptError, Prompts};
use crate::providers::Registry;
use crate::speech::{OnDemandWhisper, Transcriber};
use crate::store::{ApiKey, Store, StoreError};
use crate::vectors::{VectorError, VectorStore};

/// A failure while assembling or running the application.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The embedder could not be loaded.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The vector index could not be opened.
    #[error(transparent)]
    Vectors(#[from] VectorError),
    /// Rebuilding the index failed.
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    /// The prompts could not be loaded.
    #[error(transparent)]
    Prompts(#[from] PromptError),
    /// Channels could not be set up.
    #[error(transparent)]
    Channels(#[from] ChannelError),
    /// Local state could not be prepared.
    #[error("{0}")]
    Setup(String),
}

/// Everything a running Palaver holds: settings and the chosen backends.
pub struct App {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// The SQL store.
    pub store: Arc<dyn Store>,
    /// Local model files.
    pub models: ModelStore,
    /// Ingestion and retrieval.
    pub knowledge: Arc<Knowledge>,
    /// Prompt templates.
    pub prompts: Arc<Prompts>,
    /// The conversation engine.
    pub pipeline: Arc<Pipeline>,
    /// WhatsApp channels, webhooks and the outbox.
    pub channels: Arc<Channels>,
    /// How many job workers are running, for readiness.
    pub workers: Arc<workers::WorkerHealth>,
    /// Live events from the event log.
    pub events: Arc<events::EventHub>,
    /// Outgoing webhooks fed from the event log.
    pub hooks: Arc<events::hooks::Hooks>,
}

/// The plug-in parts an application is assembled from: the WhatsApp providers, the answerers
/// and the speech model. [`Parts::from_settings`] builds the real ones; tests and benchmarks
/// swap any of them for a double (a recording provider, a scripted answerer).
pub struct Parts {
    /// One provider per kind.
    pub providers: Registry,
    /// The answerers.
    pub answerers: Answerers,
    /// Voice-note transcription.
    pub transcriber: Arc<dyn Transcriber>,
}

impl Parts {
    /// The parts the settings call for.
    pub fn from_settings(
        settings: &Settings,
        models: &ModelStore,
        embedder: Arc<dyn Embedder>,
    ) -> Result<Self, AppError> {
        providers::meta::versions::check_graph_url(&settings.channels.meta_graph_url)
            .map_err(|e| AppError::Setup(format!("channels.meta_graph_url: {e}")))?;
        Ok(Self {
            providers: Registry::from_settings(settings)
                .map_err(|e| AppError::Setup(e.to_string()))?,
            answerers: answerers(settings, models, embedder),
            transcriber: Arc::new(OnDemandWhisper::new(
                models.clone(),
                settings.speech.clone(),
            )),
        })
    }

    /// These parts with `provider` serving its kind.
    pub fn with_provider(mut self, provider: Arc<dyn providers::Provider>) -> Self {
        self.providers = self.providers.with(provider);
        self
    }
}

/// The key sealing channel credentials: from the settings, or generated once into the data
/// directory (readable by its owner only).
fn sealer(settings: &Settings) -> Result<Sealer, AppError> {
    use secrecy::ExposeSecret;
    if let Some(key) = &settings.channels.encryption_key {
        let key =
            crypto::parse_key(key.expose_secret()).map_err(|e| AppError::Setup(e.to_string()))?;
        return Ok(Sealer::new(&key));
    }
    let path = settings.data.dir.join("secret.key");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = crypto::generate_key();
            write_private(&path, &key)
                .map_err(|e| AppError::Setup(format!("cannot write {}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), "generated the credentials encryption key");
            key
        }
        Err(e) => {
            return Err(AppError::Setup(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    let key = crypto::parse_key(&text)
        .map_err(|e| AppError::Setup(format!("{}: {e}", path.display())))?;
    Ok(Sealer::new(&key))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

impl App {
    /// Opens the store (applying migrations), loads the embedder (fetching the local model on
    /// first use), opens the vector index and rebuilds it where it is behind the store.
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        std::fs::create_dir_all(&settings.data.dir).map_err(|e| {
            AppError::Setup(format!(
                "cannot create data directory {}: {e}",
                settings.data.dir.display()
            ))
        })?;
        let store =
            store::open(&settings.database_url(), settings.database.max_connections).await?;
        store.migrate().await?;
        let models = ModelStore::from_settings(&settings);
        let embedder = embed::from_settings(&settings, &models).await?;
        let vectors = vectors::from_settings(&settings).await?;
        let parts = Parts::from_settings(&settings, &models, embedder.clone())?;
        Self::assemble(settings, store, models, embedder, vectors, parts)
    }

    /// Builds the application from parts chosen by the caller (tests, benchmarks).
    pub fn assemble(
        settings: Settings,
        store: Arc<dyn Store>,
        models: ModelStore,
        embedder: Arc<dyn Embedder>,
        vectors: Arc<dyn VectorStore>,
        parts: Parts,
    ) -> Result<Self, AppError> {
        let settings = Arc::new(settings);
        let knowledge = Arc::new(Knowledge::new(
            store.clone(),
            embedder.clone(),
            vectors,
            settings.knowledge.clone(),
            settings.retrieval.clone(),
        ));
        let prompts = Arc::new(Prompts::load(settings.pipeline.prompts_dir.as_deref())?);
        let sealer = sealer(&settings)?;
        let hooks = Arc::new(events::hooks::Hooks::new(
            store.clone(),
            sealer.clone(),
            settings.clone(),
        ));
        let channels = Arc::new(Channels::new(
            store.clone(),
            sealer,
            parts.providers,
            settings.clone(),
        ));
        let voice = Arc::new(Voice {
            transcriber: parts.transcriber,
            media: channels.clone(),
        });
        let pipeline = Arc::new(Pipeline::new(
            store.clone(),
            knowledge.clone(),
            prompts.clone(),
            Arc::new(parts.answerers),
            Some(voice),
            Some(channels.clone()),
            settings.clone(),
        ));
        let events = Arc::new(events::EventHub::new(
            store.clone(),
            settings.events.clone(),
        ));
        Ok(Self {
            settings,
            store,
            models,
            knowledge,
            prompts,
            pipeline,
            channels,
            workers: Arc::new(workers::WorkerHealth::default()),
            events,
            hooks,
        })
    }

    /// The job runner over this application's store, pipeline and outbox.
    pub fn workers(&self) -> Arc<workers::Workers> {
        Arc::new(workers::Workers::new(
            self.store.clone(),
            self.pipeline.clone(),
            self.channels.clone(),
            self.hooks.clone(),
            self.settings.workers.clone(),
            self.workers.clone(),
        ))
    }

    /// Rebuilds the vector index of collections that are behind the store (after a crash, a
    /// lost index directory or a change of embedder).
    pub async fn check_index(&self) -> Result<ReindexReport, AppError> {
        let report = self.knowledge.reindex(None, true).await?;
        for (name, points) in &report.rebuilt {
            tracing::warn!(collection = %name, points, "vector index was behind the store and has been rebuilt");
        }
        Ok(report)
    }

    /// Creates an API key of workspace `ws` with `role`; the key itself is returned only here.
    pub async fn issue_api_key(
        &self,
        ws: WorkspaceId,
        role: MemberRole,
        name: &str,
    ) -> Result<(ApiKey, String), StoreError> {
        issue_api_key(self.store.as_ref(), ws, role, name).await
    }
}

/// Creates an API key of workspace `ws` with `role` in `store`; the key itself is returned
/// only here.
pub async fn issue_api_key(
    store: &dyn Store,
    ws: WorkspaceId,
    role: MemberRole,
    name: &str,
) -> Result<(ApiKey, String), StoreError> {
    let key = generate_api_key();
    let info = store
        .create_api_key(ws, role, name, &hash_api_key(&key), &key[..10])
        .await?;
    tracing::info!(name, prefix = %info.prefix, workspace = %ws, role = %role, "API key created");
    Ok((info, key))
}

/// The three answerers: extractive (always), an OpenAI-compatible server when one is
/// configured, and the local GGUF model, loaded (and fetched) on first use.
fn answerers(settings: &Settings, models: &ModelStore, embedder: Arc<dyn Embedder>) -> Answerers {
    let extractive: Arc<dyn ChatModel> = Arc::new(llm::extractive::Extractive::new(embedder));
    let openai = &settings.llm.openai;
    let configured =
        openai.api_key.is_some() || openai.base_url != config::OpenAiSettings::default().base_url;
    let openai: Option<Arc<dyn ChatModel>> = if configured {
        match llm::openai::OpenAiChat::new(openai) {
            Ok(chat) => Some(Arc::new(chat)),
            Err(e) => {
                tracing::error!(error = %e, "OpenAI-compatible answerer unavailable");
                None
            }
        }
    } else {
        None
    };
    let models = models.clone();
    let local = settings.llm.local.clone();
    Answerers::new(
        extractive,
        openai,
        Box::new(move || {
            let models = models.clone();
            let local = local.clone();
            Box::pin(async move {
                let chat = llm::local::LocalChat::load(&models, &local).await?;
                Ok(Arc::new(chat) as Arc<dyn ChatModel>)
            })
        }),
    )
}
