//! The soak benchmark: a steady rate of signed webhooks for minutes against one or several real
//! `palaver serve` processes (this binary, started as children), each webhook from a new
//! customer, answered from the sample knowledge through a mock provider that counts every reply.
//! It reports throughput, acknowledgement and reply latency, the job queue's depth over time and
//! each replica's memory, and counts replies lost (a customer never answered) and duplicated (a
//! customer answered twice). Embeddings come from a mock too (the test embedder's bag-of-words
//! vectors): the figures are the engine's, not a model's. With `previous` settings or an earlier
//! build (`previous_binary`) it runs twice, first with them, and prints the customers answered
//! per second of both runs and their ratio.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::pipeline::{latency, Latency};
use super::BenchError;
use crate::providers::meta::DEFAULT_GRAPH_VERSION;
use crate::Settings;

const PHONE_ID: &str = "100000000000077";
const SECRET: &str = "soak-app-secret";
const ADMIN_KEY: &str = "soak-admin-key-0123456789abcdef";
/// Questions customers ask, in turn.
const QUESTIONS: [&str; 4] = [
    "Which payment methods do you accept?",
    "Are you open on Saturday?",
    "Do you deliver to Porto?",
    "How long does a puncture repair take?",
];

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    /// Webhooks per second.
    pub rate: u32,
    /// How long the load lasts.
    pub duration: Duration,
    /// `palaver serve` processes.
    pub replicas: usize,
    /// Their database (an empty one); a fresh SQLite file when `None` (one replica only).
    pub database_url: Option<String>,
    /// Knowledge files the agent answers from.
    pub knowledge: PathBuf,
    /// How long to wait for the last replies after the load.
    pub drain: Duration,
    /// How often the queue and memory are sampled.
    pub every: Duration,
    /// Settings the replicas ran with before (as `PALAVER__SECTION__KEY` variables): when
    /// given, the soak runs first with them, then again with the current settings.
    pub previous: Vec<(String, String)>,
    /// Another `palaver` executable (an earlier build) the replicas of the first run are: when
    /// given, the soak runs first with it, then again with this one.
    pub previous_binary: Option<PathBuf>,
    /// A local embedding model (one of [`crate::embed::LOCAL_MODELS`]) every run's replicas
    /// embed with instead of the mock, so that the figures are the engine's with a model: its
    /// files come from the models directory the benchmark runs with.
    pub local_model: Option<String>,
    /// Whether each customer asks a question nobody asked before (the same questions, each
    /// with the customer's own greeting), so that no question vector comes from an agent's
    /// cache.
    pub distinct_questions: bool,
}

/// One sample of the queue and memory.
#[derive(Debug, Clone)]
pub struct SoakSample {
    /// Since the load began.
    pub at: Duration,
    /// Jobs waiting or running.
    pub queued: i64,
    /// Resident memory of each replica, in bytes.
    pub rss: Vec<u64>,
}

/// The figures.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The plan.
    pub plan: SoakPlan,
    /// Webhooks sent.
    pub sent: usize,
    /// Webhooks acknowledged with 200.
    pub acknowledged: usize,
    /// Acknowledged per second over the load.
    pub throughput: f64,
    /// Webhook acknowledgement latency.
    pub ack: Latency,
    /// `/healthz` at the same rate, before the load (the server and client's own cost).
    pub baseline: Latency,
    /// From sending a webhook to the provider receiving its reply.
    pub reply: Option<Latency>,
    /// Acknowledged customers who got no reply by the end of the drain: lost when the queue is
    /// empty by then, still waiting their turn when it is not (see [`SoakReport::queued_at_end`]).
    pub unanswered: usize,
    /// Replies beyond the first to one customer.
    pub duplicated: usize,
    /// Customers answered per second: those answered over the time from the load's start to
    /// the last first reply (the replicas' pace when the load is more than they answer).
    pub answered_per_second: f64,
    /// The queue and memory over time.
    pub samples: Vec<SoakSample>,
}

