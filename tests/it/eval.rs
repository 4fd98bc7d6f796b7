//! Eval suites end to end: a small suite through the real pipeline with the test embedder and
//! its reports (JSON, JUnit, HTML checked in headless Chromium), the LLM judge against an
//! OpenAI-compatible server (wiremock), runs through the API, the command's exit codes, and the
//! shipped suites with the real default embedder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use palaver::eval::results::CaseStatus;
use palaver::eval::{report, suite, Environment, Options};
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::app::{base_settings, eventually, Options as AppOptions, TestApp};

fn knowledge_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge")
}

/// A suite over the sample knowledge base, with a case of each kind the test embedder can
/// answer, one that must fail, and customer text that tries to inject HTML.
fn small_suite() -> String {
    format!(
        r#"
name: small
description: A small suite for the end-to-end test.
agent:
  business_name: Casa Nube Bakery
  confidence_threshold: 0.3
knowledge: ["{}"]
cases:
  - id: payments
    say: Which payment methods do you accept? MB WAY?
    must_pass: true
    expect:
      - contains: MB WAY
      - escalates: false
      - cites: faq.md
      - retrieval_hit: {{docs: [faq.md], k: 3}}
      - max_chars: 800
  - id: keyword
    say: quiero hablar con un humano
    expect:
      - escalates: {{reason: [keyword, human_request]}}
  - id: injected-html
    say: "<script>alert('x')</script> Which payment methods do you accept? MB WAY?"
    expect:
      - not_contains: "<script>"
  - id: wrong-on-purpose
    say: Which payment methods do you accept? MB WAY?
    expect:
      - contains: bitcoin
  - id: judged
    say: Which payment methods do you accept? MB WAY?
    expect:
      - judge: {{rubric: "Lists the payment methods.", min: 0.5}}
  - id: follow-up
    turns:
      - say: Which payment methods do you accept? MB WAY?
        expect: [contains: MB WAY]
      - say: And cheques?
    expect_each:
      - max_latency_ms: 60000
"#,
        knowledge_dir().display()
    )
}

