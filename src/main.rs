//! The `palaver` command line: parse, load settings, start logging, call into the library.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use palaver::config::Sources;
use palaver::{App, Settings};

#[derive(Parser)]
#[command(
    name = "palaver",
    version,
    about = "Self-hosted AI engine that answers a business's WhatsApp messages"
)]
struct Cli {
    /// Settings file (default: ./palaver.toml when present).
    #[arg(long, global = true, env = "PALAVER_CONFIG")]
    config: Option<PathBuf>,
    /// Workspace the command works in, by slug or id (default: the default workspace).
    #[arg(
        long,
        global = true,
        env = "PALAVER_WORKSPACE",
        default_value = "default"
    )]
    workspace: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (webhooks, API, metrics).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// List or fetch local model files.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Ingest files or directories into an agent's knowledge (creating the agent if needed).
    Ingest {
        /// Files or directories (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Agent whose knowledge receives the documents.
        #[arg(long)]
        agent: String,
    },
    /// Search an agent's knowledge and print ranked passages.
    Search {
        /// The question.
        question: String,
        /// Agent whose knowledge is searched.
        #[arg(long)]
        agent: String,
        /// Passages to show (default: the agent's top-k).
        #[arg(long)]
        top_k: Option<u32>,
    },
    /// Chat with an agent in the terminal (the sandbox: replies are shown, never sent).
    Chat {
        /// The agent.
        #[arg(long)]
        agent: String,
        /// Conversation session name (each has its own history).
        #[arg(long, default_value = "terminal")]
        session: String,
        /// Try another answerer without saving it (extractive, local, openai).
        #[arg(long)]
        answerer: Option<String>,
    },
    /// Transcribe an audio file (OGG/Opus voice note, WAV, MP3, M4A) and print the text with
    /// its timings.
    Transcribe {
        /// The audio file.
        file: PathBuf,
        /// Whisper model: a catalogue name (whisper-base, whisper-tiny.en) or a ggml file
        /// (default: the `speech.model` setting).
        #[arg(long)]
        model: Option<String>,
        /// Language spoken (ISO 639-1, e.g. en, es, pt); detected when not given.
        #[arg(long)]
        language: Option<String>,
    },
    /// Rebuild the vector index from the store.
    Reindex {
        /// Only this agent's collection.
        #[arg(long)]
        agent: Option<String>,
        /// Only collections whose index is behind the store.
        #[arg(long)]
        stale_only: bool,
    },
    /// Run eval suites through the engine, offline, and write JSON, JUnit and HTML reports.
    /// Exits with 1 when the gate fails (pass rate under the minimum, a must-pass case failing,
    /// or with --no-regressions a case that regressed), 2 when the run cannot be made.
    Eval(EvalArgs),
    /// Manage a workspace's API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage workspaces (tenants) and their limits.
    #[command(subcommand)]
    Workspaces(WorkspacesCommand),
    /// Manage people: accounts, passwords and their roles in a workspace (--workspace).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Print performance figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Args)]
