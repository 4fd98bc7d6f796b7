//! The `palaver` command line: parse, load settings, start logging, call into the library
//! through one module per command group ([`cli`]).

mod cli;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use palaver::config::Sources;
use palaver::Settings;

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
    Models(cli::admin::ModelsCommand),
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
    Eval(cli::eval::EvalArgs),
    /// Manage a workspace's API keys.
    #[command(subcommand)]
    Keys(cli::admin::KeysCommand),
    /// Manage workspaces (tenants) and their limits.
    #[command(subcommand)]
    Workspaces(cli::admin::WorkspacesCommand),
    /// Manage people: accounts, passwords and their roles in a workspace (--workspace).
    #[command(subcommand)]
    Users(cli::admin::UsersCommand),
    /// Print performance figures.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
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
    // Every matrix product asks candle how many threads it may use, and unless this variable
    // is set, the answer reads /proc/cpuinfo again: 6% of a replica's CPU time when it embeds
    // every question (`bench soak --distinct-questions`, multilingual-e5-small). The same
    // count, computed once.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(cli, settings))
}

async fn run(cli: Cli, settings: Settings) -> Result<()> {
    let ws_key = cli.workspace.clone();
    match cli.command {
        Command::Serve => cli::serve::serve(settings).await,
        Command::Migrate => cli::serve::migrate(settings).await,
        Command::Models(cmd) => cli::admin::models(settings, cmd).await,
        Command::Ingest { paths, agent } => {
            cli::knowledge::ingest(settings, &ws_key, &paths, &agent).await
        }
        Command::Search {
            question,
            agent,
            top_k,
        } => cli::knowledge::search(settings, &ws_key, &question, &agent, top_k).await,
        Command::Transcribe {
            file,
            model,
            language,
        } => {
            cli::knowledge::transcribe(settings, &file, model.as_deref(), language.as_deref()).await
        }
        Command::Reindex { agent, stale_only } => {
            cli::knowledge::reindex(settings, &ws_key, agent.as_deref(), stale_only).await
        }
        Command::Chat {
            agent,
            session,
            answerer,
        } => cli::chat::chat(settings, &ws_key, &agent, &session, answerer.as_deref()).await,
        Command::Eval(args) => {
            let code = match cli::eval::eval(settings, &ws_key, args).await {
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
        Command::Keys(cmd) => cli::admin::keys(settings, &ws_key, cmd).await,
        Command::Workspaces(cmd) => cli::admin::workspaces(settings, &ws_key, cmd).await,
        Command::Users(cmd) => cli::admin::users(settings, &ws_key, cmd).await,
        Command::Bench(cmd) => cli::bench::bench(settings, cmd).await,
    }
}
