//! Retrieval figures for a [`VectorStore`]: loads a corpus of embeddings into a fresh
//! collection, builds the index, then measures the latency of top-k searches and their recall
//! against an exact scan ([`MemoryStore`]). Vectors are inputs, so the figures can come from
//! real embeddings of real or generated text (random vectors understate HNSW recall badly).

use std::fmt;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::vectors::memory::MemoryStore;
use crate::vectors::{VectorError, VectorHit, VectorPoint, VectorStore};

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct RetrievalOptions {
    /// Collection to (re)create for the run; it is dropped before and after.
    pub collection: String,
    /// Points per upsert call while loading.
    pub batch_size: usize,
    /// Hits per search (the k of recall@k).
    pub limit: usize,
    /// Searches run before measuring, to warm caches.
    pub warmup: usize,
}

impl Default for RetrievalOptions {
    fn default() -> Self {
        Self {
            collection: "bench-retrieval".into(),
            batch_size: 512,
            limit: 10,
            warmup: 50,
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct RetrievalReport {
    /// Backend name (`edge`, `qdrant`, `memory`).
    pub backend: &'static str,
    /// Points loaded.
    pub corpus: usize,
    /// Vector length.
    pub dimensions: usize,
    /// Searches measured.
    pub queries: usize,
    /// Hits per search.
    pub limit: usize,
    /// Time to upsert the corpus.
    pub load: Duration,
    /// Time of `optimize` (HNSW build).
    pub optimize: Duration,
    /// Median search latency.
    pub p50: Duration,
    /// 90th percentile search latency.
    pub p90: Duration,
    /// 99th percentile search latency.
    pub p99: Duration,
    /// Slowest search.
    pub max: Duration,
    /// Mean search latency.
    pub mean: Duration,
    /// Share of the exact top-k found by the store, averaged over queries.
    pub recall: f64,
}

/// Loads `corpus`, optimises, and measures `queries` against `store`.
pub async fn run(
    store: &dyn VectorStore,
    corpus: &[Vec<f32>],
    queries: &[Vec<f32>],
    options: &RetrievalOptions,
) -> Result<RetrievalReport, VectorError> {
    let dimensions = corpus.first().map(Vec::len).unwrap_or(0);
    if dimensions == 0 || queries.is_empty() {
        return Err(VectorError::Invalid(
            "the benchmark needs a corpus and queries".into(),
        ));
    }
    if options.limit == 0 || options.batch_size == 0 {
        return Err(VectorError::Invalid(
            "limit and batch size must be at least 1".into(),
        ));
    }
    let collection = options.collection.as_str();
    let id = |i: usize| Uuid::from_u128(i as u128 + 1);
    let points = || {
        corpus.iter().enumerate().map(|(i, v)| VectorPoint {
            id: id(i),
            vector: v.clone(),
        })
    };

    let exact = MemoryStore::new();
    exact.ensure_collection(collection, dimensions).await?;
    exact.upsert(collection, points().collect()).await?;

    store.drop_collection(collection).await?;
    store.ensure_collection(collection, dimensions).await?;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(options.batch_size);
    for point in points() {
        batch.push(point);
        if batch.len() == options.batch_size {
            store.upsert(collection, std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        store.upsert(collection, batch).await?;
    }
    let load = started.elapsed();
    tracing::info!(
        points = corpus.len(),
        elapsed_ms = load.as_millis() as u64,
        "corpus loaded"
    );

    let started = Instant::now();
    store.optimize(collection).await?;
    let optimize = started.elapsed();
    tracing::info!(elapsed_ms = optimize.as_millis() as u64, "index optimized");

    for query in queries.iter().cycle().take(options.warmup) {
        store.search(collection, query, options.limit).await?;
    }
    let mut latencies = Vec::with_capacity(queries.len());
    let mut found = 0usize;
    let mut expected = 0usize;
    for query in queries {
        let started = Instant::now();
        let hits = store.search(collection, query, options.limit).await?;
        latencies.push(started.elapsed());
        let truth = exact.search(collection, query, options.limit).await?;
        found += overlap(&hits, &truth);
        expected += truth.len();
    }
    store.drop_collection(collection).await?;

    latencies.sort_unstable();
    let total: Duration = latencies.iter().sum();
    Ok(RetrievalReport {
        backend: store.name(),
        corpus: corpus.len(),
        dimensions,
        queries: queries.len(),
        limit: options.limit,
        load,
        optimize,
        p50: percentile(&latencies, 0.50),
        p90: percentile(&latencies, 0.90),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        mean: total / latencies.len() as u32,
        recall: if expected == 0 {
            1.0
        } else {
            found as f64 / expected as f64
        },
    })
}

/// Hits of `found` that are among `truth`.
fn overlap(found: &[VectorHit], truth: &[VectorHit]) -> usize {
    found
        .iter()
        .filter(|h| truth.iter().any(|t| t.id == h.id))
        .count()
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for RetrievalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self.corpus as f64 / self.load.as_secs_f64().max(f64::EPSILON);
        writeln!(
            f,
            "retrieval on {}: {} points x {} dims, {} queries, top-{}",
            self.backend, self.corpus, self.dimensions, self.queries, self.limit
        )?;
        writeln!(
            f,
            "  load       {:>10.1} s  ({rate:.0} points/s)",
            self.load.as_secs_f64()
        )?;
        writeln!(f, "  optimize   {:>10.1} s", self.optimize.as_secs_f64())?;
        writeln!(
            f,
            "  latency    p50 {}  p90 {}  p99 {}",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99)
        )?;
        writeln!(
            f,
            "             mean {}  max {}",
            ms(self.mean),
            ms(self.max)
        )?;
        write!(f, "  recall@{:<3} {:>10.3}", self.limit, self.recall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::testing::clustered_vectors;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let cases = [
            (0.50, 50),
            (0.90, 90),
            (0.99, 99),
            (1.0, 100),
            (0.0, 1),
            (0.001, 1),
        ];
        for (q, expected) in cases {
            assert_eq!(
                percentile(&values, q),
                Duration::from_millis(expected),
                "q = {q}"
            );
        }
        assert_eq!(
            percentile(&[Duration::from_millis(7)], 0.99),
            Duration::from_millis(7)
        );
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[tokio::test]
    async fn exact_store_has_full_recall() {
        let corpus = clustered_vectors(500, 24, 6, 4, 5, 6);
        let queries = clustered_vectors(40, 24, 6, 4, 5, 7);
        let store = MemoryStore::new();
        let options = RetrievalOptions {
            warmup: 3,
            batch_size: 64,
            ..RetrievalOptions::default()
        };
        let report = run(&store, &corpus, &queries, &options).await.expect("run");
        assert_eq!(report.recall, 1.0);
        assert_eq!(
            (report.corpus, report.dimensions, report.queries),
            (500, 24, 40)
        );
        assert!(report.p50 <= report.p99 && report.p99 <= report.max);
        // The collection is removed afterwards.
        assert_eq!(store.count(&options.collection).await.expect("count"), 0);
        let table = report.to_string();
        assert!(
            table.contains("recall@10") && table.contains("1.000"),
            "{table}"
        );
    }

    #[tokio::test]
    async fn refuses_empty_input() {
        let store = MemoryStore::new();
        let options = RetrievalOptions::default();
        let corpus = vec![vec![1.0, 0.0]];
        assert!(matches!(
            run(&store, &[], &corpus, &options).await,
            Err(VectorError::Invalid(_))
        ));
        assert!(matches!(
            run(&store, &corpus, &[], &options).await,
            Err(VectorError::Invalid(_))
        ));
    }
}
