//! What the inbox shows beyond text: attachments fetched from the provider when a person opens
//! them (media is not kept), and a bot reply turned into an eval case that runs on the agent's
//! own knowledge.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::app::{eventually, TestApp};
use crate::webhooks::{meta_app, meta_text, post_meta, sends, sent_ok, GRAPH_VERSION, PHONE_ID};

const IMAGE_ID: &str = "1003383421387256";
const DOCUMENT_ID: &str = "3334567890987654321";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0 a small image";

/// A Meta fixture (`webhook.inbound.<name>.json`) sent now.
fn fixture(name: &str) -> Vec<u8> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/meta/webhook.inbound.{name}.json"));
    let mut body: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let message = &mut body["entry"][0]["changes"][0]["value"]["messages"][0];
    message["timestamp"] = json!(chrono::Utc::now().timestamp().to_string());
    body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!(PHONE_ID);
    serde_json::to_vec(&body).unwrap()
}

/// The Graph API: sends accepted, the image found, the document gone.
async fn graph() -> MockServer {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
        .respond_with(sent_ok("wamid.OUT.inbox"))
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/{GRAPH_VERSION}/{IMAGE_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "url": format!("{}/lookaside/{IMAGE_ID}", graph.uri()),
            "mime_type": "image/jpeg",
            "file_size": JPEG.len().to_string(),
            "id": IMAGE_ID
        })))
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/lookaside/{IMAGE_ID}")))
        .and(header("authorization", "Bearer test-token"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/jpeg")
                .set_body_bytes(JPEG),
        )
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/{GRAPH_VERSION}/{DOCUMENT_ID}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"message": "Unsupported get request.", "type": "GraphMethodException", "code": 100}
        })))
        .mount(&graph)
        .await;
    graph
}

/// The one conversation's messages, oldest first.
pub(crate) async fn messages(t: &TestApp) -> (String, Vec<Value>) {
    let list = t.get("/api/v1/conversations").await;
    let id = list[0]["id"].as_str().unwrap().to_string();
    let messages = t
        .get(&format!("/api/v1/conversations/{id}/messages"))
        .await
        .as_array()
        .unwrap()
        .clone();
    (id, messages)
}

/// The conversation a customer's `text` opens, once the bot's reply to it was sent.
async fn answered(t: &TestApp, id: &str, text: &str) -> String {
    post_meta(t, &meta_text(id, text)).await;
    eventually(Duration::from_secs(30), || async {
        let (id, m) = messages(t).await;
        m.iter()
            .any(|m| m["role"] == "bot" && m["status"] == "sent")
            .then_some(id)
    })
    .await
    .expect("the bot replied")
}

/// Documents sent through the Graph mock.
async fn documents_sent(graph: &MockServer) -> Vec<Value> {
    sends(graph)
        .await
        .into_iter()
        .filter(|b| b["type"] == "document")
        .collect()
}

fn id_of<'a>(messages: &'a [Value], kind: &str) -> &'a str {
    messages
        .iter()
        .find(|m| m["kind"] == kind)
        .and_then(|m| m["id"].as_str())
        .unwrap_or_else(|| panic!("no {kind} message in {messages:?}"))
}