impl SoakReport {
    /// Jobs waiting or running at the last sample, taken when the drain ended.
    pub fn queued_at_end(&self) -> i64 {
        self.samples.last().map_or(0, |s| s.queued)
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let embeddings = match &self.plan.local_model {
            Some(model) => format!("mock provider, embeddings by {model}"),
            None => "mock provider and embeddings".to_string(),
        };
        let questions = if self.plan.distinct_questions {
            ", each question its own"
        } else {
            ""
        };
        writeln!(
            f,
            "soak on {}, {} replica(s): {} webhooks/s for {} s, each from a new customer{} ({})",
            self.backend,
            self.plan.replicas,
            self.plan.rate,
            self.plan.duration.as_secs(),
            questions,
            embeddings
        )?;
        writeln!(
            f,
            "  webhooks: {} sent, {} acknowledged, {:.1}/s",
            self.sent, self.acknowledged, self.throughput
        )?;
        let mut rows = vec![
            ("webhook acknowledged", &self.ack),
            ("baseline /healthz", &self.baseline),
        ];
        if let Some(reply) = &self.reply {
            rows.push(("reply at the provider", reply));
        }
        super::latency_table(f, 26, rows)?;
        writeln!(
            f,
            "  acknowledgement / baseline p99 ratio: {:.1}x",
            ms(self.ack.p99) / ms(self.baseline.p99).max(1e-6)
        )?;
        writeln!(
            f,
            "  customers answered: {:.1}/s ({} in {:.1} s from the load's start to the last reply)",
            self.answered_per_second,
            self.acknowledged - self.unanswered,
            (self.acknowledged - self.unanswered) as f64 / self.answered_per_second.max(1e-9)
        )?;
        match self.queued_at_end() {
            // Jobs left means replies still coming: the load was more than the replicas answer
            // in the time given, which is not the same as a reply dropped.
            queued if queued > 0 && self.unanswered > 0 => writeln!(
                f,
                "  replies: {} received; {} not yet when the drain ended, with {queued} jobs still \
                 queued (more load than the replicas answer in time, not dropped); {} duplicated",
                self.acknowledged - self.unanswered,
                self.unanswered,
                self.duplicated
            )?,
            _ => writeln!(
                f,
                "  replies: {} lost, {} duplicated",
                self.unanswered, self.duplicated
            )?,
        }
        let queue: Vec<String> = self
            .samples
            .iter()
            .map(|s| format!("{}s:{}", s.at.as_secs(), s.queued))
            .collect();
        writeln!(f, "  jobs queued over time: {}", queue.join(" "))?;
        for replica in 0..self.plan.replicas {
            let series: Vec<u64> = self
                .samples
                .iter()
                .filter_map(|s| s.rss.get(replica).copied())
                .collect();
            let (Some(first), Some(last)) = (series.first(), series.last()) else {
                continue;
            };
            let peak = series.iter().copied().max().unwrap_or(0);
            writeln!(
                f,
                "  replica {replica} memory: {:.0} MiB at start, {:.0} MiB peak, {:.0} MiB at end",
                mib(*first),
                mib(peak),
                mib(*last)
            )?;
        }
        Ok(())
    }
}

/// Replies the mock provider received: customer → times.
#[derive(Default)]
struct Provider {
    replies: Mutex<HashMap<String, Vec<Instant>>>,
}

async fn send(State(p): State<Arc<Provider>>, Json(body): Json<Value>) -> Json<Value> {
    let n = {
        let mut replies = p.replies.lock().unwrap_or_else(|e| e.into_inner());
        // Read receipts and typing indicators name no recipient.
        if let Some(to) = body["to"].as_str() {
            replies
                .entry(to.to_string())
                .or_default()
                .push(Instant::now());
        }
        replies.len()
    };
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": body["to"], "wa_id": body["to"]}],
        "messages": [{"id": format!("wamid.SOAK.OUT.{n}.{}", uuid::Uuid::new_v4().simple())}]
    }))
}

async fn embeddings(Json(body): Json<Value>) -> Json<Value> {
    Json(mock_embeddings(&body).1)
}

/// An OpenAI-compatible `/v1/embeddings` answer to `request`: [`bag_of_words`] vectors of 64
/// dimensions (model `hash-64`), with the inputs it embedded. Mocks of a model server in
/// benchmarks and tests answer with it.
///
/// [`bag_of_words`]: crate::embed::bag_of_words
pub fn mock_embeddings(request: &Value) -> (Vec<String>, Value) {
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": crate::embed::bag_of_words(t, 64)}))
        .collect();
    let response = json!({"object": "list", "data": data, "model": "hash-64",
                          "usage": {"prompt_tokens": 1, "total_tokens": 1}});
    (inputs, response)
}

