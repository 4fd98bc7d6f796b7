//! Providers end to end: the real server on loopback with the provider's API mocked by
//! wiremock (asserting the exact requests we send). A customer message in → exactly one reply
//! out, however often and however concurrently the provider delivers it; sends that fail are
//! retried; echoes never trigger the bot; the 24-hour window is respected; bad input is refused
//! with a clear JSON error and nothing half-stored.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::app::{eventually, Options, TestApp};

pub const PHONE_ID: &str = "106540352242922";
pub const APP_SECRET: &str = "test-app-secret";
pub const CUSTOMER: &str = "16505551234";
/// The Graph API version channels call unless they choose another.
pub const GRAPH_VERSION: &str = "v23.0";

pub fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A Meta webhook carrying one text message, sent now.
pub fn meta_text(id: &str, text: &str) -> Vec<u8> {
    meta_text_to(PHONE_ID, CUSTOMER, id, text)
}

/// A Meta webhook carrying one text message from `customer` to the number `phone_number_id`,
/// sent now.
pub fn meta_text_to(phone_number_id: &str, customer: &str, id: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": "Test Customer"}, "wa_id": customer}],
            "messages": [{"from": customer, "id": id, "timestamp": chrono::Utc::now().timestamp().to_string(),
                          "type": "text", "text": {"body": text}}]
        }}]}]
    }))
    .unwrap()
}

/// Posts a signed Meta webhook; once it is acknowledged, waits until what it carried is
/// recorded (the acknowledgement comes when the delivery is journaled, a moment before).
pub async fn post_meta(t: &TestApp, body: &[u8]) -> reqwest::Response {
    let response = t
        .client
        .post(format!("{}/webhooks/meta", t.url))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(body, APP_SECRET))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    if response.status().is_success() {
        t.settle().await;
    }
    response
}

pub fn sent_ok(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": CUSTOMER, "wa_id": CUSTOMER}],
        "messages": [{"id": id}]
    }))
}

/// A Graph API that accepts every send, answering with the message id `id`.
pub async fn graph_accepting(id: &str) -> MockServer {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
        .respond_with(sent_ok(id))
        .mount(&graph)
        .await;
    graph
}

/// An app with workers, the demo agent, and a Meta channel whose Graph API is `graph`.
pub async fn meta_app(graph: &MockServer, agent_config: Value) -> TestApp {
    meta_app_with(graph, agent_config, false, |_| {})
        .await
        .unwrap()
}

