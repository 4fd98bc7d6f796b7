//! Assertions on a reply and what the turn did. Each yields pass, fail or skipped with a reason
//! a person can act on. Text checks (`contains`, `not_contains`, `regex`, `equals`) can ignore
//! case and accents; `escalates`, `cites` and `retrieval_hit` read the pipeline's outcome;
//! `similar_to` compares embeddings with a reference answer; `judge` asks an LLM judge and is
//! skipped when none is configured.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::judge::Judge;
use crate::domain::EscalationReason;
use crate::domain::Generation;
use crate::embed::{cosine, Embedder};
use crate::pipeline::rules::Trigger;
use crate::pipeline::{Action, ShownSource};

/// Text that must (or must not) appear in the reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TextMatch {
    /// Every one of these must appear (or, for `not_contains`, none may).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<String>,
    /// At least one of these must appear (or, for `not_contains`, none may).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<String>,
    /// Compare without regard to case.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
    /// Compare without regard to accents ("sábado" matches "sabado").
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_accents: bool,
}

fn strings(value: Value, what: &str) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(format!("{what}: expected text, found {other}")),
            })
            .collect(),
        other => Err(format!(
            "{what}: expected text or a list of texts, found {other}"
        )),
    }
}

fn flag(map: &mut serde_json::Map<String, Value>, key: &str) -> Result<bool, String> {
    match map.remove(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(other) => Err(format!("{key}: expected true or false, found {other}")),
    }
}

fn no_more_keys(map: &serde_json::Map<String, Value>, allowed: &str) -> Result<(), String> {
    match map.keys().next() {
        Some(key) => Err(format!("unknown field `{key}`, expected {allowed}")),
        None => Ok(()),
    }
}

impl<'de> Deserialize<'de> for TextMatch {
    /// `"text"`, `["a", "b"]` (all of them), or `{text | all | any, ignore_case, ignore_accents}`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let out = match value {
            Value::Object(mut map) => {
                let mut m = TextMatch {
                    ignore_case: flag(&mut map, "ignore_case").map_err(D::Error::custom)?,
                    ignore_accents: flag(&mut map, "ignore_accents").map_err(D::Error::custom)?,
                    ..Default::default()
                };
                if let Some(v) = map.remove("text") {
                    m.all.extend(strings(v, "text").map_err(D::Error::custom)?);
                }
                if let Some(v) = map.remove("all") {
                    m.all.extend(strings(v, "all").map_err(D::Error::custom)?);
                }
                if let Some(v) = map.remove("any") {
                    m.any = strings(v, "any").map_err(D::Error::custom)?;
                }
                no_more_keys(&map, "text, all, any, ignore_case or ignore_accents")
                    .map_err(D::Error::custom)?;
                m
            }
            other => TextMatch {
                all: strings(other, "value").map_err(D::Error::custom)?,
                ..Default::default()
            },
        };
        Ok(out)
    }
}

/// A pattern the reply must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RegexMatch {
    /// The pattern (Rust `regex` syntax).
    pub pattern: String,
    /// Match without regard to case.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
    /// Match against the reply with its accents removed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_accents: bool,
}

impl<'de> Deserialize<'de> for RegexMatch {
    /// `"pattern"` or `{pattern, ignore_case, ignore_accents}`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(pattern) => Ok(RegexMatch {
                pattern,
                ..Default::default()
            }),
            Value::Object(mut map) => {
                let pattern = match map.remove("pattern") {
                    Some(Value::String(p)) => p,
                    _ => return Err(D::Error::custom("`pattern` (text) is required")),
                };
                let m = RegexMatch {
                    pattern,
                    ignore_case: flag(&mut map, "ignore_case").map_err(D::Error::custom)?,
                    ignore_accents: flag(&mut map, "ignore_accents").map_err(D::Error::custom)?,
                };
                no_more_keys(&map, "pattern, ignore_case or ignore_accents")
                    .map_err(D::Error::custom)?;
                Ok(m)
            }
            other => Err(D::Error::custom(format!(
                "expected a pattern or {{pattern, ignore_case, ignore_accents}}, found {other}"
            ))),
        }
    }
}

/// Whether the turn must hand the conversation to a person, and for which reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Escalates {
    /// Escalation expected.
    pub expected: bool,
    /// Any of these reasons (empty: any reason).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason: Vec<String>,
}

impl<'de> Deserialize<'de> for Escalates {
    /// `true`, `false`, or `{reason: keyword | [keyword, human_request]}` (which implies true).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(expected) => Ok(Escalates {
                expected,
                reason: Vec::new(),
            }),
            Value::Object(mut map) => {
                let reason = match map.remove("reason") {
                    Some(v) => strings(v, "reason").map_err(D::Error::custom)?,
                    None => Vec::new(),
                };
                let expected = match map.remove("expected") {
                    None => true,
                    Some(Value::Bool(b)) => b,
                    Some(other) => {
                        return Err(D::Error::custom(format!(
                            "expected: expected true or false, found {other}"
                        )))
                    }
                };
                no_more_keys(&map, "reason or expected").map_err(D::Error::custom)?;
                Ok(Escalates { expected, reason })
            }
            other => Err(D::Error::custom(format!(
                "expected true, false or {{reason: ...}}, found {other}"
            ))),
        }
    }
}

/// Document names: `faq.md`, `knowledge/faq.md`, or a stem such as `faq`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Docs(pub Vec<String>);

impl<'de> Deserialize<'de> for Docs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        strings(Value::deserialize(d)?, "documents")
            .map(Docs)
            .map_err(D::Error::custom)
    }
}

/// Is a labelled relevant document among the first `k` passages retrieved?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalHit {
    /// The relevant documents.
    pub docs: Docs,
    /// How many of the top passages count.
    #[serde(default = "default_k")]
    pub k: usize,
}

