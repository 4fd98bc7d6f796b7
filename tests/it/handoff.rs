//! A handoff from start to end, as a customer lives it: options under the bot's answers (buttons
//! on Meta, numbered lines on Evolution) and a tap or a number that reaches a person; business
//! hours that tell a customer when someone will answer; an escalation no one picks up that goes
//! back to the bot; a customer who asks for the bot again.

use std::time::Duration;

use chrono::{Datelike, Utc};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::app::{eventually, Options, TestApp};
use crate::webhooks::{
    evolution_server, meta_app, meta_text, post_meta, sends, wait_for_sends, CUSTOMER, PHONE_ID,
};

const SUPPORT: &str = "5511900000000";
const ON_CALL: &str = "5511977776666";

async fn graph() -> MockServer {
    crate::webhooks::graph_accepting("wamid.OUT.handoff").await
}

/// A Meta webhook with the customer's tap on button `id` titled `title`.
fn meta_tap(message_id: &str, id: &str, title: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
            "contacts": [{"profile": {"name": "Test Customer"}, "wa_id": CUSTOMER}],
            "messages": [{
                "context": {"from": "15550783881", "id": "wamid.OUT.handoff"},
                "from": CUSTOMER, "id": message_id, "timestamp": Utc::now().timestamp().to_string(),
                "type": "interactive",
                "interactive": {"type": "button_reply", "button_reply": {"id": id, "title": title}}
            }]
        }}]}]
    }))
    .unwrap()
}

/// The one conversation, once `check` holds for it.
async fn conversation_when(t: &TestApp, check: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(30), || async {
        let list = t.get("/api/v1/conversations").await;
        list.as_array()
            .and_then(|l| {
                l.iter()
                    .find(|c| c["contact"]["wa_id"] == CUSTOMER)
                    .cloned()
            })
            .filter(|c| check(c))
    })
    .await
    .expect("the conversation reached the expected state")
}

