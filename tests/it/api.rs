//! The HTTP API on a real socket: authentication, agents, knowledge uploads and search, health,
//! readiness and metrics, and clean JSON errors for bad input.

use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::app::{Options, TestApp};

async fn app() -> TestApp {
    TestApp::start(Options::default()).await.unwrap()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn api_keys_are_required_and_checked() {
    let t = app().await;
    let no_key = t
        .client
        .get(format!("{}/api/v1/agents", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let body: Value = no_key.json().await.unwrap();
    assert_eq!(error_code(&body), "unauthorized");

    let wrong = t
        .client
        .get(format!("{}/api/v1/agents", t.url))
        .bearer_auth("pk_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // A key says what it may do: none is an owner's by default.
    let (status, refused) = t.post("/api/v1/api-keys", &json!({"name": "ci"})).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("role"), "{refused}");
    let (status, created) = t
        .post("/api/v1/api-keys", &json!({"name": "ci", "role": "owner"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("pk_"));
    let with_new = t
        .client
        .get(format!("{}/api/v1/agents", t.url))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(with_new.status(), 200);
    // The key is shown once and never stored in clear.
    let listed = t.get("/api/v1/api-keys").await;
    assert!(!listed.to_string().contains(&key));

    let id = created["id"].as_str().unwrap();
    let revoked = t
        .request(Method::DELETE, &format!("/api/v1/api-keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let after = t
        .client
        .get(format!("{}/api/v1/agents", t.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    t.stop().await;
}

#[tokio::test]
async fn agents_crud_with_field_errors() {
    let t = app().await;
    let (status, agent) = t
        .post(
            "/api/v1/agents",
            &json!({"name": "bakery", "business_name": "Casa Nube", "temperature": 0.4, "escalation": {"keywords": ["humano"]}}),
        )
        .await;
    assert_eq!(status, 201, "{agent}");
    assert_eq!(agent["name"], "bakery");
    assert_eq!(agent["collection"], "bakery");
    assert_eq!(agent["temperature"], 0.4);
    assert_eq!(agent["escalation"]["keywords"], json!(["humano"]));
    assert_eq!(agent["answerer"], "extractive");
    assert_eq!(
        agent["cite_sources"], false,
        "replies name no source unless asked"
    );

    let (status, dup) = t.post("/api/v1/agents", &json!({"name": "bakery"})).await;
    assert_eq!(status, 409, "{dup}");
    assert_eq!(error_code(&dup), "conflict");

    let (status, bad) = t
        .post(
            "/api/v1/agents",
            &json!({"name": "Bad Name", "temperature": 5, "top_k": 0, "max_tokens": "many"}),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    let fields: Vec<&str> = bad["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"name"), "{fields:?}");
    assert!(fields.contains(&"max_tokens"), "{fields:?}");

    let (status, bad) = t
        .post(
            "/api/v1/agents",
            &json!({"name": "x", "temperature": 5, "top_k": 0}),
        )
        .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = bad["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["temperature", "top_k"]);
    let (status, bad) = t
        .post(
            "/api/v1/agents",
            &json!({"name": "x", "cite_sources": "yes"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(bad["error"]["fields"][0]["field"], "cite_sources", "{bad}");

    let patched = t
        .request(Method::PATCH, "/api/v1/agents/bakery")
        .json(&json!({"active": false, "cite_sources": true, "escalation": {"support_contact": "351912345678"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["active"], false);
    assert_eq!(patched["cite_sources"], true);
    assert_eq!(
        patched["escalation"]["keywords"],
        json!(["humano"]),
        "nested fields merge"
    );
    assert_eq!(patched["escalation"]["support_contact"], "351912345678");

    let by_id = t
        .get(&format!("/api/v1/agents/{}", agent["id"].as_str().unwrap()))
        .await;
    assert_eq!(by_id["name"], "bakery");
    let list = t.get("/api/v1/agents").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let deleted = t
        .request(Method::DELETE, "/api/v1/agents/bakery")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let missing = t
        .request(Method::GET, "/api/v1/agents/bakery")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(error_code(&body), "not_found");

    let not_json = t
        .request(Method::POST, "/api/v1/agents")
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    let broken = t
        .request(Method::POST, "/api/v1/agents")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let body: Value = broken.json().await.unwrap();
    assert_eq!(error_code(&body), "bad_request");
    t.stop().await;
}

fn upload(name: &str, bytes: Vec<u8>, mime: &str) -> Form {
    Form::new().part(
        "file",
        Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str(mime)
            .unwrap(),
    )
}

#[tokio::test]
async fn knowledge_upload_list_search_delete() {
    let t = TestApp::start(Options {
        tweak: Box::new(|s| s.server.max_upload_bytes = 64 * 1024),
        ..Default::default()
    })
    .await
    .unwrap();
    t.post("/api/v1/agents", &json!({"name": "demo"})).await;
    let faq = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/knowledge/faq.md")).unwrap();
    let send = |form: Form| {
        t.request(Method::POST, "/api/v1/agents/demo/documents")
            .multipart(form)
            .send()
    };

    let added = send(upload("faq.md", faq.clone(), "text/markdown"))
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["outcome"], "added");
    assert!(added["chunks"].as_u64().unwrap() > 3);

    let again = send(upload("faq.md", faq.clone(), "text/markdown"))
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["outcome"], "unchanged");

    let docs = t.get("/api/v1/agents/demo/documents").await;
    assert_eq!(docs.as_array().unwrap().len(), 1);
    assert_eq!(docs[0]["source"], "faq.md");

    let results = t
        .get("/api/v1/agents/demo/search?q=payment%20methods%20MB%20WAY&top_k=3")
        .await;
    let first = &results[0];
    assert_eq!(first["source"], "faq.md");
    assert!(
        first["text"].as_str().unwrap().contains("MB WAY"),
        "{first}"
    );
    assert!(first["score"].as_f64().unwrap() > 0.0);
    assert!(first.get("position").is_some() && first.get("document_id").is_some());

    let too_big = send(upload("big.md", vec![b'a'; 200 * 1024], "text/markdown"))
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    assert_eq!(
        error_code(&too_big.json::<Value>().await.unwrap()),
        "too_large"
    );

    let exe = send(upload(
        "tool.exe",
        vec![0x4d, 0x5a, 0, 0],
        "application/octet-stream",
    ))
    .await
    .unwrap();
    assert_eq!(exe.status(), 415);
    let fake_pdf = send(upload(
        "menu.pdf",
        b"not a pdf at all".to_vec(),
        "application/pdf",
    ))
    .await
    .unwrap();
    assert_eq!(fake_pdf.status(), 415);
    let empty = send(upload("empty.md", Vec::new(), "text/markdown"))
        .await
        .unwrap();
    assert!(empty.status().is_client_error(), "{}", empty.status());
    let no_file = t
        .request(Method::POST, "/api/v1/agents/demo/documents")
        .multipart(Form::new().text("other", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_file.status(), 422);

    let id = docs[0]["id"].as_str().unwrap();
    let deleted = t
        .request(
            Method::DELETE,
            &format!("/api/v1/agents/demo/documents/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let results = t
        .get("/api/v1/agents/demo/search?q=payment%20methods")
        .await;
    assert!(results.as_array().unwrap().is_empty());
    let bad_query = t
        .request(Method::GET, "/api/v1/agents/demo/search?q=")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_query.status(), 422);
    t.stop().await;
}

#[tokio::test]
async fn a_json_body_over_the_limit_is_413() {
    let t = app().await;
    let huge = "x".repeat(3 * 1024 * 1024);
    let response = t
        .request(Method::POST, "/api/v1/agents")
        .json(&json!({"name": "big", "business_name": huge}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "too_large", "{body}");
    t.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_unknown_routes() {
    let t = app().await;
    let health = t
        .client
        .get(format!("{}/healthz", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready: Value = t
        .client
        .get(format!("{}/readyz", t.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["store"]["backend"], "sqlite");
    // On SQLite there are no other replicas to hear.
    assert!(ready["events"]["listening"].is_null(), "{ready}");
    t.get("/api/v1/agents").await;
    // A method a client invents is counted, under `other`: labels stay bounded.
    let invented = t
        .request(Method::from_bytes(b"BREW-7f3a").unwrap(), "/api/v1/agents")
        .send()
        .await
        .unwrap();
    assert_eq!(invented.status(), 405);
    // Counters of every workspace are the operator's: no credentials, or a workspace's own
    // key, are refused.
    let anonymous = t
        .client
        .get(format!("{}/metrics", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let (_, workspace_key) = t
        .post(
            "/api/v1/api-keys",
            &json!({"name": "desk", "role": "owner"}),
        )
        .await;
    let workspace_owner = t
        .client
        .get(format!("{}/metrics", t.url))
        .bearer_auth(workspace_key["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(workspace_owner.status(), 403);
    let metrics = t.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(text.contains("palaver_http_requests_total"), "{text}");
    assert!(!text.contains("BREW-7f3a"), "{text}");
    assert!(text.contains(r#"method="other""#), "{text}");
    let missing = t
        .client
        .get(format!("{}/nope", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(error_code(&body), "not_found");
    t.stop().await;
}

/// On shutdown `/readyz` turns 503 ("draining") at once while requests are still served for
/// `server.drain_secs`, so a load balancer stops routing here before the listener closes.
#[tokio::test]
async fn readiness_turns_false_while_draining_and_requests_are_still_served() {
    let t = TestApp::start(Options {
        workers: true,
        tweak: Box::new(|s| s.server.drain_secs = 2),
        ..Default::default()
    })
    .await
    .unwrap();
    let ready = |t: &TestApp| {
        let request = t.client.get(format!("{}/readyz", t.url)).send();
        async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (
                status,
                body["status"].as_str().unwrap_or_default().to_string(),
            )
        }
    };
    assert_eq!(ready(&t).await, (200, "ready".to_string()));
    let stopping = std::time::Instant::now();
    t.begin_stop();
    let draining = crate::support::app::eventually(std::time::Duration::from_secs(2), || async {
        let r = ready(&t).await;
        (r.0 == 503).then_some(r)
    })
    .await
    .expect("readiness turned false");
    assert_eq!(draining.1, "draining");
    // Still served meanwhile.
    let agents = t
        .request(Method::GET, "/api/v1/agents")
        .send()
        .await
        .unwrap();
    assert_eq!(agents.status(), 200);
    assert!(stopping.elapsed() < std::time::Duration::from_secs(2));
    t.stop().await;
    assert!(
        stopping.elapsed() >= std::time::Duration::from_secs(2),
        "the listener stayed open for the drain"
    );
}
