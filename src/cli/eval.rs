//! `palaver eval`: suites run through the engine offline, with their reports and the gate.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::workspace;
use palaver::Settings;

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Suite files or directories of them (default: the `eval.dir` setting, `eval/`).
    pub(crate) suites: Vec<PathBuf>,
    /// Change every suite's agent: KEY=VALUE with an agent configuration field (dotted for
    /// nested ones, e.g. escalation.on_low_confidence=answer); VALUE is JSON or text, @FILE
    /// reads it from a file. Repeatable.
    #[arg(long = "agent-override", value_name = "KEY=VALUE")]
    pub(crate) agent_override: Vec<String>,
    /// Also run a second variant with these changes on top of --agent-override, and show both
    /// side by side (the gate then applies to this variant). Repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) compare: Vec<String>,
    /// Cases run at once (default: the `eval.concurrency` setting).
    #[arg(long)]
    pub(crate) concurrency: Option<usize>,
    /// Directory for results.json, junit.xml and report.html (default: `eval.out_dir`).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// An earlier results.json: list the cases that regressed or improved against it.
    #[arg(long)]
    pub(crate) baseline: Option<PathBuf>,
    /// Fail when a suite's pass rate (0-1) is under this; overrides the suites' own `min_pass`.
    #[arg(long)]
    pub(crate) min_pass: Option<f64>,
    /// Fail when a case that passed in the baseline (or in variant A) no longer passes.
    #[arg(long)]
    pub(crate) no_regressions: bool,
}

/// Runs suites (and a second variant when comparing); true when the gate passes.
pub(crate) async fn eval(settings: Settings, ws_key: &str, args: EvalArgs) -> Result<bool> {
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
