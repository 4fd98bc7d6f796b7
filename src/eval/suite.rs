//! Eval suites as YAML files: the agent under test (a copy of a stored agent's configuration,
//! inline changes, or both), the knowledge to ingest, and the cases — one or more customer
//! turns (text, or a voice note read from a file) with assertions on the last reply, on every
//! reply, or on one turn's reply. Loading checks everything a run would trip over later (regex
//! patterns, thresholds, files, duplicate ids) and names the file, the case and the field of
//! every problem.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::assertions::Assertion;

/// One problem in a suite file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaError {
    /// The suite file.
    pub file: String,
    /// The case's id (or its position when it has none), when the problem is inside a case.
    pub case: Option<String>,
    /// Dotted path of the field, e.g. `expect[1].regex`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(case) = &self.case {
            write!(f, "case `{case}`: ")?;
        }
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in the suites, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaErrors(pub Vec<SchemaError>);

impl fmt::Display for SchemaErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SchemaErrors {}

/// The agent a suite runs against.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentSpec {
    /// Start from this stored agent's configuration (read from the user's store, never changed).
    pub from: Option<String>,
    /// Changes to the configuration (any `AgentConfig` field), applied after `from`.
    pub patch: Map<String, Value>,
}

/// What a customer says in one turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Said {
    /// A text message.
    Text(String),
    /// A voice note: the file as written in the suite, and where it resolves.
    Audio {
        /// As written in the suite.
        file: String,
        /// Resolved path.
        path: PathBuf,
    },
}

impl Said {
    /// How the turn is shown in reports.
    pub fn label(&self) -> String {
        match self {
            Said::Text(t) => t.clone(),
            Said::Audio { file, .. } => format!("(voice note {file})"),
        }
    }
}

/// One customer turn and the assertions on its reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Turn {
    /// What the customer says.
    pub said: Said,
    /// Assertions on this turn's reply.
    pub expect: Vec<Assertion>,
}

/// One conversation and what its replies must do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    /// Unique within the suite; also the sandbox session name.
    pub id: String,
    /// What the case checks.
    pub description: Option<String>,
    /// Free labels for filtering reports.
    pub tags: Vec<String>,
    /// A failure of this case fails the run whatever the pass rate.
    pub must_pass: bool,
    /// The customer's turns, in order.
    pub turns: Vec<Turn>,
    /// Assertions on the last reply.
    pub expect: Vec<Assertion>,
    /// Assertions on every reply.
    pub expect_each: Vec<Assertion>,
    /// When the conversation happens (business hours), instead of the time of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Case {
    /// The assertions that apply to turn `index` (0-based).
    pub fn assertions_for(&self, index: usize) -> Vec<&Assertion> {
        let mut out: Vec<&Assertion> = self.turns[index].expect.iter().collect();
        out.extend(self.expect_each.iter());
        if index + 1 == self.turns.len() {
            out.extend(self.expect.iter());
        }
        out
    }

    /// True when a turn is a voice note.
    pub fn has_audio(&self) -> bool {
        self.turns
            .iter()
            .any(|t| matches!(t.said, Said::Audio { .. }))
    }
}

/// A loaded, checked suite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suite {
    /// Its name (`name:` or the file's stem).
    pub name: String,
    /// The file it was read from (as given).
    pub file: String,
    /// What it covers.
    pub description: Option<String>,
    /// The agent under test.
    pub agent: AgentSpec,
    /// Files and directories ingested as the agent's knowledge (resolved).
    pub knowledge: Vec<PathBuf>,
    /// Pass rate under which the suite fails the run.
    pub min_pass: Option<f64>,
    /// The cases.
    pub cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteHeader {
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    agent: Option<Value>,
    #[serde(default)]
    knowledge: Vec<String>,
    min_pass: Option<f64>,
    cases: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    id: String,
    description: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    must_pass: bool,
    say: Option<String>,
    audio: Option<String>,
    turns: Option<Vec<TurnSpec>>,
    #[serde(default)]
    expect: Vec<Assertion>,
    #[serde(default)]
    expect_each: Vec<Assertion>,
    /// RFC 3339, e.g. `2026-11-23T21:30:00Z`.
    at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TurnSpec {
    say: Option<String>,
    audio: Option<String>,
    #[serde(default)]
    expect: Vec<Assertion>,
}

/// Longest customer message, as the sandbox API allows.
const MAX_TEXT_BYTES: usize = 4096;

/// A case id is also a sandbox session name.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Collects a file's problems.
struct Problems<'a> {
    file: &'a str,
    list: Vec<SchemaError>,
}

