//! Webhook ingestion figures: signed Meta webhooks sent over loopback to the real server, each
//! verified, parsed, journaled durably, and acknowledged; then recorded with its job. Measured
//! at a fixed arrival rate (latency p50/p99, open loop) and flat out (throughput, closed loop),
//! against a baseline of `/healthz` at the same rate in the same run; and how long recording
//! what the flat-out run acknowledged took (end-to-end throughput).

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::SecretString;

use super::pipeline::{latency, Latency};
use super::BenchError;
use crate::channels::ChannelInput;
use crate::channels::GivenCredentials;
use crate::embed::{EmbedError, Embedder};
use crate::Settings;

const PHONE_ID: &str = "100000000000001";
const SECRET: &str = "bench-app-secret";

/// Ingestion never embeds; this embedder says so if it is ever asked.
pub(super) struct Unused;

#[async_trait]
impl Embedder for Unused {
    fn model_id(&self) -> &str {
        "unused"
    }
    fn dimensions(&self) -> usize {
        8
    }
    async fn embed(&self, _: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Err(EmbedError::Inference(
            "the webhook benchmark embeds nothing".into(),
        ))
    }
}

/// The figures of one backend.
#[derive(Debug, Clone)]
pub struct WebhookReport {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Requested arrival rate, per second.
    pub rate: u32,
    /// Webhooks acknowledged per second at that rate.
    pub achieved: f64,
    /// Webhook latency at the fixed rate.
    pub webhook: Latency,
    /// `/healthz` latency at the same rate (the server and client's own cost).
    pub baseline: Latency,
    /// Webhooks acknowledged per second with `clients` senders flat out.
    pub max_throughput: f64,
    /// Concurrent senders of the flat-out run.
    pub clients: usize,
    /// Webhooks acknowledged in the flat-out run.
    pub flat: u64,
    /// From the start of the flat-out run until everything it acknowledged was recorded.
    pub recorded_in: Duration,
    /// Journal entries that failed to be recorded (none expected).
    pub failing: u64,
    /// Requests that did not get 200.
    pub errors: usize,
}

impl fmt::Display for WebhookReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(
            f,
            "webhook ingestion on {} (verify, parse, journal, 200; then record + enqueue)",
            self.backend
        )?;
        writeln!(
            f,
            "  fixed rate {}/s: achieved {:.0}/s over {} webhooks",
            self.rate, self.achieved, self.webhook.samples
        )?;
        super::latency_table(
            f,
            22,
            [
                ("webhook", &self.webhook),
                ("baseline /healthz", &self.baseline),
            ],
        )?;
        writeln!(
            f,
            "  webhook / baseline p50 ratio: {:.1}x",
            ms(self.webhook.p50) / ms(self.baseline.p50).max(1e-6)
        )?;
        writeln!(
            f,
            "  flat out with {} senders: {:.0} webhooks/s acknowledged",
            self.clients, self.max_throughput
        )?;
        writeln!(
            f,
            "  recorded: all {} within {:.1} s of the flat-out start, {:.0}/s end to end ({} failing)",
            self.flat,
            self.recorded_in.as_secs_f64(),
            self.flat as f64 / self.recorded_in.as_secs_f64().max(1e-6),
            self.failing
        )?;
        write!(f, "  errors: {}", self.errors)
    }
}

/// Webhook `n` as a request to `url`: one of 500 customers asking one question.
fn request(client: &reqwest::Client, url: &str, n: u64) -> reqwest::RequestBuilder {
    let now = chrono::Utc::now().timestamp();
    let (body, signature) = super::meta_text_webhook(
        SECRET,
        PHONE_ID,
        (
            &format!("3519{:08}", n % 500),
            &format!("Customer {}", n % 500),
        ),
        &format!("wamid.BENCH.{n}.{now}"),
        "Are you open on Saturday?",
    );
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
}

async fn send(client: &reqwest::Client, url: &str, n: u64) -> (Duration, bool) {
    let request = request(client, url, n);
    let started = Instant::now();
    let ok = request.send().await.is_ok_and(|r| r.status().is_success());
    (started.elapsed(), ok)
}

