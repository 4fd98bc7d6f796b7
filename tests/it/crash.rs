//! The real `palaver serve` binary killed with SIGKILL right after acknowledging a webhook, then
//! restarted: the customer still gets exactly one reply. The embedder is an OpenAI-compatible
//! mock (bag-of-words vectors), so the binary needs no model.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::app::eventually;
use crate::support::process::{free_port, Embeddings, Process};
use crate::webhooks::{meta_text, sign, APP_SECRET, CUSTOMER, GRAPH_VERSION, PHONE_ID};

async fn serve(data: &std::path::Path, port: u16, mocks: &MockServer, debounce_ms: u64) -> Process {
    let env = [("PALAVER__PIPELINE__DEBOUNCE_MS", debounce_ms.to_string())];
    Process::serve(data, port, &mocks.uri(), &env).await
}

async fn sends(mocks: &MockServer) -> usize {
    mocks
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == format!("/{GRAPH_VERSION}/{PHONE_ID}/messages"))
        .filter(|r| serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| b["type"] == "text"))
        .count()
}

#[tokio::test]
async fn a_reply_survives_kill_9_after_the_acknowledgement_and_is_sent_once() {
    let mocks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(Embeddings::default())
        .mount(&mocks)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
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
    first.set_up_demo(&client, json!({})).await;
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
    first.kill(); // SIGKILL: no shutdown, nothing flushed by us
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