impl Problems<'_> {
    fn add(&mut self, case: Option<&str>, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(SchemaError {
            file: self.file.to_string(),
            case: case.map(str::to_string),
            field: field.into(),
            message: message.into(),
        });
    }
}

/// serde's messages end with the position in the input, which means nothing for a value
/// already parsed; the path says where.
fn clean(message: String) -> String {
    message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string()
}

fn path_of(path: &serde_path_to_error::Path) -> String {
    let p = path.to_string();
    if p == "." {
        String::new()
    } else {
        p
    }
}

/// Parses and checks one suite. `file` names it in errors; relative paths inside it resolve
/// against `base` (the suite's directory).
pub fn parse(text: &str, file: &str, base: &Path) -> Result<Suite, SchemaErrors> {
    let mut problems = Problems {
        file,
        list: Vec::new(),
    };
    let value: Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.add(None, "", format!("not valid YAML: {e}"));
            return Err(SchemaErrors(problems.list));
        }
    };
    let header: SuiteHeader = match serde_path_to_error::deserialize(value) {
        Ok(h) => h,
        Err(e) => {
            let field = path_of(e.path());
            problems.add(None, field, clean(e.into_inner().to_string()));
            return Err(SchemaErrors(problems.list));
        }
    };
    let name = header.name.clone().unwrap_or_else(|| {
        Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "suite".into())
    });
    if name.trim().is_empty() || name.len() > 100 {
        problems.add(None, "name", "must be 1-100 characters");
    }
    if let Some(min) = header.min_pass {
        if !(0.0..=1.0).contains(&min) {
            problems.add(None, "min_pass", "must be between 0 and 1");
        }
    }
    let agent = agent_spec(header.agent, &mut problems);
    let mut knowledge = Vec::new();
    for (i, k) in header.knowledge.iter().enumerate() {
        let path = base.join(k);
        if !path.exists() {
            problems.add(
                None,
                format!("knowledge[{i}]"),
                format!("`{k}` does not exist (looked for {})", path.display()),
            );
        }
        knowledge.push(path);
    }
    if header.cases.is_empty() {
        problems.add(None, "cases", "a suite needs at least one case");
    }
    let mut ids = HashSet::new();
    let mut cases = Vec::new();
    for (i, raw) in header.cases.into_iter().enumerate() {
        // Name the case by its id as soon as there is one, even if the rest is broken.
        let label = raw
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("#{}", i + 1));
        let spec: CaseSpec = match serde_path_to_error::deserialize(raw) {
            Ok(spec) => spec,
            Err(e) => {
                let field = path_of(e.path());
                problems.add(Some(&label), field, clean(e.into_inner().to_string()));
                continue;
            }
        };
        if !valid_id(&spec.id) {
            problems.add(
                Some(&label),
                "id",
                "must be 1-64 characters of letters, digits, '-', '_' or '.'",
            );
        } else if !ids.insert(spec.id.clone()) {
            problems.add(Some(&label), "id", "is used by an earlier case");
        }
        if let Some(case) = check_case(spec, &label, base, &mut problems) {
            cases.push(case);
        }
    }
    if problems.list.is_empty() {
        Ok(Suite {
            name,
            file: file.to_string(),
            description: header.description,
            agent,
            knowledge,
            min_pass: header.min_pass,
            cases,
        })
    } else {
        Err(SchemaErrors(problems.list))
    }
}

/// `agent: demo` or `agent: {from: demo, prompt: ..., answerer: local, ...}`.
fn agent_spec(value: Option<Value>, problems: &mut Problems<'_>) -> AgentSpec {
    let mut spec = AgentSpec::default();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => spec.from = Some(name),
        Some(Value::Object(mut map)) => {
            match map.remove("from") {
                None | Some(Value::Null) => {}
                Some(Value::String(name)) => spec.from = Some(name),
                Some(_) => problems.add(None, "agent.from", "must be an agent's name"),
            }
            // `prompt` reads better in a suite than the stored field's name.
            if let Some(prompt) = map.remove("prompt") {
                if map.contains_key("system_prompt") {
                    problems.add(
                        None,
                        "agent.prompt",
                        "give either `prompt` or `system_prompt`, not both",
                    );
                }
                map.insert("system_prompt".into(), prompt);
            }
            // Checked against the real configuration type, so every field and range is known.
            if let Err(errors) =
                crate::domain::AgentConfig::patched(&Default::default(), Value::Object(map.clone()))
            {
                for e in errors {
                    problems.add(None, format!("agent.{}", e.field), e.message);
                }
            }
            spec.patch = map;
        }
        Some(_) => problems.add(
            None,
            "agent",
            "must be an agent's name or a map of configuration fields",
        ),
    }
    spec
}

