//! Eval runs asked for through the API: the request is checked (suites under the server's
//! `eval.dir`, or an inline suite; overrides; thresholds), recorded as a run in the store, and
//! run in the background — one at a time per process, so evals never crowd out customers —
//! with progress and the results written back to the store.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use super::results::RunResults;
use super::suite::{self, SchemaError, SchemaErrors, Suite};
use super::{run, EvalError};
use crate::domain::{EvalRunId, WorkspaceId};
use crate::store::{EvalRun, EvalRunStatus, FinishedEvalRun};
use crate::App;

/// What an API client asks for.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Suite files or directories, relative to the server's `eval.dir`; empty (and no inline
    /// suite): every suite there.
    #[serde(default)]
    pub suites: Vec<String>,
    /// A suite given inline, in the file schema, as an object or as YAML text (its paths
    /// resolve against `eval.dir`).
    #[serde(default)]
    pub suite: Option<Value>,
    /// Changes to every suite's agent (agent configuration fields).
    #[serde(default)]
    pub overrides: Map<String, Value>,
    /// Pass rate (0-1) under which the run fails.
    #[serde(default)]
    pub min_pass: Option<f64>,
    /// Cases at once (at most the `eval.concurrency` setting).
    #[serde(default)]
    pub concurrency: Option<usize>,
}

/// Runs started by this process go one at a time.
fn one_at_a_time() -> &'static Semaphore {
    static RUNS: OnceLock<Semaphore> = OnceLock::new();
    RUNS.get_or_init(|| Semaphore::new(1))
}

fn schema(file: &str, field: &str, message: impl Into<String>) -> EvalError {
    EvalError::Schema(SchemaErrors(vec![SchemaError {
        file: file.to_string(),
        case: None,
        field: field.to_string(),
        message: message.into(),
    }]))
}

/// A relative path without `..`, `/` or a prefix.
fn relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    (!path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))))
        .then(|| p.to_path_buf())
}

/// Loads and checks what `request` asks for.
pub fn suites_for(app: &App, request: &RunRequest) -> Result<Vec<Suite>, EvalError> {
    let dir = &app.settings.eval.dir;
    let mut suites = Vec::new();
    match &request.suite {
        // A suite's text, as in a file (what the console's case editor sends).
        Some(Value::String(text)) => suites.push(suite::parse(text, "inline suite", dir)?),
        // JSON is YAML: the inline suite goes through the same loader as files.
        Some(inline) if inline.is_object() => {
            suites.push(suite::parse(&inline.to_string(), "inline suite", dir)?)
        }
        Some(_) => {
            return Err(schema(
                "suite",
                "",
                "must be a suite object, or a suite's YAML text",
            ))
        }
        None => {}
    }
    let mut paths = Vec::new();
    for (i, s) in request.suites.iter().enumerate() {
        let rel = relative(s).ok_or_else(|| {
            schema(
                &format!("suites[{i}]"),
                "",
                format!("`{s}` must be a path relative to the eval directory, without `..`"),
            )
        })?;
        let path = dir.join(rel);
        if !path.exists() {
            return Err(schema(
                &format!("suites[{i}]"),
                "",
                format!("no suite `{s}` in {}", dir.display()),
            ));
        }
        paths.push(path);
    }
    if paths.is_empty() && suites.is_empty() {
        paths.push(dir.clone());
    }
    if !paths.is_empty() {
        suites.extend(suite::load(&paths)?);
    }
    confine(app, &suites)?;
    Ok(suites)
}