/// [`meta_app`] on Postgres when asked (`None` when it is not available), with last changes
/// to the settings.
pub async fn meta_app_with(
    graph: &MockServer,
    agent_config: Value,
    postgres: bool,
    tweak: impl FnOnce(&mut palaver::Settings) + Send + 'static,
) -> Option<TestApp> {
    let uri = graph.uri();
    let t = TestApp::start(Options {
        workers: true,
        postgres,
        tweak: Box::new(move |s| {
            s.channels.meta_graph_url = uri;
            tweak(s);
        }),
        ..Default::default()
    })
    .await?;
    // Between the test embedder's relevance for questions the bakery's documents answer and for
    // questions they do not (see `knowledge::relevance`'s tests).
    let mut config = json!({"confidence_threshold": 0.2});
    if let (Some(base), Some(extra)) = (config.as_object_mut(), agent_config.as_object()) {
        base.extend(extra.clone());
    }
    t.demo_agent("demo", config).await;
    let (status, channel) = t
        .post(
            "/api/v1/channels",
            &json!({
                "name": "Casa Nube", "provider": "meta", "phone_number_id": PHONE_ID, "agent": "demo",
                "credentials": {"access_token": "test-token", "app_secret": APP_SECRET, "verify_token": "verify-me"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    assert!(channel["webhook_url"]
        .as_str()
        .unwrap()
        .ends_with("/webhooks/meta"));
    assert!(
        !channel.to_string().contains("test-token"),
        "credentials are never returned"
    );
    Some(t)
}

/// Requests the Graph mock received to send messages.
pub async fn sends(graph: &MockServer) -> Vec<Value> {
    graph
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == format!("/{GRAPH_VERSION}/{PHONE_ID}/messages"))
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|b| b.get("status").is_none())
        .collect()
}

pub async fn wait_for_sends(graph: &MockServer, n: usize) -> Vec<Value> {
    eventually(Duration::from_secs(20), || async {
        let s = sends(graph).await;
        (s.len() >= n).then_some(s)
    })
    .await
    .unwrap_or_else(|| panic!("expected {n} sends"))
}

pub async fn mount_send(graph: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
        .and(header("authorization", "Bearer test-token"))
        .respond_with(response)
        .mount(graph)
        .await;
}

#[tokio::test]
async fn meta_verification_handshake() {
    let graph = MockServer::start().await;
    let t = meta_app(&graph, json!({})).await;
    let channels = t.get("/api/v1/channels").await;
    assert_eq!(channels[0]["state"], "created", "{channels}");
    let ok = t
        .client
        .get(format!("{}/webhooks/meta?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    // The owner sees the channel verified (and the console hears it as an event).
    let channels = t.get("/api/v1/channels").await;
    assert_eq!(channels[0]["state"], "connected", "{channels}");
    assert_eq!(
        channels[0]["state_detail"], "webhook verified",
        "{channels}"
    );
    let wrong = t
        .client
        .get(format!(
            "{}/webhooks/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
            t.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    t.stop().await;
}

/// Webhook signatures are checked against credentials kept for a second; a secret changed
/// through the API counts at once, and an unknown one is refused every time.
#[tokio::test]
async fn a_changed_app_secret_counts_for_the_very_next_webhook() {
    let graph = graph_accepting("wamid.OUT.ROTATE").await;
    let t = meta_app(&graph, json!({})).await;
    let channels = t.get("/api/v1/channels").await;
    let id = channels[0]["id"].as_str().unwrap().to_string();
    let post = |body: Vec<u8>, secret: &'static str| {
        let t = &t;
        async move {
            t.client
                .post(format!("{}/webhooks/meta", t.url))
                .header("content-type", "application/json")
                .header("x-hub-signature-256", sign(&body, secret))
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        post(meta_text("wamid.IN.R1", "Hello"), APP_SECRET).await,
        200
    );
    assert_eq!(
        post(meta_text("wamid.IN.R2", "Hello"), "another-secret").await,
        401
    );
    let (status, body) = t
        .request(reqwest::Method::PATCH, &format!("/api/v1/channels/{id}"))
        .json(&json!({"credentials": {"app_secret": "rotated-secret"}}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200, "{:?}", body.text().await);
    assert_eq!(
        post(meta_text("wamid.IN.R3", "Hello"), APP_SECRET).await,
        401
    );
    assert_eq!(
        post(meta_text("wamid.IN.R4", "Hello"), "rotated-secret").await,
        200
    );
    assert_eq!(
        post(meta_text("wamid.IN.R5", "Hello"), "another-secret").await,
        401
    );
}

#[tokio::test]
async fn a_text_message_gets_one_reply_through_the_graph_api() {
    let graph = MockServer::start().await;
    mount_send(&graph, sent_ok("wamid.OUT.1")).await;
    let t = meta_app(&graph, json!({})).await;
    let response = post_meta(
        &t,
        &meta_text("wamid.IN.1", "Which payment methods do you accept? MB WAY?"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted, json!({"events": 1, "journaled": true}));

    let sent = wait_for_sends(&graph, 1).await;
    let reply = &sent[0];
    assert_eq!(reply["messaging_product"], "whatsapp");
    assert_eq!(reply["to"], CUSTOMER);
    assert_eq!(reply["type"], "text");
    assert!(
        reply["text"]["body"].as_str().unwrap().contains("MB WAY"),
        "{reply}"
    );
    // Read receipt with a typing indicator while the reply was prepared.
    let marked = graph
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .any(|b| {
            b["status"] == "read"
                && b["message_id"] == "wamid.IN.1"
                && b["typing_indicator"]["type"] == "text"
        });
    assert!(marked, "mark-as-read with typing indicator");

    // The reply's status webhooks apply to our message.
    let conversations = t.get("/api/v1/conversations").await;
    let id = conversations[0]["id"].as_str().unwrap().to_string();
    let messages = eventually(Duration::from_secs(5), || async {
        let m = t.get(&format!("/api/v1/conversations/{id}/messages")).await;
        (m[1]["status"] == "sent").then_some(m)
    })
    .await
    .expect("reply marked sent");
    assert_eq!(messages[1]["provider_message_id"], "wamid.OUT.1");
    let status = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": PHONE_ID},
        "statuses": [{"id": "wamid.OUT.1", "status": "read", "timestamp": "1749416400", "recipient_id": CUSTOMER}]}}]}]}))
    .unwrap();
    assert_eq!(post_meta(&t, &status).await.status(), 200);
    let messages = t.get(&format!("/api/v1/conversations/{id}/messages")).await;
    assert_eq!(messages[1]["status"], "read");
    t.stop().await;
}

