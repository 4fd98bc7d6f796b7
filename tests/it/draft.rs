//! Drafting an agent's instructions from its documents through the API: offline, and through an
//! OpenAI-compatible server (wiremock), each draft run on the agent's eval suite beside the
//! saved instructions; the workspace's monthly limit of model calls; a model that fails or is
//! too slow; an agent with no documents or no suite.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::app::{Options, TestApp};

/// What the model is told to put in its draft, so the eval replies can tell the draft from the
/// saved instructions.
const DRAFT_MARK: &str = "DRAFTED-FROM-DOCUMENTS";

/// An eval directory with a suite that starts from agent `demo`: one case any answerer passes
/// from the documents, one no instructions can pass.
fn eval_dir(root: &Path) -> PathBuf {
    let dir = root.join("eval");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("demo.yaml"),
        r#"
name: demo-suite
agent: {from: demo}
cases:
  - id: payments
    say: Which payment methods do you accept? MB WAY?
    expect: [contains: MB WAY]
  - id: bitcoin
    description: Nothing in the documents says so.
    say: Which payment methods do you accept? MB WAY?
    expect: [contains: bitcoin]
"#,
    )
    .unwrap();
    // A broken suite of another agent does not stop this one's comparison.
    std::fs::write(dir.join("broken.yaml"), "cases: [{id: x}]\n").unwrap();
    dir
}

fn openai_answer(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-draft",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "draft-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960}
    }))
}

async fn app(eval: PathBuf, openai: Option<(String, u64)>) -> TestApp {
    app_on(false, eval, openai).await.unwrap()
}

/// The app on SQLite or Postgres (`None` when Postgres is unavailable and not required).
async fn app_on(postgres: bool, eval: PathBuf, openai: Option<(String, u64)>) -> Option<TestApp> {
    TestApp::start(Options {
        postgres,
        tweak: Box::new(move |s| {
            s.eval.dir = eval;
            if let Some((uri, timeout)) = openai {
                s.llm.openai.base_url = format!("{uri}/v1");
                s.llm.openai.api_key = Some(secrecy::SecretString::from("sk-test".to_string()));
                s.llm.openai.model = "draft-model".into();
                s.llm.openai.max_retries = 0;
                s.llm.openai.timeout_secs = timeout;
            }
        }),
        ..Default::default()
    })
    .await
}