async fn messages(t: &TestApp, conversation: &str) -> Vec<Value> {
    t.get(&format!("/api/v1/conversations/{conversation}/messages"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// Texts sent through the Graph mock to `to`.
async fn texts_to(graph: &MockServer, to: &str) -> Vec<String> {
    sends(graph)
        .await
        .into_iter()
        .filter(|b| b["to"] == to)
        .map(|b| {
            b.pointer("/text/body")
                .or_else(|| b.pointer("/interactive/body/text"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_talk_to_a_person_button_under_an_answer_hands_over_when_tapped() {
    let graph = graph().await;
    let t = meta_app(
        &graph,
        json!({"interactive": {"enabled": true, "suggestions": ["Opening hours"]}}),
    )
    .await;
    post_meta(&t, &meta_text("wamid.BTN.1", "What time do you open?")).await;
    let sent = wait_for_sends(&graph, 1).await;
    // The answer goes as an interactive message with two reply buttons.
    assert_eq!(sent[0]["type"], "interactive", "{}", sent[0]);
    assert_eq!(sent[0]["interactive"]["type"], "button");
    assert_eq!(
        sent[0]["interactive"]["action"]["buttons"],
        json!([
            {"type": "reply", "reply": {"id": "palaver:ask:1", "title": "Opening hours"}},
            {"type": "reply", "reply": {"id": "palaver:person", "title": "Talk to a person"}}
        ])
    );
    assert!(!sent[0]["interactive"]["body"]["text"]
        .as_str()
        .unwrap()
        .is_empty());

    // Tapping the person button hands the conversation over.
    post_meta(
        &t,
        &meta_tap("wamid.BTN.2", "palaver:person", "Talk to a person"),
    )
    .await;
    let conversation = conversation_when(&t, |c| c["status"] == "escalated").await;
    assert_eq!(conversation["status_reason"], "human_request");
    let id = conversation["id"].as_str().unwrap();
    let escalations = t.get(&format!("/api/v1/conversations/{id}")).await["escalations"].clone();
    assert_eq!(escalations[0]["detail"], "chose \"Talk to a person\"");
    let sent = wait_for_sends(&graph, 2).await;
    assert_eq!(
        sent[1]["text"]["body"],
        palaver::domain::EscalationSettings::default().customer_message
    );
    t.stop().await;
}

/// An Evolution text message from the customer.
fn evolution_text(id: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event": "messages.upsert",
        "instance": "support-bot",
        "data": {
            "key": {"remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "id": id},
            "pushName": "Maria Silva",
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": Utc::now().timestamp()
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn evolution_gets_numbered_options_and_a_number_picks_one() {
    let evolution = evolution_server().await;
    Mock::given(method("POST"))
        .and(path("/message/sendText/support-bot"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "key": {"remoteJid": "5511988887777@s.whatsapp.net", "fromMe": true, "id": "3EB0SENT1"},
            "status": "PENDING"
        })))
        .mount(&evolution)
        .await;
    let t = TestApp::start(Options {
        workers: true,
        ..Default::default()
    })
    .await
    .unwrap();
    t.demo_agent(
        "demo",
        json!({
            "confidence_threshold": 0.2,
            "interactive": {"enabled": true, "suggestions": ["Opening hours"], "talk_to_person": "Falar com alguém"}
        }),
    )
    .await;
    let (status, channel) = t
        .post(
            "/api/v1/channels",
            &json!({
                "name": "QR number", "provider": "evolution", "instance": "support-bot",
                "create_instance": false, "agent": "demo",
                "credentials": {"server_url": evolution.uri(), "api_key": "evo-key", "webhook_secret": "evo-secret"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let channel = channel["id"].as_str().unwrap().to_string();
    let hook = |body: Vec<u8>| {
        t.client
            .post(format!("{}/webhooks/evolution/{channel}", t.url))
            .header("content-type", "application/json")
            .header("x-palaver-webhook-token", "evo-secret")
            .body(body)
            .send()
    };
    let texts = || async {
        evolution
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == "/message/sendText/support-bot")
            .map(|r| {
                serde_json::from_slice::<Value>(&r.body).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let response = hook(evolution_text("3EB0NUM1", "What time do you open?"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = eventually(Duration::from_secs(30), || async {
        texts().await.first().cloned()
    })
    .await
    .expect("the bot answered");
    assert!(
        first.ends_with("\n\n1. Opening hours\n2. Falar com alguém"),
        "numbered options end the answer: {first:?}"
    );

    // "2" picks the second option: a person.
    hook(evolution_text("3EB0NUM2", "2")).await.unwrap();
    let conversations = eventually(Duration::from_secs(30), || async {
        let list = t.get("/api/v1/conversations").await;
        (list[0]["status"] == "escalated").then_some(list)
    })
    .await
    .expect("\"2\" escalated");
    let id = conversations[0]["id"].as_str().unwrap();
    let escalations = t.get(&format!("/api/v1/conversations/{id}")).await["escalations"].clone();
    assert_eq!(escalations[0]["detail"], "chose \"Falar com alguém\"");
    t.stop().await;
}

/// Hours with one period, tomorrow 09:00-10:00 UTC: closed now, whenever the test runs.
fn open_tomorrow_only(on_call: Option<&str>) -> Value {
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(Utc::now()
        + chrono::Duration::days(1))
    .weekday()
    .num_days_from_monday()
        as usize];
    json!({
        "time_zone": "UTC",
        "weekly": {"mon": [], "tue": [], "wed": [], "thu": [], "fri": [], day: ["09:00-10:00"]},
        "on_call_contact": on_call,
    })
}

#[tokio::test]
async fn out_of_hours_the_customer_is_told_when_a_person_answers() {
    let graph = graph().await;
    let t = meta_app(
        &graph,
        json!({
            "escalation": {"support_contact": SUPPORT},
            "hours": open_tomorrow_only(None),
        }),
    )
    .await;
    post_meta(&t, &meta_text("wamid.HRS.1", "I want to talk to a person")).await;
    let conversation = conversation_when(&t, |c| c["status"] == "escalated").await;
    let told = eventually(Duration::from_secs(20), || async {
        texts_to(&graph, CUSTOMER).await.first().cloned()
    })
    .await
    .expect("the customer was told");
    assert_eq!(
        told,
        "Our team is away right now. A colleague will answer you here from tomorrow 09:00."
    );
    // The note to the support contact waits for opening time.
    let support = t
        .get("/api/v1/conversations")
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["contact"]["wa_id"] == SUPPORT)
        .cloned()
        .expect("a conversation with the support contact");
    let notes = messages(&t, support["id"].as_str().unwrap()).await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["status"], "queued", "held until opening");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(texts_to(&graph, SUPPORT).await.is_empty(), "not sent yet");
    let jobs = t.get("/api/v1/jobs?status=pending").await;
    let held = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["payload"]["message_id"] == notes[0]["id"])
        .cloned()
        .expect("the note's send job");
    let run_at = chrono::DateTime::parse_from_rfc3339(held["run_at"].as_str().unwrap()).unwrap();
    let tomorrow_nine = (Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(9, 0, 0)
        .unwrap()
        .and_utc();
    assert_eq!(run_at, tomorrow_nine);
    assert_eq!(conversation["status_reason"], "human_request");
    t.stop().await;
}

#[tokio::test]
async fn out_of_hours_an_on_call_contact_is_told_at_once() {
    let graph = graph().await;
    let t = meta_app(
        &graph,
        json!({
            "escalation": {"support_contact": SUPPORT},
            "hours": open_tomorrow_only(Some(ON_CALL)),
        }),
    )
    .await;
    // The on-call contact wrote today (on Meta a business writes first only with a template),
    // and is not answered by the bot.
    let mut hello: Value =
        serde_json::from_slice(&meta_text("wamid.ONCALL.1", "on call tonight")).unwrap();
    let value = &mut hello["entry"][0]["changes"][0]["value"];
    value["contacts"][0]["wa_id"] = json!(ON_CALL);
    value["messages"][0]["from"] = json!(ON_CALL);
    post_meta(&t, &serde_json::to_vec(&hello).unwrap()).await;
    post_meta(&t, &meta_text("wamid.HRS.2", "I want to talk to a person")).await;
    let note = eventually(Duration::from_secs(20), || async {
        texts_to(&graph, ON_CALL).await.first().cloned()
    })
    .await
    .expect("the on-call contact was told");
    assert!(note.contains("Test Customer"), "{note}");
    assert_eq!(texts_to(&graph, ON_CALL).await.len(), 1, "only the note");
    assert!(texts_to(&graph, SUPPORT).await.is_empty());
    t.stop().await;
}

#[tokio::test]
async fn an_escalation_no_person_answers_goes_back_to_the_bot_with_a_message() {
    let graph = graph().await;
    let t = meta_app(&graph, json!({"escalation": {"idle_minutes": 30}})).await;
    post_meta(&t, &meta_text("wamid.IDLE.1", "I want to talk to a person")).await;
    let conversation = conversation_when(&t, |c| c["status"] == "escalated").await;
    let id = conversation["id"].as_str().unwrap().to_string();
    wait_for_sends(&graph, 1).await;
    let pipeline = t.app.pipeline.clone();

    // Within the limit nothing happens; a person's reply restarts the clock.
    assert_eq!(pipeline.end_idle_handoffs(Utc::now()).await.unwrap(), 0);
    let (status, _) = t
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            &json!({"text": "Looking into it"}),
        )
        .await;
    assert_eq!(status, 202);
    let in_20 = Utc::now() + chrono::Duration::minutes(20);
    assert_eq!(pipeline.end_idle_handoffs(in_20).await.unwrap(), 0);

    // Past the limit since the person's last message: handed back, once, with a message.
    let in_31 = Utc::now() + chrono::Duration::minutes(31);
    assert_eq!(pipeline.end_idle_handoffs(in_31).await.unwrap(), 1);
    assert_eq!(pipeline.end_idle_handoffs(in_31).await.unwrap(), 0);
    let conversation = conversation_when(&t, |c| c["status"] == "active").await;
    assert_eq!(conversation["id"], id.as_str());
    let handback = palaver::domain::EscalationSettings::default().handback_message;
    let told = eventually(Duration::from_secs(20), || async {
        texts_to(&graph, CUSTOMER)
            .await
            .into_iter()
            .find(|t| *t == handback)
    })
    .await;
    assert!(told.is_some(), "the customer was told the bot is back");
    let escalations = t.get(&format!("/api/v1/conversations/{id}")).await["escalations"].clone();
    assert_eq!(escalations[0]["resolution"], "handed_back");
    assert_eq!(
        escalations[0]["closed_by"],
        "no reply from a person for 30 min"
    );
    let events = t.get("/api/v1/events?after=0&limit=1000").await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "conversation.handed_back"),
        "the transition is an event"
    );

    // The bot answers again, and the old trigger does not escalate anew.
    post_meta(&t, &meta_text("wamid.IDLE.2", "What time do you open?")).await;
    eventually(Duration::from_secs(30), || async {
        let m = messages(&t, &id).await;
        m.iter()
            .any(|m| {
                m["role"] == "bot"
                    && m["status"] == "sent"
                    && m["text"] != handback.as_str()
                    && m["text"]
                        != palaver::domain::EscalationSettings::default()
                            .customer_message
                            .as_str()
            })
            .then_some(())
    })
    .await
    .expect("the bot answered again");
    let conversation = conversation_when(&t, |_| true).await;
    assert_eq!(conversation["status"], "active");
    t.stop().await;
}

#[tokio::test]
async fn an_idle_escalation_can_be_closed_instead() {
    let graph = graph().await;
    let t = meta_app(
        &graph,
        json!({"escalation": {"idle_minutes": 5, "on_idle": "close"}}),
    )
    .await;
    post_meta(
        &t,
        &meta_text("wamid.CLOSE.1", "I want to talk to a person"),
    )
    .await;
    conversation_when(&t, |c| c["status"] == "escalated").await;
    let in_6 = Utc::now() + chrono::Duration::minutes(6);
    assert_eq!(t.app.pipeline.end_idle_handoffs(in_6).await.unwrap(), 1);
    conversation_when(&t, |c| c["status"] == "resolved").await;
    let closed = palaver::domain::EscalationSettings::default().closed_message;
    eventually(Duration::from_secs(20), || async {
        texts_to(&graph, CUSTOMER)
            .await
            .into_iter()
            .find(|t| *t == closed)
    })
    .await
    .expect("the customer was told");
    t.stop().await;
}

#[tokio::test]
async fn a_customer_waiting_for_a_person_can_ask_for_the_bot_again() {
    let graph = graph().await;
    let t = meta_app(&graph, json!({})).await;
    post_meta(&t, &meta_text("wamid.BACK.1", "I want to talk to a person")).await;
    conversation_when(&t, |c| c["status"] == "escalated").await;
    // Anything else stays with the person.
    post_meta(&t, &meta_text("wamid.BACK.2", "Hello? Anyone there?")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    conversation_when(&t, |c| c["status"] == "escalated").await;
    post_meta(&t, &meta_text("wamid.BACK.3", "back to the bot")).await;
    let conversation = conversation_when(&t, |c| c["status"] == "active").await;
    let id = conversation["id"].as_str().unwrap();
    let escalations = t.get(&format!("/api/v1/conversations/{id}")).await["escalations"].clone();
    assert_eq!(escalations[0]["resolution"], "handed_back");
    assert_eq!(
        escalations[0]["closed_by"],
        "the customer (\"back to the bot\")"
    );
    let handback = palaver::domain::EscalationSettings::default().handback_message;
    eventually(Duration::from_secs(20), || async {
        texts_to(&graph, CUSTOMER)
            .await
            .into_iter()
            .find(|t| *t == handback)
    })
    .await
    .expect("the bot said it is back");
    t.stop().await;
}

#[tokio::test]
async fn a_resolved_conversation_starts_fresh_when_the_customer_writes_again() {
    let graph = graph().await;
    let t = meta_app(&graph, json!({})).await;
    post_meta(
        &t,
        &meta_text("wamid.FRESH.1", "I want to talk to a person"),
    )
    .await;
    let conversation = conversation_when(&t, |c| c["status"] == "escalated").await;
    let id = conversation["id"].as_str().unwrap().to_string();
    let (status, _) = t
        .post(&format!("/api/v1/conversations/{id}/resolve"), &json!({}))
        .await;
    assert_eq!(status, 200);
    conversation_when(&t, |c| c["status"] == "resolved").await;
    post_meta(
        &t,
        &meta_text("wamid.FRESH.2", "What time do you open on Saturday?"),
    )
    .await;
    let answered = eventually(Duration::from_secs(30), || async {
        let m = messages(&t, &id).await;
        m.iter()
            .rev()
            .find(|m| {
                m["role"] == "bot"
                    && m["created_at"].as_str() > conversation["last_activity_at"].as_str()
            })
            .cloned()
    })
    .await
    .expect("the bot answered");
    // Answered from the knowledge (the test embedder does not rank well enough to check
    // the words), not with the escalation message.
    assert!(
        !answered["generation"]["sources"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{answered}"
    );
    let now = conversation_when(&t, |_| true).await;
    assert_eq!(now["status"], "active", "not escalated again");
    assert!(
        now["context_started_at"].as_str() > conversation["context_started_at"].as_str(),
        "the model does not see the old conversation"
    );
    t.stop().await;
}