#[tokio::test]
async fn a_reply_on_whatsapp_names_its_source_only_when_the_agent_cites() {
    let graph = MockServer::start().await;
    mount_send(&graph, sent_ok("wamid.OUT.1")).await;
    let t = meta_app(&graph, json!({})).await;
    let question = "Which payment methods do you accept? MB WAY?";
    post_meta(&t, &meta_text("wamid.IN.1", question)).await;
    let sent = wait_for_sends(&graph, 1).await;
    let body = sent[0]["text"]["body"].as_str().unwrap();
    assert!(body.contains("MB WAY"), "{body}");
    assert!(!body.contains("Source"), "no source by default: {body}");
    // The inbox still has the sources, on the recorded reply.
    let conversations = t.get("/api/v1/conversations").await;
    let id = conversations[0]["id"].as_str().unwrap().to_string();
    let messages = t.get(&format!("/api/v1/conversations/{id}/messages")).await;
    let reply = messages
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "bot")
        .expect("the bot's reply is recorded");
    assert!(
        !reply["generation"]["sources"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{reply}"
    );

    let patched = t
        .request(reqwest::Method::PATCH, "/api/v1/agents/demo")
        .json(&json!({"cite_sources": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    post_meta(&t, &meta_text("wamid.IN.2", question)).await;
    let sent = wait_for_sends(&graph, 2).await;
    let body = sent[1]["text"]["body"].as_str().unwrap();
    assert!(body.contains("MB WAY"), "{body}");
    assert!(
        body.ends_with(')') && body.contains("(Source: "),
        "cited: {body}"
    );
    t.stop().await;
}

#[tokio::test]
async fn the_same_webhook_delivered_five_times_gets_exactly_one_reply() {
    let graph = MockServer::start().await;
    mount_send(&graph, sent_ok("wamid.OUT.2")).await;
    let t = meta_app(&graph, json!({})).await;
    let body = meta_text(
        "wamid.IN.DUP",
        "Which payment methods do you accept? MB WAY?",
    );
    for _ in 0..5 {
        assert_eq!(post_meta(&t, &body).await.status(), 200);
    }
    let concurrent: Vec<_> = (0..5).map(|_| post_meta(&t, &body)).collect();
    for r in futures::future::join_all(concurrent).await {
        assert_eq!(r.status(), 200);
    }
    wait_for_sends(&graph, 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(sends(&graph).await.len(), 1, "exactly one reply");
    let conversations = t.get("/api/v1/conversations").await;
    let id = conversations[0]["id"].as_str().unwrap();
    let messages = t.get(&format!("/api/v1/conversations/{id}/messages")).await;
    assert_eq!(messages.as_array().unwrap().len(), 2, "{messages}");
    t.stop().await;
}

#[tokio::test]
async fn a_failing_graph_api_is_retried_and_the_reply_delivered_once() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
        .and(body_partial_json(json!({"type": "text"})))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"message": "Service temporarily unavailable", "code": 2}}),
        ))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&graph)
        .await;
    mount_send(&graph, sent_ok("wamid.OUT.3")).await;
    let t = meta_app(&graph, json!({})).await;
    post_meta(
        &t,
        &meta_text("wamid.IN.3", "Which payment methods do you accept? MB WAY?"),
    )
    .await;
    let sent = wait_for_sends(&graph, 4).await;
    assert_eq!(sent.len(), 4, "three failures then one success");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sends(&graph).await.len(), 4, "no send after the success");
    let conversations = t.get("/api/v1/conversations").await;
    let id = conversations[0]["id"].as_str().unwrap();
    let messages = t.get(&format!("/api/v1/conversations/{id}/messages")).await;
    assert_eq!(messages[1]["status"], "sent");
    assert!(t
        .get("/api/v1/jobs?status=dead")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    t.stop().await;
}