fn default_k() -> usize {
    3
}

/// Embedding similarity with a reference answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarTo {
    /// The reference answer.
    pub text: String,
    /// Lowest cosine similarity that passes.
    #[serde(default = "default_min")]
    pub min: f64,
}

/// A grade from the LLM judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSpec {
    /// What a good reply does.
    pub rubric: String,
    /// Lowest normalised score (0-1) that passes.
    #[serde(default = "default_min")]
    pub min: f64,
}

fn default_min() -> f64 {
    0.75
}

/// One assertion, written in a suite as a one-key map such as `- contains: "08:00"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assertion {
    /// The reply contains the text(s).
    Contains(TextMatch),
    /// The reply contains none of the text(s).
    NotContains(TextMatch),
    /// The reply matches the pattern.
    Regex(RegexMatch),
    /// The reply is exactly this text (surrounding whitespace ignored).
    Equals(TextMatch),
    /// The conversation was (or was not) handed to a person.
    Escalates(Escalates),
    /// The reply cites one of these documents.
    Cites(Docs),
    /// A relevant document is among the top-k retrieved passages.
    RetrievalHit(RetrievalHit),
    /// The reply is close in meaning to a reference answer.
    SimilarTo(SimilarTo),
    /// An LLM judge grades the reply against a rubric.
    Judge(JudgeSpec),
    /// The turn took at most this long (wall clock, milliseconds).
    MaxLatencyMs(u64),
    /// The reply is at most this many characters.
    MaxChars(usize),
    /// The reply is in this language (ISO 639-1 or 639-3 code).
    Language(String),
    /// The reply offers exactly these options (buttons, a list, or numbered), in order.
    Offers(Vec<String>),
    /// The bot took the conversation back from a person (or, `false`, did not).
    HandsBack(bool),
}

/// The result of one assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It held.
    Pass,
    /// It did not.
    Fail,
    /// It could not be checked (no judge, no transcriber).
    Skipped,
}

/// What an assertion measured, for the run's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Measure {
    /// Rank of the first relevant passage (none: not retrieved) and the k asked for.
    Retrieval {
        /// 1-based rank among the passages the turn retrieved.
        rank: Option<usize>,
        /// The k of the assertion.
        k: usize,
    },
    /// Escalation expected and observed.
    Escalation {
        /// Expected by the case.
        expected: bool,
        /// What the turn did.
        actual: bool,
    },
    /// A score against its threshold.
    Score {
        /// The score.
        value: f64,
        /// The threshold.
        min: f64,
    },
}

/// An assertion's verdict with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checked {
    /// Pass, fail or skipped.
    pub verdict: Verdict,
    /// Why, in words.
    pub reason: String,
    /// What was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<Measure>,
}

impl Checked {
    fn pass(reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Pass,
            reason: reason.into(),
            measure: None,
        }
    }

    fn fail(reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Fail,
            reason: reason.into(),
            measure: None,
        }
    }

    fn holds(ok: bool, pass: impl Into<String>, fail: impl Into<String>) -> Self {
        if ok {
            Self::pass(pass)
        } else {
            Self::fail(fail)
        }
    }

    /// Skipped, with the reason.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Skipped,
            reason: reason.into(),
            measure: None,
        }
    }

    fn with(mut self, measure: Measure) -> Self {
        self.measure = Some(measure);
        self
    }
}

/// What one turn did, as the assertions see it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The reply sent to the customer (an escalation message included).
    pub reply: Option<&'a str>,
    /// What the turn led to.
    pub action: Action,
    /// Why it escalated.
    pub escalation: Option<&'a Trigger>,
    /// Passages retrieved, best first.
    pub sources: &'a [ShownSource],
    /// How the reply was produced.
    pub generation: Option<&'a Generation>,
    /// Wall-clock time of the turn.
    pub latency_ms: f64,
    /// The conversation up to and including this turn's reply: `(role, text)`.
    pub conversation: &'a [(String, String)],
    /// Options offered with the reply.
    pub choices: Option<&'a crate::domain::Choices>,
}

/// What the scoring assertions need.
#[derive(Clone, Copy)]
pub struct Scorers<'a> {
    /// Embeds replies and references for `similar_to`.
    pub embedder: &'a dyn Embedder,
    /// Grades `judge` assertions; `None` skips them.
    pub judge: Option<&'a Judge>,
}

/// Lowercases and/or strips accents, as asked.
fn fold(text: &str, ignore_case: bool, ignore_accents: bool) -> String {
    let text = if ignore_accents {
        text.nfd().filter(|c| !is_combining_mark(*c)).collect()
    } else {
        text.to_string()
    };
    if ignore_case {
        text.to_lowercase()
    } else {
        text
    }
}

/// Does document `source` (as stored, e.g. `knowledge/faq.md`) answer to `name`?
pub fn doc_matches(source: &str, name: &str) -> bool {
    let name = name.trim().trim_start_matches("./");
    if source == name || source.ends_with(&format!("/{name}")) {
        return true;
    }
    let file = source.rsplit('/').next().unwrap_or(source);
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    stem == name
}

/// Citations such as "(source 2)" or "[2]" in a reply.
fn cited_in_text(reply: &str) -> BTreeSet<usize> {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        regex::Regex::new(r"(?i)\bsources?\s*#?\s*(\d{1,2})\b|\[(\d{1,2})\]")
            .expect("static pattern compiles")
    });
    pattern
        .captures_iter(reply)
        .filter_map(|c| c.get(1).or_else(|| c.get(2)))
        .filter_map(|m| m.as_str().parse().ok())
        .collect()
}

