//! Eval suites: businesses change prompts, documents and models, and need to know before their
//! customers do whether answers got worse. A suite (YAML, [`suite`]) names an agent, the
//! knowledge to ingest and the cases; the runner ([`run`]) builds a throwaway application (its
//! own temporary data directory and SQLite file, the in-memory vector index, the configured
//! embedder), ingests the knowledge, and sends every case's turns through
//! [`crate::pipeline::sandbox::say`] — the same `Pipeline::handle` production uses — then
//! checks each reply ([`assertions`]), adds the verdicts up ([`results`]) and writes reports
//! ([`report`]): a console summary, JSON, JUnit XML and a self-contained HTML page. Draft
//! instructions are run beside an agent's saved ones by [`instructions`].

pub mod assertions;
pub mod from_conversation;
pub mod from_faq;
pub mod instructions;
pub mod judge;
pub mod report;
pub mod results;
pub mod run;
pub mod runs;
pub mod suite;

pub use results::{BaselineFile, RunResults};
pub use run::{Environment, Options, Progress};
pub use suite::{SchemaErrors, Suite};

use crate::domain::FieldError;

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A suite file is broken (every problem, each naming the file, case and field).
    #[error("{0}")]
    Schema(#[from] SchemaErrors),
    /// `--agent-override` or an API override is not a valid agent configuration.
    #[error("invalid agent override: {}", describe(.0))]
    Override(Vec<FieldError>),
    /// A suite starts from a stored agent that does not exist.
    #[error("suite `{suite}`: no agent named `{agent}` in the store")]
    UnknownAgent {
        /// The suite.
        suite: String,
        /// The agent it names.
        agent: String,
    },
    /// A suite's agent configuration is invalid once combined with the overrides.
    #[error("suite `{suite}`: invalid agent configuration: {}", describe(.errors))]
    Agent {
        /// The suite.
        suite: String,
        /// What is wrong.
        errors: Vec<FieldError>,
    },
    /// A file the run reads is outside what it may read (API runs).
    #[error("{0}")]
    Forbidden(String),
    /// The throwaway application could not be built.
    #[error("cannot prepare the eval environment: {0}")]
    Setup(String),
    /// Ingesting a suite's knowledge failed.
    #[error("suite `{suite}`: ingesting knowledge failed: {source}")]
    Knowledge {
        /// The suite.
        suite: String,
        /// The cause.
        source: crate::knowledge::KnowledgeError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A report could not be rendered.
    #[error("cannot write the {what} report: {message}")]
    Report {
        /// Which report.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// A baseline file is not a results file.
    #[error("{path} is not an eval results file: {message}")]
    Baseline {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses `key=value` overrides into an agent configuration patch. Keys are `AgentConfig`
/// fields, dotted for nested ones (`escalation.on_low_confidence=answer`); `prompt` means
/// `system_prompt`. A value is read as JSON when it parses (numbers, booleans, lists), else as
/// text; `@path` reads the text from a file (a prompt under review, say). The patch is checked
/// against the real configuration type, so a wrong key or value is named.
pub fn parse_overrides(
    pairs: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, EvalError> {
    use serde_json::{Map, Value};
    let mut patch = Map::new();
    for pair in pairs {
        let Some((key, raw)) = pair.split_once('=') else {
            return Err(EvalError::Override(vec![FieldError::new(
                pair.clone(),
                "expected key=value",
            )]));
        };
        let key = key.trim();
        let key = if key == "prompt" {
            "system_prompt"
        } else {
            key
        };
        if key.is_empty() {
            return Err(EvalError::Override(vec![FieldError::new(
                pair.clone(),
                "the key is empty",
            )]));
        }
        let value = if let Some(path) = raw.strip_prefix('@') {
            let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
                path: path.to_string(),
                source,
            })?;
            Value::String(text)
        } else {
            serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
        };
        // A dotted key becomes nested objects.
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or(key);
        let mut map = &mut patch;
        for part in parts {
            let entry = map
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            map = entry.as_object_mut().ok_or_else(|| {
                EvalError::Override(vec![FieldError::new(key, "is not a section")])
            })?;
        }
        map.insert(last.to_string(), value);
    }
    crate::domain::AgentConfig::patched(&Default::default(), Value::Object(patch.clone()))
        .map_err(EvalError::Override)?;
    Ok(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_map_onto_agent_config_fields() {
        let patch = parse_overrides(&[
            "answerer=local".into(),
            "top_k=3".into(),
            "temperature=0.5".into(),
            "prompt=Be brief.".into(),
            "escalation.on_low_confidence=answer".into(),
            "escalation.keywords=[\"gerente\"]".into(),
        ])
        .unwrap();
        let config =
            crate::domain::AgentConfig::patched(&Default::default(), patch.clone().into()).unwrap();
        assert_eq!(config.answerer, crate::domain::Answerer::Local);
        assert_eq!(config.top_k, 3);
        assert_eq!(config.temperature, 0.5);
        assert_eq!(config.system_prompt, "Be brief.");
        assert_eq!(
            config.escalation.on_low_confidence,
            crate::domain::LowConfidence::Answer
        );
        assert_eq!(config.escalation.keywords, ["gerente"]);
    }

    #[test]
    fn bad_overrides_are_named() {
        let cases: &[(&str, &str)] = &[
            ("top_k=0", "top_k"),
            ("answerer=gpt5", "answerer"),
            ("tempreature=1", "tempreature"),
            ("no-equals-sign", "no-equals-sign"),
            ("temperature=hot", "temperature"),
        ];
        for (pair, field) in cases {
            let err = parse_overrides(&[pair.to_string()])
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{pair}: {err}");
        }
    }

    #[test]
    fn a_prompt_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prompt.txt");
        std::fs::write(&path, "Answer like a pirate.").unwrap();
        let patch = parse_overrides(&[format!("system_prompt=@{}", path.display())]).unwrap();
        assert_eq!(patch["system_prompt"], "Answer like a pirate.");
        let err = parse_overrides(&["prompt=@/nonexistent/prompt.txt".into()]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/prompt.txt"), "{err}");
    }
}