fn said(
    say: Option<String>,
    audio: Option<String>,
    field: &str,
    label: &str,
    base: &Path,
    problems: &mut Problems<'_>,
) -> Option<Said> {
    match (say, audio) {
        (Some(text), None) => {
            if text.trim().is_empty() || text.len() > MAX_TEXT_BYTES {
                problems.add(
                    Some(label),
                    format!("{field}say"),
                    format!("must be 1-{MAX_TEXT_BYTES} bytes"),
                );
                return None;
            }
            Some(Said::Text(text))
        }
        (None, Some(file)) => {
            let path = base.join(&file);
            if !path.is_file() {
                problems.add(
                    Some(label),
                    format!("{field}audio"),
                    format!("`{file}` is not a file (looked for {})", path.display()),
                );
                return None;
            }
            Some(Said::Audio { file, path })
        }
        (Some(_), Some(_)) => {
            problems.add(
                Some(label),
                format!("{field}say"),
                "give either `say` or `audio`, not both",
            );
            None
        }
        (None, None) => {
            problems.add(
                Some(label),
                format!("{field}say"),
                "a turn needs `say` (text) or `audio` (a voice-note file)",
            );
            None
        }
    }
}

fn check_assertions(list: &[Assertion], field: &str, label: &str, problems: &mut Problems<'_>) {
    for (i, a) in list.iter().enumerate() {
        if let Err((sub, message)) = a.check() {
            let path = if sub.is_empty() {
                format!("{field}[{i}].{}", a.kind())
            } else {
                format!("{field}[{i}].{}.{sub}", a.kind())
            };
            problems.add(Some(label), path, message);
        }
    }
}

fn check_case(
    spec: CaseSpec,
    label: &str,
    base: &Path,
    problems: &mut Problems<'_>,
) -> Option<Case> {
    let before = problems.list.len();
    let mut turns = Vec::new();
    match spec.turns {
        Some(list) => {
            if spec.say.is_some() || spec.audio.is_some() {
                problems.add(
                    Some(label),
                    "turns",
                    "give either `turns` or a single `say`/`audio`, not both",
                );
            }
            if list.is_empty() {
                problems.add(Some(label), "turns", "must hold at least one turn");
            }
            for (i, t) in list.into_iter().enumerate() {
                let field = format!("turns[{i}].");
                check_assertions(&t.expect, &format!("turns[{i}].expect"), label, problems);
                if let Some(s) = said(t.say, t.audio, &field, label, base, problems) {
                    turns.push(Turn {
                        said: s,
                        expect: t.expect,
                    });
                }
            }
        }
        None => {
            if let Some(s) = said(spec.say, spec.audio, "", label, base, problems) {
                turns.push(Turn {
                    said: s,
                    expect: Vec::new(),
                });
            }
        }
    }
    check_assertions(&spec.expect, "expect", label, problems);
    check_assertions(&spec.expect_each, "expect_each", label, problems);
    let total = spec.expect.len()
        + spec.expect_each.len()
        + turns.iter().map(|t| t.expect.len()).sum::<usize>();
    if total == 0 && problems.list.len() == before {
        problems.add(
            Some(label),
            "expect",
            "a case needs at least one assertion (otherwise it cannot fail)",
        );
    }
    for (i, tag) in spec.tags.iter().enumerate() {
        if tag.trim().is_empty() || tag.len() > 50 {
            problems.add(Some(label), format!("tags[{i}]"), "must be 1-50 characters");
        }
    }
    if problems.list.len() > before {
        return None;
    }
    let at = spec.at.map(|t| t.with_timezone(&chrono::Utc));
    Some(Case {
        at,
        id: spec.id,
        description: spec.description,
        tags: spec.tags,
        must_pass: spec.must_pass,
        turns,
        expect: spec.expect,
        expect_each: spec.expect_each,
    })
}