/// "(Source: ...)" and "(source 2)" trailers say nothing about the reply's language.
fn without_citations(reply: &str) -> String {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        regex::Regex::new(r"(?i)\((sources?|fonte|fuente)\b[^)]*\)").expect("static pattern")
    });
    pattern.replace_all(reply, " ").trim().to_string()
}

fn quote(s: &str) -> String {
    let mut shown: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        shown.push('…');
    }
    format!("\"{shown}\"")
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| quote(s))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Assertion {
    /// The assertion's name as written in suites (`contains`, `retrieval_hit`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Assertion::Contains(_) => "contains",
            Assertion::NotContains(_) => "not_contains",
            Assertion::Regex(_) => "regex",
            Assertion::Equals(_) => "equals",
            Assertion::Escalates(_) => "escalates",
            Assertion::Cites(_) => "cites",
            Assertion::RetrievalHit(_) => "retrieval_hit",
            Assertion::SimilarTo(_) => "similar_to",
            Assertion::Judge(_) => "judge",
            Assertion::MaxLatencyMs(_) => "max_latency_ms",
            Assertion::MaxChars(_) => "max_chars",
            Assertion::Language(_) => "language",
            Assertion::Offers(_) => "offers",
            Assertion::HandsBack(_) => "hands_back",
        }
    }

    /// Problems a run would trip over, as `(sub-field, message)`.
    pub fn check(&self) -> Result<(), (String, String)> {
        let err = |field: &str, message: &str| Err((field.to_string(), message.to_string()));
        match self {
            Assertion::Contains(m) | Assertion::NotContains(m) => {
                if m.all.is_empty() && m.any.is_empty() {
                    return err("", "give at least one text");
                }
                if m.all.iter().chain(&m.any).any(|t| t.is_empty()) {
                    return err("", "texts must not be empty");
                }
            }
            Assertion::Equals(m) => {
                if m.all.len() != 1 || !m.any.is_empty() {
                    return err("", "give exactly one text");
                }
            }
            Assertion::Regex(r) => {
                if let Err(e) = regex::Regex::new(&r.pattern) {
                    let first = e.to_string();
                    return Err(("pattern".into(), format!("invalid pattern: {first}")));
                }
            }
            Assertion::Escalates(e) => {
                for r in &e.reason {
                    if r.parse::<EscalationReason>().is_err() {
                        let names: Vec<&str> =
                            EscalationReason::ALL.iter().map(|r| r.as_str()).collect();
                        return Err((
                            "reason".into(),
                            format!("unknown reason `{r}`; expected one of {}", names.join(", ")),
                        ));
                    }
                }
                if !e.expected && !e.reason.is_empty() {
                    return err(
                        "reason",
                        "a reason makes sense only when escalation is expected",
                    );
                }
            }
            Assertion::Cites(d) => {
                if d.0.is_empty() || d.0.iter().any(|s| s.trim().is_empty()) {
                    return err("", "name at least one document");
                }
            }
            Assertion::RetrievalHit(r) => {
                if r.docs.0.is_empty() || r.docs.0.iter().any(|s| s.trim().is_empty()) {
                    return err("docs", "name at least one document");
                }
                if !(1..=50).contains(&r.k) {
                    return err("k", "must be between 1 and 50");
                }
            }
            Assertion::SimilarTo(s) => {
                if s.text.trim().is_empty() {
                    return err("text", "must not be empty");
                }
                if !(-1.0..=1.0).contains(&s.min) {
                    return err("min", "must be between -1 and 1");
                }
            }
            Assertion::Judge(j) => {
                if j.rubric.trim().is_empty() {
                    return err("rubric", "must not be empty");
                }
                if !(0.0..=1.0).contains(&j.min) {
                    return err("min", "must be between 0 and 1");
                }
            }
            Assertion::MaxLatencyMs(ms) => {
                if *ms == 0 {
                    return err("", "must be greater than 0");
                }
            }
            Assertion::MaxChars(n) => {
                if *n == 0 {
                    return err("", "must be greater than 0");
                }
            }
            Assertion::Offers(titles) => {
                if titles.iter().any(|t| t.trim().is_empty()) {
                    return err("", "option titles must not be empty");
                }
            }
            Assertion::HandsBack(_) => {}
            Assertion::Language(code) => {
                if crate::language::iso639_3(code).is_none() {
                    return err(
                        "",
                        "unknown language code; use ISO 639-1 (e.g. `pt`) or 639-3 (`por`)",
                    );
                }
            }
        }
        Ok(())
    }

    /// Checks the assertion against what the turn did.
    pub async fn evaluate(&self, seen: &Observed<'_>, scorers: Scorers<'_>) -> Checked {
        match self {
            Assertion::SimilarTo(s) => similar_to(s, seen, scorers.embedder).await,
            Assertion::Judge(j) => match scorers.judge {
                None => Checked::skipped(
                    "no judge is configured (set eval.judge, or llm.openai, to an OpenAI-compatible server)",
                ),
                Some(judge) => judged(j, seen, judge).await,
            },
            other => other.evaluate_now(seen),
        }
    }

    /// Checks the assertions that need neither a model nor a judge.
    pub fn evaluate_now(&self, seen: &Observed<'_>) -> Checked {
        let reply = seen.reply.unwrap_or("");
        match self {
            Assertion::Contains(m) => {
                if seen.reply.is_none() {
                    return Checked::fail("no reply was sent");
                }
                let hay = fold(reply, m.ignore_case, m.ignore_accents);
                let found = |t: &String| hay.contains(&fold(t, m.ignore_case, m.ignore_accents));
                let missing: Vec<String> = m.all.iter().filter(|t| !found(t)).cloned().collect();
                if !missing.is_empty() {
                    return Checked::fail(format!("the reply lacks {}", list(&missing)));
                }
                if !m.any.is_empty() && !m.any.iter().any(found) {
                    return Checked::fail(format!("the reply has none of {}", list(&m.any)));
                }
                Checked::pass("every text was found")
            }
            Assertion::NotContains(m) => {
                let hay = fold(reply, m.ignore_case, m.ignore_accents);
                let present: Vec<String> = m
                    .all
                    .iter()
                    .chain(&m.any)
                    .filter(|t| hay.contains(&fold(t, m.ignore_case, m.ignore_accents)))
                    .cloned()
                    .collect();
                Checked::holds(
                    present.is_empty(),
                    "none of the texts appears",
                    format!("the reply contains {}", list(&present)),
                )
            }
            Assertion::Regex(r) => {
                if seen.reply.is_none() {
                    return Checked::fail("no reply was sent");
                }
                let pattern = if r.ignore_case {
                    format!("(?i){}", r.pattern)
                } else {
                    r.pattern.clone()
                };
                match regex::Regex::new(&pattern) {
                    Ok(re) => {
                        let hay = fold(reply, false, r.ignore_accents);
                        match re.find(&hay) {
                            Some(m) => Checked::pass(format!("matched {}", quote(m.as_str()))),
                            None => Checked::fail(format!("/{}/ does not match", r.pattern)),
                        }
                    }
                    Err(e) => Checked::fail(format!("invalid pattern: {e}")),
                }
            }
            Assertion::Equals(m) => {
                if seen.reply.is_none() {
                    return Checked::fail("no reply was sent");
                }
                let want = m.all.first().map(String::as_str).unwrap_or("");
                Checked::holds(
                    fold(reply.trim(), m.ignore_case, m.ignore_accents)
                        == fold(want.trim(), m.ignore_case, m.ignore_accents),
                    "the reply is exactly the text",
                    format!("the reply is {}, not {}", quote(reply.trim()), quote(want)),
                )
            }
            Assertion::Escalates(e) => {
                let actual = seen.action == Action::Escalated;
                let measure = Measure::Escalation {
                    expected: e.expected,
                    actual,
                };
                let observed = match seen.escalation {
                    Some(t) => format!("escalated ({}: {})", t.reason(), t.detail()),
                    None => match seen.action {
                        Action::Replied => "answered".to_string(),
                        Action::Silent => "stayed silent".to_string(),
                        Action::Escalated => "escalated".to_string(),
                        Action::HandedBack => "took the conversation back".to_string(),
                    },
                };
                let checked = if e.expected != actual {
                    Checked::fail(format!(
                        "expected {}, but the bot {observed}",
                        if e.expected {
                            "an escalation"
                        } else {
                            "no escalation"
                        }
                    ))
                } else if !e.reason.is_empty() {
                    let reason = seen.escalation.map(|t| t.reason().as_str()).unwrap_or("");
                    Checked::holds(
                        e.reason.iter().any(|r| r == reason),
                        observed.clone(),
                        format!("{observed}, not for {}", e.reason.join(" or ")),
                    )
                } else {
                    Checked::pass(observed)
                };
                checked.with(measure)
            }
            Assertion::Cites(docs) => {
                let Some(g) = seen.generation else {
                    return Checked::fail("the reply was not generated from sources");
                };
                let mut numbers: BTreeSet<usize> = g.cited.iter().copied().collect();
                numbers.extend(cited_in_text(reply));
                let cited: Vec<&str> = g
                    .sources
                    .iter()
                    .filter(|s| numbers.contains(&s.n))
                    .map(|s| s.source.as_str())
                    .collect();
                if cited.is_empty() {
                    return Checked::fail("the reply cites no source");
                }
                let hit = cited
                    .iter()
                    .any(|source| docs.0.iter().any(|d| doc_matches(source, d)));
                Checked::holds(
                    hit,
                    format!("cites {}", cited.join(", ")),
                    format!("cites {}, not {}", cited.join(", "), docs.0.join(" or ")),
                )
            }
            Assertion::RetrievalHit(r) => {
                let rank = seen
                    .sources
                    .iter()
                    .position(|s| r.docs.0.iter().any(|d| doc_matches(&s.source, d)))
                    .map(|i| i + 1);
                let measure = Measure::Retrieval { rank, k: r.k };
                let retrieved: Vec<String> = seen
                    .sources
                    .iter()
                    .take(r.k)
                    .map(|s| s.source.clone())
                    .collect();
                let checked = match rank {
                    Some(rank) if rank <= r.k => {
                        Checked::pass(format!("relevant passage at rank {rank}"))
                    }
                    Some(rank) => Checked::fail(format!(
                        "first relevant passage at rank {rank}, below the top {}",
                        r.k
                    )),
                    None if seen.sources.is_empty() => Checked::fail(match seen.escalation {
                        Some(t)
                            if matches!(
                                t.reason(),
                                EscalationReason::Keyword | EscalationReason::HumanRequest
                            ) =>
                        {
                            format!(
                                "nothing was retrieved: the turn escalated first ({})",
                                t.reason().as_str()
                            )
                        }
                        _ => "nothing was retrieved".to_string(),
                    }),
                    None => Checked::fail(format!(
                        "no relevant passage retrieved (top {}: {})",
                        r.k,
                        retrieved.join(", ")
                    )),
                };
                checked.with(measure)
            }
            Assertion::MaxLatencyMs(max) => Checked::holds(
                seen.latency_ms <= *max as f64,
                format!("{:.0} ms", seen.latency_ms),
                format!("took {:.0} ms, over {max} ms", seen.latency_ms),
            )
            .with(Measure::Score {
                value: seen.latency_ms,
                min: *max as f64,
            }),
            Assertion::MaxChars(max) => {
                let n = reply.chars().count();
                Checked::holds(
                    n <= *max,
                    format!("{n} characters"),
                    format!("{n} characters, over {max}"),
                )
            }
            Assertion::Offers(want) => {
                let offered: Vec<String> = seen
                    .choices
                    .map(|c| c.options.iter().map(|o| o.title.clone()).collect())
                    .unwrap_or_default();
                Checked::holds(
                    &offered == want,
                    if offered.is_empty() {
                        "no options".to_string()
                    } else {
                        format!("offers {}", list(&offered))
                    },
                    if offered.is_empty() {
                        "the reply offers no options".to_string()
                    } else {
                        format!("the reply offers {}", list(&offered))
                    },
                )
            }
            Assertion::HandsBack(expected) => {
                let actual = seen.action == Action::HandedBack;
                Checked::holds(
                    actual == *expected,
                    if actual {
                        "the bot took the conversation back"
                    } else {
                        "the bot did not take the conversation back"
                    },
                    if actual {
                        "the bot took the conversation back"
                    } else {
                        "the bot did not take the conversation back"
                    },
                )
            }
            Assertion::Language(code) => {
                if seen.reply.is_none() {
                    return Checked::fail("no reply was sent");
                }
                let want = crate::language::iso639_3(code).unwrap_or("");
                let text = without_citations(reply);
                // Over all 70 languages, short chat replies are often mistaken for a rare
                // neighbour (English for Afrikaans); choosing among widely used languages and
                // the one asked for keeps the check meaningful.
                let mut allowed: Vec<whatlang::Lang> = crate::language::COMMON
                    .iter()
                    .filter_map(|c| whatlang::Lang::from_code(*c))
                    .collect();
                if let Some(lang) = whatlang::Lang::from_code(want) {
                    if !allowed.contains(&lang) {
                        allowed.push(lang);
                    }
                }
                match whatlang::Detector::with_allowlist(allowed).detect(&text) {
                    None => Checked::fail("the reply's language could not be detected"),
                    Some(info) => {
                        let got = info.lang().code();
                        Checked::holds(
                            got == want,
                            format!(
                                "{} (confidence {:.2})",
                                info.lang().eng_name(),
                                info.confidence()
                            ),
                            format!(
                                "the reply looks {} (confidence {:.2}), not {code}",
                                info.lang().eng_name(),
                                info.confidence()
                            ),
                        )
                    }
                }
            }
            Assertion::SimilarTo(_) | Assertion::Judge(_) => {
                Checked::skipped("needs an embedder or a judge")
            }
        }
    }
}