/// Open loop at `rate`: `count` webhooks numbered from `offset` (or `/healthz` requests when
/// not `webhook`). Latencies, errors and the time it all took.
async fn fixed_rate(
    client: &reqwest::Client,
    url: &str,
    rate: u32,
    count: u64,
    webhook: bool,
    offset: u64,
) -> (Vec<Duration>, usize, Duration) {
    let start = Instant::now();
    let results = super::open_loop(client, rate, count, |c, i| {
        if webhook {
            request(c, url, offset + i)
        } else {
            c.get(url)
        }
    })
    .await;
    let errors = results.iter().filter(|r| !r.3).count();
    let samples = results.into_iter().map(|r| r.2).collect();
    (samples, errors, start.elapsed())
}

/// Runs the benchmark on `database_url` (an empty database; a fresh SQLite file when `None`).
pub async fn run(
    settings: &Settings,
    database_url: Option<&str>,
    rate: u32,
    seconds: u64,
) -> Result<WebhookReport, BenchError> {
    let scratch = super::scratch_dir(&settings.data.dir, "webhooks")?;
    let mut s = settings.clone();
    s.data.dir = scratch.clone();
    s.database.url = database_url.map(|u| SecretString::from(u.to_string()));
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let app = super::app(s).await?;
    let backend = format!("{:?}", app.store.backend()).to_lowercase();
    app.channels
        .create(ChannelInput {
            workspace_id: crate::domain::WorkspaceId::DEFAULT,
            name: "bench".into(),
            provider: crate::domain::ProviderKind::Meta,
            route_key: PHONE_ID.to_string(),
            agent_id: None,
            settings: Default::default(),
            graph_version: None,
            credentials: GivenCredentials::from_pairs([
                ("access_token", "unused"),
                ("app_secret", SECRET),
                ("verify_token", "unused"),
            ]),
            create_instance: false,
        })
        .await
        .map_err(|e| BenchError::Setup(format!("{e} (the benchmark needs an empty database)")))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(crate::server::serve(app.clone(), listener, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| setup(&e))?;
    let webhook_url = format!("{base}/webhooks/meta");
    let count = rate as u64 * seconds;

    // Warm up connections and caches.
    fixed_rate(
        &client,
        &webhook_url,
        rate,
        (rate as u64 / 4).max(10),
        true,
        10_000_000,
    )
    .await;
    let (baseline, _, _) =
        fixed_rate(&client, &format!("{base}/healthz"), rate, count, false, 0).await;
    let (samples, errors, elapsed) = fixed_rate(&client, &webhook_url, rate, count, true, 0).await;
    let achieved = (samples.len() - errors) as f64 / elapsed.as_secs_f64();

    // Flat out: a few senders as fast as the server acknowledges.
    let clients = 16;
    let flat_start = Instant::now();
    let deadline = flat_start + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let client = client.clone();
        let url = webhook_url.clone();
        tasks.spawn(async move {
            let mut done = 0u64;
            let mut n = 20_000_000 + c as u64 * 1_000_000;
            while Instant::now() < deadline {
                if send(&client, &url, n).await.1 {
                    done += 1;
                }
                n += 1;
            }
            done
        });
    }
    let mut flat = 0u64;
    while let Some(r) = tasks.join_next().await {
        flat += r.unwrap_or(0);
    }
    let max_throughput = flat as f64 / flat_start.elapsed().as_secs_f64();
    // What was acknowledged is recorded behind: wait for the journal to empty (or to hold
    // only entries that failed).
    let failing = loop {
        let backlog = app.store.journal_backlog().await.map_err(|e| setup(&e))?;
        if backlog.settled() {
            break backlog.failing;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let recorded_in = flat_start.elapsed();

    let _ = stop.send(true);
    let _ = server.await;
    drop(app);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(WebhookReport {
        backend,
        rate,
        achieved,
        webhook: latency(samples),
        baseline: latency(baseline),
        max_throughput,
        clients,
        flat,
        recorded_in,
        failing,
        errors,
    })
}
