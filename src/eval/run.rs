//! The runner. A run never touches the user's data: it builds a throwaway [`App`] (a temporary
//! data directory with its own SQLite file, the in-memory vector index, and the embedder the
//! caller already loaded), ingests each suite's knowledge there, creates each suite's agent
//! there (a copy of a stored agent's configuration when the suite names one, read from the
//! user's store and never written), and runs every case as its own sandbox session through
//! [`sandbox::say`]. Cases run concurrently up to the configured limit; a multi-turn case keeps
//! one session, so its turns see their history.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use futures::StreamExt;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::assertions::{Checked, Observed, Scorers};
use super::judge::Judge;
use super::results::{
    AssertionResult, CaseResult, CaseStatus, Gate, RunResults, SuiteResult, Summary, TurnResult,
    FORMAT,
};
use super::suite::{Case, Said, Suite};
use super::EvalError;
use crate::config::Settings;
use crate::domain::{Agent, AgentConfig, WorkspaceId};
use crate::embed::Embedder;
use crate::pipeline::{sandbox, Overrides};
use crate::store::Store;
use crate::App;

/// What a run borrows from its caller.
#[derive(Clone)]
pub struct Environment {
    /// Settings; the run uses their prompts, answerers, retrieval and judge settings, never
    /// their data directory or database.
    pub settings: Settings,
    /// The embedder, loaded once by the caller and shared.
    pub embedder: Arc<dyn Embedder>,
    /// The user's store and workspace, read for suites that start from a stored agent.
    pub agents: Option<(Arc<dyn Store>, WorkspaceId)>,
}

/// How a run shows its progress on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Progress {
    /// Not at all (API runs, tests).
    #[default]
    Hidden,
    /// A progress bar (a terminal).
    Bar,
    /// A line per finished case (CI logs).
    Lines,
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Cases run at once (at least 1).
    pub concurrency: usize,
    /// Changes applied to every suite's agent after the suite's own.
    pub overrides: Map<String, Value>,
    /// A label for this run (e.g. a variant's name).
    pub label: Option<String>,
    /// How progress is shown on stderr.
    pub progress: Progress,
    /// Receives `(cases done, cases in all)` as cases finish.
    pub on_progress: Option<tokio::sync::watch::Sender<(usize, usize)>>,
}

/// A suite ready to run: its agent in the throwaway application.
struct Prepared {
    agent: Agent,
    knowledge: Vec<String>,
}

/// The throwaway application and the directory it lives in.
struct Sandbox {
    app: App,
    _dir: tempfile::TempDir,
}

impl Sandbox {
    async fn build(env: &Environment) -> Result<Self, EvalError> {
        let dir = tempfile::Builder::new()
            .prefix("palaver-eval-")
            .tempdir()
            .map_err(|e| EvalError::Setup(format!("cannot create a temporary directory: {e}")))?;
        let mut settings = env.settings.clone();
        settings.data.dir = dir.path().to_path_buf();
        settings.database.url = None;
        settings.channels.encryption_key = None;
        let store = crate::store::open(&settings.database_url(), 4)
            .await
            .map_err(|e| EvalError::Setup(e.to_string()))?;
        store
            .migrate()
            .await
            .map_err(|e| EvalError::Setup(e.to_string()))?;
        let models = crate::models::ModelStore::from_settings(&settings);
        // On a Qdrant server, under collection names of this run's own (dropped at the end);
        // otherwise in memory, exact.
        let vectors: Arc<dyn crate::vectors::VectorStore> = match settings.vectors.backend {
            crate::config::VectorBackend::Qdrant => {
                settings.vectors.collection_prefix = format!(
                    "{}eval_{}_",
                    settings.vectors.collection_prefix,
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                );
                crate::vectors::from_settings(&settings)
                    .await
                    .map_err(|e| EvalError::Setup(e.to_string()))?
            }
            crate::config::VectorBackend::Edge => {
                Arc::new(crate::vectors::memory::MemoryStore::new())
            }
        };
        let parts = crate::Parts::from_settings(&settings, &models, env.embedder.clone())
            .map_err(|e| EvalError::Setup(e.to_string()))?;
        let app = App::assemble(
            settings,
            store,
            models,
            env.embedder.clone(),
            vectors,
            parts,
        )
        .map_err(|e| EvalError::Setup(e.to_string()))?;
        Ok(Self { app, _dir: dir })
    }

    /// Drops the run's collections from a shared index (a Qdrant server).
    async fn close(self) {
        let vectors = self.app.knowledge.vectors();
        if !vectors.shared() {
            return;
        }
        if let Ok(collections) = self.app.store.collections().await {
            for c in collections {
                if let Err(e) = vectors.drop_collection(&c.name).await {
                    tracing::warn!(collection = %c.name, error = %e, "eval collection not dropped");
                }
            }
        }
    }
}

