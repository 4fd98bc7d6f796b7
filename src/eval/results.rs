//! What a run produced and what it means: every case with its turns and assertion verdicts;
//! the summary (pass rates per suite and per assertion type, retrieval hit@k and MRR,
//! escalation precision and recall, latency percentiles); the gate that decides the exit code;
//! and the difference from a baseline run (cases that regressed or improved).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::assertions::{Checked, Measure, Verdict};
use super::suite::Said;
use crate::domain::Generation;

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Every assertion that could be checked held.
    Passed,
    /// An assertion failed.
    Failed,
    /// Nothing could be checked (e.g. a voice note and no transcriber).
    Skipped,
    /// The engine failed while running the case.
    Error,
}

impl CaseStatus {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Passed => "passed",
            CaseStatus::Failed => "failed",
            CaseStatus::Skipped => "skipped",
            CaseStatus::Error => "error",
        }
    }
}

/// A passage a turn retrieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSeen {
    /// Its number in the prompt.
    pub n: usize,
    /// Document source.
    pub source: String,
    /// Document title.
    pub title: String,
    /// Heading path.
    pub heading: Option<String>,
    /// Passage text.
    pub text: String,
    /// Cosine similarity to the question.
    pub similarity: f32,
    /// Fused retrieval score.
    pub score: f32,
}

/// One customer turn and what the bot did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnResult {
    /// What the customer said (text, or the voice note's file).
    pub said: String,
    /// The voice note's file, for audio turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
    /// The words the turn answered (a voice note's transcript included).
    pub question: String,
    /// `replied`, `escalated` or `silent`.
    pub action: String,
    /// The reply sent (or the escalation message).
    pub reply: Option<String>,
    /// Why it escalated (reason code).
    pub escalation_reason: Option<String>,
    /// Detail of the escalation (keyword, confidence ...).
    pub escalation_detail: Option<String>,
    /// Why the bot stayed silent.
    pub silence: Option<String>,
    /// Passages retrieved, best first.
    pub sources: Vec<SourceSeen>,
    /// Answerer, model, prompt, confidence, tokens and timings.
    pub generation: Option<Generation>,
    /// Wall-clock time of the turn, in milliseconds.
    pub latency_ms: f64,
}

/// One assertion's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertionResult {
    /// The turn it was checked on (1-based).
    pub turn: usize,
    /// Its kind (`contains`, `retrieval_hit` ...).
    pub kind: String,
    /// What was asserted, in words.
    pub expected: String,
    /// Verdict, reason and measure.
    #[serde(flatten)]
    pub checked: Checked,
}

/// One case's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// Case id.
    pub id: String,
    /// What it checks.
    pub description: Option<String>,
    /// Its labels.
    pub tags: Vec<String>,
    /// Whether a failure fails the run.
    pub must_pass: bool,
    /// How it ended.
    pub status: CaseStatus,
    /// The engine's error, for `error` cases.
    pub error: Option<String>,
    /// Turns run.
    pub turns: Vec<TurnResult>,
    /// Every assertion's verdict.
    pub assertions: Vec<AssertionResult>,
    /// Time for all its turns, in milliseconds.
    pub latency_ms: f64,
}

impl CaseResult {
    /// The status implied by the verdicts.
    pub fn status_from(assertions: &[AssertionResult]) -> CaseStatus {
        if assertions
            .iter()
            .any(|a| a.checked.verdict == Verdict::Fail)
        {
            CaseStatus::Failed
        } else if assertions
            .iter()
            .all(|a| a.checked.verdict == Verdict::Skipped)
        {
            CaseStatus::Skipped
        } else {
            CaseStatus::Passed
        }
    }
}

/// Passed, failed and skipped counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
}

impl Counts {
    /// passed / (passed + failed); `None` when nothing was checked.
    pub fn rate(&self) -> Option<f64> {
        let checked = self.passed + self.failed;
        (checked > 0).then(|| self.passed as f64 / checked as f64)
    }
}