#[tokio::test]
async fn attachments_are_fetched_from_the_provider_when_opened() {
    let graph = graph().await;
    let t = meta_app(&graph, json!({})).await;
    for name in ["image", "document", "text"] {
        assert_eq!(post_meta(&t, &fixture(name)).await.status(), 200);
    }
    let (conversation, messages) = eventually(Duration::from_secs(10), || async {
        let (id, m) = messages(&t).await;
        (m.iter().filter(|m| m["direction"] == "inbound").count() == 3).then_some((id, m))
    })
    .await
    .expect("three customer messages");
    let media = |message: &str| {
        t.request(
            reqwest::Method::GET,
            &format!("/api/v1/conversations/{conversation}/messages/{message}/media"),
        )
        .send()
    };

    // The image comes from the Graph API, as an image and nothing more.
    let image = media(id_of(&messages, "image")).await.unwrap();
    assert_eq!(image.status(), 200);
    let headers = image.headers().clone();
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline"));
    assert_eq!(image.bytes().await.unwrap().as_ref(), JPEG);

    // The provider no longer has the document: a 404 that says so.
    let document = media(id_of(&messages, "document")).await.unwrap();
    assert_eq!(document.status(), 404);
    let body: Value = document.json().await.unwrap();
    assert!(
        body.to_string().contains("no longer has the attachment"),
        "{body}"
    );

    // A text message has nothing to fetch; nor has a message of another conversation.
    let text = media(id_of(&messages, "text")).await.unwrap();
    assert_eq!(text.status(), 404);
    let elsewhere = t
        .request(
            reqwest::Method::GET,
            &format!(
                "/api/v1/conversations/{}/messages/{}/media",
                uuid::Uuid::new_v4(),
                id_of(&messages, "image")
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
    t.stop().await;
}

#[tokio::test]
async fn a_bot_reply_becomes_an_eval_case_that_runs_on_the_agents_knowledge() {
    let graph = graph().await;
    let t = meta_app(&graph, json!({})).await;
    post_meta(
        &t,
        &meta_text("wamid.CASE.1", "What are your opening hours on Saturday?"),
    )
    .await;
    let (conversation, messages) = eventually(Duration::from_secs(30), || async {
        let (id, m) = messages(&t).await;
        m.iter().any(|m| m["role"] == "bot").then_some((id, m))
    })
    .await
    .expect("the bot replied");
    let reply = messages.iter().find(|m| m["role"] == "bot").unwrap();
    let customer = id_of(&messages, "text");
    let case = |message: &str| {
        t.request(
            reqwest::Method::GET,
            &format!("/api/v1/conversations/{conversation}/messages/{message}/eval-case"),
        )
        .send()
    };

    // Only a bot reply makes a case.
    let refused = case(customer).await.unwrap();
    assert_eq!(refused.status(), 422);

    let made: Value = case(reply["id"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(made["agent"], "demo");
    let suite = made["suite"].as_str().unwrap();
    assert!(
        suite.contains("say: What are your opening hours on Saturday?"),
        "{suite}"
    );
    assert!(suite.contains("not_contains"), "{suite}");

    // Run as the page runs it: the text as written, with the author's expectation added.
    let edited = suite.replace(
        "expect:\n",
        "expect:\n  - retrieval_hit: {docs: [opening-hours.md], k: 3}\n",
    );
    assert_ne!(edited, suite, "{suite}");
    let (status, run) = t.post("/api/v1/eval/runs", &json!({"suite": edited})).await;
    assert_eq!(status, 202, "{run}");
    let path = format!("/api/v1/eval/runs/{}", run["id"].as_str().unwrap());
    let done = eventually(Duration::from_secs(120), || async {
        let run = t.get(&path).await;
        (run["status"] != "running").then_some(run)
    })
    .await
    .expect("the run finishes");
    // The agent's own documents were copied into the run and retrieved from.
    let results = &done["results"]["suites"][0];
    let knowledge = results["knowledge"].to_string();
    assert!(knowledge.contains("opening-hours.md"), "{done}");
    let hit = results["cases"][0]["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "retrieval_hit")
        .unwrap_or_else(|| panic!("no retrieval_hit result: {done}"));
    assert_eq!(hit["verdict"], "pass", "{hit}");
    t.stop().await;
}

/// A person's file reply, as the API takes it.
fn file_form(
    name: &str,
    mime: &str,
    bytes: &[u8],
    caption: Option<&str>,
) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec())
        .file_name(name.to_string())
        .mime_str(mime)
        .unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    match caption {
        Some(c) => form.text("text", c.to_string()),
        None => form,
    }
}

#[tokio::test]
async fn a_document_from_the_inbox_is_uploaded_to_meta_once_and_sent_once() {
    let graph = graph().await;
    let t = meta_app(&graph, json!({})).await;
    let conversation = answered(&t, "wamid.DOC.1", "Can you send me the menu?").await;
    // The upload answers once; the first send of the document fails with a 503.
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/media")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "MEDIA.UP.1"})))
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
        // A send, not the read receipt the person's reply makes.
        .and(|r: &wiremock::Request| !String::from_utf8_lossy(&r.body).contains("\"status\""))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "error": {"message": "Service temporarily unavailable", "code": 2, "type": "OAuthException"}
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&graph)
        .await;
    let url = format!("{}/api/v1/conversations/{conversation}/messages", t.url);
    let pdf = b"%PDF-1.4 a small menu";
    let send = |key: &'static str| {
        t.client
            .post(&url)
            .bearer_auth(crate::support::app::ADMIN_KEY)
            .header("idempotency-key", key)
            .multipart(file_form(
                "../../menu.pdf",
                "application/pdf",
                pdf,
                Some("Our menu"),
            ))
            .send()
    };
    let first = send("menu-1").await.unwrap();
    assert_eq!(first.status(), 202);
    let message: Value = first.json().await.unwrap();
    assert_eq!(message["kind"], "document");
    assert_eq!(message["text"], "Our menu");
    assert_eq!(
        message["details"]["media"]["filename"], "menu.pdf",
        "a name, never a path"
    );
    // The same request again is the same message.
    let again = send("menu-1").await.unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], message["id"]);

    let id = message["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(60), || async {
        let (_, m) = messages(&t).await;
        m.iter()
            .any(|m| m["id"] == id.as_str() && m["status"] == "sent")
            .then_some(())
    })
    .await
    .expect("the document was sent after the 503");
    let requests = graph.received_requests().await.unwrap();
    let uploads: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() == format!("/{GRAPH_VERSION}/{PHONE_ID}/media"))
        .collect();
    assert_eq!(uploads.len(), 1, "uploaded once, though sent twice");
    let upload = String::from_utf8_lossy(&uploads[0].body);
    for part in [
        "name=\"messaging_product\"",
        "whatsapp",
        "name=\"type\"",
        "application/pdf",
        "filename=\"menu.pdf\"",
        "%PDF-1.4 a small menu",
    ] {
        assert!(upload.contains(part), "{part} in {upload}");
    }
    assert_eq!(
        uploads[0].headers["authorization"], "Bearer test-token",
        "the channel's token"
    );
    let sends = documents_sent(&graph).await;
    assert_eq!(sends.len(), 2, "the 503, then the send: {sends:?}");
    for send in &sends {
        assert_eq!(
            send["document"],
            json!({"id": "MEDIA.UP.1", "caption": "Our menu", "filename": "menu.pdf"})
        );
    }
    // The inbox shows the document from Palaver's own copy.
    let served = t
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/conversations/{conversation}/messages/{id}/media"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/pdf");
    assert_eq!(served.bytes().await.unwrap().as_ref(), pdf);
    t.stop().await;
}

