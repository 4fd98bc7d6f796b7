//! Benchmarks behind `palaver bench`: measured figures for the parts whose speed matters to a
//! user — embedding throughput, retrieval latency and recall, speech real-time factor.

pub mod embed;
pub mod events;
pub mod inbox;
pub mod pipeline;
pub mod queue;
pub mod retrieval;
pub mod soak;
pub mod speech;
pub mod webhooks;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::embed::{EmbedError, Embedder};
use crate::vectors::edge::EdgeStore;
use crate::vectors::VectorError;
use crate::Settings;

/// A benchmark failure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Embedding the corpus failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The vector index failed.
    #[error(transparent)]
    Vectors(#[from] VectorError),
    /// Scratch files could not be written.
    #[error("benchmark files: {0}")]
    Io(#[from] std::io::Error),
    /// The sentence-transformers baseline could not be measured.
    #[error("sentence-transformers baseline: {0}")]
    Baseline(String),
    /// The model could not be written out for the baseline.
    #[error("sentence-transformers baseline: {0}")]
    Export(#[from] crate::embed::e5::export::ExportError),
    /// The benchmark's own app could not be set up.
    #[error("benchmark set-up: {0}")]
    Setup(String),
}

/// A fresh scratch directory for the benchmark `name` under `data_dir` (what a run of this
/// process left there is removed first).
fn scratch_dir(data_dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let scratch = data_dir
        .join("bench")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    Ok(scratch)
}

/// Writes a table of latencies: a header, then p50, p99 and mean in milliseconds for each
/// `(name, latency)`, names `width` characters wide.
fn latency_table<'a, N: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    width: usize,
    rows: impl IntoIterator<Item = (N, &'a pipeline::Latency)>,
) -> fmt::Result {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    writeln!(
        f,
        "  {:<width$} {:>9} {:>9} {:>9}",
        "", "p50 ms", "p99 ms", "mean ms"
    )?;
    for (name, l) in rows {
        writeln!(
            f,
            "  {:<width$} {:>9.2} {:>9.2} {:>9.2}",
            name.to_string(),
            ms(l.p50),
            ms(l.p99),
            ms(l.mean)
        )?;
    }
    Ok(())
}

/// A benchmark's own application on `settings` (its data directory and database, migrated),
/// with no embedder or vector index of use: it serves webhooks, events and the inbox.
async fn app(settings: Settings) -> Result<Arc<crate::App>, BenchError> {
    let setup = |e: &dyn fmt::Display| BenchError::Setup(e.to_string());
    let store = crate::store::open(&settings.database_url(), settings.database.max_connections)
        .await
        .map_err(|e| setup(&e))?;
    store.migrate().await.map_err(|e| setup(&e))?;
    let models = crate::models::ModelStore::from_settings(&settings);
    let embedder: Arc<dyn Embedder> = Arc::new(webhooks::Unused);
    let parts =
        crate::Parts::from_settings(&settings, &models, embedder.clone()).map_err(|e| setup(&e))?;
    let app = crate::App::assemble(
        settings,
        store,
        models,
        embedder,
        Arc::new(crate::vectors::memory::MemoryStore::new()),
        parts,
    )
    .map_err(|e| setup(&e))?;
    Ok(Arc::new(app))
}

/// A signed Meta webhook carrying one text message, sent now: its body and its
/// `X-Hub-Signature-256` with `secret`.
fn meta_text_webhook(
    secret: &str,
    phone_id: &str,
    (from, name): (&str, &str),
    id: &str,
    text: &str,
) -> (Vec<u8>, String) {
    use hmac::{Hmac, Mac};
    let now = chrono::Utc::now().timestamp();
    let body = serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_id},
            "contacts": [{"profile": {"name": name}, "wa_id": from}],
            "messages": [{"from": from, "id": id, "timestamp": now.to_string(),
                          "type": "text", "text": {"body": text}}]
        }}]}]
    }))
    .unwrap_or_default();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    (body, signature)
}