/// Retrieval quality over the `retrieval_hit` assertions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// Assertions measured.
    pub queries: usize,
    /// The k used, when every assertion used the same one.
    pub k: Option<usize>,
    /// Share with a relevant passage in the top k.
    pub hit_rate: f64,
    /// Mean reciprocal rank of the first relevant passage (0 when none was retrieved).
    pub mrr: f64,
}

/// Escalation decisions over the `escalates` assertions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationMetrics {
    /// Escalated and expected to.
    pub true_positives: usize,
    /// Escalated, not expected to.
    pub false_positives: usize,
    /// Expected to escalate, did not.
    pub false_negatives: usize,
    /// Neither expected nor done.
    pub true_negatives: usize,
    /// Of the escalations, the share that were expected; `None` when none happened.
    pub precision: Option<f64>,
    /// Of the expected escalations, the share that happened; `None` when none was expected.
    pub recall: Option<f64>,
}

/// Turn latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyMetrics {
    /// Turns measured.
    pub turns: usize,
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile, in milliseconds.
    pub p95_ms: f64,
    /// Slowest, in milliseconds.
    pub max_ms: f64,
}

/// What a set of cases adds up to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Cases run.
    pub cases: usize,
    /// Passed cases.
    pub passed: usize,
    /// Failed cases.
    pub failed: usize,
    /// Skipped cases.
    pub skipped: usize,
    /// Cases the engine failed on.
    pub errors: usize,
    /// passed / (passed + failed + errors); `None` when every case was skipped.
    pub pass_rate: Option<f64>,
    /// Verdicts per assertion kind.
    pub by_assertion: BTreeMap<String, Counts>,
    /// Case outcomes per tag (an engine error counts as a failure).
    #[serde(default)]
    pub by_tag: BTreeMap<String, Counts>,
    /// Retrieval hit rate and MRR.
    pub retrieval: Option<RetrievalMetrics>,
    /// Escalation precision and recall.
    pub escalation: Option<EscalationMetrics>,
    /// Latency percentiles.
    pub latency: Option<LatencyMetrics>,
}

/// The `q` quantile (0-1) of sorted values, by the nearest-rank method.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

impl Summary {
    /// Adds up `cases`.
    pub fn of<'a>(cases: impl IntoIterator<Item = &'a CaseResult>) -> Self {
        let mut s = Summary::default();
        let mut ranks: Vec<(Option<usize>, usize)> = Vec::new();
        let mut escalations: Vec<(bool, bool)> = Vec::new();
        let mut latencies: Vec<f64> = Vec::new();
        for case in cases {
            s.cases += 1;
            match case.status {
                CaseStatus::Passed => s.passed += 1,
                CaseStatus::Failed => s.failed += 1,
                CaseStatus::Skipped => s.skipped += 1,
                CaseStatus::Error => s.errors += 1,
            }
            for tag in &case.tags {
                let counts = s.by_tag.entry(tag.clone()).or_default();
                match case.status {
                    CaseStatus::Passed => counts.passed += 1,
                    CaseStatus::Failed | CaseStatus::Error => counts.failed += 1,
                    CaseStatus::Skipped => counts.skipped += 1,
                }
            }
            latencies.extend(case.turns.iter().map(|t| t.latency_ms));
            for a in &case.assertions {
                let counts = s.by_assertion.entry(a.kind.clone()).or_default();
                match a.checked.verdict {
                    Verdict::Pass => counts.passed += 1,
                    Verdict::Fail => counts.failed += 1,
                    Verdict::Skipped => counts.skipped += 1,
                }
                match &a.checked.measure {
                    Some(Measure::Retrieval { rank, k }) => ranks.push((*rank, *k)),
                    Some(Measure::Escalation { expected, actual }) => {
                        escalations.push((*expected, *actual))
                    }
                    _ => {}
                }
            }
        }
        let judged = s.passed + s.failed + s.errors;
        s.pass_rate = (judged > 0).then(|| s.passed as f64 / judged as f64);
        if !ranks.is_empty() {
            let n = ranks.len() as f64;
            let first_k = ranks[0].1;
            s.retrieval = Some(RetrievalMetrics {
                queries: ranks.len(),
                k: ranks.iter().all(|(_, k)| *k == first_k).then_some(first_k),
                hit_rate: ranks
                    .iter()
                    .filter(|(rank, k)| rank.is_some_and(|r| r <= *k))
                    .count() as f64
                    / n,
                mrr: ranks
                    .iter()
                    .map(|(rank, _)| rank.map_or(0.0, |r| 1.0 / r as f64))
                    .sum::<f64>()
                    / n,
            });
        }
        if !escalations.is_empty() {
            let count = |e: bool, a: bool| {
                escalations
                    .iter()
                    .filter(|(x, y)| *x == e && *y == a)
                    .count()
            };
            let (tp, fp, fneg, tn) = (
                count(true, true),
                count(false, true),
                count(true, false),
                count(false, false),
            );
            s.escalation = Some(EscalationMetrics {
                true_positives: tp,
                false_positives: fp,
                false_negatives: fneg,
                true_negatives: tn,
                precision: (tp + fp > 0).then(|| tp as f64 / (tp + fp) as f64),
                recall: (tp + fneg > 0).then(|| tp as f64 / (tp + fneg) as f64),
            });
        }
        if !latencies.is_empty() {
            latencies.sort_by(f64::total_cmp);
            s.latency = Some(LatencyMetrics {
                turns: latencies.len(),
                p50_ms: quantile(&latencies, 0.5),
                p95_ms: quantile(&latencies, 0.95),
                max_ms: latencies.last().copied().unwrap_or(0.0),
            });
        }
        s
    }
}

