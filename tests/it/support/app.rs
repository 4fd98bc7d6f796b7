//! A running Palaver for integration tests: the real router on a loopback socket, optional
//! workers, a temporary data directory, and either the bag-of-words test embedder (fast, no
//! model) or the real default local model.

use std::sync::Arc;
use std::time::{Duration, Instant};

use palaver::config::Settings;
use palaver::embed::Embedder;
use palaver::store::Store;
use palaver::vectors::VectorStore;
use palaver::App;
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::{watch, OnceCell};
use tokio::task::JoinSet;

/// The admin key of every test app.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// How to build a test app.
pub struct Options {
    /// Use the real default embedder (`None` from [`TestApp::start`] when it is not available).
    pub real_embedder: bool,
    /// Run job workers.
    pub workers: bool,
    /// Use Postgres (`None` from [`TestApp::start`] when it is not available).
    pub postgres: bool,
    /// Last changes to the settings.
    pub tweak: Box<dyn FnOnce(&mut Settings) + Send>,
    /// A provider standing in for the real one of its kind.
    pub provider: Option<Arc<dyn palaver::providers::Provider>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            real_embedder: false,
            workers: false,
            postgres: false,
            tweak: Box::new(|_| {}),
            provider: None,
        }
    }
}

/// A running app.
pub struct TestApp {
    pub app: Arc<App>,
    pub url: String,
    pub client: reqwest::Client,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    _dir: tempfile::TempDir,
}

/// The default local embedder (what `serve` runs with no settings), loaded once per test
/// process.
pub async fn local_embedder() -> Option<Arc<dyn Embedder>> {
    static MODEL: OnceCell<Option<Arc<dyn Embedder>>> = OnceCell::const_new();
    MODEL
        .get_or_init(|| async {
            let settings = palaver::config::EmbeddingSettings::default();
            palaver::testing::test_model(&settings.local_model).await?;
            let models = palaver::testing::test_model_store();
            let embedder = palaver::embed::load_local(&settings.local_model, &models, &settings)
                .await
                .expect("the default embedder loads");
            Some(embedder)
        })
        .await
        .clone()
}

/// Settings every test app starts from.
pub fn base_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings::default();
    s.data.dir = dir.to_path_buf();
    s.server.admin_api_key = Some(SecretString::from(ADMIN_KEY.to_string()));
    s.pipeline.debounce_ms = 0;
    s.workers.poll_ms = 20;
    s.workers.backoff_base_ms = 50;
    s.workers.backoff_max_secs = 1;
    s.workers.concurrency = 2;
    s.workers.max_attempts = 5;
    s.channels.unconfirmed_grace_secs = 1;
    // Stopping a test server does not wait for a load balancer.
    s.server.drain_secs = 0;
    // Tests run their Evolution and Kapso mocks on loopback.
    s.channels.allow_private_urls = true;
    s.models.dir = Some(palaver::testing::test_model_store().dir().to_path_buf());
    s
}

impl TestApp {
    /// Starts an app, or `None` when an optional part (Postgres, the model) is unavailable.
    pub async fn start(options: Options) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = base_settings(dir.path());
        if options.postgres {
            settings.database.url = Some(SecretString::from(super::pg::fresh_database().await?));
        }
        (options.tweak)(&mut settings);
        let embedder: Arc<dyn Embedder> = if options.real_embedder {
            local_embedder().await?
        } else {
            Arc::new(palaver::testing::HashEmbedder::default())
        };
        let store: Arc<dyn Store> = palaver::store::open(&settings.database_url(), 4)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let vectors: Arc<dyn VectorStore> = Arc::new(palaver::vectors::memory::MemoryStore::new());
        let models = palaver::testing::test_model_store();
        let parts = palaver::Parts::from_settings(&settings, &models, embedder.clone()).unwrap();
        let parts = match &options.provider {
            Some(provider) => parts.with_provider(provider.clone()),
            None => parts,
        };
        let app =
            Arc::new(App::assemble(settings, store, models, embedder, vectors, parts).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        {
            let app = app.clone();
            let mut stopped = stopped.clone();
            tasks.spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                palaver::server::serve(app, listener, shutdown)
                    .await
                    .unwrap();
            });
        }
        if options.workers {
            let workers = app.workers();
            let mut set = workers.spawn(stopped);
            tasks.spawn(async move { while set.join_next().await.is_some() {} });
        }
        Some(Self {
            app,
            url,
            client: reqwest::Client::new(),
            stop,
            tasks,
            _dir: dir,
        })
    }

    /// Ingests the sample knowledge base for agent `agent` (created with `config` changes).
    pub async fn demo_agent(&self, agent: &str, config: Value) -> palaver::domain::Agent {
        let config = palaver::domain::AgentConfig::patched(&Default::default(), config).unwrap();
        let agent = self
            .app
            .store
            .create_agent(palaver::domain::WorkspaceId::DEFAULT, agent, true, &config)
            .await
            .unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge");
        let report = self
            .app
            .knowledge
            .ingest_paths(&agent.collection(), &[root])
            .await
            .unwrap();
        assert_eq!(report.skipped(), 0, "{report}");
        agent
    }

    /// A request to `path` with the admin key.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN_KEY)
    }

    /// GET with the admin key, expecting `status`, returning the JSON body.
    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "GET {path}: {status} {body}");
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    /// POST JSON with the admin key; returns the status and the JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    /// PUT JSON with the admin key; returns the status and the JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::PUT, path).json(body))
            .await
    }

    /// PATCH JSON with the admin key; returns the status and the JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::PATCH, path).json(body))
            .await
    }

    /// DELETE with the admin key; returns the status and the JSON body.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// Sends `request`; returns the status and the JSON body.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Waits until what the webhooks acknowledged so far carried is recorded.
    pub async fn settle(&self) {
        self.app.channels.settle().await.unwrap();
    }

    /// Starts shutting down, as SIGTERM does, without waiting for the end.
    pub fn begin_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops the server and the workers.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Polls `check` until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