#[tokio::test]
async fn outside_the_24_hour_window_a_template_is_sent_or_the_conversation_escalated() {
    for (template, expect_template) in [
        (json!({"name": "follow_up", "language": "en_US"}), true),
        (Value::Null, false),
    ] {
        let graph = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
            .and(body_partial_json(json!({"type": "text"})))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
                "message": "(#131047) Re-engagement message", "type": "OAuthException", "code": 131047,
                "error_data": {"messaging_product": "whatsapp", "details": "More than 24 hours have passed"}}})))
            .with_priority(1)
            .mount(&graph)
            .await;
        mount_send(&graph, sent_ok("wamid.TEMPLATE")).await;
        let t = meta_app(
            &graph,
            json!({"escalation": {"reengagement_template": template}}),
        )
        .await;
        post_meta(
            &t,
            &meta_text("wamid.IN.W", "Which payment methods do you accept? MB WAY?"),
        )
        .await;
        let conversations = eventually(Duration::from_secs(20), || async {
            let list = t.get("/api/v1/conversations").await;
            let id = list[0]["id"].as_str()?.to_string();
            let messages = t.get(&format!("/api/v1/conversations/{id}/messages")).await;
            matches!(
                messages[1]["status"].as_str(),
                Some("sent") | Some("failed")
            )
            .then_some((id, messages))
        })
        .await
        .expect("the reply was sent or failed");
        let (id, messages) = conversations;
        let sent = sends(&graph).await;
        if expect_template {
            assert_eq!(messages[1]["status"], "sent");
            let template = sent
                .iter()
                .find(|b| b["type"] == "template")
                .expect("template sent");
            assert_eq!(template["template"]["name"], "follow_up");
            assert_eq!(template["template"]["language"]["code"], "en_US");
        } else {
            assert_eq!(messages[1]["status"], "failed");
            assert!(sent.iter().all(|b| b["type"] != "template"));
            let conversation = t.get(&format!("/api/v1/conversations/{id}")).await;
            assert_eq!(conversation["status"], "escalated");
            assert_eq!(conversation["status_reason"], "window_closed");
        }
        t.stop().await;
    }
}

#[tokio::test]
async fn an_evolution_from_me_echo_never_triggers_the_bot_and_hands_over() {
    let evolution = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webhook/set/support-bot"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"webhook": {}})))
        .mount(&evolution)
        .await;
    Mock::given(method("POST"))
        .and(path("/settings/set/support-bot"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"settings": {}})))
        .mount(&evolution)
        .await;
    let t = TestApp::start(Options {
        workers: true,
        ..Default::default()
    })
    .await
    .unwrap();
    t.demo_agent("demo", json!({})).await;
    let (status, channel) = t
        .post(
            "/api/v1/channels",
            &json!({
                "name": "QR number", "provider": "evolution", "instance": "support-bot", "agent": "demo",
                "create_instance": false,
                "credentials": {"server_url": evolution.uri(), "api_key": "evo-key", "webhook_secret": "evo-secret"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let id = channel["id"].as_str().unwrap();
    let registered = evolution.received_requests().await.unwrap();
    let hook: Value = serde_json::from_slice(
        &registered
            .iter()
            .find(|r| r.url.path().starts_with("/webhook/set"))
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(
        hook["webhook"]["url"],
        format!("http://127.0.0.1:8080/webhooks/evolution/{id}")
    );

    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/evolution/webhook.messages.upsert.from_me_phone_echo.json"
    ))
    .unwrap();
    let post = |token: &'static str| {
        t.client
            .post(format!("{}/webhooks/evolution/{id}", t.url))
            .header("content-type", "application/json")
            .header("x-palaver-webhook-token", token)
            .body(body.clone())
            .send()
    };
    assert_eq!(post("wrong").await.unwrap().status(), 401);
    let ok = post("evo-secret").await.unwrap();
    assert_eq!(ok.status(), 200);
    t.settle().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let sent: Vec<_> = evolution
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().starts_with("/message/"))
        .collect();
    assert!(sent.is_empty(), "the bot never answers its own side");
    let conversations = t.get("/api/v1/conversations").await;
    assert_eq!(
        conversations[0]["status"], "escalated",
        "a person took over from the phone"
    );
    assert_eq!(conversations[0]["status_reason"], "human_takeover");
    t.stop().await;
}

