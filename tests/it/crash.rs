//! The real `palaver serve` binary killed with SIGKILL right after acknowledging a webhook, then
//! restarted: the customer still gets exactly one reply. The embedder is an OpenAI-compatible
//! mock (bag-of-words vectors), so the binary needs no model.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::app::{eventually, ADMIN_KEY};
use crate::webhooks::{meta_text, sign, APP_SECRET, CUSTOMER, PHONE_ID};

/// An OpenAI-compatible `/v1/embeddings` answering with the test embedder's vectors.
struct Embeddings;

impl Respond for Embeddings {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let inputs: Vec<String> = match &body["input"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        let embedder = palaver::testing::HashEmbedder::new(64);
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": embedder.vector(text)}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "data": data, "model": "hash-64",
            "usage": {"prompt_tokens": 1, "total_tokens": 1}
        }))
    }
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn serve(data: &std::path::Path, port: u16, mocks: &MockServer, debounce_ms: u64) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_palaver"))
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PALAVER__DATA__DIR", data)
        .env("PALAVER__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("PALAVER__SERVER__ADMIN_API_KEY", ADMIN_KEY)
        .env("PALAVER__CHANNELS__META_GRAPH_URL", mocks.uri())
        .env("PALAVER__EMBEDDING__BACKEND", "openai")
        .env(
            "PALAVER__EMBEDDING__BASE_URL",
            format!("{}/v1", mocks.uri()),
        )
        .env("PALAVER__EMBEDDING__API_KEY", "sk-test")
        .env("PALAVER__EMBEDDING__MODEL", "hash-64")
        .env("PALAVER__EMBEDDING__DIMENSIONS", "64")
        .env("PALAVER__PIPELINE__DEBOUNCE_MS", debounce_ms.to_string())
        .env("PALAVER__WORKERS__POLL_MS", "20")
        .env("PALAVER_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start palaver serve");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let up = eventually(Duration::from_secs(60), || async {
        client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    assert!(up.is_some(), "palaver serve did not come up");
    Server { child, url }
}

async fn sends(mocks: &MockServer) -> usize {
    mocks
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == format!("/{PHONE_ID}/messages"))
        .filter(|r| serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| b["type"] == "text"))
        .count()
}

#[tokio::test]
async fn a_reply_survives_kill_9_after_the_acknowledgement_and_is_sent_once() {
    let mocks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(Embeddings)
        .mount(&mocks)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{PHONE_ID}/messages")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp", "contacts": [{"input": CUSTOMER, "wa_id": CUSTOMER}],
            "messages": [{"id": "wamid.OUT.CRASH"}]
        })))
        .mount(&mocks)
        .await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let client = reqwest::Client::new();

    // First life: set up, receive, and die before the (debounced) reply is handled.
    let mut first = serve(data.path(), port, &mocks, 4000).await;
    let api = |p: &str| format!("{}/api/v1{p}", first.url);
    let agent = client
        .post(api("/agents"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "demo", "confidence_threshold": 0.2}))
        .send()
        .await
        .unwrap();
    assert_eq!(agent.status(), 201);
    let faq = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/knowledge/faq.md")).unwrap();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(faq)
            .file_name("faq.md")
            .mime_str("text/markdown")
            .unwrap(),
    );
    let upload = client
        .post(api("/agents/demo/documents"))
        .bearer_auth(ADMIN_KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201, "{}", upload.text().await.unwrap());
    let channel = client
        .post(api("/channels"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "n", "provider": "meta", "phone_number_id": PHONE_ID, "agent": "demo",
                      "credentials": {"access_token": "t", "app_secret": APP_SECRET, "verify_token": "v"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(channel.status(), 201);
    let body = meta_text(
        "wamid.IN.CRASH",
        "Which payment methods do you accept? MB WAY?",
    );
    let ack = client
        .post(format!("{}/webhooks/meta", first.url))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(&body, APP_SECRET))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), 200);
    first.child.kill().unwrap(); // SIGKILL: no shutdown, nothing flushed by us
    first.child.wait().unwrap();
    assert_eq!(sends(&mocks).await, 0, "nothing was sent before the crash");

    // Second life: the queued job is found and answered, once.
    let second = serve(data.path(), port, &mocks, 0).await;
    let sent = eventually(Duration::from_secs(30), || async {
        (sends(&mocks).await >= 1).then_some(())
    })
    .await;
    assert!(sent.is_some(), "the reply was sent after the restart");
    // The provider retrying the delivery after the crash changes nothing.
    let retry = client
        .post(format!("{}/webhooks/meta", second.url))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(&body, APP_SECRET))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sends(&mocks).await, 1, "exactly once");
    drop(second);
}