/// One suite's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteResult {
    /// Suite name.
    pub name: String,
    /// Its file.
    pub file: String,
    /// What it covers.
    pub description: Option<String>,
    /// The answerer that wrote the replies.
    pub answerer: String,
    /// The agent configuration the cases ran against.
    pub agent: serde_json::Value,
    /// Documents ingested (with any that were skipped and why).
    pub knowledge: Vec<String>,
    /// The suite's own pass-rate threshold.
    pub min_pass: Option<f64>,
    /// Its cases.
    pub cases: Vec<CaseResult>,
    /// What they add up to.
    pub summary: Summary,
}

/// Whether the run passes: the pass rate against the threshold, and `must_pass` cases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// The run-wide threshold (`--min-pass`), if one was given.
    pub min_pass: Option<f64>,
    /// True when nothing below failed.
    pub passed: bool,
    /// Why it failed, one line each.
    pub failures: Vec<String>,
}

/// A case named across runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseChange {
    /// Suite name.
    pub suite: String,
    /// Case id.
    pub case: String,
    /// Status in the baseline.
    pub before: Option<CaseStatus>,
    /// Status now.
    pub after: Option<CaseStatus>,
}

/// How this run differs from a baseline run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BaselineDiff {
    /// Where the baseline came from (file or label).
    pub baseline: String,
    /// The baseline's pass rate.
    pub baseline_pass_rate: Option<f64>,
    /// This run's pass rate minus the baseline's.
    pub pass_rate_delta: Option<f64>,
    /// Cases that passed before and do not now.
    pub regressed: Vec<CaseChange>,
    /// Cases that did not pass before and do now.
    pub improved: Vec<CaseChange>,
    /// Cases new in this run.
    pub added: Vec<CaseChange>,
    /// Cases gone since the baseline.
    pub removed: Vec<CaseChange>,
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// Format version of this document.
    pub format: u32,
    /// A label (e.g. the variant in a comparison).
    pub label: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// The embedder used for retrieval and `similar_to`.
    pub embedder: String,
    /// The judge model, when one was configured.
    pub judge: Option<String>,
    /// Run-wide changes to every suite's agent.
    pub overrides: serde_json::Map<String, serde_json::Value>,
    /// Per suite.
    pub suites: Vec<SuiteResult>,
    /// Over every suite.
    pub summary: Summary,
    /// Pass or fail, and why.
    pub gate: Gate,
    /// Against the baseline, when one was given.
    pub baseline: Option<BaselineDiff>,
}

