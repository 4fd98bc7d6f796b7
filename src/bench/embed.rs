//! Embedding throughput: sentences per second on generated English sentences, compared with
//! sentence-transformers (PyTorch): the figure in MODELS.md and, when a Python interpreter with
//! sentence-transformers is given, the same model measured in the same run, alternating with
//! Palaver's own runs so both see the same machine load (multilingual-e5-small from the very
//! weights Palaver runs, written out as a checkpoint; all-MiniLM-L6-v2 from its own files).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::BenchError;
use crate::config::EmbeddingBackend;
use crate::embed::{cosine, e5, load_local, local, EmbedError, Embedder};
use crate::models::ModelStore;
use crate::Settings;

/// sentence-transformers (PyTorch) on 512 sentences of ~20 words, batch 32, 2 threads, as
/// recorded in MODELS.md.
pub const SENTENCE_TRANSFORMERS_PER_SEC: f64 = 413.0;

/// Sentences embedded before timing starts (loads caches, spins up threads).
const WARM_UP: usize = 32;

/// The sentence-transformers side of a same-run comparison.
const BASELINE_SCRIPT: &str = include_str!("../../benches/embed_baseline.py");

/// How long the baseline may take to import PyTorch and load the model, or to embed once.
const BASELINE_TIMEOUT: Duration = Duration::from_secs(600);

/// Result of one benchmark.
#[derive(Debug, Clone)]
pub struct EmbedReport {
    /// The embedder's model id.
    pub model: String,
    /// Sentences embedded in each timed run.
    pub sentences: usize,
    /// Mean words per sentence.
    pub mean_words: f64,
    /// Timed runs; the figures are their medians.
    pub runs: usize,
    /// Median wall-clock time of a timed run, in seconds.
    pub seconds: f64,
    /// Throughput of the median run.
    pub sentences_per_sec: f64,
    /// sentence-transformers measured in the same run, when asked for.
    pub baseline: Option<BaselineReport>,
    /// Another local embedder measured in the same run, when asked for: its model id and
    /// throughput.
    pub other: Option<(String, f64)>,
}

/// sentence-transformers measured alongside Palaver.
#[derive(Debug, Clone)]
pub struct BaselineReport {
    /// Library versions and threads, e.g. `sentence-transformers 5.1, torch 2.9, 2 threads`.
    pub label: String,
    /// Throughput of its median run.
    pub sentences_per_sec: f64,
    /// Lowest cosine similarity between its vector and Palaver's for the same sentence.
    pub min_cosine: f64,
}

impl EmbedReport {
    /// Throughput relative to the sentence-transformers figure in MODELS.md.
    pub fn ratio(&self) -> f64 {
        self.sentences_per_sec / SENTENCE_TRANSFORMERS_PER_SEC
    }

    /// Throughput relative to sentence-transformers measured in this run.
    pub fn same_run_ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .map(|b| self.sentences_per_sec / b.sentences_per_sec.max(f64::EPSILON))
    }
}

impl fmt::Display for EmbedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "embedding throughput ({})", self.model)?;
        writeln!(
            f,
            "  sentences              {:>10} ({:.1} words on average)",
            self.sentences, self.mean_words
        )?;
        writeln!(
            f,
            "  runs                   {:>10} (median shown)",
            self.runs
        )?;
        writeln!(f, "  total                  {:>10.3} s", self.seconds)?;
        writeln!(
            f,
            "  throughput             {:>10.1} sentences/s",
            self.sentences_per_sec
        )?;
        writeln!(
            f,
            "  sentence-transformers  {:>10.1} sentences/s (MODELS.md: all-MiniLM-L6-v2, PyTorch, 2 threads)",
            SENTENCE_TRANSFORMERS_PER_SEC
        )?;
        write!(f, "  ratio                  {:>10.2}x", self.ratio())?;
        if let (Some(b), Some(ratio)) = (&self.baseline, self.same_run_ratio()) {
            writeln!(f)?;
            writeln!(
                f,
                "  same run               {:>10.1} sentences/s ({})",
                b.sentences_per_sec, b.label
            )?;
            writeln!(f, "  ratio to same run      {:>10.2}x", ratio)?;
            write!(
                f,
                "  agreement              {:>10.6} lowest cosine over {} sentences",
                b.min_cosine, self.sentences
            )?;
        }
        if let Some((model, per_sec)) = &self.other {
            writeln!(f)?;
            writeln!(
                f,
                "  same run               {:>10.1} sentences/s ({model})",
                per_sec
            )?;
            write!(
                f,
                "  ratio to {model:<13} {:>10.2}x",
                self.sentences_per_sec / per_sec.max(f64::EPSILON)
            )?;
        }
        Ok(())
    }
}

