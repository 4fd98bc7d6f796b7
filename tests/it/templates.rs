//! Message templates: listed from the WhatsApp Business Account through the Graph API (every
//! page, kept, refreshed on request), and sent with their values checked first: a missing value
//! is a 422 naming it, and the Graph API gets the exact components.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::app::{Options, TestApp};
use crate::webhooks::{
    meta_text, post_meta, sends, sent_ok, wait_for_sends, APP_SECRET, CUSTOMER, GRAPH_VERSION,
    PHONE_ID,
};

pub(crate) const WABA: &str = "102290129340398";

fn fixture() -> Value {
    serde_json::from_slice(
        &std::fs::read(format!(
            "{}/tests/fixtures/meta/templates.list.response.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap()
}

/// The Graph API: sends accepted; the templates in two pages.
pub(crate) async fn graph() -> MockServer {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
        .respond_with(sent_ok("wamid.OUT.template"))
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/{GRAPH_VERSION}/{WABA}/message_templates")))
        .and(query_param("after", "QVFIUafter"))
        .and(header("authorization", "Bearer test-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{
                "name": "order_update", "language": "pt_BR", "status": "PAUSED", "category": "UTILITY",
                "id": "555", "components": [{"type": "BODY", "text": "Olá {{1}}, seu pedido saiu."}]
            }],
            "paging": {"cursors": {"before": "b2", "after": "a2"}}
        })))
        .with_priority(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/{GRAPH_VERSION}/{WABA}/message_templates")))
        .and(header("authorization", "Bearer test-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture()))
        .mount(&graph)
        .await;
    graph
}

async fn app(graph: &MockServer) -> (TestApp, String) {
    let uri = graph.uri();
    let t = TestApp::start(Options {
        workers: true,
        tweak: Box::new(move |s| s.channels.meta_graph_url = uri),
        ..Default::default()
    })
    .await
    .unwrap();
    t.demo_agent("demo", json!({"confidence_threshold": 0.3}))
        .await;
    let (status, channel) = t
        .post(
            "/api/v1/channels",
            &json!({
                "name": "Casa Nube", "provider": "meta", "phone_number_id": PHONE_ID, "agent": "demo",
                "credentials": {"access_token": "test-token", "app_secret": APP_SECRET,
                                "verify_token": "verify-me", "business_account_id": WABA}
            }),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    (t, channel["id"].as_str().unwrap().to_string())
}

async fn listings(graph: &MockServer) -> usize {
    graph
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == format!("/{GRAPH_VERSION}/{WABA}/message_templates"))
        .count()
}

#[tokio::test]
async fn templates_are_listed_from_every_page_and_kept() {
    let graph = graph().await;
    let (t, channel) = app(&graph).await;
    let list = t
        .get(&format!("/api/v1/channels/{channel}/templates"))
        .await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "reservation_confirmation",
            "coupon_expiration_reminder_number_vars",
            "order_update"
        ]
    );
    assert_eq!(
        list[1]["placeholders"],
        json!(["header.1", "body.1", "body.2", "button.0"])
    );
    assert_eq!(list[2]["status"], "PAUSED");
    assert_eq!(listings(&graph).await, 2, "two pages");
    let first = &graph.received_requests().await.unwrap()[0];
    let fields = first
        .url
        .query_pairs()
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        fields.as_deref(),
        Some("name,language,status,category,components,parameter_format")
    );

    // Kept: no new request; refreshed on request.
    t.get(&format!("/api/v1/channels/{channel}/templates"))
        .await;
    assert_eq!(listings(&graph).await, 2);
    t.get(&format!(
        "/api/v1/channels/{channel}/templates?refresh=true"
    ))
    .await;
    assert_eq!(listings(&graph).await, 4);
    t.stop().await;
}

#[tokio::test]
async fn a_template_is_checked_then_sent_with_its_components() {
    let graph = graph().await;
    let (t, _) = app(&graph).await;
    post_meta(&t, &meta_text("wamid.TPL.1", "What time do you open?")).await;
    wait_for_sends(&graph, 1).await;
    let conversation = t.get("/api/v1/conversations").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("/api/v1/conversations/{conversation}/templates");

    // A missing value is named; so is an unknown template, and a paused one.
    let (status, body) = t
        .post(
            &url,
            &json!({"name": "coupon_expiration_reminder_number_vars", "language": "en",
                    "parameters": {"header.1": "Pablo", "body.1": "SUMMER20", "button.0": "summer2023"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["parameters.body.2"], "{body}");
    let (status, body) = t
        .post(&url, &json!({"name": "no_such_template", "language": "en"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["fields"][0]["field"], "name");
    let (status, body) = t
        .post(
            &url,
            &json!({"name": "order_update", "language": "pt_BR", "parameters": {"body.1": "Ana"}}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("paused"),
        "{body}"
    );
    assert_eq!(
        sends(&graph).await.len(),
        1,
        "nothing sent for refused requests"
    );

    // Complete: queued once per idempotency key, sent with the exact components.
    let request = |key: &'static str| {
        t.request(reqwest::Method::POST, &url)
            .header("idempotency-key", key)
            .json(&json!({
                "name": "coupon_expiration_reminder_number_vars", "language": "en",
                "parameters": {"header.1": "Pablo", "body.1": "SUMMER20", "body.2": "10", "button.0": "summer2023"}
            }))
            .send()
    };
    let first = request("coupon-1").await.unwrap();
    assert_eq!(first.status(), 202);
    let message: Value = first.json().await.unwrap();
    assert_eq!(message["kind"], "template");
    assert_eq!(
        message["text"],
        "Act fast, Pablo!\n\nJust a quick reminder—your exclusive coupon code, SUMMER20, *expires in only 10 days!*\n\nLucky Shrub Succulents"
    );
    assert_eq!(request("coupon-1").await.unwrap().status(), 200);
    let sent = wait_for_sends(&graph, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent: Vec<&Value> = sent.iter().filter(|s| s["type"] == "template").collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sends(&graph).await.len(), 2, "sent once");
    assert_eq!(
        sent[0]["template"],
        json!({
            "name": "coupon_expiration_reminder_number_vars",
            "language": {"code": "en"},
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "Pablo"}]},
                {"type": "body", "parameters": [
                    {"type": "text", "text": "SUMMER20"}, {"type": "text", "text": "10"}
                ]},
                {"type": "button", "sub_type": "url", "index": "0",
                 "parameters": [{"type": "text", "text": "summer2023"}]}
            ]
        })
    );
    assert_eq!(sent[0]["to"], CUSTOMER);
    // A person re-opened the conversation: the bot steps back.
    let read = t
        .get(&format!("/api/v1/conversations/{conversation}"))
        .await;
    assert_eq!(read["status"], "escalated");
    t.stop().await;
}

#[tokio::test]
async fn templates_need_the_business_account_and_a_provider_that_has_them() {
    let graph = graph().await;
    let uri = graph.uri();
    let t = TestApp::start(Options {
        tweak: Box::new(move |s| s.channels.meta_graph_url = uri),
        ..Default::default()
    })
    .await
    .unwrap();
    let (status, channel) = t
        .post(
            "/api/v1/channels",
            &json!({
                "name": "No WABA", "provider": "meta", "phone_number_id": PHONE_ID,
                "credentials": {"access_token": "test-token", "app_secret": APP_SECRET, "verify_token": "v"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let id = channel["id"].as_str().unwrap();
    let response = t
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/channels/{id}/templates"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("business_account_id")
            || body.to_string().contains("business_account_id"),
        "{body}"
    );
    t.stop().await;
}