async fn similar_to(s: &SimilarTo, seen: &Observed<'_>, embedder: &dyn Embedder) -> Checked {
    let Some(reply) = seen.reply else {
        return Checked::fail("no reply was sent");
    };
    let vectors = match embedder
        .embed(&[without_citations(reply), s.text.clone()])
        .await
    {
        Ok(v) if v.len() == 2 => v,
        Ok(_) => return Checked::fail("the embedder returned too few vectors"),
        Err(e) => return Checked::fail(format!("cannot embed: {e}")),
    };
    let similarity = f64::from(cosine(&vectors[0], &vectors[1]));
    Checked::holds(
        similarity >= s.min,
        format!("similarity {similarity:.3}"),
        format!("similarity {similarity:.3}, under {:.2}", s.min),
    )
    .with(Measure::Score {
        value: similarity,
        min: s.min,
    })
}

async fn judged(j: &JudgeSpec, seen: &Observed<'_>, judge: &Judge) -> Checked {
    let Some(reply) = seen.reply else {
        return Checked::fail("no reply was sent");
    };
    let sources: Vec<String> = seen
        .sources
        .iter()
        .map(|s| match &s.heading {
            Some(h) => format!("{} > {h}: {}", s.title, s.text),
            None => format!("{}: {}", s.title, s.text),
        })
        .collect();
    // The judge sees the conversation before the reply; the reply separately.
    let before = seen
        .conversation
        .len()
        .saturating_sub(usize::from(seen.reply.is_some()));
    let conversation: Vec<(&str, &str)> = seen.conversation[..before]
        .iter()
        .map(|(r, t)| (r.as_str(), t.as_str()))
        .collect();
    match judge.grade(&j.rubric, &conversation, &sources, reply).await {
        Ok(grade) => Checked::holds(
            grade.score >= j.min,
            format!("score {:.2}: {}", grade.score, grade.reason),
            format!(
                "score {:.2}, under {:.2}: {}",
                grade.score, j.min, grade.reason
            ),
        )
        .with(Measure::Score {
            value: grade.score,
            min: j.min,
        }),
        Err(e) => Checked::fail(format!("the judge could not grade the reply: {e}")),
    }
}