/// The model sentence-transformers runs and the Python interpreter that runs it.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// A Python with `sentence-transformers` (and so PyTorch) installed.
    pub python: PathBuf,
    /// The model, the same one Palaver measures.
    pub model: BaselineModel,
}

/// The files of the model sentence-transformers runs.
#[derive(Debug, Clone)]
pub enum BaselineModel {
    /// all-MiniLM-L6-v2's own files from the model cache, which the script puts in a
    /// sentence-transformers folder.
    MiniLm {
        /// `config.json` of the model.
        config: PathBuf,
        /// `model.safetensors` of the model.
        weights: PathBuf,
        /// `tokenizer.json` of the model.
        tokenizer: PathBuf,
    },
    /// A sentence-transformers folder (an E5 model written out by [`e5::export`]); every text
    /// takes the folder's prompt `prompt_name`, as Palaver prefixes it.
    Folder {
        /// The folder.
        dir: PathBuf,
        /// The prompt for passages, what the benchmark embeds.
        prompt_name: String,
    },
}

/// The embedder `bench embed --baseline-python PYTHON` measures and the same model for
/// sentence-transformers: the configured local model when it is an E5 model (its file written
/// out under `scratch` as an f32 checkpoint, see [`e5::export`]), else all-MiniLM-L6-v2 from
/// its own files.
pub async fn with_baseline(
    settings: &Settings,
    python: PathBuf,
    scratch: &Path,
) -> Result<(Arc<dyn Embedder>, Baseline), BenchError> {
    let models = ModelStore::from_settings(settings);
    let configured = settings.embedding.local_model.as_str();
    let local = settings.embedding.backend == EmbeddingBackend::Local;
    if local && [e5::MODEL, e5::PORTUGUESE_MODEL].contains(&configured) {
        let (name, file) = e5::model_file(&models, configured).await?;
        let dir = scratch.join(name);
        let out = dir.clone();
        tokio::task::spawn_blocking(move || e5::export::export(&file, &out))
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))??;
        let embedder = load_local(name, &models, &settings.embedding).await?;
        let model = BaselineModel::Folder {
            dir,
            prompt_name: e5::export::PASSAGE_PROMPT.to_string(),
        };
        return Ok((embedder, Baseline { python, model }));
    }
    let files = models
        .ensure(local::MODEL)
        .await
        .map_err(EmbedError::from)?;
    let file = |name: &str| {
        files
            .path(name)
            .map(Path::to_path_buf)
            .ok_or_else(|| EmbedError::Model(format!("{} has no {name}", local::MODEL)))
    };
    let model = BaselineModel::MiniLm {
        config: file("config.json")?,
        weights: file("model.safetensors")?,
        tokenizer: file("tokenizer.json")?,
    };
    let embedder = load_local(local::MODEL, &models, &settings.embedding).await?;
    Ok((embedder, Baseline { python, model }))
}