#[tokio::test]
async fn files_whatsapp_would_refuse_are_refused_with_the_field() {
    let graph = graph().await;
    let t = meta_app(&graph, json!({})).await;
    post_meta(&t, &meta_text("wamid.DOC.2", "Hello")).await;
    let (conversation, _) = eventually(Duration::from_secs(30), || async {
        let (id, m) = messages(&t).await;
        (!m.is_empty()).then_some((id, m))
    })
    .await
    .unwrap();
    let url = format!("{}/api/v1/conversations/{conversation}/messages", t.url);
    let big_png = vec![0u8; 6 * 1024 * 1024];
    let cases = [
        (
            file_form("empty.pdf", "application/pdf", b"", None),
            "file",
            "is empty",
        ),
        (
            file_form("big.png", "image/png", &big_png, None),
            "file",
            "5 MB",
        ),
        (
            file_form("note.ogg", "audio/ogg", b"OggS", Some("a caption")),
            "text",
            "caption",
        ),
        (
            reqwest::multipart::Form::new().text("text", "no file"),
            "file",
            "required",
        ),
    ];
    for (form, field, says) in cases {
        let response = t
            .client
            .post(&url)
            .bearer_auth(crate::support::app::ADMIN_KEY)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        let fields = body["error"]["fields"].to_string();
        assert!(fields.contains(field) && fields.contains(says), "{body}");
    }
    // Nothing was queued.
    let (_, m) = messages(&t).await;
    assert!(m.iter().all(|m| m["kind"] == "text"), "{m:?}");
    t.stop().await;
}