#[tokio::test]
async fn bad_webhooks_get_clear_errors_and_nothing_is_stored() {
    let graph = MockServer::start().await;
    let t = meta_app(&graph, json!({})).await;
    let body = meta_text("wamid.BAD", "hello");
    let post = |body: Vec<u8>, signature: Option<String>, content_type: &'static str| {
        let mut r = t
            .client
            .post(format!("{}/webhooks/meta", t.url))
            .header("content-type", content_type)
            .body(body);
        if let Some(s) = signature {
            r = r.header("x-hub-signature-256", s);
        }
        r.send()
    };
    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (
            post(body.clone(), None, "application/json").await.unwrap(),
            401,
            "bad_signature",
        ),
        (
            post(
                body.clone(),
                Some(sign(&body, "other-secret")),
                "application/json",
            )
            .await
            .unwrap(),
            401,
            "bad_signature",
        ),
        (
            post(
                b"{not json".to_vec(),
                Some(sign(b"{not json", APP_SECRET)),
                "application/json",
            )
            .await
            .unwrap(),
            400,
            "bad_request",
        ),
        (
            post(body.clone(), Some(sign(&body, APP_SECRET)), "text/plain")
                .await
                .unwrap(),
            415,
            "unsupported_media_type",
        ),
        (
            post(
                vec![b' '; 2 * 1024 * 1024],
                Some("sha256=00".into()),
                "application/json",
            )
            .await
            .unwrap(),
            413,
            "too_large",
        ),
    ];
    for (response, status, code) in cases {
        assert_eq!(response.status(), status);
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["error"]["code"], code, "{json}");
    }
    let unknown = t
        .client
        .post(format!(
            "{}/webhooks/evolution/{}",
            t.url,
            uuid::Uuid::now_v7()
        ))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    // A number no channel serves is acknowledged and not answered.
    let other = String::from_utf8(body.clone())
        .unwrap()
        .replace(PHONE_ID, "999999999");
    let response = post_meta(&t, other.as_bytes()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(t.app.store.journal_backlog().await.unwrap().entries, 0);
    assert!(
        t.get("/api/v1/conversations")
            .await
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing stored"
    );
    t.stop().await;
}

/// Mocks an Evolution server that accepts webhook and settings updates for `support-bot`.
/// An Evolution server that takes the instance `support-bot`'s webhook and settings.
pub async fn evolution_server() -> MockServer {
    let evolution = MockServer::start().await;
    for route in ["/webhook/set/support-bot", "/settings/set/support-bot"] {
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
            .mount(&evolution)
            .await;
    }
    evolution
}

fn evolution_channel(server: &str) -> Value {
    json!({
        "name": "QR number", "provider": "evolution", "instance": "support-bot",
        "create_instance": false,
        "credentials": {"server_url": server, "api_key": "evo-key", "webhook_secret": "evo-secret"}
    })
}