/// Embeds `sentences` generated sentences of about `words` words (±5) `runs` times after one
/// warm-up batch and reports the median throughput; with a [`Baseline`], each of Palaver's runs
/// is followed by one of sentence-transformers on the same sentences, and with `other`, by one
/// of that embedder.
pub async fn run(
    embedder: &dyn Embedder,
    sentences: usize,
    words: usize,
    runs: usize,
    baseline: Option<&Baseline>,
    other_embedder: Option<&dyn Embedder>,
) -> Result<EmbedReport, BenchError> {
    let runs = runs.max(1);
    let texts = generate_sentences(sentences, words);
    let warm_up: Vec<String> = generate_sentences(WARM_UP, words)
        .into_iter()
        .rev()
        .collect();
    let mut other = match baseline {
        // The local embedder uses every core; so does the baseline.
        Some(b) => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            Some(BaselineProcess::start(b, &texts, threads).await?)
        }
        None => None,
    };
    embedder.embed(&warm_up).await?;
    if let Some(e) = other_embedder {
        e.embed(&warm_up).await?;
    }

    let mut ours = Vec::with_capacity(runs);
    let mut theirs = Vec::with_capacity(runs);
    let mut others = Vec::with_capacity(runs);
    let mut vectors = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        vectors = embedder.embed(&texts).await?;
        ours.push(started.elapsed().as_secs_f64());
        if let Some(p) = other.as_mut() {
            theirs.push(p.run().await?);
        }
        if let Some(e) = other_embedder {
            let started = Instant::now();
            e.embed(&texts).await?;
            others.push(started.elapsed().as_secs_f64());
        }
    }
    if vectors.len() != texts.len() {
        return Err(EmbedError::Inference(format!(
            "{} vectors for {} sentences",
            vectors.len(),
            texts.len()
        ))
        .into());
    }
    let baseline = match other {
        Some(p) => {
            let (label, theirs_vectors) = p.finish(texts.len(), embedder.dimensions()).await?;
            Some(BaselineReport {
                label,
                sentences_per_sec: texts.len() as f64 / median(&theirs).max(f64::EPSILON),
                min_cosine: min_cosine(&vectors, &theirs_vectors),
            })
        }
        None => None,
    };
    let total_words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    let seconds = median(&ours);
    Ok(EmbedReport {
        model: embedder.model_id().to_string(),
        sentences: texts.len(),
        mean_words: total_words as f64 / texts.len().max(1) as f64,
        runs,
        seconds,
        sentences_per_sec: texts.len() as f64 / seconds.max(f64::EPSILON),
        baseline,
        other: other_embedder.map(|e| {
            (
                e.model_id().to_string(),
                texts.len() as f64 / median(&others).max(f64::EPSILON),
            )
        }),
    })
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Lowest cosine similarity between paired vectors.
fn min_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(cosine(x, y)))
        .fold(f64::INFINITY, f64::min)
}

fn baseline_err(what: impl fmt::Display) -> BenchError {
    BenchError::Baseline(what.to_string())
}

/// The sentence-transformers script running in its own Python process.
struct BaselineProcess {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
    label: String,
    scratch: tempfile::TempDir,
}