fn write_suite(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn environment(dir: &Path) -> Environment {
    Environment {
        settings: base_settings(dir),
        embedder: Arc::new(palaver::testing::HashEmbedder::default()),
        agents: None,
    }
}

fn options() -> Options {
    Options {
        concurrency: 3,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_suite_runs_end_to_end_and_writes_every_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_suite(dir.path(), "small.yaml", &small_suite());
    let suites = suite::load(&[file]).unwrap();
    let results = palaver::eval::run::run(&suites, &environment(dir.path()), &options())
        .await
        .unwrap();

    let cases = &results.suites[0].cases;
    let status = |id: &str| cases.iter().find(|c| c.id == id).unwrap().status;
    let case = |id: &str| cases.iter().find(|c| c.id == id).unwrap();
    assert_eq!(
        status("payments"),
        CaseStatus::Passed,
        "{:#?}",
        case("payments")
    );
    assert_eq!(
        status("keyword"),
        CaseStatus::Passed,
        "{:#?}",
        case("keyword")
    );
    assert_eq!(status("injected-html"), CaseStatus::Passed);
    assert_eq!(status("wrong-on-purpose"), CaseStatus::Failed);
    // No judge is configured: skipped, with the reason, never passed.
    assert_eq!(status("judged"), CaseStatus::Skipped);
    assert!(case("judged").assertions[0]
        .checked
        .reason
        .contains("no judge"));
    // The follow-up kept one conversation: turn 2's prompt holds turn 1.
    let follow = case("follow-up");
    assert_eq!(follow.turns.len(), 2);
    let prompt = follow.turns[1]
        .generation
        .as_ref()
        .and_then(|g| g.prompt.clone())
        .unwrap_or_default();
    assert!(prompt.contains("MB WAY?"), "{prompt}");
    assert_eq!(
        follow.assertions.len(),
        3,
        "turn 1's own, and max_latency_ms on each turn"
    );

    let s = &results.summary;
    assert_eq!((s.cases, s.passed, s.failed, s.skipped), (6, 4, 1, 1));
    assert_eq!(s.pass_rate, Some(0.8));
    assert_eq!(s.retrieval.as_ref().unwrap().hit_rate, 1.0);
    let esc = s.escalation.as_ref().unwrap();
    assert_eq!((esc.true_positives, esc.true_negatives), (1, 1));
    assert!(s.latency.as_ref().unwrap().p95_ms > 0.0);
    assert!(
        results.gate.passed,
        "must-pass cases passed: {:?}",
        results.gate
    );
    assert_eq!(results.embedder, "hash-bag-of-words");

    // The gate: a pass rate of 80% fails a 90% minimum.
    let mut gated = results.clone();
    gated.decide_gate(Some(0.9), false);
    assert!(!gated.gate.passed);

    let out = dir.path().join("out");
    let written = report::write_all(&results, &out).unwrap();
    let back: Value =
        serde_json::from_str(&std::fs::read_to_string(&written.json).unwrap()).unwrap();
    assert_eq!(back["summary"]["passed"], 4);
    let junit = std::fs::read_to_string(&written.junit).unwrap();
    assert!(junit.contains(r#"<testsuite name="small""#), "{junit}");
    assert!(junit.contains(r#"tests="6""#), "{junit}");
    assert!(junit.contains("failures=\"1\""), "{junit}");
    assert!(junit.contains("skipped=\"1\""), "{junit}");
    assert!(junit.contains("the reply lacks"), "{junit}");
    let html = std::fs::read_to_string(&written.html).unwrap();
    for c in cases {
        assert!(html.contains(&c.id), "{} missing from the report", c.id);
    }
    // Customer text is escaped, never markup.
    assert!(!html.contains("<script>alert"), "unescaped customer text");
    assert!(html.contains("&lt;script&gt;alert("));
    // Self-contained: no external stylesheet, script or image.
    assert!(!html.contains("<link") && !html.contains("src=\"http"));
    let console = report::console(&results);
    assert!(console.contains("small/wrong-on-purpose"), "{console}");
    assert!(console.contains("gate: passed"), "{console}");

    // The same run as a baseline: nothing changed.
    let baseline = palaver::eval::BaselineFile::from_results(&results);
    let diff = palaver::eval::results::diff(&results, &baseline, "itself");
    assert!(diff.regressed.is_empty() && diff.improved.is_empty());

    check_in_browser(
        &written.html,
        &cases.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
    );
}

/// Opens the report in headless Chromium: every case is in the rendered page, and a
/// screenshot is taken (kept next to the report for a person to look at).
fn check_in_browser(page: &Path, ids: &[String]) {
    let chromium = Path::new("/usr/bin/chromium");
    let required = std::env::var("PALAVER_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    if !chromium.exists() {
        assert!(
            !required,
            "PALAVER_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing"
        );
        eprintln!("skipping the browser check: /usr/bin/chromium is not installed");
        return;
    }
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(&url);
        cmd.output().expect("chromium runs")
    };
    let dom = run(&["--dump-dom"]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("Palaver eval report"), "{dom}");
    for id in ids {
        assert!(dom.contains(id.as_str()), "{id} not in the rendered page");
    }
    assert!(!dom.contains("<script>alert"));
    let shot = page.with_file_name("report.png");
    let out = run(&[
        "--window-size=1280,1600",
        &format!("--screenshot={}", shot.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_judge_grades_through_an_openai_compatible_server() {
    let server = MockServer::start().await;
    let answer = |score: u32, reason: &str| {
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-judge",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "judge-model",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": format!("{{\"score\": {score}, \"reason\": \"{reason}\"}}")},
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
        }))
    };
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("RUBRIC-GOOD"))
        .respond_with(answer(5, "lists every method"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("RUBRIC-BAD"))
        .respond_with(answer(1, "does not answer"))
        .mount(&server)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
agent: {{confidence_threshold: 0.3}}
knowledge: ["{}"]
cases:
  - id: good
    say: Which payment methods do you accept? MB WAY?
    expect:
      - judge: {{rubric: "RUBRIC-GOOD: lists the payment methods.", min: 0.75}}
  - id: bad
    say: Which payment methods do you accept? MB WAY?
    expect:
      - judge: {{rubric: "RUBRIC-BAD: answers in French.", min: 0.75}}
"#,
        knowledge_dir().display()
    );
    let file = write_suite(dir.path(), "judged.yaml", &text);
    let suites = suite::load(&[file]).unwrap();
    let mut env = environment(dir.path());
    env.settings.eval.judge = Some(palaver::config::OpenAiSettings {
        base_url: format!("{}/v1", server.uri()),
        api_key: Some("judge-key".to_string().into()),
        model: "judge-model".into(),
        timeout_secs: 10,
        max_retries: 0,
    });
    let results = palaver::eval::run::run(&suites, &env, &options())
        .await
        .unwrap();
    let cases = &results.suites[0].cases;
    assert_eq!(results.judge.as_deref(), Some("openai:judge-model"));
    let good = &cases[0].assertions[0].checked;
    assert_eq!(cases[0].status, CaseStatus::Passed, "{good:?}");
    assert!(good.reason.contains("lists every method"), "{good:?}");
    let bad = &cases[1].assertions[0].checked;
    assert_eq!(cases[1].status, CaseStatus::Failed, "{bad:?}");
    assert!(bad.reason.contains("score 0.00"), "{bad:?}");

    // What the judge was sent: the model, no sampling, the rubric, the question and the reply.
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["model"], "judge-model");
    assert_eq!(body["temperature"], 0.0);
    let prompt = body["messages"][0]["content"].as_str().unwrap();
    assert!(
        prompt.contains("Which payment methods do you accept?"),
        "{prompt}"
    );
    assert!(prompt.contains("<<<REPLY"), "{prompt}");
    assert!(prompt.contains("MB WAY"), "{prompt}");
    assert_eq!(
        requests[0].headers.get("authorization").unwrap(),
        "Bearer judge-key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_through_the_api_in_the_background() {
    let root = tempfile::tempdir().unwrap();
    let eval_dir = root.path().join("eval");
    std::fs::create_dir(&eval_dir).unwrap();
    // The suites' files live beside the eval directory, as in a project checkout.
    let kb = root.path().join("knowledge");
    std::fs::create_dir(&kb).unwrap();
    std::fs::copy(knowledge_dir().join("faq.md"), kb.join("faq.md")).unwrap();
    std::fs::write(
        eval_dir.join("faq.yaml"),
        "agent: {confidence_threshold: 0.3}\nknowledge: [../knowledge]\ncases:\n  - id: payments\n    say: Which payment methods do you accept? MB WAY?\n    expect: [contains: MB WAY]\n",
    )
    .unwrap();
    let dir_for_settings = eval_dir.clone();
    let t = TestApp::start(AppOptions {
        tweak: Box::new(move |s| s.eval.dir = dir_for_settings),
        ..Default::default()
    })
    .await
    .unwrap();

    let (status, run) = t
        .post("/api/v1/eval/runs", &json!({"suites": ["faq.yaml"]}))
        .await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["status"], "running");
    let id = run["id"].as_str().unwrap().to_string();
    let done = eventually(Duration::from_secs(60), || async {
        let run = t.get(&format!("/api/v1/eval/runs/{id}")).await;
        (run["status"] != "running").then_some(run)
    })
    .await
    .expect("the run finishes");
    assert_eq!(done["status"], "passed", "{done}");
    assert_eq!(done["cases_done"], 1);
    assert_eq!(done["cases_total"], 1);
    assert_eq!(done["results"]["suites"][0]["cases"][0]["status"], "passed");
    assert_eq!(done["summary"]["summary"]["pass_rate"], 1.0);

    // An inline suite, with an override and a threshold it misses.
    let (status, run) = t
        .post(
            "/api/v1/eval/runs",
            &json!({
                "suite": {
                    "name": "inline",
                    "knowledge": ["../knowledge"],
                    "cases": [
                        {"id": "ok", "say": "Which payment methods do you accept? MB WAY?", "expect": [{"contains": "MB WAY"}]},
                        {"id": "no", "say": "Which payment methods do you accept? MB WAY?", "expect": [{"contains": "bitcoin"}]}
                    ]
                },
                "overrides": {"confidence_threshold": 0.3, "top_k": 3},
                "min_pass": 0.9
            }),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let done = eventually(Duration::from_secs(60), || async {
        let run = t.get(&format!("/api/v1/eval/runs/{id}")).await;
        (run["status"] != "running").then_some(run)
    })
    .await
    .expect("the run finishes");
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["results"]["suites"][0]["agent"]["top_k"], 3);
    let list = t.get("/api/v1/eval/runs").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list[0].get("results").is_none());

    // Refused: paths outside the eval directory, files outside the project, bad overrides.
    let (status, body) = t
        .post("/api/v1/eval/runs", &json!({"suites": ["../secrets.yaml"]}))
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = t
        .post(
            "/api/v1/eval/runs",
            &json!({"suite": {"knowledge": ["/etc"], "cases": [{"id": "x", "say": "hi", "expect": [{"escalates": true}]}]}}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = t
        .post(
            "/api/v1/eval/runs",
            &json!({"suite": {"cases": [{"id": "x", "say": "hi", "expect": [{"contain": "x"}]}]}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("case `x`"), "{body}");
    let (status, body) = t
        .post("/api/v1/eval/runs", &json!({"overrides": {"top_k": 0}}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "overrides.top_k");
    let response = t
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/eval/runs/{}", palaver::domain::EvalRunId::new()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    t.stop().await;
}

#[test]
fn the_command_exits_2_and_names_the_problem_when_a_suite_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    write_suite(
        dir.path(),
        "broken.yaml",
        "cases:\n  - id: hours\n    say: Open on Sunday?\n    expect:\n      - regex: '(unclosed'\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palaver"))
        .arg("eval")
        .arg(dir.path().join("broken.yaml"))
        .env("PALAVER__DATA__DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.yaml: case `hours`: expect[0].regex.pattern: invalid pattern"),
        "{stderr}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palaver"))
        .args(["eval", "--agent-override", "top_k=0"])
        .arg(dir.path().join("broken.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The bakery's shipped suites with the real default embedder and the extractive answerer:
/// every case runs, and the figures stay at or above what the product reaches today (a drop
/// fails this test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_suites_run_with_the_default_embedder() {
    let Some(embedder) = crate::support::app::local_embedder().await else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The sample businesses (their own documents, several languages) are measured by
    // `palaver eval` but not yet held to the bakery's figures.
    let (samples, suites): (Vec<_>, Vec<_>) = suite::load(&[root.join("eval")])
        .unwrap()
        .into_iter()
        .partition(|s| {
            s.knowledge
                .iter()
                .any(|k| k.starts_with(root.join("eval").join("businesses")))
        });
    assert!(samples.len() >= 3, "{} sample businesses", samples.len());
    for s in &samples {
        assert!(s.cases.len() >= 25, "{}: {} cases", s.name, s.cases.len());
    }
    let cases: usize = suites.iter().map(|s| s.cases.len()).sum();
    assert!(cases >= 40, "{cases} cases");
    let dir = tempfile::tempdir().unwrap();
    let mut settings = base_settings(dir.path());
    settings.pipeline.prompts_dir = Some(root.join("prompts"));
    let env = Environment {
        settings,
        embedder,
        agents: None,
    };
    let results = palaver::eval::run::run(
        &suites,
        &env,
        &Options {
            concurrency: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    eprintln!("{}", report::console(&results));
    let s = &results.summary;
    assert_eq!(s.errors, 0, "no case may fail in the engine");
    assert!(
        results.gate.passed,
        "must-pass cases: {:?}",
        results.gate.failures
    );
    assert!(s.pass_rate.unwrap() >= 0.7, "pass rate {:?}", s.pass_rate);
    let retrieval = s.retrieval.as_ref().unwrap();
    assert!(retrieval.hit_rate >= 0.9, "hit@3 {}", retrieval.hit_rate);
    let escalation = s.escalation.as_ref().unwrap();
    assert!(escalation.recall.unwrap() >= 0.75, "{escalation:?}");
    assert!(escalation.precision.unwrap() >= 0.85, "{escalation:?}");
}

/// The command with the real embedder: 0 when the gate passes, 1 when a threshold or a
/// must-pass case fails it, with the reports written either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_exits_1_when_the_gate_fails() {
    if palaver::testing::test_model(&palaver::config::EmbeddingSettings::default().local_model)
        .await
        .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let suite = format!(
        "knowledge: [\"{}\"]\ncases:\n  - id: minimum-order\n    say: What is the minimum order for delivery?\n    expect: [contains: 15 EUR]\n  - id: impossible\n    say: What is the minimum order for delivery?\n    expect: [contains: 99 EUR]\n",
        knowledge_dir().join("delivery-and-refunds.md").display()
    );
    let file = write_suite(dir.path(), "gate.yaml", &suite);
    let models = palaver::testing::test_model_store().dir().to_path_buf();
    let eval = |extra: &[&str], out: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_palaver"))
            .arg("eval")
            .arg(&file)
            .args(extra)
            .arg("--out")
            .arg(dir.path().join(out))
            .env("PALAVER_MODELS_DIR", &models)
            .env("PALAVER__DATA__DIR", dir.path().join("data"))
            .output()
            .unwrap()
    };
    let out = eval(&["--min-pass", "0.5"], "half");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("gate: passed"), "{stdout}");
    assert!(dir.path().join("half/report.html").exists());
    let out = eval(&["--min-pass", "0.9"], "strict");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("pass rate 50.0% is under 90.0%"),
        "{stdout}"
    );
    assert!(dir.path().join("strict/junit.xml").exists());
    // Nothing was written to the data directory: the run used its own throwaway copy.
    assert!(!dir.path().join("data").exists());
}

/// Without a usable speech model, voice-note cases are skipped with the reason (never failed
/// or passed), and text cases still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_cases_are_skipped_when_no_speech_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let note = Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/audio/saturday-hours.ogg");
    let suite = format!(
        "knowledge: [\"{}\"]\nagent: {{confidence_threshold: 0.3}}\ncases:\n  - id: spoken\n    audio: \"{}\"\n    expect: [contains: \"08:00\"]\n  - id: typed\n    say: Which payment methods do you accept? MB WAY?\n    expect: [contains: MB WAY]\n",
        knowledge_dir().join("faq.md").display(),
        note.display()
    );
    let file = write_suite(dir.path(), "voice.yaml", &suite);
    let mut env = environment(dir.path());
    env.settings.speech.model = dir.path().join("no-such-model.bin").display().to_string();
    let results = palaver::eval::run::run(&suite::load(&[file]).unwrap(), &env, &options())
        .await
        .unwrap();
    let cases = &results.suites[0].cases;
    let case = |id: &str| cases.iter().find(|c| c.id == id).unwrap();
    assert_eq!(
        case("spoken").status,
        CaseStatus::Skipped,
        "{:#?}",
        case("spoken")
    );
    assert!(case("spoken").assertions[0]
        .checked
        .reason
        .contains("no transcriber"));
    assert_eq!(
        case("typed").status,
        CaseStatus::Passed,
        "{:#?}",
        case("typed")
    );
}