/// Defects: a credentials update without `webhook_secret` stored an empty secret, after which an
/// empty token header authenticated; the webhook was registered with inline base64 media, so a
/// long voice note or a video outgrew the body limit and the whole message was refused.
#[tokio::test]
async fn evolution_keeps_its_secret_and_takes_large_media_messages() {
    let evolution = evolution_server().await;
    let t = TestApp::start(Options::default()).await.unwrap();
    let (status, channel) = t
        .post("/api/v1/channels", &evolution_channel(&evolution.uri()))
        .await;
    assert_eq!(status, 201, "{channel}");
    let id = channel["id"].as_str().unwrap().to_string();
    let hook = |body: Vec<u8>, token: &'static str| {
        t.client
            .post(format!("{}/webhooks/evolution/{id}", t.url))
            .header("content-type", "application/json")
            .header("x-palaver-webhook-token", token)
            .body(body)
            .send()
    };
    let fixture = |name: &str| {
        std::fs::read(format!(
            "{}/tests/fixtures/evolution/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };

    // Media is not inlined in webhooks: it is fetched by message id.
    let registered: Value = serde_json::from_slice(
        &evolution
            .received_requests()
            .await
            .unwrap()
            .iter()
            .find(|r| r.url.path() == "/webhook/set/support-bot")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(registered["webhook"]["base64"], false, "{registered}");

    // An update of the API key alone keeps the secret; an empty secret is refused.
    let patch = |body: Value| {
        t.request(reqwest::Method::PATCH, &format!("/api/v1/channels/{id}"))
            .json(&body)
            .send()
    };
    let updated = patch(json!({"credentials": {"api_key": "evo-key-2"}}))
        .await
        .unwrap();
    assert_eq!(updated.status(), 200, "{}", updated.text().await.unwrap());
    let empty = patch(json!({"credentials": {"webhook_secret": ""}}))
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);
    let text = fixture("webhook.messages.upsert.text_conversation.json");
    assert_eq!(hook(text.clone(), "").await.unwrap().status(), 401);
    assert_eq!(hook(text.clone(), "evo-key-2").await.unwrap().status(), 401);
    assert_eq!(hook(text, "evo-secret").await.unwrap().status(), 200);

    // A voice note sent inline by an instance configured elsewhere, 3 MiB of base64: stored,
    // without the inline data (fetched by id when needed).
    let mut audio: Value = serde_json::from_slice(&fixture(
        "webhook.messages.upsert.audio_ptt_with_base64.json",
    ))
    .unwrap();
    audio["data"]["message"]["base64"] = json!("T2dn".repeat(3 * 1024 * 1024 / 4));
    let response = hook(serde_json::to_vec(&audio).unwrap(), "evo-secret")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    t.settle().await;
    let conversations = t.get("/api/v1/conversations").await;
    let conversation = conversations[0]["id"].as_str().unwrap();
    let messages = t
        .get(&format!("/api/v1/conversations/{conversation}/messages"))
        .await;
    let voice = messages
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "audio")
        .expect("the voice note is stored");
    assert_eq!(voice["details"]["media"]["id"], "3EB0F00D1234ABCD5678");
    assert!(
        voice["details"]["media"].get("inline_base64").is_none(),
        "{}",
        voice.to_string().chars().take(600).collect::<String>()
    );

    // Other providers keep the instance's limit.
    let big = vec![b' '; 2 * 1024 * 1024];
    let meta = t
        .client
        .post(format!("{}/webhooks/meta", t.url))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(meta.status(), 413);
    t.stop().await;
}

/// Defect: an Evolution server on loopback, a private range or link-local was accepted and
/// called with the channel's key, and up to 300 characters of its answer were handed back.
#[tokio::test]
async fn private_servers_are_refused_and_remote_answers_never_reflected() {
    let evolution = evolution_server().await;
    Mock::given(method("POST"))
        .and(path("/instance/create"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_string("internal-admin-token=hunter2 (from 10.0.0.7)"),
        )
        .mount(&evolution)
        .await;
    let strict = TestApp::start(Options {
        tweak: Box::new(|s| s.channels.allow_private_urls = false),
        ..Default::default()
    })
    .await
    .unwrap();
    let port = evolution.address().port();
    for server in [
        evolution.uri(),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
        "http://169.254.169.254".to_string(),
        "http://10.0.0.7:8080".to_string(),
    ] {
        let (status, body) = strict
            .post("/api/v1/channels", &evolution_channel(&server))
            .await;
        assert_eq!(status, 422, "{server}: {body}");
        assert_eq!(
            body["error"]["fields"][0]["field"], "credentials.server_url",
            "{body}"
        );
        assert!(body.to_string().contains("allow_private_urls"), "{body}");
    }
    assert!(
        evolution.received_requests().await.unwrap().is_empty(),
        "nothing was called"
    );
    strict.stop().await;

    // Allowed (Evolution beside Palaver), a failing server's answer is not handed back.
    let open = TestApp::start(Options::default()).await.unwrap();
    let mut create = evolution_channel(&evolution.uri());
    create["create_instance"] = json!(true);
    let (status, body) = open.post("/api/v1/channels", &create).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.to_string().contains("hunter2"), "{body}");
    assert!(!body.to_string().contains("10.0.0.7"), "{body}");
    open.stop().await;
}

/// Defect: a customer with a WhatsApp username arrives with a business-scoped user id and no
/// phone number, and must be answered with `"recipient"`; Palaver sent `"to": <user id>`.
#[tokio::test]
async fn a_username_customer_is_answered_by_recipient() {
    let graph = MockServer::start().await;
    mount_send(&graph, sent_ok("wamid.OUT.U1")).await;
    let t = meta_app(&graph, json!({})).await;
    let user_id = "PT.4821937560012833";
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
            "contacts": [{"profile": {"name": "Ana Sousa", "username": "ana.sousa"}, "user_id": user_id}],
            "messages": [{"from_user_id": user_id, "id": "wamid.IN.U1",
                          "timestamp": chrono::Utc::now().timestamp().to_string(),
                          "type": "text", "text": {"body": "Which payment methods do you accept? MB WAY?"}}]
        }}]}]
    }))
    .unwrap();
    assert_eq!(post_meta(&t, &body).await.status(), 200);
    let sent = wait_for_sends(&graph, 1).await;
    assert_eq!(sent[0]["recipient"], user_id, "{}", sent[0]);
    assert!(sent[0].get("to").is_none(), "{}", sent[0]);
    let conversations = t.get("/api/v1/conversations").await;
    assert_eq!(conversations[0]["contact"]["user_id"], user_id);
    assert_eq!(conversations[0]["contact"]["name"], "Ana Sousa");
    t.stop().await;
}

