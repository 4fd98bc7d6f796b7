//! `palaver bench`: the performance figures, each against a baseline measured in the same run.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use palaver::Settings;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Embedding throughput of the configured embedder.
    Embed(EmbedBench),
    /// Vector search latency and recall on real embeddings.
    Retrieval(RetrievalBench),
    /// Pipeline overhead and extractive reply latency on the sample knowledge base.
    Pipeline(PipelineBench),
    /// Signed webhook ingestion over loopback: latency at a fixed rate and flat-out throughput.
    Webhooks(WebhookBench),
    /// Event fan-out: many live streams receiving each event.
    Events(EventBench),
    /// Voice-note real-time factor (decode + transcribe) of each fetched Whisper model.
    Speech(SpeechBench),
    /// Inbox list, search and Reports page server time with many conversations in the store.
    Inbox(InboxBench),
    /// A steady rate of webhooks for minutes against real `serve` processes: latency, queue,
    /// memory, and replies lost or duplicated.
    Soak(SoakBench),
    /// Job claims with a backlog of due jobs waiting (replies after an outage) against a
    /// handful.
    Queue(QueueBench),
}

#[derive(Args)]
pub(crate) struct QueueBench {
    /// Due jobs waiting in the measured run.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) backlog: usize,
    /// Due jobs waiting in the baseline run, measured in the same run.
    #[arg(long, default_value_t = 20)]
    pub(crate) baseline: usize,
    /// Claims timed with the backlog waiting.
    #[arg(long, default_value_t = 200)]
    pub(crate) repeats: usize,
    /// Benchmark on this (empty) Postgres database instead of a fresh SQLite file.
    #[arg(long)]
    pub(crate) database_url: Option<String>,
}

/// A `PALAVER__SECTION__KEY=VALUE` setting for `bench soak --previous`.
fn setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if key.starts_with("PALAVER__") => {
            Ok((key.to_string(), value.to_string()))
        }
        _ => Err(format!(
            "`{text}` is not PALAVER__SECTION__KEY=VALUE (e.g. PALAVER__WORKERS__CONCURRENCY=4)"
        )),
    }
}

#[derive(Args)]
pub(crate) struct SoakBench {
    /// Webhooks per second, each from a new customer.
    #[arg(long, default_value_t = 50)]
    pub(crate) rate: u32,
    /// Minutes of load.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) minutes: f64,
    /// `palaver serve` processes sharing the database (several need --database-url).
    #[arg(long, default_value_t = 1)]
    pub(crate) replicas: usize,
    /// An empty Postgres database for the replicas instead of a fresh SQLite file.
    #[arg(long)]
    pub(crate) database_url: Option<String>,
    /// Knowledge files the agent answers from.
    #[arg(long, default_value = "knowledge")]
    pub(crate) knowledge: PathBuf,
    /// Seconds between samples of the queue and memory.
    #[arg(long, default_value_t = 10)]
    pub(crate) every: u64,
    /// Run the soak first with these settings (`PALAVER__SECTION__KEY=VALUE`, repeatable) on
    /// the replicas, then with the current ones, and print both with the ratio of customers
    /// answered per second.
    #[arg(long, value_name = "KEY=VALUE", value_parser = setting)]
    pub(crate) previous: Vec<(String, String)>,
    /// Run the soak first with this `palaver` executable (an earlier build) as the replicas,
    /// then with this one, and print both with the ratio (with `--previous`, those settings
    /// go to the earlier build).
    #[arg(long, value_name = "PATH")]
    pub(crate) previous_binary: Option<PathBuf>,
    /// Embed with this local model (as `embedding.local_model`) in every run instead of the
    /// mock, from the models directory (`PALAVER_MODELS_DIR`).
    #[arg(long, value_name = "MODEL")]
    pub(crate) local_model: Option<String>,
    /// Give each customer a question nobody asked before (their own greeting before it), so
    /// that no question vector comes from an agent's cache.
    #[arg(long)]
    pub(crate) distinct_questions: bool,
}

