//! Reports of a run: the console summary (tables of pass rates per suite and per assertion,
//! retrieval, escalation and latency figures, failures, the baseline diff and the gate), the
//! JSON results (also the baseline format), JUnit XML for CI systems, and one self-contained
//! HTML page (inline CSS, no scripts, no external assets; every text escaped, since customer
//! words are untrusted). A comparison of two variants gets a side-by-side summary and page.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use minijinja::{AutoEscape, Environment, Value};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::assertions::Verdict;
use super::results::{BaselineDiff, CaseStatus, RunResults};
use super::EvalError;

const REPORT_TEMPLATE: &str = include_str!("report.html.j2");
const COMPARE_TEMPLATE: &str = include_str!("compare.html.j2");

fn pct(rate: Option<f64>) -> String {
    rate.map_or("–".into(), |r| format!("{:.1}%", r * 100.0))
}

fn num(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} s", v / 1000.0)
    } else {
        format!("{v:.0} ms")
    }
}

/// Pads or cuts `s` to `width` characters.
fn cell(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n > width {
        let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    } else {
        format!("{s}{}", " ".repeat(width - n))
    }
}

fn one_line(s: &str, max: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let mut out: String = flat.chars().take(max - 1).collect();
        out.push('…');
        out
    } else {
        flat
    }
}

/// The tag of cases asked in another language than the suite's documents.
pub const CROSS_LANGUAGE_TAG: &str = "cross-language";

/// Per suite: facts right (the `contains` assertions that hold), cases in another language
/// than the documents that pass, escalation precision and recall, and retrieval hit rate.
fn quality_table(r: &RunResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} {:>8} {:>15} {:>10} {:>8} {:>7}",
        cell("suite", 28),
        "facts",
        "cross-language",
        "esc prec",
        "esc rec",
        "hit@k",
    );
    let rows = r
        .suites
        .iter()
        .map(|s| (s.name.as_str(), &s.summary))
        .chain([("all", &r.summary)]);
    for (name, m) in rows {
        let _ = writeln!(
            out,
            "{} {:>8} {:>15} {:>10} {:>8} {:>7}",
            cell(name, 28),
            pct(m.by_assertion.get("contains").and_then(|c| c.rate())),
            pct(m.by_tag.get(CROSS_LANGUAGE_TAG).and_then(|c| c.rate())),
            num(m.escalation.as_ref().and_then(|e| e.precision)),
            num(m.escalation.as_ref().and_then(|e| e.recall)),
            num(m.retrieval.as_ref().map(|h| h.hit_rate)),
        );
    }
    out
}