/// Defect: a webhook claiming a 50 MB body and sending 2 bytes held its connection until the
/// 120 s request timeout (then 504), on any provider's route, known channel or not. A declared
/// length over the limit is refused before anything is read, and a body that does not arrive
/// within `server.webhook_body_secs` is answered 408.
#[tokio::test]
async fn lying_or_slow_webhook_bodies_do_not_hold_a_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let t = TestApp::start(Options {
        tweak: Box::new(|s| s.server.webhook_body_secs = 1),
        ..Default::default()
    })
    .await
    .unwrap();
    let address = t.url.trim_start_matches("http://").to_string();
    // Sends `head` and `body`, keeps the connection open, and reads the status line.
    let exchange = |head: String, body: &'static [u8]| {
        let address = address.clone();
        async move {
            let started = std::time::Instant::now();
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(body).await.unwrap();
            let mut answer = vec![0u8; 512];
            let n =
                tokio::time::timeout(std::time::Duration::from_secs(30), stream.read(&mut answer))
                    .await
                    .expect("an answer well before the request timeout")
                    .unwrap();
            let text = String::from_utf8_lossy(&answer[..n]).to_string();
            (text, started.elapsed())
        }
    };
    for path in [
        "/webhooks/meta",
        "/webhooks/kapso/0193a000-0000-7000-8000-0000000000ff",
    ] {
        let (answer, took) = exchange(
            format!(
                "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: 52428800\r\n\r\n"
            ),
            b"{}",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(took < std::time::Duration::from_secs(1), "{path}: {took:?}");

        let (answer, took) = exchange(
            format!(
                "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
            ),
            b"{\"object\":",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(took < std::time::Duration::from_secs(5), "{path}: {took:?}");
    }
    t.stop().await;
}
