//! Writing first to a customer, and the 24-hour customer-service window: a conversation is
//! started with an approved template (the number checked as a contact's, the values against
//! the template, every problem at once), and while the window is closed a person's text is
//! refused and a template goes; once the customer writes, text goes again.

use serde_json::{json, Value};

use crate::support::app::{Options, TestApp};
use crate::templates::{graph, WABA};
use crate::webhooks::{meta_text, post_meta, sends, APP_SECRET, CUSTOMER, PHONE_ID};

crate::both_backends_flag!(a_conversation_starts_with_a_template_and_text_waits_for_the_customer);

const COUPON: &str = "coupon_expiration_reminder_number_vars";

fn coupon(parameters: Value) -> Value {
    json!({"name": COUPON, "language": "en", "parameters": parameters})
}

async fn a_conversation_starts_with_a_template_and_text_waits_for_the_customer(postgres: bool) {
    let graph = graph().await;
    let uri = graph.uri();
    let Some(t) = TestApp::start(Options {
        workers: true,
        postgres,
        tweak: Box::new(move |s| s.channels.meta_graph_url = uri),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    t.demo_agent("demo", json!({})).await;
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
    let channel = channel["id"].as_str().unwrap().to_string();
    let complete =
        json!({"header.1": "Ana", "body.1": "SUMMER20", "body.2": "10", "button.0": "s20"});

    // Every problem at once: the number and the template's values.
    let (status, body) = t
        .post(
            "/api/v1/conversations",
            &json!({"channel": channel, "to": "0912 345",
                    "template": coupon(json!({"header.1": "Ana", "body.1": "SUMMER20", "button.0": "s20"}))}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let mut fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["parameters.body.2", "to"], "{body}");
    for (template, field) in [
        (
            json!({"name": "order_update", "language": "pt_BR", "parameters": {"body.1": "Ana"}}),
            "name",
        ),
        (json!({"name": "", "language": "en"}), "name"),
        (json!({"name": COUPON, "language": ""}), "language"),
    ] {
        let (status, body) = t
            .post(
                "/api/v1/conversations",
                &json!({"channel": channel, "to": "+351 912 345 678", "template": template}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["fields"][0]["field"], field, "{body}");
    }
    let (status, _) = t
        .post(
            "/api/v1/conversations",
            &json!({"channel": uuid::Uuid::now_v7(), "to": "+351912345678", "template": coupon(complete.clone())}),
        )
        .await;
    assert_eq!(status, 404, "an unknown channel");
    assert!(
        t.get("/api/v1/conversations")
            .await
            .as_array()
            .unwrap()
            .is_empty(),
        "a refused start made a conversation"
    );
    assert!(sends(&graph).await.is_empty());

    // Complete: the conversation starts, once per idempotency key, with the window closed.
    let start = || {
        t.request(reqwest::Method::POST, "/api/v1/conversations")
            .header("idempotency-key", "start-1")
            .json(&json!({"channel": channel, "to": format!("+{CUSTOMER}"), "template": coupon(complete.clone())}))
    };
    let (status, started) = t.send(start()).await;
    assert_eq!(status, 202, "{started}");
    let (status, again) = t.send(start()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["message"]["id"], started["message"]["id"]);
    let id = started["conversation"]["id"].as_str().unwrap().to_string();
    assert_eq!(started["conversation"]["contact"]["wa_id"], CUSTOMER);
    assert_eq!(started["message"]["kind"], "template");
    let conversation = t.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(
        conversation["service_window"],
        json!({"state": "closed", "closed_at": null}),
        "{conversation}"
    );
    assert!(
        conversation["assignee_id"].is_null(),
        "an API key is nobody"
    );
    let sent = crate::support::app::eventually(std::time::Duration::from_secs(20), || async {
        let sent = sends(&graph).await;
        (!sent.is_empty()).then_some(sent)
    })
    .await
    .expect("the template was sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "template");
    assert_eq!(sent[0]["to"], CUSTOMER);

    // Closed: text and files are refused; a template goes.
    let messages = format!("/api/v1/conversations/{id}/messages");
    let (status, body) = t.post(&messages, &json!({"text": "Olá!"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "text");
    let (status, body) = t
        .post(
            &format!("/api/v1/conversations/{id}/templates"),
            &coupon(complete.clone()),
        )
        .await;
    assert_eq!(status, 202, "{body}");

    // The customer writes: the window is open for 24 hours, and text goes.
    post_meta(&t, &meta_text("wamid.IN.OUT1", "Obrigada! Ainda é válido?")).await;
    let open = crate::support::app::eventually(std::time::Duration::from_secs(20), || async {
        let c = t.get(&format!("/api/v1/conversations/{id}")).await;
        (c["service_window"]["state"] == "open").then_some(c)
    })
    .await
    .expect("the window opened");
    let closes: chrono::DateTime<chrono::Utc> = open["service_window"]["closes_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let hours = (closes - chrono::Utc::now()).num_minutes();
    assert!((23 * 60..=24 * 60).contains(&hours), "{open}");
    let (status, body) = t.post(&messages, &json!({"text": "Sim, até sexta."})).await;
    assert_eq!(status, 202, "{body}");
    t.stop().await;
}