/// A collection name per distinct set of knowledge paths, so suites sharing documents ingest
/// them once.
fn collection_for(paths: &[PathBuf]) -> String {
    let mut canonical: Vec<String> = paths
        .iter()
        .map(|p| {
            p.canonicalize()
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        })
        .collect();
    canonical.sort();
    let digest = Sha256::digest(canonical.join("\n").as_bytes());
    format!("kb-{}", &hex::encode(digest)[..12])
}

/// A slug usable in an agent name.
fn slug(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-');
    s.chars().take(40).collect()
}

async fn prepare(
    sandbox: &Sandbox,
    env: &Environment,
    options: &Options,
    index: usize,
    suite: &Suite,
    ingested: &mut HashMap<String, Vec<String>>,
) -> Result<Prepared, EvalError> {
    let stored = match &suite.agent.from {
        Some(name) => {
            let agent = match &env.agents {
                Some((store, ws)) => store.agent_by_name(*ws, name).await?,
                None => None,
            };
            Some(agent.ok_or_else(|| EvalError::UnknownAgent {
                suite: suite.name.clone(),
                agent: name.clone(),
            })?)
        }
        None => None,
    };
    let base = stored
        .as_ref()
        .map(|a| a.config.clone())
        .unwrap_or_default();
    let invalid = |errors| EvalError::Agent {
        suite: suite.name.clone(),
        errors,
    };
    let config =
        AgentConfig::patched(&base, Value::Object(suite.agent.patch.clone())).map_err(invalid)?;
    let mut config =
        AgentConfig::patched(&config, Value::Object(options.overrides.clone())).map_err(invalid)?;
    // A suite that starts from a stored agent and names no documents answers from that
    // agent's own knowledge, copied into the run.
    let from_agent = match (&stored, &env.agents) {
        (Some(agent), Some((store, _))) if suite.knowledge.is_empty() => {
            Some((agent, store.clone()))
        }
        _ => None,
    };
    let collection = match &from_agent {
        Some((agent, _)) => format!("agent-{}", agent.id.0.simple()),
        None => collection_for(&suite.knowledge),
    };
    config.collection = Some(collection.clone());
    let knowledge = match (ingested.get(&collection), from_agent) {
        (Some(k), _) => k.clone(),
        (None, Some((agent, store))) => {
            let lines = copy_knowledge(sandbox, store.as_ref(), agent, &collection)
                .await
                .map_err(|source| EvalError::Knowledge {
                    suite: suite.name.clone(),
                    source,
                })?;
            ingested.insert(collection.clone(), lines.clone());
            lines
        }
        (None, None) => {
            let mut lines = Vec::new();
            if !suite.knowledge.is_empty() {
                let report = sandbox
                    .app
                    .knowledge
                    .ingest_paths(&collection, &suite.knowledge)
                    .await
                    .map_err(|source| EvalError::Knowledge {
                        suite: suite.name.clone(),
                        source,
                    })?;
                for f in &report.files {
                    match &f.outcome {
                        crate::knowledge::IngestOutcome::Skipped { reason } => {
                            tracing::warn!(suite = %suite.name, source = %f.source, %reason, "knowledge file skipped");
                            lines.push(format!("{} (skipped: {reason})", f.source));
                        }
                        _ => lines.push(f.source.clone()),
                    }
                }
            }
            ingested.insert(collection.clone(), lines.clone());
            lines
        }
    };
    let name = format!("eval-{}-{}", index + 1, slug(&suite.name));
    let agent = sandbox
        .app
        .store
        .create_agent(
            WorkspaceId::DEFAULT,
            name.trim_end_matches('-'),
            true,
            &config,
        )
        .await?;
    Ok(Prepared { agent, knowledge })
}