/// Refuses suites that read files away from the eval directory's project (its parent
/// directory) or inside the server's own data.
pub(crate) fn confine(app: &App, suites: &[Suite]) -> Result<(), EvalError> {
    let root = app
        .settings
        .eval
        .dir
        .canonicalize()
        .ok()
        .and_then(|d| d.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    run::confine(suites, &root, &app.settings.data.dir)
}

/// How long a run may go without progress before a starting server takes it for dead.
const STALE_AFTER_MINUTES: i64 = 30;

/// Marks runs left `running` by a stopped server as failed, so clients polling them stop
/// waiting. Runs of other live replicas make progress, so they are left alone.
pub async fn interrupt_stale(store: &dyn crate::store::Store) -> Result<u64, EvalError> {
    let before = chrono::Utc::now() - chrono::Duration::minutes(STALE_AFTER_MINUTES);
    let n = store.interrupt_eval_runs(before).await?;
    if n > 0 {
        tracing::warn!(
            runs = n,
            "eval runs interrupted by a stop were marked as failed"
        );
    }
    Ok(n)
}

/// Checks the request, records the run and starts it in the background.
/// Suites that start from a stored agent (`agent.from`) read it from workspace `ws`.
pub async fn start(
    app: Arc<App>,
    ws: WorkspaceId,
    request: RunRequest,
) -> Result<EvalRun, EvalError> {
    if let Some(min) = request.min_pass {
        if !(0.0..=1.0).contains(&min) {
            return Err(schema("min_pass", "", "must be between 0 and 1"));
        }
    }
    crate::domain::AgentConfig::patched(
        &Default::default(),
        Value::Object(request.overrides.clone()),
    )
    .map_err(EvalError::Override)?;
    let suites = suites_for(&app, &request)?;
    let id = EvalRunId::new();
    let recorded = serde_json::to_value(&request).unwrap_or(Value::Null);
    let created = app.store.create_eval_run(ws, id, &recorded).await?;
    let cases: usize = suites.iter().map(|s| s.cases.len()).sum();
    app.store.record_eval_progress(id, 0, cases as u64).await?;
    tokio::spawn(run_in_background(app, ws, id, suites, request));
    Ok(created)
}

async fn run_in_background(
    app: Arc<App>,
    ws: WorkspaceId,
    id: EvalRunId,
    suites: Vec<Suite>,
    request: RunRequest,
) {
    let Ok(_turn) = one_at_a_time().acquire().await else {
        return;
    };
    let (tx, mut rx) = tokio::sync::watch::channel((0usize, 0usize));
    let store = app.store.clone();
    let progress = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let (done, total) = *rx.borrow_and_update();
            if let Err(e) = store
                .record_eval_progress(id, done as u64, total as u64)
                .await
            {
                tracing::warn!(run = %id, error = %e, "cannot record eval progress");
            }
        }
    });
    let env = run::Environment {
        settings: (*app.settings).clone(),
        embedder: app.knowledge.embedder().clone(),
        agents: Some((app.store.clone(), ws)),
    };
    let options = run::Options {
        concurrency: request
            .concurrency
            .unwrap_or(app.settings.eval.concurrency)
            .clamp(1, app.settings.eval.concurrency.max(1)),
        overrides: request.overrides.clone(),
        label: None,
        progress: run::Progress::Hidden,
        on_progress: Some(tx),
    };
    tracing::info!(run = %id, suites = suites.len(), "eval run started");
    let outcome = run::run(&suites, &env, &options).await;
    drop(options);
    let _ = progress.await;
    let finished = match outcome {
        Ok(mut results) => {
            results.decide_gate(request.min_pass, false);
            tracing::info!(run = %id, pass_rate = ?results.summary.pass_rate, gate = results.gate.passed, "eval run finished");
            finished(&results)
        }
        Err(e) => {
            tracing::warn!(run = %id, error = %e, "eval run failed");
            FinishedEvalRun {
                status: EvalRunStatus::Error,
                summary: None,
                results: None,
                error: Some(e.to_string()),
            }
        }
    };
    if let Err(e) = app.store.finish_eval_run(id, finished).await {
        tracing::error!(run = %id, error = %e, "cannot record the end of an eval run");
    }
}

fn finished(results: &RunResults) -> FinishedEvalRun {
    let summary = serde_json::json!({
        "summary": results.summary,
        "gate": results.gate,
        "suites": results.suites.iter().map(|s| serde_json::json!({
            "name": s.name,
            "answerer": s.answerer,
            "summary": s.summary,
        })).collect::<Vec<_>>(),
    });
    FinishedEvalRun {
        status: if results.gate.passed {
            EvalRunStatus::Passed
        } else {
            EvalRunStatus::Failed
        },
        summary: Some(summary),
        results: serde_json::to_value(results).ok(),
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn only_plain_relative_paths_name_suites() {
        assert!(relative("faq.yaml").is_some());
        assert!(relative("sub/faq.yaml").is_some());
        for bad in [
            "",
            "/etc/passwd",
            "../secret.yaml",
            "a/../../b",
            "./x/../..",
        ] {
            assert!(relative(bad).is_none(), "{bad}");
        }
    }
}
