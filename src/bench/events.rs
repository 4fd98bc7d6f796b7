//! Event fan-out figures: `clients` Server-Sent Events streams held open on the real server
//! over loopback, then signed Meta webhooks sent one at a time; each stream notes when the
//! webhook's `message.received` event reaches it. The baseline is the same event reaching a
//! single stream, measured in the same run. Memory per idle stream is the process's resident
//! memory growth while the streams are open, divided by their number (it includes the client
//! side's socket and buffer, so it is an upper bound for the server's).

use std::fmt;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::pipeline::{latency, Latency};
use super::BenchError;
use crate::channels::ChannelInput;
use crate::channels::GivenCredentials;
use crate::Settings;

const PHONE_ID: &str = "100000000000002";
const SECRET: &str = "bench-events-secret";
const KEY: &str = "pk_bench_events_operator_key_0001";

/// The figures.
#[derive(Debug, Clone)]
pub struct EventReport {
    /// Streams held open.
    pub clients: usize,
    /// Events sent.
    pub events: usize,
    /// Time from sending a webhook to its event reaching each of the streams.
    pub fan_out: Latency,
    /// The same with one stream.
    pub single: Latency,
    /// Resident memory per idle stream, bytes.
    pub bytes_per_client: f64,
    /// Events that did not reach a stream within 5 s.
    pub missed: usize,
}

impl fmt::Display for EventReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(
            f,
            "event fan-out: webhook in -> message.received on every stream ({} events)",
            self.events
        )?;
        super::latency_table(
            f,
            22,
            [
                (format!("{} streams", self.clients), &self.fan_out),
                ("1 stream (baseline)".to_string(), &self.single),
            ],
        )?;
        writeln!(
            f,
            "  p99 ratio {} streams / 1 stream: {:.1}x",
            self.clients,
            ms(self.fan_out.p99) / ms(self.single.p99).max(1e-6)
        )?;
        writeln!(
            f,
            "  memory per idle stream: {:.1} KiB (process RSS growth / streams)",
            self.bytes_per_client / 1024.0
        )?;
        write!(f, "  missed: {}", self.missed)
    }
}

fn webhook(n: u64) -> (Vec<u8>, String) {
    let now = chrono::Utc::now().timestamp();
    super::meta_text_webhook(
        SECRET,
        PHONE_ID,
        ("351900000000", "Customer"),
        &format!("wamid.FANOUT.{n}.{now}"),
        &format!("ping {n}"),
    )
}

/// One stream on a plain socket: reports each `ping N` event it sees, with when.
async fn stream(
    addr: std::net::SocketAddr,
    ready: mpsc::Sender<()>,
    seen: mpsc::UnboundedSender<(u64, Instant)>,
) -> std::io::Result<()> {
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket
        .write_all(
            format!(
                "GET /api/v1/events?type=message.received HTTP/1.1\r\nHost: {addr}\r\n\
                 Authorization: Bearer {KEY}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut announced = false;
    loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        let at = Instant::now();
        buffer.extend_from_slice(&chunk[..n]);
        if !announced && buffer.windows(4).any(|w| w == b"\r\n\r\n") {
            announced = true;
            let _ = ready.send(()).await;
        }
        // Each event's data carries "ping N" once.
        let text = String::from_utf8_lossy(&buffer).into_owned();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("ping ") {
            let digits: String = rest[i + 5..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse() {
                let _ = seen.send((n, at));
            }
            rest = &rest[i + 5..];
        }
        buffer.clear();
    }
}

/// Sends webhooks `first..first + events` one at a time; each waits until every one of
/// `clients` streams has seen it (or 5 s). Returns the samples and how many were missed.
#[allow(clippy::too_many_arguments)]
async fn round(
    client: &reqwest::Client,
    url: &str,
    seen: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
    clients: usize,
    first: u64,
    events: u64,
) -> (Vec<Duration>, usize) {
    let mut samples = Vec::new();
    let mut missed = 0;
    for n in first..first + events {
        let (body, signature) = webhook(n);
        let sent = Instant::now();
        let ok = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !ok {
            missed += clients;
            continue;
        }
        let deadline = sent + Duration::from_secs(5);
        let mut got = 0;
        while got < clients {
            match tokio::time::timeout_at(deadline.into(), seen.recv()).await {
                Ok(Some((m, at))) if m == n => {
                    samples.push(at.duration_since(sent));
                    got += 1;
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        missed += clients - got;
        // Let the streams go idle between events.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (samples, missed)
}

/// Opens `clients` streams and returns once each has its response headers.
async fn open(
    addr: std::net::SocketAddr,
    clients: usize,
    seen: &mpsc::UnboundedSender<(u64, Instant)>,
) -> Result<tokio::task::JoinSet<()>, BenchError> {
    let (ready, mut readied) = mpsc::channel(clients.max(1));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let ready = ready.clone();
        let seen = seen.clone();
        set.spawn(async move {
            if let Err(e) = stream(addr, ready, seen).await {
                tracing::warn!(error = %e, "benchmark stream failed");
            }
        });
    }
    drop(ready);
    for _ in 0..clients {
        tokio::time::timeout(Duration::from_secs(30), readied.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| BenchError::Setup("a stream did not open within 30 s".into()))?;
    }
    Ok(set)
}

/// Runs the benchmark with `clients` streams and `events` events per measurement.
pub async fn run(
    settings: &Settings,
    clients: usize,
    events: u64,
) -> Result<EventReport, BenchError> {
    let scratch = super::scratch_dir(&settings.data.dir, "events")?;
    let mut s = settings.clone();
    s.data.dir = scratch.clone();
    s.database.url = None;
    s.server.admin_api_key = Some(SecretString::from(KEY.to_string()));
    s.events.buffer = s.events.buffer.max(4096);
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let app = super::app(s).await?;
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
        .map_err(|e| setup(&e))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(crate::server::serve(app.clone(), listener, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/webhooks/meta");
    let (seen_tx, mut seen) = mpsc::unbounded_channel();

    // Baseline: one stream.
    let single_set = open(addr, 1, &seen_tx).await?;
    round(&client, &url, &mut seen, 1, 0, 3).await;
    let (single, single_missed) = round(&client, &url, &mut seen, 1, 100, events).await;
    drop(single_set);
    tokio::time::sleep(Duration::from_millis(200)).await;
    while seen.try_recv().is_ok() {}

    let before = super::resident_bytes("self");
    let set = open(addr, clients, &seen_tx).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = super::resident_bytes("self");
    round(&client, &url, &mut seen, clients, 1_000, 2).await;
    let (fan_out, missed) = round(&client, &url, &mut seen, clients, 10_000, events).await;

    drop(set);
    if fan_out.is_empty() || single.is_empty() {
        return Err(BenchError::Setup(format!(
            "no event reached the streams ({missed} missed)"
        )));
    }
    let _ = stop.send(true);
    let _ = server.await;
    drop(app);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(EventReport {
        clients,
        events: events as usize,
        fan_out: latency(fan_out),
        single: latency(single),
        bytes_per_client: after.saturating_sub(before) as f64 / clients.max(1) as f64,
        missed: missed + single_missed,
    })
}