impl BaselineProcess {
    async fn start(b: &Baseline, texts: &[String], threads: usize) -> Result<Self, BenchError> {
        let scratch = tempfile::tempdir()?;
        let script = scratch.path().join("embed_baseline.py");
        let sentences = scratch.path().join("sentences.txt");
        tokio::fs::write(&script, BASELINE_SCRIPT).await?;
        tokio::fs::write(&sentences, texts.join("\n")).await?;
        let mut command = tokio::process::Command::new(&b.python);
        command.arg(&script);
        match &b.model {
            BaselineModel::MiniLm {
                config,
                weights,
                tokenizer,
            } => command
                .arg("--config")
                .arg(config)
                .arg("--weights")
                .arg(weights)
                .arg("--tokenizer")
                .arg(tokenizer),
            BaselineModel::Folder { dir, prompt_name } => command
                .arg("--model-dir")
                .arg(dir)
                .arg("--prompt-name")
                .arg(prompt_name),
        };
        let mut child = command
            .arg("--sentences")
            .arg(&sentences)
            .arg("--threads")
            .arg(threads.to_string())
            .arg("--out")
            .arg(scratch.path().join("vectors.f32"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| baseline_err(format!("cannot run {}: {e}", b.python.display())))?;
        let (Some(stdin), Some(stdout), Some(mut err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(baseline_err("the baseline's pipes were not set up"));
        };
        // Drained as it comes, so a chatty library can never block on a full pipe.
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text).await;
            text
        });
        let mut process = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            stderr,
            label: String::new(),
            scratch,
        };
        let ready = process.reply().await?;
        let version = |key: &str| {
            ready
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string()
        };
        process.label = format!(
            "sentence-transformers {}, torch {}, {} threads",
            version("sentence_transformers"),
            version("torch"),
            ready.get("threads").and_then(|v| v.as_u64()).unwrap_or(0)
        );
        if let Some(prompt) = ready
            .get("prompt")
            .and_then(|v| v.as_str())
            .filter(|p| !p.is_empty())
        {
            process.label.push_str(&format!(", prompt {prompt:?}"));
        }
        Ok(process)
    }

    /// The script's next JSON line; its stderr when it has none.
    async fn reply(&mut self) -> Result<serde_json::Value, BenchError> {
        let line = tokio::time::timeout(BASELINE_TIMEOUT, self.stdout.next_line())
            .await
            .map_err(|_| baseline_err("sentence-transformers did not answer in time"))??;
        match line {
            Some(line) => serde_json::from_str(&line)
                .map_err(|e| baseline_err(format!("unexpected output `{line}`: {e}"))),
            None => {
                let _ = self.child.wait().await;
                let stderr = (&mut self.stderr).await.unwrap_or_default();
                let last: Vec<&str> = stderr.lines().rev().take(5).collect();
                let last: Vec<&str> = last.into_iter().rev().collect();
                Err(baseline_err(format!(
                    "sentence-transformers stopped (is it installed for this Python?): {}",
                    last.join(" | ")
                )))
            }
        }
    }

    /// One timed run of the script; its seconds.
    async fn run(&mut self) -> Result<f64, BenchError> {
        self.stdin.write_all(b"run\n").await?;
        self.stdin.flush().await?;
        self.reply()
            .await?
            .get("seconds")
            .and_then(|v| v.as_f64())
            .ok_or_else(|| baseline_err("a run reported no time"))
    }

    /// Stops the script and reads the vectors of its last run.
    async fn finish(
        mut self,
        sentences: usize,
        dimensions: usize,
    ) -> Result<(String, Vec<Vec<f32>>), BenchError> {
        self.stdin.write_all(b"quit\n").await?;
        self.stdin.flush().await?;
        let status = tokio::time::timeout(BASELINE_TIMEOUT, self.child.wait())
            .await
            .map_err(|_| baseline_err("sentence-transformers did not stop"))??;
        if !status.success() {
            return Err(baseline_err(format!(
                "sentence-transformers exited with {status}"
            )));
        }
        let bytes = tokio::fs::read(self.scratch.path().join("vectors.f32")).await?;
        vectors_from_bytes(&bytes, sentences, dimensions).map(|v| (self.label, v))
    }
}