async fn key(t: &TestApp, role: &str) -> String {
    let (status, body) = t
        .post(
            "/api/v1/api-keys",
            &json!({"name": format!("{role}-key"), "role": role}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().unwrap().to_string()
}

/// `answer` to `method path` fits the document's schema for `status`.
async fn fits_the_contract(t: &TestApp, method: &str, path: &str, status: u16, answer: &Value) {
    let doc = crate::openapi::served_document(t).await;
    let (template, op) = crate::openapi::operation(&doc, method, path).expect("documented");
    let response = &op["responses"][status.to_string()];
    let schema = match response["$ref"].as_str() {
        Some(_) => json!({"$ref": "#/components/schemas/ErrorResponse"}),
        None => response["content"]["application/json"]["schema"].clone(),
    };
    assert!(
        !schema.is_null(),
        "{method} {template} documents no {status} body"
    );
    if let Err(e) = crate::openapi::check(&doc, &schema, answer, &format!("{method} {template}")) {
        panic!("{e}");
    }
}

fn case<'a>(comparison: &'a Value, id: &str) -> &'a Value {
    comparison["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no case {id} in {comparison}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_draft_runs_beside_the_saved_instructions() {
    let root = tempfile::tempdir().unwrap();
    let t = app(eval_dir(root.path()), None).await;
    t.demo_agent("demo", json!({"confidence_threshold": 0.3}))
        .await;
    let saved_prompt = t.get("/api/v1/agents/demo").await["system_prompt"].clone();

    // An empty body is an automatic draft; an extractive agent drafts offline.
    let response = t
        .request(
            reqwest::Method::POST,
            "/api/v1/agents/demo/instructions/draft",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let draft: Value = response.json().await.unwrap();
    assert_eq!(draft["made_by"], "offline", "{draft}");
    assert!(draft["model"].is_null());
    let text = draft["text"].as_str().unwrap();
    // What the sample documents say, read off them.
    assert!(
        text.starts_with("You answer Casa Nube Bakery's customers on WhatsApp."),
        "{text}"
    );
    assert!(text.contains("07:30"), "the opening hours: {text}");
    assert!(
        text.contains("Hand the conversation to a person when a customer:"),
        "{text}"
    );
    assert!(text.contains("asks about allergies"), "{text}");
    assert!(text.contains("English"), "{text}");
    let outline = &draft["outline"];
    assert_eq!(outline["business_name"], "Casa Nube Bakery");
    assert!(outline["hours"].as_array().unwrap().len() >= 3, "{outline}");
    assert!(
        !outline["offers"].as_array().unwrap().is_empty(),
        "{outline}"
    );
    assert_eq!(outline["languages"][0], "en");

    // Both sets of instructions ran the agent's suite, case by case.
    let comparison = &draft["comparison"];
    assert_eq!(comparison["suites"], json!(["demo-suite"]), "{comparison}");
    assert!(comparison["message"].is_null());
    for side in ["saved", "draft"] {
        assert_eq!(comparison[side]["cases"], 2, "{comparison}");
        assert_eq!(comparison[side]["passed"], 1, "{comparison}");
        assert_eq!(comparison[side]["failed"], 1, "{comparison}");
    }
    let payments = case(comparison, "payments");
    assert_eq!(payments["saved"]["status"], "passed");
    assert_eq!(payments["draft"]["status"], "passed");
    assert!(payments["draft"]["reply"]
        .as_str()
        .unwrap()
        .contains("MB WAY"));
    let bitcoin = case(comparison, "bitcoin");
    assert_eq!(bitcoin["draft"]["status"], "failed");
    assert!(
        bitcoin["draft"]["reason"]
            .as_str()
            .unwrap()
            .contains("bitcoin"),
        "{bitcoin}"
    );
    assert_eq!(bitcoin["description"], "Nothing in the documents says so.");

    fits_the_contract(
        &t,
        "POST",
        "/api/v1/agents/demo/instructions/draft",
        200,
        &draft,
    )
    .await;

    // Offline drafts are never counted, and nothing was saved.
    assert_eq!(draft["model_calls"]["used"], 0);
    assert_eq!(
        t.get("/api/v1/agents/demo").await["system_prompt"],
        saved_prompt
    );

    // An edited draft runs again on its own; bad instructions are refused.
    let (status, compared) = t
        .post(
            "/api/v1/agents/demo/instructions/compare",
            &json!({"instructions": "Answer in one short sentence."}),
        )
        .await;
    assert_eq!(status, 200, "{compared}");
    assert_eq!(compared["draft"]["cases"], 2);
    fits_the_contract(
        &t,
        "POST",
        "/api/v1/agents/demo/instructions/compare",
        200,
        &compared,
    )
    .await;
    for bad in [
        json!({"instructions": "  "}),
        json!({"instructions": "x".repeat(32_001)}),
    ] {
        let (status, body) = t
            .post("/api/v1/agents/demo/instructions/compare", &bad)
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["fields"][0]["field"], "instructions");
    }
    let (status, body) = t
        .post(
            "/api/v1/agents/demo/instructions/draft",
            &json!({"mode": "guess"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`offline`"),
        "{body}"
    );

    // Asking for the model without a model server is refused, and says what to do instead.
    let (status, body) = t
        .post(
            "/api/v1/agents/demo/instructions/draft",
            &json!({"mode": "model"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("draft offline"));

    // An agent without a suite: the draft, and a plain word that nothing was run.
    t.demo_agent("other", json!({})).await;
    let (status, body) = t
        .post("/api/v1/agents/other/instructions/draft", &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["comparison"]["saved"].is_null());
    assert_eq!(body["comparison"]["cases"], json!([]));
    assert!(
        body["comparison"]["message"]
            .as_str()
            .unwrap()
            .contains("agent: {from: other}"),
        "{body}"
    );

    // An agent without documents has nothing to draft from.
    let (status, _) = t.post("/api/v1/agents", &json!({"name": "empty"})).await;
    assert_eq!(status, 201);
    let (status, body) = t
        .post("/api/v1/agents/empty/instructions/draft", &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no documents"));
    let (status, _) = t
        .post("/api/v1/agents/nobody/instructions/draft", &json!({}))
        .await;
    assert_eq!(status, 404);

    // Authors draft; inbox agents may not.
    let author = key(&t, "author").await;
    let (status, body) = t
        .send(
            t.client
                .post(format!("{}/api/v1/agents/other/instructions/draft", t.url))
                .bearer_auth(&author)
                .json(&json!({"mode": "offline"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let agent = key(&t, "agent").await;
    let (status, _) = t
        .send(
            t.client
                .post(format!("{}/api/v1/agents/other/instructions/draft", t.url))
                .bearer_auth(&agent)
                .json(&json!({})),
        )
        .await;
    assert_eq!(status, 403);
    t.stop().await;
}

crate::both_backends_flag!(a_model_draft_is_counted_against_the_monthly_limit);

async fn a_model_draft_is_counted_against_the_monthly_limit(postgres: bool) {
    let server = MockServer::start().await;
    // The drafting request: the outline and the documents, as data.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("<<<OUTLINE"))
        .respond_with(openai_answer(&format!(
            "{DRAFT_MARK}\nYou answer Casa Nube Bakery's customers. Name every payment method, MB WAY included."
        )))
        .with_priority(1)
        .mount(&server)
        .await;
    // Customers' questions: the draft's replies name MB WAY, the saved instructions' do not.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains(DRAFT_MARK))
        .respond_with(openai_answer("We accept cash, cards and MB WAY."))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(openai_answer("We accept cash and cards."))
        .with_priority(3)
        .mount(&server)
        .await;
    let root = tempfile::tempdir().unwrap();
    let Some(t) = app_on(postgres, eval_dir(root.path()), Some((server.uri(), 10))).await else {
        return;
    };
    t.demo_agent(
        "demo",
        json!({"answerer": "openai", "confidence_threshold": 0.3, "model": "draft-model"}),
    )
    .await;

    let (status, draft) = t
        .post("/api/v1/agents/demo/instructions/draft", &json!({}))
        .await;
    assert_eq!(status, 200, "{draft}");
    assert_eq!(draft["made_by"], "model");
    assert_eq!(draft["model"], "draft-model", "as the server names it");
    assert!(draft["text"].as_str().unwrap().starts_with(DRAFT_MARK));
    assert_eq!(draft["model_calls"]["used"], 1);
    assert!(draft["model_calls"]["limit"].is_null());
    let comparison = &draft["comparison"];
    assert_eq!(comparison["saved"]["passed"], 0, "{comparison}");
    assert_eq!(comparison["draft"]["passed"], 1, "{comparison}");
    let payments = case(comparison, "payments");
    assert_eq!(payments["saved"]["status"], "failed");
    assert_eq!(payments["draft"]["status"], "passed");
    assert_eq!(payments["saved"]["reply"], "We accept cash and cards.");

    // What the model was asked: the documents as data, the business, the agent's model.
    let requests = server.received_requests().await.unwrap();
    let asked: Vec<Value> = requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .filter(|b: &Value| {
            b["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("<<<OUTLINE")
        })
        .collect();
    assert_eq!(asked.len(), 1);
    let prompt = asked[0]["messages"][0]["content"].as_str().unwrap();
    assert!(prompt.contains("customers of Casa Nube Bakery"), "{prompt}");
    assert!(
        prompt.contains("<<<DOCUMENTS") && prompt.contains("faq.md] "),
        "{prompt}"
    );
    assert_eq!(asked[0]["model"], "draft-model");
    assert!(asked[0]["max_tokens"].as_u64().unwrap() >= 400);

    // Owners set the limit; authors may not; values out of bounds are refused.
    let author = key(&t, "author").await;
    let (status, _) = t
        .send(
            t.client
                .put(format!("{}/api/v1/workspace/model-calls", t.url))
                .bearer_auth(&author)
                .json(&json!({"monthly_limit": 100})),
        )
        .await;
    assert_eq!(status, 403);
    for bad in [
        json!({"monthly_limit": 1_000_001}),
        json!({"monthly_limit": -1}),
        json!({"monthly_limit": "ten"}),
        json!({"limit": 3}),
    ] {
        let (status, body) = t.put("/api/v1/workspace/model-calls", &bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, calls) = t
        .put(
            "/api/v1/workspace/model-calls",
            &json!({"monthly_limit": 1}),
        )
        .await;
    assert_eq!(status, 200, "{calls}");
    fits_the_contract(&t, "PUT", "/api/v1/workspace/model-calls", 200, &calls).await;
    assert_eq!(
        calls,
        json!({"month": calls["month"], "used": 1, "limit": 1, "resets_at": calls["resets_at"]})
    );
    let workspace = t.get("/api/v1/workspace").await;
    assert_eq!(workspace["model_calls_limit"], 1);
    assert_eq!(workspace["model_calls"]["used"], 1);

    // The month's one call is used: a clear refusal, with when to try again; nothing is asked.
    let before = server.received_requests().await.unwrap().len();
    let response = t
        .request(
            reqwest::Method::POST,
            "/api/v1/agents/demo/instructions/draft",
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 31 * 24 * 3600, "{wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_reached");
    fits_the_contract(
        &t,
        "POST",
        "/api/v1/agents/demo/instructions/draft",
        429,
        &body,
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("model calls for") && message.contains("are used up (1 of 1)"),
        "{message}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), before);

    // Offline drafts still work, and are not counted.
    let (status, offline) = t
        .post(
            "/api/v1/agents/demo/instructions/draft",
            &json!({"mode": "offline"}),
        )
        .await;
    assert_eq!(status, 200, "{offline}");
    assert_eq!(offline["made_by"], "offline");
    assert_eq!(offline["model_calls"]["used"], 1);

    // Raising the limit lets the next one through; `null` lifts it.
    let (status, _) = t
        .put(
            "/api/v1/workspace/model-calls",
            &json!({"monthly_limit": 2}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = t
        .post(
            "/api/v1/agents/demo/instructions/draft",
            &json!({"mode": "model"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_calls"]["used"], 2);
    let (_, calls) = t
        .put(
            "/api/v1/workspace/model-calls",
            &json!({"monthly_limit": null}),
        )
        .await;
    assert!(calls["limit"].is_null(), "{calls}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_slow_model_is_reported_and_not_counted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("slow-business"))
        .respond_with(openai_answer("late").set_delay(Duration::from_secs(3)))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"message": "the server broke", "type": "server_error"}}),
        ))
        .with_priority(2)
        .mount(&server)
        .await;
    let root = tempfile::tempdir().unwrap();
    let t = app(eval_dir(root.path()), Some((server.uri(), 1))).await;
    t.demo_agent("demo", json!({"answerer": "openai"})).await;
    t.demo_agent(
        "slow",
        json!({"answerer": "openai", "business_name": "slow-business"}),
    )
    .await;
    let (status, _) = t
        .put(
            "/api/v1/workspace/model-calls",
            &json!({"monthly_limit": 5}),
        )
        .await;
    assert_eq!(status, 200);

    for (agent, says) in [("demo", "did not answer"), ("slow", "did not answer")] {
        let (status, body) = t
            .post(
                &format!("/api/v1/agents/{agent}/instructions/draft"),
                &json!({}),
            )
            .await;
        assert_eq!(status, 503, "{agent}: {body}");
        assert_eq!(body["error"]["code"], "unavailable");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(says) && message.contains("draft offline"),
            "{message}"
        );
        assert!(
            !message.contains("the server broke"),
            "the server's words stay in the log"
        );
    }
    // Neither call was answered, so neither counts.
    assert_eq!(t.get("/api/v1/workspace").await["model_calls"]["used"], 0);
    t.stop().await;
}

/// The count of model calls in the store, on both backends.
mod counting {
    use std::sync::Arc;

    use palaver::domain::WorkspaceId;
    use palaver::store::Store;

    crate::both_backends!(model_calls_are_counted_once_each_up_to_the_limit);

    async fn model_calls_are_counted_once_each_up_to_the_limit(store: Arc<dyn Store>) {
        let ws = WorkspaceId::DEFAULT;
        let month = "2026-11";
        assert_eq!(store.model_calls(ws, month).await.unwrap(), 0);
        // Ten at once against a limit of four: four are counted, whoever asks first.
        let attempts = (0..10).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.count_model_call(ws, month, Some(4)).await })
        });
        let mut counted: Vec<u64> = Vec::new();
        for attempt in attempts {
            if let Some(n) = attempt.await.unwrap().unwrap() {
                counted.push(n);
            }
        }
        counted.sort();
        assert_eq!(counted, [1, 2, 3, 4]);
        assert_eq!(store.model_calls(ws, month).await.unwrap(), 4);
        // A call given back frees its place; a higher limit or none lets more through.
        store.uncount_model_call(ws, month).await.unwrap();
        assert_eq!(
            store.count_model_call(ws, month, Some(4)).await.unwrap(),
            Some(4)
        );
        assert_eq!(
            store.count_model_call(ws, month, Some(4)).await.unwrap(),
            None
        );
        assert_eq!(
            store.count_model_call(ws, month, None).await.unwrap(),
            Some(5)
        );
        assert_eq!(
            store.count_model_call(ws, month, Some(0)).await.unwrap(),
            None
        );
        // Months are counted apart.
        assert_eq!(
            store
                .count_model_call(ws, "2026-12", Some(1))
                .await
                .unwrap(),
            Some(1)
        );
        assert_eq!(store.model_calls(ws, month).await.unwrap(), 5);
        // Giving back never goes below nothing.
        store.uncount_model_call(ws, "2027-01").await.unwrap();
        assert_eq!(store.model_calls(ws, "2027-01").await.unwrap(), 0);
        // The limit is the workspace's.
        let workspace = store
            .set_model_calls_limit(ws, Some(12))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(workspace.model_calls_limit, Some(12));
        let workspace = store
            .set_model_calls_limit(ws, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(workspace.model_calls_limit, None);
        assert!(store
            .set_model_calls_limit(WorkspaceId::new(), Some(1))
            .await
            .unwrap()
            .is_none());
    }
}