/// The suite files of a directory: its `*.yaml` and `*.yml` files, sorted.
pub fn suite_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Reads and checks suites: files, and directories (their suite files, see [`suite_files`]).
/// Every problem in every file is reported, not just the first.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Suite>, SchemaErrors> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        if path.is_dir() {
            match suite_files(path) {
                Ok(found) => {
                    if found.is_empty() {
                        problems.push(SchemaError {
                            file: path.display().to_string(),
                            case: None,
                            field: String::new(),
                            message: "no suite files (*.yaml) in this directory".into(),
                        });
                    }
                    files.extend(found);
                }
                Err(e) => problems.push(SchemaError {
                    file: path.display().to_string(),
                    case: None,
                    field: String::new(),
                    message: format!("cannot read: {e}"),
                }),
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut suites: Vec<Suite> = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(SchemaError {
                    file: name,
                    case: None,
                    field: String::new(),
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let base = file.parent().unwrap_or(Path::new("."));
        match parse(&text, &name, base) {
            Ok(suite) => {
                if let Some(other) = suites.iter().find(|s| s.name == suite.name) {
                    problems.push(SchemaError {
                        file: name,
                        case: None,
                        field: "name".into(),
                        message: format!("`{}` is also the name of {}", suite.name, other.file),
                    });
                } else {
                    suites.push(suite);
                }
            }
            Err(SchemaErrors(list)) => problems.extend(list),
        }
    }
    if problems.is_empty() {
        Ok(suites)
    } else {
        Err(SchemaErrors(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("kb")).unwrap();
        std::fs::write(dir.path().join("kb/faq.md"), "# FAQ\n\nWe sell bread.\n").unwrap();
        std::fs::write(dir.path().join("note.ogg"), b"OggS").unwrap();
        dir
    }

    const GOOD: &str = r#"
name: bakery
description: The sample bakery.
agent:
  from: demo
  prompt: Be brief.
  answerer: extractive
  top_k: 3
knowledge: [kb]
min_pass: 0.8
cases:
  - id: hours
    say: Are you open on Saturday?
    expect:
      - contains: "08:00"
      - retrieval_hit: {docs: [faq.md], k: 3}
  - id: follow-up
    tags: [memory]
    must_pass: true
    turns:
      - say: Do you deliver to Lisbon?
        expect: [escalates: false]
      - say: And how much is it?
    expect_each:
      - max_chars: 500
    expect:
      - contains: {text: "eur", ignore_case: true}
  - id: voice
    audio: note.ogg
    expect: [escalates: false]
"#;

    #[test]
    fn a_good_suite_loads() {
        let dir = base();
        let suite = parse(GOOD, "eval/bakery.yaml", dir.path()).unwrap();
        assert_eq!(suite.name, "bakery");
        assert_eq!(suite.agent.from.as_deref(), Some("demo"));
        assert_eq!(suite.agent.patch["system_prompt"], "Be brief.");
        assert_eq!(suite.knowledge, [dir.path().join("kb")]);
        assert_eq!(suite.min_pass, Some(0.8));
        assert_eq!(suite.cases.len(), 3);
        let follow = &suite.cases[1];
        assert!(follow.must_pass);
        assert_eq!(follow.turns.len(), 2);
        // Turn 1: its own assertion and the every-turn one; turn 2: every-turn and the case's.
        let kinds = |i| {
            follow
                .assertions_for(i)
                .iter()
                .map(|a| a.kind())
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(0), ["escalates", "max_chars"]);
        assert_eq!(kinds(1), ["max_chars", "contains"]);
        assert!(suite.cases[2].has_audio());
        assert!(
            matches!(&suite.cases[2].turns[0].said, Said::Audio { file, .. } if file == "note.ogg")
        );
    }

    /// Each broken suite, and the file, case and field its error must name.
    #[test]
    fn schema_errors_name_file_case_and_field() {
        let dir = base();
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            ("cases: [", None, "", "not valid YAML"),
            ("name: x\ncases: []", None, "cases", "at least one case"),
            ("cases:\n  - say: hi\n    expect: [escalates: true]", Some("#1"), "", "missing field `id`"),
            ("cases:\n  - id: a\n    say: hi\n    expect: [contain: x]", Some("a"), "expect[0]", "unknown variant `contain`"),
            ("cases:\n  - id: a\n    say: hi\n    expect:\n      - regex: '(('", Some("a"), "expect[0].regex.pattern", "invalid pattern"),
            ("cases:\n  - id: a\n    say: hi", Some("a"), "expect", "at least one assertion"),
            ("cases:\n  - id: a\n    expect: [escalates: true]", Some("a"), "say", "needs `say`"),
            ("cases:\n  - id: a\n    say: hi\n    audio: note.ogg\n    expect: [escalates: true]", Some("a"), "say", "not both"),
            ("cases:\n  - id: a\n    audio: missing.ogg\n    expect: [escalates: true]", Some("a"), "audio", "missing.ogg"),
            ("cases:\n  - id: a\n    turns:\n      - say: hi\n      - sey: hi\n    expect: [escalates: true]", Some("a"), "turns[1]", "unknown field `sey`"),
            ("cases:\n  - id: a\n    turns:\n      - say: hi\n        expect: [max_chars: 0]", Some("a"), "turns[0].expect[0].max_chars", "greater than 0"),
            ("cases:\n  - id: a b\n    say: hi\n    expect: [escalates: true]", Some("a b"), "id", "letters, digits"),
            ("cases:\n  - id: a\n    say: hi\n    expect: [escalates: true]\n  - id: a\n    say: ho\n    expect: [escalates: true]", Some("a"), "id", "earlier case"),
            ("cases:\n  - id: a\n    say: hi\n    expect:\n      - retrieval_hit: {docs: faq.md, k: 3, top: 1}", Some("a"), "expect[0].retrieval_hit", "unknown field `top`"),
            ("cases:\n  - id: a\n    say: hi\n    expect:\n      - escalates: {reason: angry}", Some("a"), "expect[0].escalates.reason", "unknown reason `angry`"),
            ("agent: {top_k: 0}\ncases:\n  - id: a\n    say: hi\n    expect: [escalates: true]", None, "agent.top_k", "between 1 and 50"),
            ("agent: {answerer: gpt}\ncases:\n  - id: a\n    say: hi\n    expect: [escalates: true]", None, "agent.answerer", "unknown variant"),
            ("agent: {tone: warm}\ncases:\n  - id: a\n    say: hi\n    expect: [escalates: true]", None, "agent", "tone"),
            ("knowledge: [nowhere]\ncases:\n  - id: a\n    say: hi\n    expect: [escalates: true]", None, "knowledge[0]", "does not exist"),
            ("min_pass: 90\ncases:\n  - id: a\n    say: hi\n    expect: [escalates: true]", None, "min_pass", "between 0 and 1"),
            ("nme: x\ncases:\n  - id: a\n    say: hi\n    expect: [escalates: true]", None, "", "unknown field `nme`"),
        ];
        for (text, case, field, message) in cases {
            let errors = parse(text, "eval/broken.yaml", dir.path()).unwrap_err();
            let e = errors
                .0
                .iter()
                .find(|e| e.field.starts_with(field) && e.message.contains(message))
                .unwrap_or_else(|| panic!("{text}\n-> {errors}"));
            assert_eq!(e.file, "eval/broken.yaml");
            assert_eq!(e.case.as_deref(), *case, "{text}\n-> {errors}");
            let shown = e.to_string();
            assert!(shown.starts_with("eval/broken.yaml: "), "{shown}");
            if let Some(case) = case {
                assert!(shown.contains(&format!("case `{case}`")), "{shown}");
            }
        }
    }

    #[test]
    fn every_broken_case_is_reported_not_just_the_first() {
        let dir = base();
        let text = "cases:\n  - id: a\n    say: hi\n  - id: b\n    say: hi\n    expect: [contain: x]\n  - id: c\n    say: hi\n    expect: [escalates: true]";
        let errors = parse(text, "s.yaml", dir.path()).unwrap_err();
        let cases: Vec<_> = errors.0.iter().filter_map(|e| e.case.clone()).collect();
        assert_eq!(cases, ["a", "b"]);
    }

    #[test]
    fn directories_load_their_yaml_files_and_names_must_differ() {
        let dir = base();
        let one = "cases:\n  - id: a\n    say: hi\n    expect: [escalates: true]";
        std::fs::write(dir.path().join("b.yaml"), one).unwrap();
        std::fs::write(dir.path().join("a.yml"), one).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a suite").unwrap();
        let suites = load(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        std::fs::write(dir.path().join("c.yaml"), format!("name: a\n{one}")).unwrap();
        let err = load(&[dir.path().to_path_buf()]).unwrap_err().to_string();
        assert!(
            err.contains("c.yaml: name: `a` is also the name of"),
            "{err}"
        );
        let err = load(&[dir.path().join("kb")]).unwrap_err().to_string();
        assert!(err.contains("no suite files"), "{err}");
    }
}