/// Little-endian f32 rows of `dimensions` values.
fn vectors_from_bytes(
    bytes: &[u8],
    rows: usize,
    dimensions: usize,
) -> Result<Vec<Vec<f32>>, BenchError> {
    if bytes.len() != rows * dimensions * 4 || dimensions == 0 {
        return Err(baseline_err(format!(
            "expected {rows} vectors of {dimensions} values, got {} bytes",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(dimensions * 4)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "our",
    "your",
    "this",
    "that",
    "every",
    "some",
    "order",
    "delivery",
    "cake",
    "bread",
    "shop",
    "store",
    "customer",
    "price",
    "refund",
    "receipt",
    "payment",
    "card",
    "address",
    "week",
    "morning",
    "evening",
    "weekend",
    "holiday",
    "menu",
    "table",
    "booking",
    "reservation",
    "service",
    "question",
    "answer",
    "problem",
    "account",
    "password",
    "email",
    "phone",
    "message",
    "parcel",
    "box",
    "size",
    "colour",
    "fresh",
    "warm",
    "late",
    "early",
    "quick",
    "friendly",
    "small",
    "large",
    "new",
    "old",
    "open",
    "closed",
    "available",
    "ready",
    "free",
    "extra",
    "special",
    "usual",
    "is",
    "are",
    "was",
    "will",
    "can",
    "could",
    "would",
    "should",
    "have",
    "has",
    "had",
    "need",
    "want",
    "like",
    "ask",
    "send",
    "bring",
    "pick",
    "collect",
    "deliver",
    "arrive",
    "change",
    "cancel",
    "return",
    "pay",
    "book",
    "call",
    "check",
    "find",
    "help",
    "know",
    "make",
    "take",
    "give",
    "keep",
    "leave",
    "wait",
    "try",
    "use",
    "and",
    "or",
    "but",
    "because",
    "if",
    "when",
    "before",
    "after",
    "until",
    "with",
    "without",
    "for",
    "from",
    "to",
    "in",
    "on",
    "at",
    "by",
    "about",
    "of",
    "near",
    "today",
    "tomorrow",
    "yesterday",
    "soon",
    "again",
    "still",
    "already",
    "please",
    "thanks",
    "very",
    "really",
    "quite",
    "only",
    "also",
    "just",
    "more",
    "less",
    "two",
    "three",
    "twelve",
    "hours",
    "minutes",
    "days",
    "kitchen",
    "birthday",
    "wedding",
    "chocolate",
    "vanilla",
    "lemon",
    "gluten",
    "allergy",
    "ingredients",
    "counter",
    "street",
    "parking",
    "station",
    "team",
    "staff",
    "manager",
    "owner",
    "policy",
    "discount",
    "voucher",
    "gift",
    "sample",
    "tasting",
    "recipe",
];

/// Deterministic pseudo-random sentences: the same arguments always give the same texts.
pub fn generate_sentences(count: usize, words: usize) -> Vec<String> {
    // splitmix64: tiny, fixed, and independent of any crate's RNG algorithm choices.
    let mut state: u64 = 0x5eed_1234_abcd_0042;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let low = words.saturating_sub(5).max(1);
    let high = words + 5;
    (0..count)
        .map(|_| {
            let n = low + (next() % (high - low + 1) as u64) as usize;
            let mut sentence = String::new();
            for i in 0..n {
                let word = WORDS[(next() % WORDS.len() as u64) as usize];
                if i == 0 {
                    let mut chars = word.chars();
                    if let Some(first) = chars.next() {
                        sentence.extend(first.to_uppercase());
                        sentence.push_str(chars.as_str());
                    }
                } else {
                    sentence.push(' ');
                    sentence.push_str(word);
                }
            }
            sentence.push('.');
            sentence
        })
        .collect()
}

/// Questions from many callers at once, one question a call (customers writing at the same
/// time), embedded call by call and through [`crate::embed::batch::QueryBatches`].
#[derive(Debug, Clone)]
pub struct QuestionsReport {
    /// The embedder's model id.
    pub model: String,
    /// Callers asking at once.
    pub callers: usize,
    /// Questions each caller asks, one after another.
    pub each: usize,
    /// Questions per second embedded call by call (median run).
    pub alone_per_sec: f64,
    /// Questions per second through the batcher (median run).
    pub batched_per_sec: f64,
}

impl fmt::Display for QuestionsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "questions from {} callers at once, {} each ({})",
            self.callers, self.each, self.model
        )?;
        writeln!(
            f,
            "  call by call         {:>8.1} questions/s",
            self.alone_per_sec
        )?;
        writeln!(
            f,
            "  batched while busy   {:>8.1} questions/s",
            self.batched_per_sec
        )?;
        write!(
            f,
            "  batched / call by call: {:.2}x (same run, alternating)",
            self.batched_per_sec / self.alone_per_sec.max(f64::EPSILON)
        )
    }
}

/// Measures [`QuestionsReport`] over `runs` alternating runs of each way.
pub async fn questions(
    plain: std::sync::Arc<dyn Embedder>,
    callers: usize,
    each: usize,
    runs: usize,
) -> Result<QuestionsReport, BenchError> {
    let (callers, each, runs) = (callers.max(1), each.max(1), runs.max(1));
    let batched: std::sync::Arc<dyn Embedder> =
        std::sync::Arc::new(crate::embed::batch::QueryBatches::new(plain.clone()));
    let asked: Vec<Vec<String>> = (0..callers)
        .map(|c| {
            generate_sentences(each, 8)
                .into_iter()
                .map(|q| format!("{q} ({c})?"))
                .collect()
        })
        .collect();
    let pass = |embedder: std::sync::Arc<dyn Embedder>| {
        let asked = &asked;
        async move {
            let started = Instant::now();
            let results = futures::future::join_all(asked.iter().map(|questions| {
                let embedder = embedder.clone();
                async move {
                    for q in questions {
                        embedder.embed_queries(std::slice::from_ref(q)).await?;
                    }
                    Ok::<_, EmbedError>(())
                }
            }))
            .await;
            results
                .into_iter()
                .collect::<Result<Vec<()>, EmbedError>>()?;
            Ok::<_, EmbedError>(started.elapsed().as_secs_f64())
        }
    };
    pass(plain.clone()).await?;
    let (mut alone, mut together) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        alone.push(pass(plain.clone()).await?);
        together.push(pass(batched.clone()).await?);
    }
    let total = (callers * each) as f64;
    Ok(QuestionsReport {
        model: plain.model_id().to_string(),
        callers,
        each,
        alone_per_sec: total / median(&alone).max(f64::EPSILON),
        batched_per_sec: total / median(&together).max(f64::EPSILON),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_deterministic_and_sized() {
        let a = generate_sentences(200, 20);
        assert_eq!(a, generate_sentences(200, 20));
        let counts: Vec<usize> = a.iter().map(|s| s.split_whitespace().count()).collect();
        assert!(counts.iter().all(|&n| (15..=25).contains(&n)), "{counts:?}");
        assert!(
            counts.iter().any(|&n| n <= 16) && counts.iter().any(|&n| n >= 24),
            "lengths must vary"
        );
        let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
        assert!((18.5..=21.5).contains(&mean), "{mean}");
        assert!(a
            .iter()
            .all(|s| s.ends_with('.') && s.chars().next().is_some_and(char::is_uppercase)));
    }

    #[test]
    fn report_shows_ratio_to_reference() {
        let r = EmbedReport {
            model: "m".into(),
            sentences: 512,
            mean_words: 20.0,
            runs: 3,
            seconds: 1.0,
            sentences_per_sec: 826.0,
            baseline: None,
            other: None,
        };
        let text = r.to_string();
        assert!(text.contains("2.00x"), "{text}");
        assert!(text.contains("413.0"), "{text}");
        assert!(!text.contains("same run"), "{text}");

        let r = EmbedReport {
            baseline: Some(BaselineReport {
                label: "sentence-transformers 5.1.0, torch 2.9.0, 2 threads".into(),
                sentences_per_sec: 275.0,
                min_cosine: 0.999_998,
            }),
            ..r
        };
        let text = r.to_string();
        assert!(text.contains("3.00x"), "{text}");
        assert!(text.contains("torch 2.9.0"), "{text}");
        assert!(text.contains("0.999998"), "{text}");

        let r = EmbedReport {
            baseline: None,
            other: Some(("all-minilm-l6-v2".into(), 1652.0)),
            ..r
        };
        let text = r.to_string();
        assert!(
            text.contains("1652.0 sentences/s (all-minilm-l6-v2)"),
            "{text}"
        );
        assert!(text.contains("0.50x"), "{text}");
    }

    #[tokio::test]
    async fn questions_are_measured_both_ways() {
        let report = questions(
            std::sync::Arc::new(crate::testing::HashEmbedder::default()),
            4,
            2,
            1,
        )
        .await
        .unwrap();
        assert!(report.alone_per_sec > 0.0 && report.batched_per_sec > 0.0);
        assert!(report.to_string().contains("batched / call by call"));
    }

    #[test]
    fn medians_and_cosines() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let a = vec![vec![1.0, 0.0], vec![0.6, 0.8]];
        let b = vec![vec![2.0, 0.0], vec![0.8, 0.6]];
        assert!((min_cosine(&a, &b) - 0.96).abs() < 1e-6);
    }

    #[test]
    fn baseline_vectors_are_read_back_exactly() {
        let bytes: Vec<u8> = [1.5f32, -2.0, 0.25, 8.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let v = vectors_from_bytes(&bytes, 2, 2).unwrap();
        assert_eq!(v, vec![vec![1.5, -2.0], vec![0.25, 8.0]]);
        assert!(vectors_from_bytes(&bytes, 3, 2).is_err());
    }

    #[tokio::test]
    async fn a_failing_baseline_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"{}").unwrap();
        // python3 is needed anyway to fetch models; with or without sentence-transformers it
        // cannot load a model from these files.
        for model in [
            BaselineModel::MiniLm {
                config: file.clone(),
                weights: file.clone(),
                tokenizer: file.clone(),
            },
            BaselineModel::Folder {
                dir: dir.path().to_path_buf(),
                prompt_name: "document".into(),
            },
        ] {
            let b = Baseline {
                python: PathBuf::from("python3"),
                model,
            };
            let err = BaselineProcess::start(&b, &["a".to_string()], 1)
                .await
                .err()
                .expect("no baseline without sentence-transformers")
                .to_string();
            assert!(err.contains("sentence-transformers stopped"), "{err}");
        }
    }
}