/// Copies `agent`'s knowledge documents from the user's `store` into the run's `collection`;
/// returns their sources.
async fn copy_knowledge(
    sandbox: &Sandbox,
    store: &dyn Store,
    agent: &Agent,
    collection: &str,
) -> Result<Vec<String>, crate::knowledge::KnowledgeError> {
    let key = agent.collection();
    let mut chunks: HashMap<crate::domain::DocumentId, Vec<crate::domain::Chunk>> = HashMap::new();
    let mut after = None;
    loop {
        let page = store.chunk_page(&key, after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for chunk in page {
            chunks.entry(chunk.document_id).or_default().push(chunk);
        }
    }
    let mut sources = Vec::new();
    for doc in store.list_documents(&key).await? {
        let mut passages = chunks.remove(&doc.id).unwrap_or_default();
        passages.sort_by_key(|c| c.position);
        sandbox
            .app
            .knowledge
            .import_document(collection, &doc, passages)
            .await?;
        sources.push(doc.source);
    }
    Ok(sources)
}

/// Runs one case: its turns in one session, each turn's assertions checked on its reply.
async fn run_case(
    app: &App,
    agent: &Agent,
    case: &Case,
    judge: Option<&Judge>,
    voice: bool,
) -> CaseResult {
    let mut result = CaseResult {
        id: case.id.clone(),
        description: case.description.clone(),
        tags: case.tags.clone(),
        must_pass: case.must_pass,
        status: CaseStatus::Passed,
        error: None,
        turns: Vec::new(),
        assertions: Vec::new(),
        latency_ms: 0.0,
    };
    let skip_all = |result: &mut CaseResult, reason: &str| {
        for (i, _) in case.turns.iter().enumerate() {
            for a in case.assertions_for(i) {
                result.assertions.push(AssertionResult {
                    turn: i + 1,
                    kind: a.kind().to_string(),
                    expected: a.to_string(),
                    checked: Checked::skipped(reason),
                });
            }
        }
        result.status = CaseStatus::Skipped;
    };
    if case.has_audio() && !voice {
        skip_all(
            &mut result,
            "the case has a voice note and no transcriber is available (speech)",
        );
        return result;
    }
    let scorers = Scorers {
        embedder: app.knowledge.embedder().as_ref(),
        judge,
    };
    let mut conversation: Vec<(String, String)> = Vec::new();
    for (i, turn) in case.turns.iter().enumerate() {
        let said = match &turn.said {
            Said::Text(t) => sandbox::Said::Text(t.clone()),
            Said::Audio { path, .. } => match tokio::fs::read(path).await {
                Ok(bytes) => sandbox::Said::Audio(
                    bytes,
                    crate::speech::decode::mime_for_path(path).map(str::to_owned),
                ),
                Err(e) => {
                    result.status = CaseStatus::Error;
                    result.error = Some(format!(
                        "turn {}: cannot read {}: {e}",
                        i + 1,
                        path.display()
                    ));
                    return result;
                }
            },
        };
        let started = Instant::now();
        let overrides = Overrides {
            now: case.at,
            ..Default::default()
        };
        let outcome = sandbox::say(&app.pipeline, agent, &case.id, said, &overrides).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        result.latency_ms += latency_ms;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(case = %case.id, error = %e, "eval case failed in the engine");
                result.status = CaseStatus::Error;
                result.error = Some(format!("turn {}: {e}", i + 1));
                return result;
            }
        };
        let heard = if outcome.question.is_empty() {
            turn.said.label()
        } else {
            outcome.question.clone()
        };
        conversation.push(("customer".into(), heard));
        if let Some(reply) = &outcome.reply {
            conversation.push(("assistant".into(), reply.clone()));
        }
        let seen = Observed {
            reply: outcome.reply.as_deref(),
            action: outcome.action,
            escalation: outcome.escalation.as_ref(),
            sources: &outcome.sources,
            generation: outcome.generation.as_ref(),
            latency_ms,
            conversation: &conversation,
            choices: outcome.choices.as_ref(),
        };
        for a in case.assertions_for(i) {
            let checked = a.evaluate(&seen, scorers).await;
            result.assertions.push(AssertionResult {
                turn: i + 1,
                kind: a.kind().to_string(),
                expected: a.to_string(),
                checked,
            });
        }
        result
            .turns
            .push(TurnResult::from_outcome(&turn.said, &outcome, latency_ms));
    }
    result.status = CaseResult::status_from(&result.assertions);
    result
}