/// The summary printed after a run.
pub fn console(r: &RunResults) -> String {
    let mut out = String::new();
    let title = match &r.label {
        Some(l) => format!("Eval results: {l}"),
        None => "Eval results".to_string(),
    };
    let _ = writeln!(out, "\n{title}\n");
    let _ = writeln!(
        out,
        "{} {:>6} {:>7} {:>7} {:>8} {:>7} {:>10}  answerer",
        cell("suite", 28),
        "cases",
        "passed",
        "failed",
        "skipped",
        "errors",
        "pass rate",
    );
    for s in &r.suites {
        let m = &s.summary;
        let _ = writeln!(
            out,
            "{} {:>6} {:>7} {:>7} {:>8} {:>7} {:>10}  {}",
            cell(&s.name, 28),
            m.cases,
            m.passed,
            m.failed,
            m.skipped,
            m.errors,
            pct(m.pass_rate),
            s.answerer
        );
    }
    let m = &r.summary;
    let _ = writeln!(
        out,
        "{} {:>6} {:>7} {:>7} {:>8} {:>7} {:>10}",
        cell("all", 28),
        m.cases,
        m.passed,
        m.failed,
        m.skipped,
        m.errors,
        pct(m.pass_rate)
    );
    let _ = write!(out, "{}", quality_table(r));
    let _ = writeln!(
        out,
        "\n{} {:>7} {:>7} {:>8} {:>10}",
        cell("assertion", 28),
        "passed",
        "failed",
        "skipped",
        "pass rate"
    );
    for (kind, c) in &m.by_assertion {
        let _ = writeln!(
            out,
            "{} {:>7} {:>7} {:>8} {:>10}",
            cell(kind, 28),
            c.passed,
            c.failed,
            c.skipped,
            pct(c.rate())
        );
    }
    let _ = writeln!(out);
    if let Some(ret) = &m.retrieval {
        let k = ret.k.map_or("k".into(), |k| k.to_string());
        let _ = writeln!(
            out,
            "retrieval   hit@{k} {:.2}  MRR {:.2}  ({} queries)",
            ret.hit_rate, ret.mrr, ret.queries
        );
    }
    if let Some(e) = &m.escalation {
        let _ = writeln!(
            out,
            "escalation  precision {}  recall {}  (TP {}, FP {}, FN {}, TN {})",
            num(e.precision),
            num(e.recall),
            e.true_positives,
            e.false_positives,
            e.false_negatives,
            e.true_negatives
        );
    }
    if let Some(l) = &m.latency {
        let _ = writeln!(
            out,
            "latency     p50 {}  p95 {}  max {}  ({} turns)",
            ms(l.p50_ms),
            ms(l.p95_ms),
            ms(l.max_ms),
            l.turns
        );
    }
    let mut failures = Vec::new();
    for s in &r.suites {
        for c in &s.cases {
            match c.status {
                CaseStatus::Failed => {
                    for a in c
                        .assertions
                        .iter()
                        .filter(|a| a.checked.verdict == Verdict::Fail)
                    {
                        failures.push(format!(
                            "  {}/{} (turn {}): {} — {}",
                            s.name,
                            c.id,
                            a.turn,
                            one_line(&a.expected, 60),
                            one_line(&a.checked.reason, 120)
                        ));
                    }
                }
                CaseStatus::Error => failures.push(format!(
                    "  {}/{}: error — {}",
                    s.name,
                    c.id,
                    c.error.as_deref().unwrap_or("")
                )),
                _ => {}
            }
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "\nfailures:");
        for f in failures {
            let _ = writeln!(out, "{f}");
        }
    }
    if let Some(d) = &r.baseline {
        let _ = write!(out, "{}", baseline_lines(d, m.pass_rate));
    }
    let _ = writeln!(out);
    if r.gate.passed {
        let _ = writeln!(out, "gate: passed");
    } else {
        let _ = writeln!(out, "gate: FAILED");
        for f in &r.gate.failures {
            let _ = writeln!(out, "  {f}");
        }
    }
    out
}

fn baseline_lines(d: &BaselineDiff, now: Option<f64>) -> String {
    let mut out = String::new();
    let delta = d
        .pass_rate_delta
        .map(|x| format!(" ({:+.1} points)", x * 100.0))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\nagainst {}: pass rate {} → {}{delta}; {} regressed, {} improved, {} new, {} removed",
        d.baseline,
        pct(d.baseline_pass_rate),
        pct(now),
        d.regressed.len(),
        d.improved.len(),
        d.added.len(),
        d.removed.len()
    );
    for (what, list) in [("regressed", &d.regressed), ("improved", &d.improved)] {
        for c in list.iter() {
            let _ = writeln!(
                out,
                "  {what}: {}/{} ({} → {})",
                c.suite,
                c.case,
                c.before.map_or("–", CaseStatus::as_str),
                c.after.map_or("–", CaseStatus::as_str)
            );
        }
    }
    out
}

/// The results as pretty JSON (the format `--baseline` reads).
pub fn json(r: &RunResults) -> Result<String, EvalError> {
    serde_json::to_string_pretty(r).map_err(|e| EvalError::Report {
        what: "JSON",
        message: e.to_string(),
    })
}