#[tokio::test]
async fn an_upload_refused_for_the_credentials_breaks_the_channel_and_hands_over() {
    let graph = graph().await;
    let t = meta_app(&graph, json!({})).await;
    let conversation = answered(&t, "wamid.DOC.3", "The menu please").await;
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/media")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {"message": "Error validating access token", "type": "OAuthException", "code": 190}
        })))
        .mount(&graph)
        .await;
    let response = t
        .client
        .post(format!(
            "{}/api/v1/conversations/{conversation}/messages",
            t.url
        ))
        .bearer_auth(crate::support::app::ADMIN_KEY)
        .multipart(file_form("menu.pdf", "application/pdf", b"%PDF-1.4", None))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = eventually(Duration::from_secs(30), || async {
        let (_, m) = messages(&t).await;
        m.into_iter()
            .find(|m| m["id"] == id.as_str() && m["status"] == "failed")
    })
    .await
    .expect("the document failed for good");
    assert!(
        failed["error"].to_string().contains("credentials refused"),
        "{failed}"
    );
    let channels = t.get("/api/v1/channels").await;
    assert_eq!(channels[0]["state"], "broken", "{channels}");
    let sends = documents_sent(&graph).await.len();
    assert_eq!(sends, 0, "nothing is sent without its upload");
    t.stop().await;
}