#[derive(Args)]
pub(crate) struct InboxBench {
    /// Conversations in the store.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) conversations: usize,
    /// Customer messages per conversation.
    #[arg(long, default_value_t = 20)]
    pub(crate) messages: usize,
    /// Conversations in the baseline store, measured in the same run.
    #[arg(long, default_value_t = 100)]
    pub(crate) baseline: usize,
    /// Timed runs of each query (after one warm-up).
    #[arg(long, default_value_t = 30)]
    pub(crate) repeats: usize,
    /// Fill this (empty) Postgres database instead of a fresh SQLite file.
    #[arg(long)]
    pub(crate) database_url: Option<String>,
}

#[derive(Args)]
pub(crate) struct SpeechBench {
    /// Threads per transcription (default: the `speech.threads` setting).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Measured runs of each clip (after one warm-up).
    #[arg(long, default_value_t = 3)]
    pub(crate) repeats: usize,
    /// Language given to the models (detected when not given, as for agents set to detect it).
    #[arg(long)]
    pub(crate) language: Option<String>,
}

#[derive(Args)]
pub(crate) struct PipelineBench {
    /// Knowledge base to ingest.
    #[arg(long, default_value = "knowledge")]
    pub(crate) knowledge: PathBuf,
    /// Passes over the question set (after one warm-up pass).
    #[arg(long, default_value_t = 5)]
    pub(crate) rounds: usize,
}

#[derive(Args)]
pub(crate) struct EventBench {
    /// Streams held open.
    #[arg(long, default_value_t = 1000)]
    pub(crate) clients: usize,
    /// Events sent for each measurement.
    #[arg(long, default_value_t = 20)]
    pub(crate) events: u64,
}

#[derive(Args)]
pub(crate) struct WebhookBench {
    /// Webhooks per second in the fixed-rate run.
    #[arg(long, default_value_t = 100)]
    pub(crate) rate: u32,
    /// Seconds of each run.
    #[arg(long, default_value_t = 10)]
    pub(crate) seconds: u64,
    /// Benchmark on this (empty) Postgres database instead of a fresh SQLite file.
    #[arg(long)]
    pub(crate) database_url: Option<String>,
}

#[derive(Args)]
pub(crate) struct EmbedBench {
    /// Sentences to embed.
    #[arg(long, default_value_t = 512)]
    pub(crate) sentences: usize,
    /// Words per sentence (on average).
    #[arg(long, default_value_t = 20)]
    pub(crate) words: usize,
    /// Timed runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Also measure sentence-transformers (PyTorch) in this run, alternating with Palaver's
    /// runs, using this Python interpreter (it must have `sentence-transformers` installed).
    /// It runs the configured model when that is an E5 model (written out as an f32 checkpoint
    /// from the same file), else all-MiniLM-L6-v2, which is then the model measured.
    #[arg(long, value_name = "PYTHON")]
    pub(crate) baseline_python: Option<PathBuf>,
    /// Also measure this other local model in the same run, alternating with the configured
    /// embedder's runs (e.g. `all-minilm-l6-v2`).
    #[arg(long, value_name = "MODEL")]
    pub(crate) against: Option<String>,
    /// Callers asking questions at once, for the figures of questions embedded call by call
    /// and batched (a local model only).
    #[arg(long, default_value_t = 16)]
    pub(crate) callers: usize,
}

#[derive(Args)]
pub(crate) struct RetrievalBench {
    /// Corpus sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000])]
    pub(crate) chunks: Vec<usize>,
    /// Queries per corpus size.
    #[arg(long, default_value_t = 1000)]
    pub(crate) queries: usize,
}

