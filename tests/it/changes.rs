//! Messages that change after they arrive: a customer's edit replaces the text (the earlier one
//! kept) and a deletion marks the message deleted, neither arriving as a new message; under
//! Meta's coexistence, what a person types in the WhatsApp Business app is recorded and silences
//! the bot.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use wiremock::MockServer;

use crate::support::app::{eventually, Options, TestApp};
use crate::webhooks::{
    evolution_server, meta_app, meta_text, post_meta, sends, wait_for_sends, CUSTOMER, PHONE_ID,
};

async fn graph() -> MockServer {
    crate::webhooks::graph_accepting("wamid.OUT.changes").await
}

/// A Meta `messages` (or `smb_message_echoes`) webhook carrying `item`.
fn meta_webhook(field: &str, key: &str, item: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": field, "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
            "contacts": [{"profile": {"name": "Test Customer"}, "wa_id": CUSTOMER}],
            key: [item]
        }}]}]
    }))
    .unwrap()
}

#[tokio::test]
async fn a_customers_edit_and_deletion_change_the_original_message() {
    let graph = graph().await;
    let t = meta_app(&graph, json!({})).await;
    post_meta(&t, &meta_text("wamid.CHG.1", "Do you deliver on Sundys?")).await;
    wait_for_sends(&graph, 1).await;

    let edit = meta_webhook(
        "messages",
        "messages",
        json!({
            "from": CUSTOMER, "id": "wamid.CHG.1-edit", "timestamp": Utc::now().timestamp().to_string(),
            "type": "edit",
            "edit": {"original_message_id": "wamid.CHG.1",
                     "message": {"type": "text", "text": {"body": "Do you deliver on Sundays?"}}}
        }),
    );
    assert_eq!(post_meta(&t, &edit).await.status(), 200);
    // The same edit delivered again changes nothing more.
    post_meta(&t, &edit).await;
    let (_, messages) = crate::inbox::messages(&t).await;
    let customer: Vec<&Value> = messages
        .iter()
        .filter(|m| m["role"] == "customer")
        .collect();
    assert_eq!(customer.len(), 1, "{messages:?}");
    assert_eq!(customer[0]["text"], "Do you deliver on Sundays?");
    assert_eq!(
        customer[0]["details"]["edits"],
        json!([{"text": "Do you deliver on Sundys?", "replaced_at": customer[0]["details"]["edits"][0]["replaced_at"]}])
    );
    assert_eq!(customer[0]["details"]["edits"].as_array().unwrap().len(), 1);

    let revoke = meta_webhook(
        "messages",
        "messages",
        json!({
            "from": CUSTOMER, "id": "wamid.CHG.1-revoke", "timestamp": Utc::now().timestamp().to_string(),
            "type": "revoke", "revoke": {"original_message_id": "wamid.CHG.1"}
        }),
    );
    assert_eq!(post_meta(&t, &revoke).await.status(), 200);
    let (_, messages) = crate::inbox::messages(&t).await;
    let customer: Vec<&Value> = messages
        .iter()
        .filter(|m| m["role"] == "customer")
        .collect();
    assert_eq!(customer.len(), 1);
    assert!(
        customer[0]["details"]["deleted_at"].is_string(),
        "{}",
        customer[0]
    );

    // Both changes are events; the bot answered once, and did not answer the edit.
    let events = t.get("/api/v1/events?after=0&limit=1000").await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    let count = |kinds: &[&str], kind: &str| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(count(&kinds, "message.edited"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "message.deleted"), 1, "{kinds:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sends(&graph).await.len(), 1);

    // A change to a message never stored is acknowledged and ignored.
    let stray = meta_webhook(
        "messages",
        "messages",
        json!({"from": CUSTOMER, "id": "wamid.CHG.9", "timestamp": "1739321100",
               "type": "revoke", "revoke": {"original_message_id": "wamid.NEVER"}}),
    );
    let response = post_meta(&t, &stray).await;
    assert_eq!(response.status(), 200);
    assert_eq!(t.app.store.journal_backlog().await.unwrap().entries, 0);
    let after = t.get("/api/v1/events?after=0&limit=1000").await;
    assert_eq!(
        after["events"], events["events"],
        "no event, nothing changed"
    );

    // Defect: a customer's edit or deletion naming the bot's message rewrote it or marked it
    // deleted. A customer changes only what they sent.
    for (id, item) in [
        (
            "wamid.CHG.10",
            json!({"type": "edit", "edit": {"original_message_id": "wamid.OUT.changes",
            "message": {"type": "text", "text": {"body": "We give everything away for free."}}}}),
        ),
        (
            "wamid.CHG.11",
            json!({"type": "revoke", "revoke": {"original_message_id": "wamid.OUT.changes"}}),
        ),
    ] {
        let mut item = item;
        item["from"] = json!(CUSTOMER);
        item["id"] = json!(id);
        item["timestamp"] = json!(Utc::now().timestamp().to_string());
        let response = post_meta(&t, &meta_webhook("messages", "messages", item)).await;
        assert_eq!(response.status(), 200);
    }
    let (_, messages) = crate::inbox::messages(&t).await;
    let ours: Vec<&Value> = messages
        .iter()
        .filter(|m| m["role"] != "customer")
        .collect();
    assert!(!ours.is_empty(), "{messages:?}");
    for m in ours {
        assert_ne!(m["text"], "We give everything away for free.", "{m}");
        assert!(
            m["details"].get("deleted_at").is_none_or(Value::is_null),
            "{m}"
        );
        assert!(
            m["details"]
                .get("edits")
                .is_none_or(|e| e.as_array().is_some_and(Vec::is_empty)),
            "{m}"
        );
    }
    let last = t.get("/api/v1/events?after=0&limit=1000").await;
    assert_eq!(
        last["events"], events["events"],
        "no event, nothing changed"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_message_deleted_before_the_bot_answers_is_not_answered() {
    let graph = graph().await;
    // The turn waits a moment for more messages, as in production: the deletion lands first.
    let t = crate::webhooks::meta_app_with(&graph, json!({}), false, |s| {
        s.pipeline.debounce_ms = 400;
    })
    .await
    .unwrap();
    // Both arrive in one delivery: the message, then its deletion, before any worker runs.
    let message =
        serde_json::from_slice::<Value>(&meta_text("wamid.DEL.1", "What are your prices?"))
            .unwrap()["entry"][0]["changes"][0]["value"]["messages"][0]
            .clone();
    let revoke = json!({"from": CUSTOMER, "id": "wamid.DEL.1-revoke", "timestamp": Utc::now().timestamp().to_string(),
                        "type": "revoke", "revoke": {"original_message_id": "wamid.DEL.1"}});
    let mut body: Value =
        serde_json::from_slice(&meta_webhook("messages", "messages", message)).unwrap();
    body["entry"][0]["changes"][0]["value"]["messages"]
        .as_array_mut()
        .unwrap()
        .push(revoke);
    post_meta(&t, &serde_json::to_vec(&body).unwrap()).await;
    eventually(Duration::from_secs(20), || async {
        let jobs = t.get("/api/v1/jobs/counts").await;
        (jobs["pending"].as_i64().unwrap_or(0) == 0 && jobs["running"].as_i64().unwrap_or(0) == 0)
            .then_some(())
    })
    .await
    .expect("the turn ran");
    let (_, messages) = crate::inbox::messages(&t).await;
    assert_eq!(messages.len(), 1, "no reply: {messages:?}");
    assert!(sends(&graph).await.is_empty());
    t.stop().await;
}

#[tokio::test]
async fn a_coexistence_echo_is_recorded_and_silences_the_bot() {
    let graph = graph().await;
    let t = meta_app(&graph, json!({})).await;
    post_meta(&t, &meta_text("wamid.ECHO.1", "What time do you open?")).await;
    wait_for_sends(&graph, 1).await;

    // A person answers from the WhatsApp Business app on the same number.
    let echo = meta_webhook(
        "smb_message_echoes",
        "message_echoes",
        json!({
            "from": "15550783881", "to": format!("+{CUSTOMER}"), "id": "wamid.ECHO.app",
            "timestamp": Utc::now().timestamp().to_string(), "type": "text",
            "text": {"body": "Hi, it's Marta from the shop, I'll help you"}
        }),
    );
    assert_eq!(post_meta(&t, &echo).await.status(), 200);
    let (id, messages) = eventually(Duration::from_secs(10), || async {
        let (id, m) = crate::inbox::messages(&t).await;
        m.iter()
            .any(|m| m["text"] == "Hi, it's Marta from the shop, I'll help you")
            .then_some((id, m))
    })
    .await
    .expect("the echo is in the conversation");
    let echoed = messages
        .iter()
        .find(|m| m["text"] == "Hi, it's Marta from the shop, I'll help you")
        .unwrap();
    assert_eq!(echoed["role"], "agent");
    assert_eq!(echoed["direction"], "outbound");
    let conversation = t.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(conversation["status"], "escalated");
    assert_eq!(conversation["status_reason"], "human_takeover");

    // The customer goes on talking to the person: the bot stays silent.
    post_meta(&t, &meta_text("wamid.ECHO.2", "Thanks! And on Sunday?")).await;
    eventually(Duration::from_secs(20), || async {
        let jobs = t.get("/api/v1/jobs/counts").await;
        (jobs["pending"].as_i64().unwrap_or(0) == 0 && jobs["running"].as_i64().unwrap_or(0) == 0)
            .then_some(())
    })
    .await
    .expect("the turn ran");
    assert_eq!(sends(&graph).await.len(), 1, "only the first answer");
    t.stop().await;
}

#[tokio::test]
async fn evolution_edits_and_deletions_change_the_original_message() {
    let evolution = evolution_server().await;
    let t = TestApp::start(Options::default()).await.unwrap();
    let (status, channel) = t
        .post(
            "/api/v1/channels",
            &json!({
                "name": "QR number", "provider": "evolution", "instance": "support-bot",
                "create_instance": false,
                "credentials": {"server_url": evolution.uri(), "api_key": "evo-key", "webhook_secret": "evo-secret"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let channel = channel["id"].as_str().unwrap().to_string();
    let hook = |name: &str| {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/evolution/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        t.client
            .post(format!("{}/webhooks/evolution/{channel}", t.url))
            .header("content-type", "application/json")
            .header("x-palaver-webhook-token", "evo-secret")
            .body(body)
            .send()
    };
    for name in [
        "webhook.messages.upsert.text_conversation.json",
        "webhook.messages.edited.text.json",
    ] {
        assert_eq!(hook(name).await.unwrap().status(), 200);
    }
    t.settle().await;
    let (_, messages) = crate::inbox::messages(&t).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["text"], "Olá, qual o horário de sábado?");
    assert_eq!(
        messages[0]["details"]["edits"][0]["text"],
        "Olá, qual o horário de atendimento?"
    );
    assert_eq!(
        hook("webhook.messages.delete.json").await.unwrap().status(),
        200
    );
    t.settle().await;
    let (_, messages) = crate::inbox::messages(&t).await;
    assert_eq!(messages[0]["details"]["deleted_at"], "2026-05-06T14:38:27Z");
    t.stop().await;
}