/// The version written in `format`.
pub const FORMAT: u32 = 1;

impl RunResults {
    /// Decides the gate: every suite's own `min_pass` (or the run-wide one when given, which
    /// takes precedence), the run's overall pass rate against the run-wide one, and every
    /// `must_pass` case; with `no_regressions`, any case that regressed against the baseline.
    pub fn decide_gate(&mut self, min_pass: Option<f64>, no_regressions: bool) {
        let mut failures = Vec::new();
        let pct = |r: f64| format!("{:.1}%", r * 100.0);
        for suite in &self.suites {
            if let (Some(min), Some(rate)) = (min_pass.or(suite.min_pass), suite.summary.pass_rate)
            {
                if rate < min {
                    failures.push(format!(
                        "suite `{}`: pass rate {} is under {}",
                        suite.name,
                        pct(rate),
                        pct(min)
                    ));
                }
            }
            for case in &suite.cases {
                if case.must_pass && matches!(case.status, CaseStatus::Failed | CaseStatus::Error) {
                    failures.push(format!(
                        "suite `{}`: must-pass case `{}` {}",
                        suite.name,
                        case.id,
                        case.status.as_str()
                    ));
                }
            }
        }
        if let (Some(min), Some(rate)) = (min_pass, self.summary.pass_rate) {
            if rate < min && self.suites.len() > 1 {
                failures.push(format!(
                    "overall pass rate {} is under {}",
                    pct(rate),
                    pct(min)
                ));
            }
        }
        if no_regressions {
            if let Some(diff) = &self.baseline {
                for c in &diff.regressed {
                    failures.push(format!(
                        "suite `{}`: case `{}` regressed against the baseline",
                        c.suite, c.case
                    ));
                }
            }
        }
        self.gate = Gate {
            min_pass,
            passed: failures.is_empty(),
            failures,
        };
    }
}

/// The parts of a results file a baseline needs; read leniently so older files still compare.
#[derive(Debug, Clone, Deserialize)]
pub struct BaselineFile {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    summary: Option<BaselineSummary>,
    suites: Vec<BaselineSuite>,
}