pub(crate) async fn bench(settings: Settings, cmd: BenchCommand) -> Result<()> {
    let embedder = || async {
        let models = palaver::models::ModelStore::from_settings(&settings);
        palaver::embed::from_settings(&settings, &models).await
    };
    match cmd {
        BenchCommand::Embed(args) => {
            // sentence-transformers runs the configured model when it is an E5 model (written
            // out from the same file), else all-MiniLM-L6-v2; that is then the model measured.
            // The scratch folder holds the written-out model until the benchmark ends.
            let scratch = tempfile::tempdir()?;
            let (embedder, baseline) = match args.baseline_python {
                Some(python) => {
                    let (embedder, baseline) =
                        palaver::bench::embed::with_baseline(&settings, python, scratch.path())
                            .await?;
                    (embedder, Some(baseline))
                }
                None => (embedder().await?, None),
            };
            let other = match &args.against {
                Some(name) => {
                    if !palaver::embed::LOCAL_MODELS.contains(&name.as_str()) {
                        bail!(
                            "--against {name}: not a local embedding model (known: {})",
                            palaver::embed::LOCAL_MODELS.join(", ")
                        );
                    }
                    let models = palaver::models::ModelStore::from_settings(&settings);
                    Some(palaver::embed::load_local(name, &models, &settings.embedding).await?)
                }
                None => None,
            };
            let report = palaver::bench::embed::run(
                embedder.as_ref(),
                args.sentences,
                args.words,
                args.runs,
                baseline.as_ref(),
                other.as_deref(),
            )
            .await?;
            println!("{report}");
            if settings.embedding.backend == palaver::config::EmbeddingBackend::Local {
                let models = palaver::models::ModelStore::from_settings(&settings);
                let plain = palaver::embed::load_local(
                    &settings.embedding.local_model,
                    &models,
                    &settings.embedding,
                )
                .await?;
                let questions =
                    palaver::bench::embed::questions(plain, args.callers, 8, args.runs).await?;
                println!("\n{questions}");
            }
        }
        BenchCommand::Retrieval(args) => {
            let report = palaver::bench::retrieval_on_embeddings(
                &settings,
                embedder().await?,
                &args.chunks,
                args.queries,
            )
            .await?;
            println!("{report}");
        }
        BenchCommand::Pipeline(args) => {
            let report = palaver::bench::pipeline::run(
                &settings,
                embedder().await?,
                &args.knowledge,
                args.rounds,
            )
            .await?;
            println!("{report}");
        }
        BenchCommand::Webhooks(args) => {
            let report = palaver::bench::webhooks::run(
                &settings,
                args.database_url.as_deref(),
                args.rate,
                args.seconds,
            )
            .await?;
            println!("{report}");
        }
        BenchCommand::Soak(args) => {
            if !(args.minutes > 0.0 && args.minutes <= 24.0 * 60.0) {
                anyhow::bail!("--minutes must be more than 0 and at most a day");
            }
            let plan = palaver::bench::soak::SoakPlan {
                rate: args.rate,
                duration: std::time::Duration::from_secs_f64(args.minutes * 60.0),
                replicas: args.replicas,
                database_url: args.database_url,
                knowledge: args.knowledge,
                drain: std::time::Duration::from_secs(120),
                every: std::time::Duration::from_secs(args.every.max(1)),
                previous: Vec::new(),
                previous_binary: None,
                local_model: args.local_model,
                distinct_questions: args.distinct_questions,
            };
            if let Some(binary) = &args.previous_binary {
                if !binary.is_file() {
                    anyhow::bail!("--previous-binary {}: no such file", binary.display());
                }
            }
            if !args.previous.is_empty() || args.previous_binary.is_some() {
                let plan = palaver::bench::soak::SoakPlan {
                    previous: args.previous,
                    previous_binary: args.previous_binary,
                    ..plan
                };
                let report = palaver::bench::soak::compare(&settings, plan).await?;
                println!("{report}");
            } else {
                let report = palaver::bench::soak::run(&settings, plan).await?;
                println!("{report}");
            }
        }
        BenchCommand::Events(args) => {
            let report = palaver::bench::events::run(&settings, args.clients, args.events).await?;
            println!("{report}");
        }
        BenchCommand::Queue(args) => {
            let report = palaver::bench::queue::run(
                &settings.data.dir,
                args.database_url.as_deref(),
                settings.database.max_connections,
                args.backlog,
                args.baseline,
                args.repeats,
            )
            .await?;
            println!("{report}");
        }
        BenchCommand::Inbox(args) => {
            let report = palaver::bench::inbox::run(
                &settings,
                args.database_url.as_deref(),
                args.conversations,
                args.messages,
                args.baseline,
                args.repeats,
            )
            .await?;
            println!("{report}");
        }
        BenchCommand::Speech(args) => {
            let models = palaver::models::ModelStore::from_settings(&settings);
            let scratch = tempfile::tempdir()?;
            let report = palaver::bench::speech::run(
                &models,
                &settings.speech,
                args.threads.unwrap_or(settings.speech.threads),
                args.repeats,
                args.language.as_deref(),
                &settings.eval.dir.join("audio"),
                scratch.path(),
            )
            .await?;
            println!("{report}");
        }
    }
    Ok(())
}