impl fmt::Display for Assertion {
    /// A short description for reports: `contains "08:00"`, `retrieval_hit faq.md @3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opts = |case: bool, accents: bool| {
            let mut o = Vec::new();
            if case {
                o.push("ignoring case");
            }
            if accents {
                o.push("ignoring accents");
            }
            if o.is_empty() {
                String::new()
            } else {
                format!(" ({})", o.join(", "))
            }
        };
        match self {
            Assertion::Contains(m) | Assertion::NotContains(m) | Assertion::Equals(m) => {
                write!(f, "{}", self.kind())?;
                if !m.all.is_empty() {
                    write!(f, " {}", list(&m.all))?;
                }
                if !m.any.is_empty() {
                    write!(f, " any of {}", list(&m.any))?;
                }
                write!(f, "{}", opts(m.ignore_case, m.ignore_accents))
            }
            Assertion::Regex(r) => write!(
                f,
                "regex /{}/{}",
                r.pattern,
                opts(r.ignore_case, r.ignore_accents)
            ),
            Assertion::Escalates(e) if e.reason.is_empty() => {
                write!(f, "escalates: {}", e.expected)
            }
            Assertion::Escalates(e) => write!(f, "escalates: {}", e.reason.join(" or ")),
            Assertion::Cites(d) => write!(f, "cites {}", d.0.join(" or ")),
            Assertion::RetrievalHit(r) => {
                write!(f, "retrieval_hit {} in top {}", r.docs.0.join(" or "), r.k)
            }
            Assertion::SimilarTo(s) => write!(f, "similar_to {} ≥ {:.2}", quote(&s.text), s.min),
            Assertion::Judge(j) => write!(f, "judge {} ≥ {:.2}", quote(&j.rubric), j.min),
            Assertion::MaxLatencyMs(ms) => write!(f, "max_latency_ms {ms}"),
            Assertion::MaxChars(n) => write!(f, "max_chars {n}"),
            Assertion::Language(code) => write!(f, "language {code}"),
            Assertion::Offers(titles) if titles.is_empty() => write!(f, "offers no options"),
            Assertion::Offers(titles) => write!(f, "offers {}", list(titles)),
            Assertion::HandsBack(expected) => write!(f, "hands_back: {expected}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Answerer, SourceRef};

    fn source(n: usize, source: &str) -> ShownSource {
        ShownSource {
            n,
            source: source.into(),
            title: source.into(),
            heading: None,
            text: format!("passage from {source}"),
            similarity: 0.6,
            relevance: 0.4,
            score: 0.03,
        }
    }

    fn generation(sources: &[ShownSource], cited: &[usize]) -> Generation {
        Generation {
            answerer: Answerer::Extractive,
            sources: sources
                .iter()
                .map(|s| SourceRef {
                    n: s.n,
                    chunk_id: Default::default(),
                    source: s.source.clone(),
                    heading: None,
                    similarity: s.similarity,
                    score: s.score,
                })
                .collect(),
            cited: cited.to_vec(),
            ..Default::default()
        }
    }

    /// A parsed assertion, as a suite would write it.
    fn a(yaml: &str) -> Assertion {
        // Suites are read as YAML into JSON values first, as here.
        let value: serde_json::Value =
            serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        let a: Assertion = serde_json::from_value(value).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        a.check().unwrap_or_else(|e| panic!("{yaml}: {e:?}"));
        a
    }

    struct Turn {
        reply: Option<&'static str>,
        action: Action,
        escalation: Option<Trigger>,
        sources: Vec<ShownSource>,
        generation: Option<Generation>,
        latency_ms: f64,
        choices: Option<crate::domain::Choices>,
    }

    impl Turn {
        fn replied(reply: &'static str) -> Self {
            let sources = vec![
                source(1, "knowledge/opening-hours.md"),
                source(2, "knowledge/faq.md"),
                source(3, "knowledge/products.csv"),
                source(4, "knowledge/catering-menu.pdf"),
            ];
            Self {
                reply: Some(reply),
                action: Action::Replied,
                escalation: None,
                generation: Some(generation(&sources, &[1])),
                sources,
                latency_ms: 120.0,
                choices: None,
            }
        }

        fn escalated(trigger: Trigger) -> Self {
            Self {
                reply: Some("I'll pass this to a colleague."),
                action: Action::Escalated,
                escalation: Some(trigger),
                sources: Vec::new(),
                generation: None,
                latency_ms: 30.0,
                choices: None,
            }
        }

        fn check(&self, assertion: &Assertion) -> Checked {
            let conversation = Vec::new();
            assertion.evaluate_now(&Observed {
                reply: self.reply,
                action: self.action,
                escalation: self.escalation.as_ref(),
                sources: &self.sources,
                generation: self.generation.as_ref(),
                latency_ms: self.latency_ms,
                conversation: &conversation,
                choices: self.choices.as_ref(),
            })
        }
    }

    #[test]
    fn every_assertion_passes_and_fails() {
        let answer = Turn::replied(
            "On Saturday we open from 08:00 to 15:00 — o sábado também.\n\n(Source: Opening hours)",
        );
        let keyword = Turn::escalated(Trigger::Keyword("humano".into()));
        let low = Turn::escalated(Trigger::LowConfidence("confidence 0.2".into()));
        let english = Turn::replied(
            "We are open on Saturday from eight in the morning until three in the afternoon.\n\n(Source: Opening hours)",
        );
        let portuguese = Turn::replied(
            "Abrimos ao sábado das oito da manhã até às três da tarde, e ao domingo até à uma.",
        );
        let mut offered = Turn::replied("We open at 08:00 on Saturday.");
        offered.choices = crate::domain::InteractiveSettings {
            enabled: true,
            suggestions: vec!["Opening hours".into()],
            ..Default::default()
        }
        .choices();
        let mut back = Turn::replied("I am back to help.");
        back.action = Action::HandedBack;
        let mut wrong_doc = Turn::replied("The password is paoquente2024. (source 2)");
        wrong_doc.generation = Some(generation(&wrong_doc.sources, &[]));
        let cases: &[(&str, &Turn, Verdict)] = &[
            ("contains: '08:00'", &answer, Verdict::Pass),
            ("contains: '09:00'", &answer, Verdict::Fail),
            ("contains: ['08:00', '15:00']", &answer, Verdict::Pass),
            ("contains: ['08:00', '16:00']", &answer, Verdict::Fail),
            (
                "contains: {any: ['16:00', '15:00']}",
                &answer,
                Verdict::Pass,
            ),
            (
                "contains: {any: ['16:00', '17:00']}",
                &answer,
                Verdict::Fail,
            ),
            ("contains: 'saturday'", &answer, Verdict::Fail),
            (
                "contains: {text: 'saturday', ignore_case: true}",
                &answer,
                Verdict::Pass,
            ),
            (
                "contains: {text: 'SABADO', ignore_case: true}",
                &answer,
                Verdict::Fail,
            ),
            (
                "contains: {text: 'SABADO', ignore_case: true, ignore_accents: true}",
                &answer,
                Verdict::Pass,
            ),
            ("not_contains: 'NO_ANSWER'", &answer, Verdict::Pass),
            ("not_contains: '08:00'", &answer, Verdict::Fail),
            (
                "not_contains: {any: ['pirate', 'SOURCE'], ignore_case: true}",
                &answer,
                Verdict::Fail,
            ),
            ("regex: '\\b0?8:00\\b'", &answer, Verdict::Pass),
            ("regex: '^Closed'", &answer, Verdict::Fail),
            (
                "regex: {pattern: 'on saturday', ignore_case: true}",
                &answer,
                Verdict::Pass,
            ),
            (
                "regex: {pattern: 'sabado', ignore_accents: true}",
                &answer,
                Verdict::Pass,
            ),
            ("regex: 'sabado'", &answer, Verdict::Fail),
            (
                "equals: \"I'll pass this to a colleague.\"",
                &keyword,
                Verdict::Pass,
            ),
            ("equals: 'something else'", &keyword, Verdict::Fail),
            ("escalates: true", &keyword, Verdict::Pass),
            ("escalates: true", &answer, Verdict::Fail),
            ("escalates: false", &answer, Verdict::Pass),
            ("escalates: false", &low, Verdict::Fail),
            ("escalates: {reason: keyword}", &keyword, Verdict::Pass),
            (
                "escalates: {reason: [human_request, keyword]}",
                &keyword,
                Verdict::Pass,
            ),
            (
                "escalates: {reason: human_request}",
                &keyword,
                Verdict::Fail,
            ),
            ("escalates: {reason: low_confidence}", &low, Verdict::Pass),
            ("cites: opening-hours.md", &answer, Verdict::Pass),
            ("cites: knowledge/opening-hours.md", &answer, Verdict::Pass),
            ("cites: opening-hours", &answer, Verdict::Pass),
            ("cites: faq.md", &answer, Verdict::Fail),
            ("cites: [faq.md, opening-hours.md]", &answer, Verdict::Pass),
            ("cites: faq.md", &wrong_doc, Verdict::Pass),
            ("cites: faq.md", &keyword, Verdict::Fail),
            (
                "retrieval_hit: {docs: [faq.md], k: 3}",
                &answer,
                Verdict::Pass,
            ),
            (
                "retrieval_hit: {docs: [catering-menu.pdf], k: 3}",
                &answer,
                Verdict::Fail,
            ),
            (
                "retrieval_hit: {docs: [catering-menu.pdf], k: 4}",
                &answer,
                Verdict::Pass,
            ),
            (
                "retrieval_hit: {docs: [delivery-and-refunds.md]}",
                &answer,
                Verdict::Fail,
            ),
            ("retrieval_hit: {docs: faq.md}", &keyword, Verdict::Fail),
            ("max_latency_ms: 500", &answer, Verdict::Pass),
            ("max_latency_ms: 100", &answer, Verdict::Fail),
            ("max_chars: 200", &answer, Verdict::Pass),
            ("max_chars: 20", &answer, Verdict::Fail),
            ("language: en", &english, Verdict::Pass),
            ("language: eng", &english, Verdict::Pass),
            ("language: pt", &english, Verdict::Fail),
            ("language: pt", &portuguese, Verdict::Pass),
            ("language: es", &portuguese, Verdict::Fail),
            (
                "offers: ['Opening hours', 'Talk to a person']",
                &offered,
                Verdict::Pass,
            ),
            (
                "offers: ['Talk to a person', 'Opening hours']",
                &offered,
                Verdict::Fail,
            ),
            ("offers: ['Talk to a person']", &answer, Verdict::Fail),
            ("offers: []", &answer, Verdict::Pass),
            ("hands_back: true", &back, Verdict::Pass),
            ("hands_back: true", &answer, Verdict::Fail),
            ("hands_back: false", &answer, Verdict::Pass),
            ("hands_back: false", &back, Verdict::Fail),
        ];
        for (yaml, turn, want) in cases {
            let checked = turn.check(&a(yaml));
            assert_eq!(checked.verdict, *want, "{yaml}: {}", checked.reason);
            assert!(!checked.reason.is_empty(), "{yaml}: no reason");
        }
    }

    #[test]
    fn reasons_say_what_went_wrong() {
        let answer = Turn::replied("We open at 08:00. (Source: Opening hours)");
        let reason = |yaml: &str| answer.check(&a(yaml)).reason;
        assert!(reason("contains: '09:00'").contains("\"09:00\""));
        assert!(reason("escalates: true").contains("answered"));
        assert!(reason("cites: faq.md").contains("knowledge/opening-hours.md"));
        assert!(reason("retrieval_hit: {docs: [catering-menu.pdf], k: 2}").contains("rank 4"));
        let keyword = Turn::escalated(Trigger::Keyword("humano".into()));
        assert!(keyword
            .check(&a("retrieval_hit: {docs: [faq.md]}"))
            .reason
            .contains("escalated first (keyword)"));
        assert!(keyword
            .check(&a("escalates: {reason: human_request}"))
            .reason
            .contains("keyword: humano"));
    }

    #[test]
    fn measures_feed_the_metrics() {
        let answer = Turn::replied("We open at 08:00. (Source: Opening hours)");
        assert_eq!(
            answer
                .check(&a("retrieval_hit: {docs: [faq.md], k: 3}"))
                .measure,
            Some(Measure::Retrieval {
                rank: Some(2),
                k: 3
            })
        );
        assert_eq!(
            answer.check(&a("escalates: true")).measure,
            Some(Measure::Escalation {
                expected: true,
                actual: false
            })
        );
    }

    #[test]
    fn a_silent_turn_has_no_reply_to_check() {
        let mut silent = Turn::replied("");
        silent.reply = None;
        silent.action = Action::Silent;
        for yaml in ["contains: x", "regex: x", "equals: x", "language: en"] {
            let checked = silent.check(&a(yaml));
            assert_eq!(checked.verdict, Verdict::Fail, "{yaml}");
            assert!(checked.reason.contains("no reply"), "{yaml}");
        }
        assert_eq!(silent.check(&a("not_contains: x")).verdict, Verdict::Pass);
    }

    #[tokio::test]
    async fn similar_to_compares_embeddings() {
        let embedder = crate::testing::HashEmbedder::default();
        let answer = Turn::replied("We open on Saturday from 08:00 to 15:00.");
        let conversation = Vec::new();
        let seen = Observed {
            reply: answer.reply,
            action: answer.action,
            escalation: None,
            sources: &answer.sources,
            generation: answer.generation.as_ref(),
            latency_ms: 1.0,
            conversation: &conversation,
            choices: None,
        };
        let scorers = Scorers {
            embedder: &embedder,
            judge: None,
        };
        let close = a("similar_to: {text: 'On Saturday we open from 08:00 to 15:00.', min: 0.8}");
        let far = a("similar_to: {text: 'Dogs on a lead are welcome on the terrace.', min: 0.5}");
        let got = close.evaluate(&seen, scorers).await;
        assert_eq!(got.verdict, Verdict::Pass, "{}", got.reason);
        let got = far.evaluate(&seen, scorers).await;
        assert_eq!(got.verdict, Verdict::Fail, "{}", got.reason);
        assert!(matches!(got.measure, Some(Measure::Score { .. })));
        // Without a judge, judge assertions are skipped, never passed.
        let judged = a("judge: {rubric: 'Gives the hours.'}");
        let got = judged.evaluate(&seen, scorers).await;
        assert_eq!(got.verdict, Verdict::Skipped);
        assert!(got.reason.contains("no judge"), "{}", got.reason);
    }

    #[tokio::test]
    async fn judge_grades_pass_and_fail_against_the_threshold() {
        let model = crate::testing::scripted([
            Ok(r#"{"score": 5, "reason": "gives both times"}"#.to_string()),
            Ok(r#"{"score": 2, "reason": "misses the closing time"}"#.to_string()),
            Err(crate::llm::LlmError::Transient("server down".into())),
        ]);
        let judge = Judge::new(
            model,
            std::sync::Arc::new(crate::prompts::Prompts::load(None).unwrap()),
        );
        let embedder = crate::testing::HashEmbedder::default();
        let answer = Turn::replied("We open at 08:00.");
        let conversation = vec![
            ("customer".to_string(), "Saturday hours?".to_string()),
            ("assistant".to_string(), "We open at 08:00.".to_string()),
        ];
        let seen = Observed {
            reply: answer.reply,
            action: answer.action,
            escalation: None,
            sources: &answer.sources,
            generation: answer.generation.as_ref(),
            latency_ms: 1.0,
            conversation: &conversation,
            choices: None,
        };
        let scorers = Scorers {
            embedder: &embedder,
            judge: Some(&judge),
        };
        let assertion = a("judge: {rubric: 'Gives opening and closing time.', min: 0.75}");
        let first = assertion.evaluate(&seen, scorers).await;
        assert_eq!(first.verdict, Verdict::Pass, "{}", first.reason);
        assert!(first.reason.contains("gives both times"));
        let second = assertion.evaluate(&seen, scorers).await;
        assert_eq!(second.verdict, Verdict::Fail);
        assert!(second.reason.contains("0.25"), "{}", second.reason);
        let third = assertion.evaluate(&seen, scorers).await;
        assert_eq!(third.verdict, Verdict::Fail);
        assert!(third.reason.contains("server down"), "{}", third.reason);
    }

    #[test]
    fn checks_catch_what_a_run_would_trip_over() {
        let bad: &[(&str, &str)] = &[
            ("regex: '([unclosed'", "pattern"),
            ("contains: []", ""),
            ("equals: ['a', 'b']", ""),
            ("escalates: {reason: angry}", "reason"),
            ("retrieval_hit: {docs: [faq.md], k: 0}", "k"),
            ("similar_to: {text: '', min: 0.5}", "text"),
            ("judge: {rubric: 'x', min: 3}", "min"),
            ("language: klingon", ""),
            ("max_chars: 0", ""),
        ];
        for (yaml, field) in bad {
            let value: serde_json::Value = serde_norway::from_str(yaml).unwrap();
            let parsed: Assertion = serde_json::from_value(value).unwrap();
            let (sub, _) = parsed.check().unwrap_err();
            assert_eq!(sub, *field, "{yaml}");
        }
        // Unknown kinds and fields are refused by the parser, with the name.
        let err = serde_json::from_str::<Assertion>(r#"{"contain": "x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("contain"), "{err}");
        let err = serde_json::from_str::<Assertion>(r#"{"contains": {"txt": "x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("txt"), "{err}");
    }

    #[test]
    fn documents_match_by_path_file_or_stem() {
        assert!(doc_matches("knowledge/faq.md", "faq.md"));
        assert!(doc_matches("knowledge/faq.md", "knowledge/faq.md"));
        assert!(doc_matches("knowledge/faq.md", "faq"));
        assert!(doc_matches("faq.md", "./faq.md"));
        assert!(!doc_matches("knowledge/faq.md", "aq.md"));
        assert!(!doc_matches("knowledge/faq.md", "products.csv"));
    }
}