#[derive(Debug, Clone, Deserialize)]
struct BaselineSummary {
    pass_rate: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct BaselineSuite {
    name: String,
    cases: Vec<BaselineCase>,
}

#[derive(Debug, Clone, Deserialize)]
struct BaselineCase {
    id: String,
    status: CaseStatus,
}

impl BaselineFile {
    /// A baseline from a finished run.
    pub fn from_results(results: &RunResults) -> Self {
        Self {
            label: results.label.clone(),
            summary: Some(BaselineSummary {
                pass_rate: results.summary.pass_rate,
            }),
            suites: results
                .suites
                .iter()
                .map(|s| BaselineSuite {
                    name: s.name.clone(),
                    cases: s
                        .cases
                        .iter()
                        .map(|c| BaselineCase {
                            id: c.id.clone(),
                            status: c.status,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Its label, if it has one.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }
}

/// How `results` differs from `baseline` (named `name` in reports). Skipped cases neither
/// regress nor improve: nothing was learnt about them.
pub fn diff(results: &RunResults, baseline: &BaselineFile, name: &str) -> BaselineDiff {
    let before: HashMap<(&str, &str), CaseStatus> = baseline
        .suites
        .iter()
        .flat_map(|s| {
            s.cases
                .iter()
                .map(move |c| ((s.name.as_str(), c.id.as_str()), c.status))
        })
        .collect();
    let mut out = BaselineDiff {
        baseline: name.to_string(),
        baseline_pass_rate: baseline.summary.as_ref().and_then(|s| s.pass_rate),
        ..Default::default()
    };
    out.pass_rate_delta = match (results.summary.pass_rate, out.baseline_pass_rate) {
        (Some(now), Some(then)) => Some(now - then),
        _ => None,
    };
    let mut seen = std::collections::HashSet::new();
    for suite in &results.suites {
        for case in &suite.cases {
            let key = (suite.name.as_str(), case.id.as_str());
            seen.insert(key);
            let change = |b: Option<CaseStatus>| CaseChange {
                suite: suite.name.clone(),
                case: case.id.clone(),
                before: b,
                after: Some(case.status),
            };
            match before.get(&key).copied() {
                None => out.added.push(change(None)),
                Some(b) => {
                    let was = b == CaseStatus::Passed;
                    let is = case.status == CaseStatus::Passed;
                    let known = b != CaseStatus::Skipped && case.status != CaseStatus::Skipped;
                    if known && was && !is {
                        out.regressed.push(change(Some(b)));
                    } else if known && !was && is {
                        out.improved.push(change(Some(b)));
                    }
                }
            }
        }
    }
    for suite in &baseline.suites {
        for case in &suite.cases {
            if !seen.contains(&(suite.name.as_str(), case.id.as_str())) {
                out.removed.push(CaseChange {
                    suite: suite.name.clone(),
                    case: case.id.clone(),
                    before: Some(case.status),
                    after: None,
                });
            }
        }
    }
    out
}

impl TurnResult {
    /// The result of a turn that ran.
    pub fn from_outcome(said: &Said, outcome: &crate::pipeline::Outcome, latency_ms: f64) -> Self {
        let (said_text, audio) = match said {
            Said::Text(t) => (t.clone(), None),
            Said::Audio { file, .. } => (said.label(), Some(file.clone())),
        };
        let action = match outcome.action {
            crate::pipeline::Action::Replied => "replied",
            crate::pipeline::Action::Escalated => "escalated",
            crate::pipeline::Action::Silent => "silent",
            crate::pipeline::Action::HandedBack => "handed_back",
        };
        Self {
            said: said_text,
            audio,
            question: outcome.question.clone(),
            action: action.to_string(),
            reply: outcome.reply.clone(),
            escalation_reason: outcome.escalation.as_ref().map(|t| t.reason().to_string()),
            escalation_detail: outcome.escalation.as_ref().map(|t| t.detail().to_string()),
            silence: outcome.silence.map(|s| {
                serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            }),
            sources: outcome
                .sources
                .iter()
                .map(|s| SourceSeen {
                    n: s.n,
                    source: s.source.clone(),
                    title: s.title.clone(),
                    heading: s.heading.clone(),
                    text: s.text.clone(),
                    similarity: s.similarity,
                    score: s.score,
                })
                .collect(),
            generation: outcome.generation.clone(),
            latency_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(
        id: &str,
        status: CaseStatus,
        verdicts: &[(&str, Verdict, Option<Measure>)],
    ) -> CaseResult {
        CaseResult {
            id: id.into(),
            description: None,
            tags: vec![],
            must_pass: false,
            status,
            error: None,
            turns: vec![],
            assertions: verdicts
                .iter()
                .map(|(kind, verdict, measure)| AssertionResult {
                    turn: 1,
                    kind: kind.to_string(),
                    expected: kind.to_string(),
                    checked: Checked {
                        verdict: *verdict,
                        reason: String::new(),
                        measure: measure.clone(),
                    },
                })
                .collect(),
            latency_ms: 0.0,
        }
    }

    fn run(suites: Vec<(&str, Vec<CaseResult>)>) -> RunResults {
        let suites: Vec<SuiteResult> = suites
            .into_iter()
            .map(|(name, cases)| SuiteResult {
                name: name.into(),
                file: format!("{name}.yaml"),
                description: None,
                answerer: "extractive".into(),
                agent: serde_json::Value::Null,
                knowledge: vec![],
                min_pass: None,
                summary: Summary::of(&cases),
                cases,
            })
            .collect();
        RunResults {
            format: FORMAT,
            label: None,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            embedder: "test".into(),
            judge: None,
            overrides: Default::default(),
            summary: Summary::of(suites.iter().flat_map(|s| &s.cases)),
            suites,
            gate: Gate::default(),
            baseline: None,
        }
    }

    #[test]
    fn retrieval_and_escalation_metrics() {
        let r = |rank| Some(Measure::Retrieval { rank, k: 3 });
        let e = |expected, actual| Some(Measure::Escalation { expected, actual });
        let cases = vec![
            case(
                "a",
                CaseStatus::Passed,
                &[("retrieval_hit", Verdict::Pass, r(Some(1)))],
            ),
            case(
                "b",
                CaseStatus::Passed,
                &[("retrieval_hit", Verdict::Pass, r(Some(2)))],
            ),
            case(
                "c",
                CaseStatus::Failed,
                &[("retrieval_hit", Verdict::Fail, r(Some(5)))],
            ),
            case(
                "d",
                CaseStatus::Failed,
                &[("retrieval_hit", Verdict::Fail, r(None))],
            ),
            case(
                "e",
                CaseStatus::Passed,
                &[("escalates", Verdict::Pass, e(true, true))],
            ),
            case(
                "f",
                CaseStatus::Failed,
                &[("escalates", Verdict::Fail, e(false, true))],
            ),
            case(
                "g",
                CaseStatus::Failed,
                &[("escalates", Verdict::Fail, e(true, false))],
            ),
            case(
                "h",
                CaseStatus::Passed,
                &[("escalates", Verdict::Pass, e(true, true))],
            ),
            case(
                "i",
                CaseStatus::Passed,
                &[("escalates", Verdict::Pass, e(false, false))],
            ),
            case(
                "j",
                CaseStatus::Skipped,
                &[("judge", Verdict::Skipped, None)],
            ),
        ];
        let s = Summary::of(&cases);
        assert_eq!((s.cases, s.passed, s.failed, s.skipped), (10, 5, 4, 1));
        assert_eq!(s.pass_rate, Some(5.0 / 9.0));
        let ret = s.retrieval.unwrap();
        assert_eq!(ret.queries, 4);
        assert_eq!(ret.k, Some(3));
        assert_eq!(ret.hit_rate, 0.5);
        assert!((ret.mrr - (1.0 + 0.5 + 0.2 + 0.0) / 4.0).abs() < 1e-12);
        let esc = s.escalation.unwrap();
        assert_eq!(
            (
                esc.true_positives,
                esc.false_positives,
                esc.false_negatives,
                esc.true_negatives
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(esc.precision, Some(2.0 / 3.0));
        assert_eq!(esc.recall, Some(2.0 / 3.0));
        assert_eq!(s.by_assertion["judge"].skipped, 1);
        assert_eq!(s.by_assertion["retrieval_hit"].rate(), Some(0.5));
        assert!(s.by_tag.is_empty());
    }

    #[test]
    fn cases_are_counted_per_tag() {
        let tagged = |id: &str, status, tags: &[&str]| {
            let mut c = case(id, status, &[("contains", Verdict::Pass, None)]);
            c.tags = tags.iter().map(|t| t.to_string()).collect();
            c
        };
        let cases = [
            tagged("a", CaseStatus::Passed, &["cross-language", "price"]),
            tagged("b", CaseStatus::Failed, &["cross-language"]),
            tagged("c", CaseStatus::Error, &["cross-language"]),
            tagged("d", CaseStatus::Passed, &["cross-language"]),
            tagged("e", CaseStatus::Skipped, &["price"]),
            tagged("f", CaseStatus::Passed, &[]),
        ];
        let s = Summary::of(&cases);
        let cross = &s.by_tag["cross-language"];
        assert_eq!((cross.passed, cross.failed, cross.skipped), (2, 2, 0));
        assert_eq!(cross.rate(), Some(0.5));
        assert_eq!(s.by_tag["price"].rate(), Some(1.0));
        assert_eq!(s.by_tag["price"].skipped, 1);
        assert_eq!(s.by_tag.len(), 2);
    }

    #[test]
    fn latency_percentiles_by_nearest_rank() {
        let sorted: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantile(&sorted, 0.5), 10.0);
        assert_eq!(quantile(&sorted, 0.95), 19.0);
        assert_eq!(quantile(&[7.0], 0.95), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn gate_on_pass_rate_and_must_pass() {
        let pass = || {
            case(
                "ok",
                CaseStatus::Passed,
                &[("contains", Verdict::Pass, None)],
            )
        };
        let fail = |id: &str| case(id, CaseStatus::Failed, &[("contains", Verdict::Fail, None)]);
        // 3 of 4 pass: 75%.
        let mut r = run(vec![("s", vec![pass(), pass(), pass(), fail("x")])]);
        r.decide_gate(Some(0.7), false);
        assert!(r.gate.passed, "{:?}", r.gate);
        r.decide_gate(Some(0.9), false);
        assert!(!r.gate.passed);
        assert!(r.gate.failures[0].contains("75.0%"), "{:?}", r.gate);
        // No threshold: only must-pass cases gate.
        r.decide_gate(None, false);
        assert!(r.gate.passed);
        r.suites[0].cases[3].must_pass = true;
        r.decide_gate(None, false);
        assert!(!r.gate.passed);
        assert!(
            r.gate.failures[0].contains("must-pass case `x`"),
            "{:?}",
            r.gate
        );
        // A suite's own threshold applies when no run-wide one is given.
        let mut r = run(vec![("s", vec![pass(), fail("y")])]);
        r.suites[0].min_pass = Some(0.8);
        r.decide_gate(None, false);
        assert!(!r.gate.passed);
        r.decide_gate(Some(0.5), false);
        assert!(r.gate.passed, "the run-wide threshold takes precedence");
        // Errors count as failures for must-pass cases.
        let mut r = run(vec![("s", vec![pass()])]);
        r.suites[0].cases[0].status = CaseStatus::Error;
        r.suites[0].cases[0].must_pass = true;
        r.decide_gate(None, false);
        assert!(!r.gate.passed);
    }

    #[test]
    fn baseline_diff_lists_regressions_improvements_and_changes() {
        let c = |id: &str, status| case(id, status, &[("contains", Verdict::Pass, None)]);
        let before = run(vec![(
            "s",
            vec![
                c("stays", CaseStatus::Passed),
                c("breaks", CaseStatus::Passed),
                c("heals", CaseStatus::Failed),
                c("errored", CaseStatus::Error),
                c("was-skipped", CaseStatus::Skipped),
                c("gone", CaseStatus::Passed),
            ],
        )]);
        let mut now = run(vec![(
            "s",
            vec![
                c("stays", CaseStatus::Passed),
                c("breaks", CaseStatus::Failed),
                c("heals", CaseStatus::Passed),
                c("errored", CaseStatus::Passed),
                c("was-skipped", CaseStatus::Failed),
                c("new", CaseStatus::Passed),
            ],
        )]);
        let baseline = BaselineFile::from_results(&before);
        let d = diff(&now, &baseline, "before.json");
        let ids = |v: &[CaseChange]| v.iter().map(|c| c.case.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&d.regressed), ["breaks"]);
        assert_eq!(ids(&d.improved), ["heals", "errored"]);
        assert_eq!(ids(&d.added), ["new"]);
        assert_eq!(ids(&d.removed), ["gone"]);
        assert_eq!(d.regressed[0].before, Some(CaseStatus::Passed));
        assert_eq!(d.regressed[0].after, Some(CaseStatus::Failed));
        // The same file read back from JSON gives the same diff.
        let text = serde_json::to_string(&before).unwrap();
        let parsed: BaselineFile = serde_json::from_str(&text).unwrap();
        assert_eq!(diff(&now, &parsed, "before.json"), d);
        // Regressions gate only when asked.
        now.baseline = Some(d);
        now.decide_gate(None, false);
        assert!(now.gate.passed);
        now.decide_gate(None, true);
        assert!(!now.gate.passed);
        assert!(now.gate.failures[0].contains("`breaks` regressed"));
    }
}