/// Open loop: `count` requests made by `request`, request `i` started at `i / rate` whatever
/// happened to the others. Each one's number, start, latency and whether it got a 2xx, in the
/// order they finished.
async fn open_loop<F>(
    client: &reqwest::Client,
    rate: u32,
    count: u64,
    request: F,
) -> Vec<(u64, std::time::Instant, std::time::Duration, bool)>
where
    F: Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder,
{
    let start = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let at = start + std::time::Duration::from_secs_f64(i as f64 / f64::from(rate));
        let builder = request(client, i);
        tasks.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let started = std::time::Instant::now();
            let ok = builder.send().await.is_ok_and(|r| r.status().is_success());
            (i, started, started.elapsed(), ok)
        });
    }
    let mut results = Vec::with_capacity(count as usize);
    while let Some(r) = tasks.join_next().await {
        if let Ok(r) = r {
            results.push(r);
        }
    }
    results
}

/// Resident memory of process `pid` (`self` for this one), bytes (Linux; 0 elsewhere).
fn resident_bytes(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Retrieval figures for several corpus sizes.
#[derive(Debug, Clone)]
pub struct RetrievalSuite {
    /// The embedder that produced the vectors.
    pub model: String,
    /// One report per size.
    pub reports: Vec<retrieval::RetrievalReport>,
}

impl fmt::Display for RetrievalSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "retrieval on real embeddings ({}) of generated sentences",
            self.model
        )?;
        for r in &self.reports {
            writeln!(f, "{r}")?;
        }
        Ok(())
    }
}

fn read_vectors(path: &Path, dims: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    if dims == 0 || bytes.len() % (dims * 4) != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(dims * 4)
            .map(|row| {
                row.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
            .collect(),
    )
}

fn write_vectors(path: &Path, vectors: &[Vec<f32>]) -> std::io::Result<()> {
    let bytes: Vec<u8> = vectors
        .iter()
        .flatten()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// Embeddings of `count` generated sentences, cached under `dir` (embedding 100k sentences takes
/// minutes; the vectors are the same every run).
async fn embeddings(
    embedder: &dyn Embedder,
    dir: &Path,
    count: usize,
) -> Result<Vec<Vec<f32>>, BenchError> {
    let path = dir.join(format!(
        "{}-{count}.f32",
        embedder.model_id().replace([':', '/'], "_")
    ));
    if let Some(v) = read_vectors(&path, embedder.dimensions()).filter(|v| v.len() == count) {
        return Ok(v);
    }
    eprintln!(
        "embedding {count} sentences with {} (cached for later runs)...",
        embedder.model_id()
    );
    let texts = embed::generate_sentences(count, 24);
    let mut vectors = Vec::with_capacity(count);
    for batch in texts.chunks(4096) {
        vectors.extend(embedder.embed(batch).await?);
        eprint!("\r  {}/{count}", vectors.len());
    }
    eprintln!();
    std::fs::create_dir_all(dir)?;
    write_vectors(&path, &vectors)?;
    Ok(vectors)
}

/// Search latency and recall@10 of the embedded index (qdrant-edge) for each corpus size, on
/// MiniLM (or the configured embedder's) vectors of generated sentences; queries are other
/// sentences from the same generator. With a Qdrant server configured (`vectors.backend =
/// "qdrant"`), the server is measured too, right after the embedded index on the same vectors.
pub async fn retrieval_on_embeddings(
    settings: &Settings,
    embedder: Arc<dyn Embedder>,
    sizes: &[usize],
    queries: usize,
) -> Result<RetrievalSuite, BenchError> {
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let cache: PathBuf = settings.data.dir.join("bench");
    let all = embeddings(embedder.as_ref(), &cache, largest + queries).await?;
    let (corpus, questions) = all.split_at(largest);
    let mut reports = Vec::new();
    for &size in sizes {
        let dir = tempfile_dir(&cache, size)?;
        let store = EdgeStore::open(&dir, settings.vectors.hnsw_ef)?;
        let options = retrieval::RetrievalOptions::default();
        let report = retrieval::run(&store, &corpus[..size], questions, &options).await?;
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        reports.push(report);
        if settings.vectors.backend == crate::config::VectorBackend::Qdrant {
            let server = crate::vectors::qdrant::QdrantStore::connect(&settings.vectors).await?;
            let options = retrieval::RetrievalOptions {
                collection: format!("bench-{}", uuid::Uuid::new_v4().simple()),
                ..options
            };
            reports.push(retrieval::run(&server, &corpus[..size], questions, &options).await?);
        }
    }
    Ok(RetrievalSuite {
        model: embedder.model_id().to_string(),
        reports,
    })
}

fn tempfile_dir(base: &Path, size: usize) -> std::io::Result<PathBuf> {
    let dir = base.join(format!("index-{size}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