/// Runs `suites` and adds the results up. The gate is decided with the suites' own thresholds;
/// callers with a run-wide threshold or a baseline decide it again
/// ([`RunResults::decide_gate`]).
pub async fn run(
    suites: &[Suite],
    env: &Environment,
    options: &Options,
) -> Result<RunResults, EvalError> {
    let started_at = Utc::now();
    let sandbox = Sandbox::build(env).await?;
    let judge = Judge::from_settings(&env.settings, sandbox.app.prompts.clone())
        .map_err(|e| EvalError::Setup(format!("the judge cannot be used: {e}")))?;
    let voice = match &sandbox.app.pipeline.voice {
        None => false,
        Some(_) if !suites.iter().any(|s| s.cases.iter().any(|c| c.has_audio())) => true,
        Some(v) => match v.transcriber.ready().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cases with voice notes are skipped: no speech model");
                false
            }
        },
    };

    let mut ingested = HashMap::new();
    let mut prepared = Vec::with_capacity(suites.len());
    for (i, suite) in suites.iter().enumerate() {
        prepared.push(prepare(&sandbox, env, options, i, suite, &mut ingested).await?);
    }

    let total: usize = suites.iter().map(|s| s.cases.len()).sum();
    let bar = (options.progress == Progress::Bar).then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} cases  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    if let Some(tx) = &options.on_progress {
        let _ = tx.send((0, total));
    }
    let jobs: Vec<(usize, usize)> = suites
        .iter()
        .enumerate()
        .flat_map(|(s, suite)| (0..suite.cases.len()).map(move |c| (s, c)))
        .collect();
    let app = &sandbox.app;
    let judge_ref = judge.as_ref();
    let prepared_ref = &prepared;
    let bar_ref = bar.as_ref();
    let mut done = 0usize;
    let mut results: Vec<Vec<Option<CaseResult>>> =
        suites.iter().map(|s| vec![None; s.cases.len()]).collect();
    let mut stream = futures::stream::iter(jobs)
        .map(|(s, c)| async move {
            let case = &suites[s].cases[c];
            let result = run_case(app, &prepared_ref[s].agent, case, judge_ref, voice).await;
            (s, c, result)
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some((s, c, result)) = stream.next().await {
        done += 1;
        if let Some(bar) = bar_ref {
            bar.set_message(format!(
                "{}/{} {}",
                suites[s].name,
                result.id,
                result.status.as_str()
            ));
            bar.inc(1);
        }
        if let Some(tx) = &options.on_progress {
            let _ = tx.send((done, total));
        }
        results[s][c] = Some(result);
    }
    drop(stream);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let suite_results: Vec<SuiteResult> = suites
        .iter()
        .zip(prepared)
        .zip(results)
        .map(|((suite, prepared), cases)| {
            let cases: Vec<CaseResult> = cases.into_iter().flatten().collect();
            SuiteResult {
                name: suite.name.clone(),
                file: suite.file.clone(),
                description: suite.description.clone(),
                answerer: prepared.agent.config.answerer.as_str().to_string(),
                agent: agent_view(&prepared.agent.config),
                knowledge: prepared.knowledge,
                min_pass: suite.min_pass,
                summary: Summary::of(&cases),
                cases,
            }
        })
        .collect();
    let mut results = RunResults {
        format: FORMAT,
        label: options.label.clone(),
        started_at,
        finished_at: Utc::now(),
        embedder: env.embedder.model_id().to_string(),
        judge: judge.as_ref().map(|j| j.name().to_string()),
        overrides: options.overrides.clone(),
        summary: Summary::of(suite_results.iter().flat_map(|s| &s.cases)),
        suites: suite_results,
        gate: Gate::default(),
        baseline: None,
    };
    results.decide_gate(None, false);
    sandbox.close().await;
    Ok(results)
}

/// The agent configuration as reports show it (the collection is the run's own).
fn agent_view(config: &AgentConfig) -> Value {
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("collection");
    }
    value
}

/// Checks that every file the suites read lies under `root` and outside `data` (runs asked
/// for through the API must not read the server's own files).
pub fn confine(suites: &[Suite], root: &Path, data: &Path) -> Result<(), EvalError> {
    let root = root.canonicalize().map_err(|source| EvalError::Io {
        path: root.display().to_string(),
        source,
    })?;
    let data = data.canonicalize().ok();
    for suite in suites {
        let audio = suite
            .cases
            .iter()
            .flat_map(|c| &c.turns)
            .filter_map(|t| match &t.said {
                Said::Audio { path, .. } => Some(path),
                Said::Text(_) => None,
            });
        for path in suite.knowledge.iter().chain(audio) {
            let resolved = path.canonicalize().map_err(|source| EvalError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let inside_data = data.as_ref().is_some_and(|d| resolved.starts_with(d));
            if !resolved.starts_with(&root) || inside_data {
                return Err(EvalError::Forbidden(format!(
                    "suite `{}` reads {}, outside {}",
                    suite.name,
                    path.display(),
                    root.display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knowledge_sets_share_a_collection_whatever_their_order() {
        let a = collection_for(&[PathBuf::from("/x/a"), PathBuf::from("/x/b")]);
        let b = collection_for(&[PathBuf::from("/x/b"), PathBuf::from("/x/a")]);
        let c = collection_for(&[PathBuf::from("/x/a")]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(crate::domain::validate_name("collection", &a).is_none());
    }

    #[test]
    fn agent_names_are_valid_slugs() {
        for name in [
            "FAQ & prices",
            "über-suite",
            "a".repeat(200).as_str(),
            "--x--",
        ] {
            let agent = format!("eval-1-{}", slug(name));
            let agent = agent.trim_end_matches('-');
            assert!(
                crate::domain::validate_name("agent", agent).is_none(),
                "{name} -> {agent}"
            );
        }
    }
}