struct EvalArgs {
    /// Suite files or directories of them (default: the `eval.dir` setting, `eval/`).
    suites: Vec<PathBuf>,
    /// Change every suite's agent: KEY=VALUE with an agent configuration field (dotted for
    /// nested ones, e.g. escalation.on_low_confidence=answer); VALUE is JSON or text, @FILE
    /// reads it from a file. Repeatable.
    #[arg(long = "agent-override", value_name = "KEY=VALUE")]
    agent_override: Vec<String>,
    /// Also run a second variant with these changes on top of --agent-override, and show both
    /// side by side (the gate then applies to this variant). Repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    compare: Vec<String>,
    /// Cases run at once (default: the `eval.concurrency` setting).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Directory for results.json, junit.xml and report.html (default: `eval.out_dir`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// An earlier results.json: list the cases that regressed or improved against it.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Fail when a suite's pass rate (0-1) is under this; overrides the suites' own `min_pass`.
    #[arg(long)]
    min_pass: Option<f64>,
    /// Fail when a case that passed in the baseline (or in variant A) no longer passes.
    #[arg(long)]
    no_regressions: bool,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Show every model, its source and whether it is ready.
    List,
    /// Download and verify models (all of them with --all).
    Fetch {
        /// Model names (see `palaver models list`).
        names: Vec<String>,
        /// Fetch every model in the catalogue.
        #[arg(long)]
        all: bool,
        /// Fetch again even when present and valid.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it (it is not shown again).
    Create {
        /// A label.
        name: String,
        /// What the key may do: owner, author or agent.
        #[arg(long, default_value = "owner")]
        role: String,
    },
    /// List keys.
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a person and give them a role in the workspace; the password is read from
    /// standard input (one line).
    Create {
        /// Their email (the sign-in name).
        email: String,
        /// Display name (default: the email).
        #[arg(long)]
        name: Option<String>,
        /// Role in the workspace: owner, author or agent.
        #[arg(long, default_value = "owner")]
        role: String,
        /// Make them the instance owner (manages workspaces and their limits).
        #[arg(long)]
        instance_owner: bool,
    },
    /// List people (of the workspace, with their roles).
    List,
    /// Set a password (read from standard input); every session of theirs ends.
    SetPassword {
        /// Their email.
        email: String,
    },
    /// Give an existing person a role in the workspace.
    Add {
        /// Their email.
        email: String,
        /// owner, author or agent.
        #[arg(long)]
        role: String,
    },
    /// Take a person out of the workspace.
    Remove {
        /// Their email.
        email: String,
    },
}

#[derive(Subcommand)]
enum WorkspacesCommand {
    /// Create a workspace.
    Create {
        /// Short unique name (a-z, 0-9, '-', '_').
        slug: String,
        /// Display name (default: the slug).
        #[arg(long)]
        name: Option<String>,
    },
    /// List workspaces with what they hold and their limits.
    List,
    /// Set the workspace's limits (the one named by --workspace); `none` removes a limit.
    Limits {
        /// Channels.
        #[arg(long)]
        channels: Option<String>,
        /// Agents.
        #[arg(long)]
        agents: Option<String>,
        /// Knowledge documents.
        #[arg(long)]
        documents: Option<String>,
        /// Bytes of knowledge documents.
        #[arg(long)]
        storage_bytes: Option<String>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
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
    /// Inbox list and search server time with many conversations in the store.
    Inbox(InboxBench),
    /// A steady rate of webhooks for minutes against real `serve` processes: latency, queue,
    /// memory, and replies lost or duplicated.
    Soak(SoakBench),
    /// Job claims with a backlog of due jobs waiting (replies after an outage) against a
    /// handful.
    Queue(QueueBench),
}

#[derive(Args)]
struct QueueBench {
    /// Due jobs waiting in the measured run.
    #[arg(long, default_value_t = 20_000)]
    backlog: usize,
    /// Due jobs waiting in the baseline run, measured in the same run.
    #[arg(long, default_value_t = 20)]
    baseline: usize,
    /// Claims timed with the backlog waiting.
    #[arg(long, default_value_t = 200)]
    repeats: usize,
    /// Benchmark on this (empty) Postgres database instead of a fresh SQLite file.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Args)]
struct SoakBench {
    /// Webhooks per second, each from a new customer.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Minutes of load.
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// `palaver serve` processes sharing the database (several need --database-url).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// An empty Postgres database for the replicas instead of a fresh SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Knowledge files the agent answers from.
    #[arg(long, default_value = "knowledge")]
    knowledge: PathBuf,
    /// Seconds between samples of the queue and memory.
    #[arg(long, default_value_t = 10)]
    every: u64,
}

#[derive(Args)]
struct InboxBench {
    /// Conversations in the store.
    #[arg(long, default_value_t = 10_000)]
    conversations: usize,
    /// Customer messages per conversation.
    #[arg(long, default_value_t = 20)]
    messages: usize,
    /// Conversations in the baseline store, measured in the same run.
    #[arg(long, default_value_t = 100)]
    baseline: usize,
    /// Timed runs of each query (after one warm-up).
    #[arg(long, default_value_t = 30)]
    repeats: usize,
    /// Fill this (empty) Postgres database instead of a fresh SQLite file.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Args)]
struct SpeechBench {
    /// Threads per transcription to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    threads: Vec<usize>,
    /// Measured runs of each clip (after one warm-up).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Language given to the models (detected when not given, as for agents set to detect it).
    #[arg(long)]
    language: Option<String>,
}

#[derive(Args)]
struct PipelineBench {
    /// Knowledge base to ingest.
    #[arg(long, default_value = "knowledge")]
    knowledge: PathBuf,
    /// Passes over the question set (after one warm-up pass).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

#[derive(Args)]
struct EventBench {
    /// Streams held open.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Events sent for each measurement.
    #[arg(long, default_value_t = 20)]
    events: u64,
}

#[derive(Args)]
struct WebhookBench {
    /// Webhooks per second in the fixed-rate run.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Seconds of each run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Benchmark on this (empty) Postgres database instead of a fresh SQLite file.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Args)]
struct EmbedBench {
    /// Sentences to embed.
    #[arg(long, default_value_t = 512)]
    sentences: usize,
    /// Words per sentence (on average).
    #[arg(long, default_value_t = 20)]
    words: usize,
    /// Timed runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also measure sentence-transformers (PyTorch) in this run, alternating with Palaver's
    /// runs, using this Python interpreter (it must have `sentence-transformers` installed);
    /// it runs all-MiniLM-L6-v2, so that is the model measured then.
    #[arg(long, value_name = "PYTHON")]
    baseline_python: Option<PathBuf>,
    /// Also measure this other local model in the same run, alternating with the configured
    /// embedder's runs (e.g. `all-minilm-l6-v2`).
    #[arg(long, value_name = "MODEL")]
    against: Option<String>,
}

#[derive(Args)]
struct RetrievalBench {
    /// Corpus sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000])]
    chunks: Vec<usize>,
    /// Queries per corpus size.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
}

/// Log levels: `PALAVER_LOG` (or `RUST_LOG`), else `default` (`info`; `warn` for benchmarks,
/// whose per-turn logs would bury the figures). qdrant-edge warns about
/// start-up flags only its own server sets, whisper.cpp logs its buffer sizes at info for every
/// voice note, and async-openai logs whole response bodies (which may hold customers' words) on
/// parse errors: all three are quietened unless asked for by name.
fn init_tracing(default: &str) {
    const QUIETENED: &str = "qdrant_edge=error,whisper_rs=warn,async_openai=off";
    let user = std::env::var("PALAVER_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.into());
    let directives = format!("sqlx=warn,tower_http=warn,{QUIETENED},{user}");
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!("ignoring invalid log filter `{user}`: {e}");
        EnvFilter::new(format!("info,{QUIETENED}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing(if matches!(cli.command, Command::Bench(_)) {
        "warn"
    } else {
        "info"
    });
    let settings = Settings::load(&Sources {
        file: cli.config.clone(),
    })?;
    // candle sizes its CPU thread pool once per process, from this variable: set it before any
    // thread exists.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", settings.llm.local.threads.to_string());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(cli, settings))
}

/// The workspace named by `--workspace` (slug or id).
async fn workspace(
    store: &dyn palaver::store::Store,
    key: &str,
) -> Result<palaver::domain::Workspace> {
    let found = match key.parse::<palaver::domain::WorkspaceId>() {
        Ok(id) => store.workspace(id).await?,
        Err(_) => store.workspace_by_slug(key).await?,
    };
    found.with_context(|| format!("no workspace `{key}` (see `palaver workspaces list`)"))
}

async fn run(cli: Cli, settings: Settings) -> Result<()> {
    let ws_key = cli.workspace.clone();
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let store =
                palaver::store::open(&settings.database_url(), settings.database.max_connections)
                    .await?;
            store.migrate().await?;
            println!("migrations applied ({:?})", store.backend());
            Ok(())
        }
        Command::Models(cmd) => models(settings, cmd).await,
        Command::Ingest { paths, agent } => {
            let app = App::build(settings).await?;
            let ws = workspace(app.store.as_ref(), &ws_key).await?.id;
            let agent = find_or_create_agent(&app, ws, &agent).await?;
            let report = app
                .knowledge
                .ingest_paths(&agent.collection(), &paths)
                .await?;
            println!("{report}");
            Ok(())
        }
        Command::Search {
            question,
            agent,
            top_k,
        } => {
            let app = App::build(settings).await?;
            app.check_index().await?;
            let ws = workspace(app.store.as_ref(), &ws_key).await?.id;
            let agent = app
                .store
                .agent_by_name(ws, &agent)
                .await?
                .with_context(|| format!("no agent named `{agent}` (create it with `palaver ingest PATH --agent {agent}`)"))?;
            let results = app
                .knowledge
                .retrieve(&palaver::knowledge::Query {
                    collection: &agent.collection(),
                    text: &question,
                    top_k: top_k.unwrap_or(agent.config.top_k) as usize,
                    min_score: agent.config.min_score,
                })
                .await?;
            if results.is_empty() {
                println!("no passage found in `{}`", agent.collection_name());
            }
            for (i, r) in results.iter().enumerate() {
                let heading = r
                    .heading
                    .as_deref()
                    .map(|h| format!(" > {h}"))
                    .unwrap_or_default();
                println!(
                    "{}. [{}{}] #{}  score {:.4}  similarity {:.3}  dense {}  keyword {}",
                    i + 1,
                    r.source,
                    heading,
                    r.position,
                    r.score,
                    r.similarity,
                    r.dense_rank.map_or("-".into(), |n| n.to_string()),
                    r.keyword_rank.map_or("-".into(), |n| n.to_string()),
                );
                println!("   {}", r.text.replace('\n', "\n   "));
            }
            Ok(())
        }
        Command::Transcribe {
            file,
            model,
            language,
        } => {
            let models = palaver::models::ModelStore::from_settings(&settings);
            let result = palaver::speech::transcribe_file(
                &models,
                &settings.speech,
                &file,
                model.as_deref(),
                language.as_deref(),
            )
            .await?;
            println!("{result}");
            Ok(())
        }
        Command::Reindex { agent, stale_only } => {
            let app = App::build(settings).await?;
            let ws = workspace(app.store.as_ref(), &ws_key).await?.id;
            let collection = match agent {
                Some(name) => Some(
                    app.store
                        .agent_by_name(ws, &name)
                        .await?
                        .with_context(|| format!("no agent named `{name}`"))?
                        .collection(),
                ),
                None => None,
            };
            let report = app
                .knowledge
                .reindex(collection.as_deref(), stale_only)
                .await?;
            println!("{report}");
            Ok(())
        }
        Command::Chat {
            agent,
            session,
            answerer,
        } => chat(settings, &ws_key, &agent, &session, answerer.as_deref()).await,
        Command::Eval(args) => {
            let code = match eval(settings, &ws_key, args).await {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    2
                }
            };
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Keys(cmd) => keys(settings, &ws_key, cmd).await,
        Command::Workspaces(cmd) => workspaces(settings, &ws_key, cmd).await,
        Command::Users(cmd) => users(settings, &ws_key, cmd).await,
        Command::Bench(cmd) => bench(settings, cmd).await,
    }
}

async fn find_or_create_agent(
    app: &App,
    ws: palaver::domain::WorkspaceId,
    name: &str,
) -> Result<palaver::domain::Agent> {
    if let Some(agent) = app.store.agent_by_name(ws, name).await? {
        return Ok(agent);
    }
    if let Some(e) = palaver::domain::validate_name("agent", name) {
        bail!("agent name `{name}` {}", e.message);
    }
    let agent = app
        .store
        .create_agent(ws, name, true, &Default::default())
        .await?;
    eprintln!("created agent `{name}`");
    Ok(agent)
}

async fn serve(settings: Settings) -> Result<()> {
    let bind = settings.server.bind.clone();
    let app = Arc::new(App::build(settings).await?);
    app.channels.check_key().await.map_err(|e| match e {
        palaver::channels::ChannelError::Sealed => anyhow::anyhow!(
            "the channel credentials in the database were sealed with another key: every process \
             on one database needs the same channels.encryption_key (set \
             PALAVER__CHANNELS__ENCRYPTION_KEY on each, or copy data/secret.key from the first)"
        ),
        e => anyhow::anyhow!("cannot read the channels: {e}"),
    })?;
    app.check_index().await?;
    palaver::eval::runs::interrupt_stale(app.store.as_ref()).await?;
    // The first owner: from the settings (unattended installs), or by a one-time set-up token
    // while nobody can sign in.
    let people = palaver::accounts::people::ensure_configured_owner(
        app.store.as_ref(),
        &app.settings.accounts,
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot create the configured owner: {e}"))?;
    if let Some(owner) = people {
        eprintln!(
            "created the instance owner {} from the settings",
            owner.email
        );
    }
    if let Some(token) = palaver::accounts::people::setup_token(app.store.as_ref()).await? {
        let url = app.settings.server.public_url.trim_end_matches('/');
        eprintln!("\nNobody can sign in yet. Create the instance owner in the console:\n");
        eprintln!("    {url}/setup?token={token}\n");
        eprintln!("or with this one-time set-up token through the API:\n");
        eprintln!("    curl -X POST {url}/api/v1/setup -H 'Content-Type: application/json' \\");
        eprintln!("      -d '{{\"token\": \"{token}\", \"email\": \"you@example.com\", \"name\": \"You\", \"password\": \"...\"}}'\n");
        eprintln!(
            "(or `palaver users create EMAIL --owner`). API keys: `palaver keys create NAME`.\n"
        );
    }
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = app.workers();
    let mut running = workers.spawn(stopped);
    tracing::info!(address = %listener.local_addr()?, workers = app.settings.workers.concurrency, "palaver is listening");
    palaver::http::serve(app, listener, shutdown_signal()).await?;
    // Finish the jobs in hand; whatever is left stays in the queue for the next start.
    let _ = stop.send(true);
    while running.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

async fn chat(
    settings: Settings,
    ws_key: &str,
    agent: &str,
    session: &str,
    answerer: Option<&str>,
) -> Result<()> {
    use palaver::pipeline::{sandbox, Overrides};
    use std::io::{BufRead, Write};

    let app = App::build(settings).await?;
    app.check_index().await?;
    let ws = workspace(app.store.as_ref(), ws_key).await?.id;
    let agent = app.store.agent_by_name(ws, agent).await?.with_context(|| {
        format!(
            "no agent named `{agent}` (create it with `palaver ingest knowledge/ --agent {agent}`)"
        )
    })?;
    let overrides = Overrides {
        answerer: answerer
            .map(|a| serde_json::from_value(serde_json::Value::String(a.to_string())))
            .transpose()
            .context("--answerer must be extractive, local or openai")?,
        ..Default::default()
    };
    eprintln!(
        "Chatting with `{}` ({} answerer). Commands: /voice FILE, /reset, /prompt, /quit.",
        agent.name,
        overrides.answerer.unwrap_or(agent.config.answerer).as_str()
    );
    let stdin = std::io::stdin();
    let mut last_prompt: Option<String> = None;
    loop {
        eprint!("you> ");
        std::io::stderr().flush().ok();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim();
        let voice_file = line
            .strip_prefix("/voice")
            .filter(|rest| rest.is_empty() || rest.starts_with(' '))
            .map(str::trim);
        match line {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                sandbox::reset(&app.pipeline, &agent, session).await?;
                println!("(conversation reset)");
                continue;
            }
            "/prompt" => {
                match &last_prompt {
                    Some(p) => println!("{p}"),
                    None => println!("(no prompt yet: the last turn did not reach the model)"),
                }
                continue;
            }
            _ if line.starts_with('/') && voice_file.is_none() => {
                println!("(unknown command; try /voice FILE, /reset, /prompt or /quit)");
                continue;
            }
            _ => {}
        }
        let said = match voice_file {
            Some(file) => match voice_note(file) {
                Ok(said) => said,
                Err(e) => {
                    println!("({e})");
                    continue;
                }
            },
            None => sandbox::Said::Text(line.to_string()),
        };
        let outcome = sandbox::say(&app.pipeline, &agent, session, said, &overrides).await?;
        if voice_file.is_some() && !outcome.question.is_empty() {
            println!("  heard: {}", outcome.question);
        }
        if let Some(prompt) = outcome.generation.as_ref().and_then(|g| g.prompt.clone()) {
            last_prompt = Some(prompt);
        }
        print!("{}", describe(&outcome));
        std::io::stdout().flush().ok();
    }
    Ok(())
}

/// The voice note at `file`, for the chat's `/voice FILE`.
fn voice_note(file: &str) -> Result<palaver::pipeline::sandbox::Said> {
    anyhow::ensure!(
        !file.is_empty(),
        "usage: /voice FILE (an OGG/Opus, WAV, MP3 or M4A file)"
    );
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    let mime = palaver::speech::decode::mime_for_path(std::path::Path::new(file));
    Ok(palaver::pipeline::sandbox::Said::Audio(
        bytes,
        mime.map(str::to_owned),
    ))
}

/// A turn's outcome as the terminal chat shows it.
fn describe(o: &palaver::pipeline::Outcome) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    match (&o.reply, o.silence) {
        (Some(reply), _) => {
            let _ = writeln!(out, "bot> {}", reply.replace('\n', "\n     "));
        }
        (None, Some(silence)) => {
            let _ = writeln!(out, "(no reply: {silence:?})");
        }
        (None, None) => {}
    }
    if let Some(trigger) = &o.escalation {
        let _ = writeln!(
            out,
            "  escalated: {} ({})",
            trigger.reason(),
            trigger.detail()
        );
    }
    if let Some(note) = &o.support_note {
        let _ = writeln!(
            out,
            "  note to the support contact: {}",
            note.replace('\n', " | ")
        );
    }
    for s in &o.sources {
        let heading = s
            .heading
            .as_deref()
            .map(|h| format!(" > {h}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  [{}] {}{}  similarity {:.3}  score {:.4}",
            s.n, s.source, heading, s.similarity, s.score
        );
    }
    if let Some(g) = &o.generation {
        let confidence = g
            .confidence
            .map(|c| format!("  confidence {c:.2}"))
            .unwrap_or_default();
        let _ =
            writeln!(
            out,
            "  {}{}  retrieve {:.1} ms  generate {:.1} ms  total {:.1} ms  tokens {} in / {} out{}",
            g.answerer.as_str(),
            g.model.as_deref().map(|m| format!(" ({m})")).unwrap_or_default(),
            g.retrieve_ms,
            g.generate_ms,
            g.total_ms,
            g.tokens_in,
            g.tokens_out,
            confidence,
        );
        if let Some(note) = &g.note {
            let _ = writeln!(out, "  ({note})");
        }
    }
    out
}

/// Runs suites (and a second variant when comparing); true when the gate passes.
async fn eval(settings: Settings, ws_key: &str, args: EvalArgs) -> Result<bool> {
    use palaver::eval::{self, report, results, Environment, Options};
    use std::io::IsTerminal;

    if let Some(min) = args.min_pass {
        if !(0.0..=1.0).contains(&min) {
            bail!("--min-pass must be between 0 and 1 (e.g. 0.9)");
        }
    }
    let paths = if args.suites.is_empty() {
        vec![settings.eval.dir.clone()]
    } else {
        args.suites.clone()
    };
    let suites = eval::suite::load(&paths)?;
    let overrides = eval::parse_overrides(&args.agent_override)?;
    let variant = if args.compare.is_empty() {
        None
    } else {
        let mut both = args.agent_override.clone();
        both.extend(args.compare.iter().cloned());
        Some(eval::parse_overrides(&both)?)
    };
    let baseline = match &args.baseline {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let file: results::BaselineFile =
                serde_json::from_str(&text).map_err(|e| eval::EvalError::Baseline {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            Some((file, path.display().to_string()))
        }
        None => None,
    };
    // The user's store is opened only to copy a named agent's configuration; a missing SQLite
    // file is not created.
    let agents = if suites.iter().any(|s| s.agent.from.is_some()) {
        let url = settings.database_url();
        let sqlite_file = url
            .strip_prefix("sqlite://")
            .map(|p| std::path::Path::new(p.split('?').next().unwrap_or(p)).to_path_buf());
        match sqlite_file {
            Some(file) if !file.exists() => None,
            _ => {
                let store = palaver::store::open(&url, 2).await?;
                store.migrate().await?;
                let ws = workspace(store.as_ref(), ws_key).await?.id;
                Some((store, ws))
            }
        }
    } else {
        None
    };
    let models = palaver::models::ModelStore::from_settings(&settings);
    let embedder = palaver::embed::from_settings(&settings, &models).await?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| settings.eval.out_dir.clone());
    let concurrency = args.concurrency.unwrap_or(settings.eval.concurrency).max(1);
    let env = Environment {
        settings,
        embedder,
        agents,
    };
    let cases: usize = suites.iter().map(|s| s.cases.len()).sum();
    eprintln!(
        "running {cases} case(s) from {} suite(s), {concurrency} at a time",
        suites.len()
    );
    let options =
        |overrides: serde_json::Map<String, serde_json::Value>, label: Option<String>| Options {
            concurrency,
            overrides,
            label,
            progress: if std::io::stderr().is_terminal() {
                eval::run::Progress::Bar
            } else {
                eval::run::Progress::Lines
            },
            on_progress: None,
        };
    let Some(variant) = variant else {
        let mut results = eval::run::run(&suites, &env, &options(overrides, None)).await?;
        if let Some((file, name)) = &baseline {
            results.baseline = Some(results::diff(&results, file, name));
        }
        results.decide_gate(args.min_pass, args.no_regressions);
        let written = report::write_all(&results, &out)?;
        print!("{}", report::console(&results));
        println!(
            "\nreports: {}, {}, {}",
            written.html.display(),
            written.json.display(),
            written.junit.display()
        );
        return Ok(results.gate.passed);
    };
    let label = |pairs: &[String]| {
        if pairs.is_empty() {
            "as configured".to_string()
        } else {
            pairs.join(", ")
        }
    };
    let a_label = label(&args.agent_override);
    let b_label = label(&args.compare);
    eprintln!("variant A: {a_label}");
    let mut a = eval::run::run(&suites, &env, &options(overrides, Some(a_label))).await?;
    eprintln!("variant B: {b_label}");
    let mut b = eval::run::run(&suites, &env, &options(variant, Some(b_label))).await?;
    if let Some((file, name)) = &baseline {
        a.baseline = Some(results::diff(&a, file, name));
        a.decide_gate(args.min_pass, args.no_regressions);
    } else {
        a.decide_gate(args.min_pass, false);
    }
    b.baseline = Some(results::diff(
        &b,
        &results::BaselineFile::from_results(&a),
        "variant A",
    ));
    b.decide_gate(args.min_pass, args.no_regressions);
    let comparison = report::Comparison::new(a, b);
    let page = comparison.write_all(&out)?;
    print!("{}", comparison.console());
    print!("{}", report::console(&comparison.b));
    println!("\nreports: {} (and a/, b/ beside it)", page.display());
    Ok(comparison.b.gate.passed)
}

async fn models(settings: Settings, cmd: ModelsCommand) -> Result<()> {
    let store = palaver::models::ModelStore::from_settings(&settings);
    match cmd {
        ModelsCommand::List => {
            println!("cache: {}", settings.models_dir().display());
            for spec in palaver::models::catalogue() {
                let status = store.status(spec.name).await?;
                println!("{:<18} {:<40} {}", spec.name, status, spec.description);
            }
            Ok(())
        }
        ModelsCommand::Fetch { names, all, force } => {
            let names: Vec<String> = if all {
                palaver::models::catalogue()
                    .iter()
                    .map(|s| s.name.to_string())
                    .collect()
            } else if names.is_empty() {
                bail!("name a model (see `palaver models list`) or pass --all");
            } else {
                names
            };
            for name in names {
                let files = store.fetch(&name, force).await?;
                println!("{name}: ready in {}", files.dir().display());
            }
            Ok(())
        }
    }
}

async fn keys(settings: Settings, ws_key: &str, cmd: KeysCommand) -> Result<()> {
    let store =
        palaver::store::open(&settings.database_url(), settings.database.max_connections).await?;
    store.migrate().await?;
    let ws = workspace(store.as_ref(), ws_key).await?.id;
    match cmd {
        KeysCommand::Create { name, role } => {
            let role: palaver::domain::MemberRole = role
                .parse()
                .map_err(|_| anyhow::anyhow!("--role must be owner, author or agent"))?;
            let (info, key) = palaver::issue_api_key(store.as_ref(), ws, role, &name).await?;
            println!("{key}");
            eprintln!(
                "created key `{}` ({}); it is not shown again",
                info.name, info.id
            );
        }
        KeysCommand::List => {
            for k in store.list_api_keys(ws).await? {
                let state = k
                    .revoked_at
                    .map_or("live".to_string(), |t| format!("revoked {t}"));
                println!(
                    "{}  {:<20} {:<6} {}…  {}  {}",
                    k.id, k.name, k.role, k.prefix, k.created_at, state
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let id = id.parse().context("not a key id")?;
            if !store.revoke_api_key(ws, id).await? {
                bail!("no live key {id}");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

/// A password from standard input (one line, its end trimmed).
fn read_password() -> Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn role_arg(role: &str) -> Result<palaver::domain::MemberRole> {
    role.parse()
        .map_err(|_| anyhow::anyhow!("--role must be owner, author or agent"))
}

async fn users(settings: Settings, ws_key: &str, cmd: UsersCommand) -> Result<()> {
    use palaver::accounts::people;
    let store =
        palaver::store::open(&settings.database_url(), settings.database.max_connections).await?;
    store.migrate().await?;
    let ws = workspace(store.as_ref(), ws_key).await?;
    let find = |email: String| {
        let store = store.clone();
        async move {
            store
                .user_by_email(&people::normalise_email(&email))
                .await?
                .map(|(u, _)| u)
                .with_context(|| format!("no user {email}"))
        }
    };
    let described = |e: people::PeopleError| match e {
        people::PeopleError::Invalid(fields) => anyhow::anyhow!(
            "{}",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => other.into(),
    };
    match cmd {
        UsersCommand::Create {
            email,
            name,
            role,
            instance_owner,
        } => {
            let role = role_arg(&role)?;
            let password = read_password()?;
            let name = name.unwrap_or_else(|| email.clone());
            let user =
                people::create_user(store.as_ref(), &email, &name, &password, instance_owner)
                    .await
                    .map_err(described)?;
            store.set_membership(user.id, ws.id, role).await?;
            println!("{}  {}  {} in {}", user.id, user.email, role, ws.slug);
        }
        UsersCommand::List => {
            for m in store.members(ws.id).await? {
                let owner = if m.user.instance_owner {
                    "  (instance owner)"
                } else {
                    ""
                };
                println!(
                    "{}  {:<32} {:<6} {}{owner}",
                    m.user.id, m.user.email, m.role, m.user.name
                );
            }
        }
        UsersCommand::SetPassword { email } => {
            let user = find(email).await?;
            let password = read_password()?;
            people::reset_password(store.as_ref(), user.id, &password)
                .await
                .map_err(described)?;
            println!("password set for {}; their sessions ended", user.email);
        }
        UsersCommand::Add { email, role } => {
            let role = role_arg(&role)?;
            let user = find(email).await?;
            store.set_membership(user.id, ws.id, role).await?;
            println!("{} is {role} in {}", user.email, ws.slug);
        }
        UsersCommand::Remove { email } => {
            let user = find(email).await?;
            if !store.remove_membership(user.id, ws.id).await? {
                bail!("{} is not in {}", user.email, ws.slug);
            }
            println!("{} left {}", user.email, ws.slug);
        }
    }
    Ok(())
}

async fn workspaces(settings: Settings, ws_key: &str, cmd: WorkspacesCommand) -> Result<()> {
    let store =
        palaver::store::open(&settings.database_url(), settings.database.max_connections).await?;
    store.migrate().await?;
    match cmd {
        WorkspacesCommand::Create { slug, name } => {
            let name = name.unwrap_or_else(|| slug.clone());
            let created = palaver::accounts::create_workspace(
                store.as_ref(),
                &slug,
                &name,
                &Default::default(),
            )
            .await
            .map_err(|e| match e {
                palaver::accounts::WorkspaceError::Invalid(fields) => anyhow::anyhow!(
                    "{}",
                    fields
                        .iter()
                        .map(|f| format!("{}: {}", f.field, f.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                other => other.into(),
            })?;
            println!("{}  {}", created.id, created.slug);
        }
        WorkspacesCommand::List => {
            for w in store.list_workspaces().await? {
                let used = store.workspace_usage(w.id).await?;
                let of = |n: u64, limit: Option<u64>| match limit {
                    Some(l) => format!("{n}/{l}"),
                    None => n.to_string(),
                };
                println!(
                    "{}  {:<16} channels {}  agents {}  documents {}  bytes {}  ({})",
                    w.id,
                    w.slug,
                    of(used.channels, w.limits.channels.map(u64::from)),
                    of(used.agents, w.limits.agents.map(u64::from)),
                    of(used.documents, w.limits.documents.map(u64::from)),
                    of(used.storage_bytes, w.limits.storage_bytes),
                    w.name
                );
            }
        }
        WorkspacesCommand::Limits {
            channels,
            agents,
            documents,
            storage_bytes,
        } => {
            let w = workspace(store.as_ref(), ws_key).await?;
            fn limit<T: std::str::FromStr>(
                flag: &str,
                value: Option<String>,
                current: Option<T>,
            ) -> Result<Option<T>> {
                match value.as_deref() {
                    None => Ok(current),
                    Some("none") => Ok(None),
                    Some(v) => v
                        .parse()
                        .map(Some)
                        .map_err(|_| anyhow::anyhow!("--{flag} must be a number or `none`")),
                }
            }
            let limits = palaver::domain::WorkspaceLimits {
                channels: limit("channels", channels, w.limits.channels)?,
                agents: limit("agents", agents, w.limits.agents)?,
                documents: limit("documents", documents, w.limits.documents)?,
                storage_bytes: limit("storage-bytes", storage_bytes, w.limits.storage_bytes)?,
            };
            store.update_workspace(w.id, &w.name, &limits).await?;
            println!("{}: {}", w.slug, serde_json::to_string(&limits)?);
        }
    }
    Ok(())
}

async fn bench(settings: Settings, cmd: BenchCommand) -> Result<()> {
    let embedder = || async {
        let models = palaver::models::ModelStore::from_settings(&settings);
        palaver::embed::from_settings(&settings, &models).await
    };
    match cmd {
        BenchCommand::Embed(args) => {
            // sentence-transformers runs all-MiniLM-L6-v2, so that is the model measured
            // against it, whichever embedder is configured.
            let embedder = match args.baseline_python {
                Some(_) => {
                    let models = palaver::models::ModelStore::from_settings(&settings);
                    palaver::embed::load_local(
                        palaver::embed::local::MODEL,
                        &models,
                        &settings.embedding,
                    )
                    .await?
                }
                None => embedder().await?,
            };
            let baseline = match args.baseline_python {
                Some(python) => {
                    let model = palaver::embed::local::MODEL;
                    let files = palaver::models::ModelStore::from_settings(&settings)
                        .ensure(model)
                        .await?;
                    let file = |name: &str| {
                        files
                            .path(name)
                            .map(Path::to_path_buf)
                            .with_context(|| format!("{model} has no {name}"))
                    };
                    Some(palaver::bench::embed::Baseline {
                        python,
                        config: file("config.json")?,
                        weights: file("model.safetensors")?,
                        tokenizer: file("tokenizer.json")?,
                    })
                }
                None => None,
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
            };
            let report = palaver::bench::soak::run(&settings, plan).await?;
            println!("{report}");
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
                &args.threads,
                args.repeats,
                args.language.as_deref(),
                scratch.path(),
            )
            .await?;
            println!("{report}");
        }
    }
    Ok(())
}