#[tokio::test]
async fn a_person_quotes_a_message_and_reacts_to_one() {
    let graph = graph().await;
    let t = meta_app(&graph, json!({})).await;
    let conversation = answered(&t, "wamid.QUOTE.1", "Do you have gluten-free bread?").await;
    let (_, messages) = messages(&t).await;
    let customer = messages.iter().find(|m| m["role"] == "customer").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A reply quoting the customer's message carries its WhatsApp id as the context.
    let (status, reply) = t
        .post(
            &format!("/api/v1/conversations/{conversation}/messages"),
            &json!({"text": "Yes, on Saturdays", "reply_to": customer}),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    // A reaction to it.
    let (status, reaction) = t
        .post(
            &format!("/api/v1/conversations/{conversation}/messages/{customer}/reaction"),
            &json!({"emoji": "👍"}),
        )
        .await;
    assert_eq!(status, 202, "{reaction}");
    assert_eq!(reaction["kind"], "reaction");
    let sent = eventually(Duration::from_secs(20), || async {
        let s = sends(&graph).await;
        (s.len() >= 3).then_some(s)
    })
    .await
    .expect("the reply and the reaction were sent");
    let quote = sent
        .iter()
        .find(|s| s["text"]["body"] == "Yes, on Saturdays")
        .expect("the reply");
    assert_eq!(quote["context"], json!({"message_id": "wamid.QUOTE.1"}));
    let react = sent
        .iter()
        .find(|s| s["type"] == "reaction")
        .expect("the reaction");
    assert_eq!(
        react["reaction"],
        json!({"message_id": "wamid.QUOTE.1", "emoji": "👍"})
    );

    // Quoting or reacting to what is not a message of this conversation is refused.
    let other = "01a20a50-0000-7000-8000-000000000000";
    let (status, body) = t
        .post(
            &format!("/api/v1/conversations/{conversation}/messages"),
            &json!({"text": "x", "reply_to": other}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["fields"][0]["field"], "reply_to");
    let (status, _) = t
        .post(
            &format!("/api/v1/conversations/{conversation}/messages/{customer}/reaction"),
            &json!({"emoji": "great"}),
        )
        .await;
    assert_eq!(status, 422);
    t.stop().await;
}

/// Defect: when a person replied while the bot was still waiting for more of the customer's
/// messages, the bot stood back (rightly) and nothing marked the customer's message read: it
/// kept two grey ticks under a reply. A person's reply marks what they answered read.
#[tokio::test]
async fn a_persons_reply_inside_the_bots_wait_marks_the_message_read() {
    let graph = graph().await;
    let t = crate::webhooks::meta_app_with(&graph, json!({}), false, |s| {
        s.pipeline.debounce_ms = 3_000;
    })
    .await
    .unwrap();
    post_meta(
        &t,
        &meta_text("wamid.WAIT.1", "Is the terrace open tonight?"),
    )
    .await;
    let conversation = eventually(Duration::from_secs(5), || async {
        let list = t.get("/api/v1/conversations").await;
        list[0]["id"].as_str().map(str::to_string)
    })
    .await
    .expect("the message is recorded");
    let reply = reply_as_person(&t, &conversation, "Yes, until 23:00. See you there!").await;
    assert_eq!(reply.status(), 202);
    let read = || async {
        graph
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .any(|b| b["status"] == "read" && b["message_id"] == "wamid.WAIT.1")
    };
    eventually(Duration::from_secs(10), || async {
        read().await.then_some(())
    })
    .await
    .expect("the customer's message is marked read");
    // Past the bot's wait: the person's message went out, and nothing from the bot.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let sent = sends(&graph).await;
    let texts: Vec<&Value> = sent.iter().filter(|b| b["type"] == "text").collect();
    assert_eq!(texts.len(), 1, "{sent:?}");
    assert_eq!(texts[0]["text"]["body"], "Yes, until 23:00. See you there!");
    t.stop().await;
}

/// Defect: the bot's reply failed to send (the Graph API answered 503), a person answered the
/// customer from the inbox, and the bot's reply, retried, then went out after the person's.
/// A bot reply a person has answered before it could be sent is withdrawn.
#[tokio::test]
async fn a_bot_reply_still_queued_when_a_person_answers_is_withdrawn() {
    const PERSON: &str = "Card, MB WAY or cash. Anything else?";
    let graph = MockServer::start().await;
    // The Graph API is down for everything but the person's message.
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
        .and(|r: &wiremock::Request| !String::from_utf8_lossy(&r.body).contains(PERSON))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "error": {"message": "Service temporarily unavailable", "code": 2, "type": "OAuthException"}
        })))
        .with_priority(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
        .respond_with(sent_ok("wamid.OUT.later"))
        .mount(&graph)
        .await;
    // The bot's reply is retried for as long as the test needs.
    let t = crate::webhooks::meta_app_with(&graph, json!({}), false, |s| {
        s.workers.max_attempts = 1000;
        s.workers.backoff_base_ms = 200;
    })
    .await
    .unwrap();
    post_meta(
        &t,
        &meta_text("wamid.STALE.1", "Which payment methods do you accept?"),
    )
    .await;
    // The bot's reply met the 503 and waits for another attempt.
    eventually(Duration::from_secs(30), || async {
        (!sends(&graph).await.is_empty()).then_some(())
    })
    .await
    .expect("the bot tried to reply");
    let (conversation, before) = messages(&t).await;
    let bot = before
        .iter()
        .find(|m| m["role"] == "bot")
        .expect("the bot's reply is recorded")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = reply_as_person(&t, &conversation, PERSON).await;
    assert_eq!(reply.status(), 202);
    let withdrawn = eventually(Duration::from_secs(60), || async {
        let (_, m) = messages(&t).await;
        m.into_iter()
            .find(|m| m["id"] == bot.as_str() && m["status"] != "queued")
    })
    .await
    .expect("the bot's reply is settled");
    assert_eq!(withdrawn["status"], "failed", "{withdrawn}");
    assert!(
        withdrawn["error"]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("withdrawn")),
        "{withdrawn}"
    );
    // The bot's attempts all met the 503 and stopped: once withdrawn it is tried no more.
    eventually(Duration::from_secs(30), || async {
        sends(&graph)
            .await
            .iter()
            .any(|b| b["text"]["body"] == PERSON)
            .then_some(())
    })
    .await
    .expect("the person's message was sent");
    let attempts = sends(&graph).await.len();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let sent = sends(&graph).await;
    assert_eq!(sent.len(), attempts, "{sent:?}");
    assert_eq!(
        sent.iter().filter(|b| b["text"]["body"] == PERSON).count(),
        1
    );
    // Withdrawn, not failed for want of a person: no new escalation says delivery failed.
    let conversation = t
        .get(&format!("/api/v1/conversations/{conversation}"))
        .await;
    assert_ne!(
        conversation["escalation"]["reason"], "delivery_failed",
        "{conversation}"
    );
    t.stop().await;
}

/// A person's `text` to the customer of `conversation`, from the inbox.
async fn reply_as_person(t: &TestApp, conversation: &str, text: &str) -> reqwest::Response {
    t.client
        .post(format!(
            "{}/api/v1/conversations/{conversation}/messages",
            t.url
        ))
        .bearer_auth(crate::support::app::ADMIN_KEY)
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap()
}