/// JUnit XML: a test suite per eval suite, a test case per case; failed assertions become the
/// failure message, skipped cases are skipped, engine errors are errors.
pub fn junit(r: &RunResults) -> Result<String, EvalError> {
    let mut report = Report::new(match &r.label {
        Some(l) => format!("palaver-eval-{l}"),
        None => "palaver-eval".to_string(),
    });
    report.set_timestamp(r.started_at);
    let total = (r.finished_at - r.started_at).to_std().unwrap_or_default();
    report.set_time(total);
    for s in &r.suites {
        let mut suite = TestSuite::new(s.name.clone());
        suite.set_timestamp(r.started_at);
        for c in &s.cases {
            let status = match c.status {
                CaseStatus::Passed => TestCaseStatus::success(),
                CaseStatus::Skipped => {
                    let mut st = TestCaseStatus::skipped();
                    if let Some(a) = c.assertions.first() {
                        st.set_message(a.checked.reason.clone());
                    }
                    st
                }
                CaseStatus::Failed => {
                    let failed: Vec<String> = c
                        .assertions
                        .iter()
                        .filter(|a| a.checked.verdict == Verdict::Fail)
                        .map(|a| format!("turn {}: {} — {}", a.turn, a.expected, a.checked.reason))
                        .collect();
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(failed.first().cloned().unwrap_or_default());
                    st.set_type("assertion");
                    st.set_description(failed.join("\n"));
                    st
                }
                CaseStatus::Error => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
                    st.set_message(c.error.clone().unwrap_or_default());
                    st.set_type("engine");
                    st
                }
            };
            let mut case = TestCase::new(c.id.clone(), status);
            case.set_classname(format!("eval.{}", s.name));
            case.set_assertions(c.assertions.len());
            case.set_time(Duration::from_secs_f64(c.latency_ms.max(0.0) / 1000.0));
            let mut transcript = String::new();
            for (i, t) in c.turns.iter().enumerate() {
                let _ = writeln!(transcript, "customer[{}]: {}", i + 1, t.said);
                let _ = writeln!(
                    transcript,
                    "bot[{}] ({}): {}",
                    i + 1,
                    t.action,
                    t.reply.as_deref().unwrap_or("(no reply)")
                );
            }
            case.set_system_out(transcript);
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().map_err(|e| EvalError::Report {
        what: "JUnit",
        message: e.to_string(),
    })
}

fn environment() -> Result<Environment<'static>, EvalError> {
    let mut env = Environment::new();
    // Customer text is untrusted: escape everything, whatever the template's name.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_trim_blocks(true);
    let f64_of = |v: &Value| -> Option<f64> {
        if v.is_none() || v.is_undefined() {
            None
        } else {
            f64::try_from(v.clone()).ok()
        }
    };
    env.add_filter("pct", move |v: Value| pct(f64_of(&v)));
    env.add_filter("num", move |v: Value| num(f64_of(&v)));
    env.add_filter("num4", move |v: Value| {
        f64_of(&v).map_or("–".into(), |x| format!("{x:.4}"))
    });
    env.add_filter("ms", move |v: Value| f64_of(&v).map_or("–".into(), ms));
    env.add_filter("points", move |v: Value| {
        f64_of(&v).map_or("–".into(), |x| format!("{:+.1} points", x * 100.0))
    });
    env.add_filter("truncate", |v: String, n: usize| one_line(&v, n.max(2)));
    env.add_filter("tojson", |v: Value| {
        serde_json::to_string(&v).unwrap_or_default()
    });
    env.add_function("rate", |passed: f64, failed: f64| {
        let checked = passed + failed;
        pct((checked > 0.0).then(|| passed / checked))
    });
    env.add_template("report.html", REPORT_TEMPLATE)
        .map_err(|e| EvalError::Report {
            what: "HTML",
            message: e.to_string(),
        })?;
    env.add_template("compare.html", COMPARE_TEMPLATE)
        .map_err(|e| EvalError::Report {
            what: "comparison",
            message: e.to_string(),
        })?;
    Ok(env)
}