/// A child `palaver serve`, killed when dropped.
struct Replica {
    child: tokio::process::Child,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn free_port() -> Result<u16, BenchError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `binary` as a replica in `dir`, set up as `plan` says (its database, model, and
/// the previous settings and build when the plan has them).
fn start_replica(
    binary: &Path,
    dir: &Path,
    mock: &str,
    key: &str,
    plan: &SoakPlan,
) -> Result<Replica, BenchError> {
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("serve.log"))?;
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("serve")
        .env("PALAVER__DATA__DIR", dir)
        .env("PALAVER__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("PALAVER__SERVER__ADMIN_API_KEY", ADMIN_KEY)
        .env("PALAVER__SERVER__DRAIN_SECS", "0")
        .env("PALAVER__CHANNELS__ENCRYPTION_KEY", key)
        .env("PALAVER__CHANNELS__META_GRAPH_URL", mock)
        .env("PALAVER__CHANNELS__BURST", "1000")
        .env("PALAVER__EMBEDDING__BACKEND", "openai")
        .env("PALAVER__EMBEDDING__BASE_URL", format!("{mock}/v1"))
        .env("PALAVER__EMBEDDING__API_KEY", "sk-soak")
        .env("PALAVER__EMBEDDING__MODEL", "hash-64")
        .env("PALAVER__EMBEDDING__DIMENSIONS", "64")
        .env("PALAVER__PIPELINE__DEBOUNCE_MS", "0")
        .env("PALAVER_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    if let Some(url) = &plan.database_url {
        command.env("PALAVER__DATABASE__URL", url);
    }
    if let Some(model) = &plan.local_model {
        command
            .env("PALAVER__EMBEDDING__BACKEND", "local")
            .env("PALAVER__EMBEDDING__LOCAL_MODEL", model);
    }
    command.envs(plan.previous.iter().map(|(k, v)| (k, v)));
    if plan.previous_binary.is_some() {
        // This process set it for itself (see `main`): an earlier build runs with the thread
        // count it finds on its own, as it did when it was current.
        command.env_remove("RAYON_NUM_THREADS");
    }
    let child = command.spawn()?;
    Ok(Replica {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

async fn ready(client: &reqwest::Client, replica: &mut Replica) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = client.get(format!("{}/readyz", replica.url)).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if let Some(status) = replica.child.try_wait()? {
            return Err(BenchError::Setup(format!(
                "palaver serve at {} exited ({status}); see its serve.log",
                replica.url
            )));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!(
                "palaver serve at {} did not become ready",
                replica.url
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The agent, its knowledge and the channel, through the first replica's API.
async fn set_up(client: &reqwest::Client, url: &str, knowledge: &Path) -> Result<(), BenchError> {
    let setup = |what: &str, e: &dyn fmt::Display| BenchError::Setup(format!("{what}: {e}"));
    async fn check(what: &str, r: reqwest::Response) -> Result<(), BenchError> {
        let status = r.status();
        if status.is_success() {
            return Ok(());
        }
        let body = r.text().await.unwrap_or_default();
        Err(BenchError::Setup(format!(
            "{what}: {status} {body} (the benchmark needs an empty database)"
        )))
    }
    let api = |p: &str| format!("{url}/api/v1{p}");
    let r = client
        .post(api("/agents"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "soak"}))
        .send()
        .await
        .map_err(|e| setup("agent", &e))?;
    check("agent", r).await?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(knowledge)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&path)?).file_name(name.clone()),
        );
        let r = client
            .post(api("/agents/soak/documents"))
            .bearer_auth(ADMIN_KEY)
            .multipart(form)
            .send()
            .await
            .map_err(|e| setup(&name, &e))?;
        check(&name, r).await?;
    }
    let r = client
        .post(api("/channels"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "soak", "provider": "meta", "phone_number_id": PHONE_ID,
                      "agent": "soak", "settings": {"rate_per_minute": 1_000_000},
                      "credentials": {"access_token": "soak", "app_secret": SECRET, "verify_token": "soak"}}))
        .send()
        .await
        .map_err(|e| setup("channel", &e))?;
    check("channel", r).await
}

fn customer(n: u64) -> String {
    format!("5511{n:09}")
}

/// What customer `n` asks: one of [`QUESTIONS`], with their own greeting when every question
/// is to be one nobody asked before.
fn question(n: u64, distinct: bool) -> String {
    let question = QUESTIONS[n as usize % QUESTIONS.len()];
    if distinct {
        format!("Hello, this is customer {n}. {question}")
    } else {
        question.to_string()
    }
}

fn webhook(n: u64, run: &str, distinct: bool) -> (Vec<u8>, String) {
    super::meta_text_webhook(
        SECRET,
        PHONE_ID,
        (&customer(n), &format!("Customer {n}")),
        &format!("wamid.SOAK.{run}.{n}"),
        &question(n, distinct),
    )
}

/// The soak with the previous settings and with the current ones, run one after the other.
#[derive(Debug, Clone)]
pub struct SoakComparison {
    /// With the previous settings.
    pub previous: SoakReport,
    /// With the current settings.
    pub current: SoakReport,
}

impl fmt::Display for SoakComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut settings: Vec<String> = self
            .previous
            .plan
            .previous
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if let Some(binary) = &self.previous.plan.previous_binary {
            settings.push(format!("binary {}", binary.display()));
        }
        writeln!(f, "previous settings ({}):", settings.join(" "))?;
        writeln!(f, "{}", self.previous)?;
        writeln!(f, "current settings:")?;
        writeln!(f, "{}", self.current)?;
        write!(
            f,
            "customers answered: {:.1}/s against {:.1}/s with the previous settings ({:.2}x)",
            self.current.answered_per_second,
            self.previous.answered_per_second,
            self.current.answered_per_second / self.previous.answered_per_second.max(1e-9)
        )
    }
}