/// The self-contained HTML report.
pub fn html(r: &RunResults) -> Result<String, EvalError> {
    let env = environment()?;
    let template = env
        .get_template("report.html")
        .map_err(|e| EvalError::Report {
            what: "HTML",
            message: e.to_string(),
        })?;
    template
        .render(minijinja::context! { r => Value::from_serialize(r) })
        .map_err(|e| EvalError::Report {
            what: "HTML",
            message: format!("{e:#}"),
        })
}

/// Where a run's reports were written.
#[derive(Debug, Clone)]
pub struct Written {
    /// `results.json`.
    pub json: PathBuf,
    /// `junit.xml`.
    pub junit: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
}

fn write(path: &Path, text: &str) -> Result<(), EvalError> {
    std::fs::write(path, text).map_err(|source| EvalError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Writes `results.json`, `junit.xml` and `report.html` into `dir` (created if needed).
pub fn write_all(r: &RunResults, dir: &Path) -> Result<Written, EvalError> {
    std::fs::create_dir_all(dir).map_err(|source| EvalError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let written = Written {
        json: dir.join("results.json"),
        junit: dir.join("junit.xml"),
        html: dir.join("report.html"),
    };
    write(&written.json, &json(r)?)?;
    write(&written.junit, &junit(r)?)?;
    write(&written.html, &html(r)?)?;
    Ok(written)
}

/// One case in both variants.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseSideBySide {
    /// Suite name.
    pub suite: String,
    /// Case id.
    pub case: String,
    /// Status with variant A.
    pub a: Option<CaseStatus>,
    /// Status with variant B.
    pub b: Option<CaseStatus>,
    /// A's last reply.
    pub a_reply: Option<String>,
    /// B's last reply.
    pub b_reply: Option<String>,
    /// A's failed assertions.
    pub a_failed: Vec<String>,
    /// B's failed assertions.
    pub b_failed: Vec<String>,
}

/// Two variants of the same suites, side by side.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    /// Variant A's name.
    pub a_label: String,
    /// Variant B's name.
    pub b_label: String,
    /// Variant A's results.
    pub a: RunResults,
    /// Variant B's results.
    pub b: RunResults,
    /// Every case.
    pub cases: Vec<CaseSideBySide>,
}

impl Comparison {
    /// Pairs the cases of two runs.
    pub fn new(a: RunResults, b: RunResults) -> Self {
        let failed = |c: &super::results::CaseResult| -> Vec<String> {
            c.assertions
                .iter()
                .filter(|x| x.checked.verdict == Verdict::Fail)
                .map(|x| format!("{} — {}", x.expected, x.checked.reason))
                .collect()
        };
        let last = |c: &super::results::CaseResult| c.turns.last().and_then(|t| t.reply.clone());
        let mut cases = Vec::new();
        for s in &a.suites {
            for c in &s.cases {
                let other = b
                    .suites
                    .iter()
                    .find(|x| x.name == s.name)
                    .and_then(|x| x.cases.iter().find(|y| y.id == c.id));
                cases.push(CaseSideBySide {
                    suite: s.name.clone(),
                    case: c.id.clone(),
                    a: Some(c.status),
                    b: other.map(|o| o.status),
                    a_reply: last(c),
                    b_reply: other.and_then(last),
                    a_failed: failed(c),
                    b_failed: other.map(failed).unwrap_or_default(),
                });
            }
        }
        Self {
            a_label: a.label.clone().unwrap_or_else(|| "A".into()),
            b_label: b.label.clone().unwrap_or_else(|| "B".into()),
            a,
            b,
            cases,
        }
    }

    /// The side-by-side summary printed after a comparison.
    pub fn console(&self) -> String {
        let mut out = String::new();
        let (la, lb) = (&self.a_label, &self.b_label);
        let _ = writeln!(out, "\nComparison: A = {la}, B = {lb}\n");
        let _ = writeln!(
            out,
            "{} {:>12} {:>12} {:>10}",
            cell("suite", 28),
            "A pass rate",
            "B pass rate",
            "change"
        );
        let delta = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:+.1}", (b - a) * 100.0),
            _ => "–".into(),
        };
        for sa in &self.a.suites {
            let sb = self.b.suites.iter().find(|s| s.name == sa.name);
            let rb = sb.and_then(|s| s.summary.pass_rate);
            let _ = writeln!(
                out,
                "{} {:>12} {:>12} {:>10}",
                cell(&sa.name, 28),
                pct(sa.summary.pass_rate),
                pct(rb),
                delta(sa.summary.pass_rate, rb)
            );
        }
        let (ma, mb) = (&self.a.summary, &self.b.summary);
        let _ = writeln!(
            out,
            "{} {:>12} {:>12} {:>10}",
            cell("all", 28),
            pct(ma.pass_rate),
            pct(mb.pass_rate),
            delta(ma.pass_rate, mb.pass_rate)
        );
        let hit = |m: &super::results::Summary| m.retrieval.as_ref().map(|r| r.hit_rate);
        let mrr = |m: &super::results::Summary| m.retrieval.as_ref().map(|r| r.mrr);
        let prec = |m: &super::results::Summary| m.escalation.as_ref().and_then(|e| e.precision);
        let rec = |m: &super::results::Summary| m.escalation.as_ref().and_then(|e| e.recall);
        let p50 = |m: &super::results::Summary| m.latency.as_ref().map(|l| l.p50_ms);
        let p95 = |m: &super::results::Summary| m.latency.as_ref().map(|l| l.p95_ms);
        let _ = writeln!(out);
        for (name, a, b) in [
            ("retrieval hit@k", num(hit(ma)), num(hit(mb))),
            ("retrieval MRR", num(mrr(ma)), num(mrr(mb))),
            ("escalation precision", num(prec(ma)), num(prec(mb))),
            ("escalation recall", num(rec(ma)), num(rec(mb))),
            (
                "latency p50",
                p50(ma).map_or("–".into(), ms),
                p50(mb).map_or("–".into(), ms),
            ),
            (
                "latency p95",
                p95(ma).map_or("–".into(), ms),
                p95(mb).map_or("–".into(), ms),
            ),
        ] {
            let _ = writeln!(out, "{} {a:>12} {b:>12}", cell(name, 28));
        }
        let differing: Vec<&CaseSideBySide> = self.cases.iter().filter(|c| c.a != c.b).collect();
        let _ = writeln!(out, "\ncases that differ: {}", differing.len());
        for c in differing {
            let _ = writeln!(
                out,
                "  {}/{}: A {} · B {}",
                c.suite,
                c.case,
                c.a.map_or("–", CaseStatus::as_str),
                c.b.map_or("–", CaseStatus::as_str)
            );
            let _ = writeln!(
                out,
                "      A: {}",
                one_line(c.a_reply.as_deref().unwrap_or("(no reply)"), 110)
            );
            let _ = writeln!(
                out,
                "      B: {}",
                one_line(c.b_reply.as_deref().unwrap_or("(no reply)"), 110)
            );
        }
        out
    }

    /// The side-by-side HTML page.
    pub fn html(&self) -> Result<String, EvalError> {
        let env = environment()?;
        let template = env
            .get_template("compare.html")
            .map_err(|e| EvalError::Report {
                what: "comparison",
                message: e.to_string(),
            })?;
        template
            .render(minijinja::context! { c => Value::from_serialize(self) })
            .map_err(|e| EvalError::Report {
                what: "comparison",
                message: format!("{e:#}"),
            })
    }

    /// Writes each variant's reports into `dir/a` and `dir/b`, and `comparison.json` and
    /// `comparison.html` into `dir`.
    pub fn write_all(&self, dir: &Path) -> Result<PathBuf, EvalError> {
        write_all(&self.a, &dir.join("a"))?;
        write_all(&self.b, &dir.join("b"))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| EvalError::Report {
            what: "comparison",
            message: e.to_string(),
        })?;
        write(&dir.join("comparison.json"), &text)?;
        let page = dir.join("comparison.html");
        write(&page, &self.html()?)?;
        Ok(page)
    }
}