/// Runs the soak with `plan.previous` set on the replicas, then with the current settings, each
/// on a fresh SQLite file.
pub async fn compare(settings: &Settings, plan: SoakPlan) -> Result<SoakComparison, BenchError> {
    if plan.database_url.is_some() {
        return Err(BenchError::Setup(
            "comparing with the previous settings needs a fresh SQLite file for each run: \
             leave out --database-url"
                .into(),
        ));
    }
    let previous = run(settings, plan.clone()).await?;
    let current = run(
        settings,
        SoakPlan {
            previous: Vec::new(),
            previous_binary: None,
            ..plan
        },
    )
    .await?;
    Ok(SoakComparison { previous, current })
}

/// Runs the soak (with `plan.previous` set on the replicas).
pub async fn run(settings: &Settings, plan: SoakPlan) -> Result<SoakReport, BenchError> {
    if plan.replicas == 0 || plan.rate == 0 {
        return Err(BenchError::Setup(
            "--replicas and --rate must be at least 1".into(),
        ));
    }
    if plan.replicas > 1 && plan.database_url.is_none() {
        return Err(BenchError::Setup(
            "several replicas share a Postgres database: give --database-url".into(),
        ));
    }
    if let Some(model) = &plan.local_model {
        if !crate::embed::LOCAL_MODELS.contains(&model.as_str()) {
            return Err(BenchError::Setup(format!(
                "--local-model {model}: not one of {}",
                crate::embed::LOCAL_MODELS.join(", ")
            )));
        }
    }
    let scratch = super::scratch_dir(&settings.data.dir, "soak")?;

    let provider = Arc::new(Provider::default());
    // Builds before the Graph API version was a channel setting kept it in
    // `channels.meta_graph_url`, and send without it (`--previous-binary`).
    let mock = Router::new()
        .route(
            &format!("/{DEFAULT_GRAPH_VERSION}/{PHONE_ID}/messages"),
            post(send),
        )
        .route(&format!("/{PHONE_ID}/messages"), post(send))
        .route("/v1/embeddings", post(embeddings))
        .with_state(provider.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mock_url = format!("http://{}", listener.local_addr()?);
    let mock_server = tokio::spawn(async move { axum::serve(listener, mock).await });

    let key = crate::crypto::generate_key();
    let binary = match &plan.previous_binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()?,
    };
    let mut replicas = Vec::new();
    for n in 0..plan.replicas {
        replicas.push(start_replica(
            &binary,
            &scratch.join(format!("replica-{n}")),
            &mock_url,
            &key,
            &plan,
        )?);
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    for replica in &mut replicas {
        ready(&client, replica).await?;
    }
    set_up(&client, &replicas[0].url, &plan.knowledge).await?;
    let database_url = plan.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            scratch.join("replica-0").join("palaver.db").display()
        )
    });
    let store = crate::store::open(&database_url, 2)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let backend = format!("{:?}", store.backend()).to_lowercase();
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let pids: Vec<Option<u32>> = replicas.iter().map(|r| r.child.id()).collect();

    // The server and client's own cost at this rate, on the same replicas.
    let baseline_count = u64::from(plan.rate) * plan.duration.as_secs().clamp(5, 10);
    let baseline = super::open_loop(&client, plan.rate, baseline_count, |c, i| {
        c.get(format!("{}/healthz", urls[i as usize % urls.len()]))
    })
    .await;
    let baseline = latency(baseline.into_iter().map(|(_, _, d, _)| d).collect());

    // The load, with the queue and memory sampled alongside.
    let count = (f64::from(plan.rate) * plan.duration.as_secs_f64()).round() as u64;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let load_start = Instant::now();
    let (stop_sampling, mut stopped) = tokio::sync::watch::channel(false);
    let sampler = {
        let store = store.clone();
        let pids = pids.clone();
        let every = plan.every;
        tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let queued = store
                    .job_counts(None)
                    .await
                    .map(|c| {
                        c.get("pending").copied().unwrap_or(0)
                            + c.get("running").copied().unwrap_or(0)
                    })
                    .unwrap_or(-1);
                samples.push(SoakSample {
                    at: load_start.elapsed(),
                    queued,
                    rss: pids
                        .iter()
                        .map(|p| p.map_or(0, |p| super::resident_bytes(&p.to_string())))
                        .collect(),
                });
                if *stopped.borrow() {
                    return samples;
                }
                let _ = tokio::time::timeout(every, stopped.changed()).await;
            }
        })
    };
    let results = super::open_loop(&client, plan.rate, count, |c, i| {
        let (body, signature) = webhook(i, &run, plan.distinct_questions);
        c.post(format!("{}/webhooks/meta", urls[i as usize % urls.len()]))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
    })
    .await;
    let load_time = load_start.elapsed();
    let acknowledged: Vec<&(u64, Instant, Duration, bool)> =
        results.iter().filter(|r| r.3).collect();
    if acknowledged.is_empty() {
        return Err(BenchError::Setup(format!(
            "no webhook was acknowledged; see the replicas' serve.log under {}",
            scratch.display()
        )));
    }

    // Wait for the last replies, then count.
    let deadline = Instant::now() + plan.drain;
    loop {
        let answered = {
            let replies = provider.replies.lock().unwrap_or_else(|e| e.into_inner());
            acknowledged
                .iter()
                .filter(|r| replies.contains_key(&customer(r.0)))
                .count()
        };
        if answered == acknowledged.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A moment more for a duplicate to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_sampling.send(true);
    let samples = sampler.await.unwrap_or_default();
    let replies = provider
        .replies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut unanswered = 0;
    let mut reply_times = Vec::new();
    let mut last_reply = load_start;
    for (n, started, _, _) in &acknowledged {
        match replies.get(&customer(*n)).and_then(|t| t.first()) {
            Some(at) => {
                reply_times.push(at.saturating_duration_since(*started));
                last_reply = last_reply.max(*at);
            }
            None => unanswered += 1,
        }
    }
    let answered_per_second = reply_times.len() as f64
        / last_reply
            .saturating_duration_since(load_start)
            .as_secs_f64()
            .max(1e-9);
    let duplicated = replies.values().map(|t| t.len().saturating_sub(1)).sum();

    drop(replicas);
    mock_server.abort();
    drop(store);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(SoakReport {
        backend,
        sent: results.len(),
        acknowledged: acknowledged.len(),
        throughput: acknowledged.len() as f64 / load_time.as_secs_f64(),
        ack: latency(acknowledged.iter().map(|r| r.2).collect()),
        baseline,
        reply: (!reply_times.is_empty()).then(|| latency(reply_times)),
        unanswered,
        duplicated,
        answered_per_second,
        samples,
        plan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(unanswered: usize, queued_at_end: i64) -> SoakReport {
        let ms = |n: u64| latency(vec![Duration::from_millis(n)]);
        SoakReport {
            backend: "sqlite".into(),
            plan: SoakPlan {
                rate: 10,
                duration: Duration::from_secs(10),
                replicas: 1,
                database_url: None,
                knowledge: PathBuf::from("knowledge"),
                drain: Duration::from_secs(5),
                every: Duration::from_secs(5),
                previous: Vec::new(),
                previous_binary: None,
                local_model: None,
                distinct_questions: false,
            },
            sent: 100,
            acknowledged: 100,
            throughput: 10.0,
            ack: ms(2),
            baseline: ms(1),
            reply: Some(ms(500)),
            unanswered,
            duplicated: 0,
            answered_per_second: 100.0 - unanswered as f64,
            samples: vec![
                SoakSample {
                    at: Duration::ZERO,
                    queued: 0,
                    rss: vec![1 << 20],
                },
                SoakSample {
                    at: Duration::from_secs(15),
                    queued: queued_at_end,
                    rss: vec![1 << 20],
                },
            ],
        }
    }

    /// The comparison shows both runs, the settings the first ran with and the ratio of
    /// customers answered per second.
    #[test]
    fn the_comparison_shows_both_runs_and_their_ratio() {
        let mut previous = report(0, 0);
        previous.answered_per_second = 40.0;
        previous.plan.previous = vec![("PALAVER__WORKERS__CONCURRENCY".into(), "4".into())];
        previous.plan.previous_binary = Some(PathBuf::from("/opt/palaver-0.9/palaver"));
        let mut current = report(0, 0);
        current.answered_per_second = 90.0;
        let text = SoakComparison { previous, current }.to_string();
        assert!(
            text.starts_with(
                "previous settings (PALAVER__WORKERS__CONCURRENCY=4 binary /opt/palaver-0.9/palaver):"
            ),
            "{text}"
        );
        assert!(
            text.contains("customers answered: 40.0/s (100 in 2.5 s"),
            "{text}"
        );
        assert!(text.contains("current settings:"), "{text}");
        assert!(
            text.ends_with(
                "customers answered: 90.0/s against 40.0/s with the previous settings (2.25x)"
            ),
            "{text}"
        );
    }

    /// Customers still unanswered while their jobs wait in the queue are reported as such;
    /// only with nothing left to run are they lost.
    /// Distinct questions never repeat, so none can come from a cache; the others cycle
    /// through the same few.
    #[test]
    fn distinct_questions_are_each_customers_own() {
        let distinct: std::collections::HashSet<String> =
            (0..1000).map(|n| question(n, true)).collect();
        assert_eq!(distinct.len(), 1000);
        assert!(question(5, true).ends_with(QUESTIONS[1]));
        let repeated: std::collections::HashSet<String> =
            (0..1000).map(|n| question(n, false)).collect();
        assert_eq!(repeated.len(), QUESTIONS.len());
    }

    #[test]
    fn the_report_names_the_model_that_embedded() {
        let mut r = report(0, 0);
        assert!(r.to_string().contains("(mock provider and embeddings)"));
        r.plan.local_model = Some("multilingual-e5-small".into());
        r.plan.distinct_questions = true;
        let text = r.to_string();
        assert!(
            text.contains(
                "each question its own (mock provider, embeddings by multilingual-e5-small)"
            ),
            "{text}"
        );
    }

    #[test]
    fn replies_still_queued_are_not_reported_lost() {
        let waiting = report(40, 41).to_string();
        assert!(
            waiting.contains("60 received; 40 not yet when the drain ended, with 41 jobs"),
            "{waiting}"
        );
        assert!(!waiting.contains("lost"), "{waiting}");
        let dropped = report(3, 0).to_string();
        assert!(
            dropped.contains("replies: 3 lost, 0 duplicated"),
            "{dropped}"
        );
        assert!(report(0, 0).to_string().contains("replies: 0 lost"));
    }
}
