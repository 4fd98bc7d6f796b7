//! Voice notes end to end: a WhatsApp voice note (OGG/Opus made by espeak-ng + opusenc, like a
//! push-to-talk note) arrives by Meta webhook, its media is downloaded from the mocked Graph API,
//! transcribed by whisper.cpp and answered from the knowledge base; spoken escalation keywords
//! escalate; with transcription off the agent's default voice reply is sent. The sandbox takes
//! audio uploads.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::app::{eventually, Options, TestApp};
use crate::webhooks::{post_meta, APP_SECRET, CUSTOMER, GRAPH_VERSION, PHONE_ID};

const MEDIA_ID: &str = "1234567890987654321";

/// A voice note speaking `text`, or `None` (after saying why) when espeak-ng, opusenc or the
/// Whisper model is missing and `PALAVER_REQUIRE_MODELS` is not set.
async fn voice_note(text: &str) -> Option<Vec<u8>> {
    palaver::testing::test_model("whisper-base").await?;
    let dir = tempfile::tempdir().unwrap();
    match palaver::speech::synth::voice_note(text, "en-us", dir.path()).await {
        Ok(bytes) => Some(bytes),
        Err(e) if !palaver::testing::models_required() => {
            eprintln!("skipping: cannot make a voice note: {e}");
            None
        }
        Err(e) => panic!("PALAVER_REQUIRE_MODELS=1 but no voice note could be made: {e}"),
    }
}

/// A Meta webhook carrying a push-to-talk voice note, as in `fixtures/meta`.
fn meta_voice(id: &str) -> Vec<u8> {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/meta/webhook.inbound.audio_voice_note.json");
    let mut body: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    let message = &mut body["entry"][0]["changes"][0]["value"]["messages"][0];
    message["id"] = json!(id);
    message["timestamp"] = json!(chrono::Utc::now().timestamp().to_string());
    assert_eq!(message["audio"]["id"], MEDIA_ID);
    serde_json::to_vec(&body).unwrap()
}

/// The Graph API: the media lookup, the download of `audio`, and message sends.
async fn graph_with_media(audio: Vec<u8>) -> MockServer {
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/{GRAPH_VERSION}/{MEDIA_ID}")))
        .and(header("authorization", "Bearer test-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "url": format!("{}/lookaside/{MEDIA_ID}.ogg", graph.uri()),
            "mime_type": "audio/ogg; codecs=opus",
            "file_size": audio.len().to_string(),
            "id": MEDIA_ID
        })))
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/lookaside/{MEDIA_ID}.ogg")))
        .and(header("authorization", "Bearer test-token"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "audio/ogg")
                .set_body_bytes(audio),
        )
        .mount(&graph)
        .await;
    mount_send(&graph).await;
    graph
}

/// The Graph API accepting every message we send.
async fn mount_send(graph: &MockServer) {
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": CUSTOMER, "wa_id": CUSTOMER}],
            "messages": [{"id": "wamid.OUT.voice"}]
        })))
        .mount(graph)
        .await;
}

/// An app with workers, the default embedder, the demo agent (`config` on top of the defaults) and a Meta
/// channel on `graph`.
async fn voice_app(graph: &MockServer, config: Value) -> Option<TestApp> {
    let uri = graph.uri();
    let t = TestApp::start(Options {
        workers: true,
        real_embedder: true,
        tweak: Box::new(move |s| {
            s.channels.meta_graph_url = uri;
            // One thread per note: tests run side by side, and ggml threads busy-wait.
            s.speech.threads = 1;
            s.workers.max_attempts = 2;
        }),
        ..Default::default()
    })
    .await?;
    t.demo_agent("demo", config).await;
    let (status, channel) = t
        .post(
            "/api/v1/channels",
            &json!({
                "name": "Casa Nube", "provider": "meta", "phone_number_id": PHONE_ID, "agent": "demo",
                "credentials": {"access_token": "test-token", "app_secret": APP_SECRET, "verify_token": "v"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    Some(t)
}

/// Text messages sent through the Graph mock.
async fn sent_texts(graph: &MockServer) -> Vec<String> {
    graph
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == format!("/{GRAPH_VERSION}/{PHONE_ID}/messages"))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|b| b["text"]["body"].as_str().map(str::to_owned))
        .collect()
}

async fn wait_for_reply(graph: &MockServer) -> String {
    eventually(Duration::from_secs(120), || async {
        sent_texts(graph).await.into_iter().next()
    })
    .await
    .expect("a reply was sent")
}

async fn media_downloads(graph: &MockServer) -> usize {
    graph
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().starts_with("/lookaside/"))
        .count()
}

/// The conversation's messages, as the inbox API shows them.
async fn messages(t: &TestApp) -> Vec<Value> {
    let conversations = t.get("/api/v1/conversations").await;
    let id = conversations[0]["id"].as_str().unwrap().to_string();
    t.get(&format!("/api/v1/conversations/{id}/messages"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_voice_note_through_meta_gets_a_reply_grounded_in_the_knowledge() {
    let Some(audio) = voice_note("Hello. What time do you open on Saturday?").await else {
        return;
    };
    let graph = graph_with_media(audio).await;
    let Some(t) = voice_app(&graph, json!({"confidence_threshold": 0.3})).await else {
        return;
    };
    let response = post_meta(&t, &meta_voice("wamid.IN.voice.1")).await;
    assert_eq!(response.status(), 200);

    let reply = wait_for_reply(&graph).await;
    // knowledge/opening-hours.md: Saturday 08:00 to 15:00.
    assert!(
        reply.contains("08:00") && reply.contains("15:00"),
        "{reply}"
    );
    assert_eq!(media_downloads(&graph).await, 1);

    // The transcript is stored on the message, with the language whisper detected.
    let messages = messages(&t).await;
    let voice = &messages[0];
    assert_eq!(voice["kind"], "audio");
    let transcript = voice["transcript"].as_str().unwrap().to_lowercase();
    assert!(transcript.contains("saturday"), "{transcript}");
    assert_eq!(voice["details"]["transcript_language"], "en", "{voice}");
    assert!(
        voice["details"]["transcript_language_probability"]
            .as_f64()
            .unwrap()
            > 0.5
    );
    t.stop().await;
}

#[tokio::test]
async fn a_spoken_escalation_keyword_escalates() {
    let Some(audio) = voice_note("I need a refund for my order, right now.").await else {
        return;
    };
    let graph = graph_with_media(audio).await;
    let config = json!({
        "escalation": {"keywords": ["refund"], "detect_human_request": false,
                       "customer_message": "A colleague will take over this conversation."}
    });
    let Some(t) = voice_app(&graph, config).await else {
        return;
    };
    assert_eq!(
        post_meta(&t, &meta_voice("wamid.IN.voice.2"))
            .await
            .status(),
        200
    );
    let reply = wait_for_reply(&graph).await;
    assert_eq!(reply, "A colleague will take over this conversation.");
    let conversation = &t.get("/api/v1/conversations").await[0];
    assert_eq!(conversation["status"], "escalated", "{conversation}");
    assert!(
        conversation["status_reason"]
            .as_str()
            .is_some_and(|r| r.contains("keyword")),
        "escalated for the keyword: {conversation}"
    );
    t.stop().await;
}

#[tokio::test]
async fn with_transcription_off_the_default_voice_reply_is_sent() {
    let Some(audio) = voice_note("What time do you open on Saturday?").await else {
        return;
    };
    let graph = graph_with_media(audio).await;
    let config = json!({
        "voice": {"transcribe": false, "default_reply": "Please type your question: I cannot listen to audio here."}
    });
    let Some(t) = voice_app(&graph, config).await else {
        return;
    };
    assert_eq!(
        post_meta(&t, &meta_voice("wamid.IN.voice.3"))
            .await
            .status(),
        200
    );
    let reply = wait_for_reply(&graph).await;
    assert_eq!(
        reply,
        "Please type your question: I cannot listen to audio here."
    );
    assert_eq!(media_downloads(&graph).await, 0, "nothing was downloaded");
    let messages = messages(&t).await;
    assert!(messages[0]["transcript"].is_null());
    // The reply records why it was the default one, for the inbox.
    assert_eq!(
        messages[1]["generation"]["note"], "the agent does not transcribe voice notes",
        "{:?}",
        messages[1]
    );
    t.stop().await;
}

#[tokio::test]
async fn expired_media_gets_the_default_voice_reply_instead_of_retrying() {
    let graph = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/{GRAPH_VERSION}/{MEDIA_ID}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!(
            {"error": {"message": "Unsupported get request.", "type": "GraphMethodException", "code": 100, "error_subcode": 33}}
        )))
        .mount(&graph)
        .await;
    mount_send(&graph).await;
    let Some(t) = voice_app(&graph, json!({})).await else {
        return;
    };
    assert_eq!(
        post_meta(&t, &meta_voice("wamid.IN.voice.4"))
            .await
            .status(),
        200
    );
    let reply = wait_for_reply(&graph).await;
    assert_eq!(
        reply,
        palaver::domain::VoiceSettings::default().default_reply
    );
    t.stop().await;
}

#[tokio::test]
async fn the_sandbox_answers_an_uploaded_voice_note() {
    let Some(audio) = voice_note("Which payment methods do you accept?").await else {
        return;
    };
    let Some(t) = TestApp::start(Options {
        real_embedder: true,
        tweak: Box::new(|s| s.speech.threads = 1),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    t.demo_agent("demo", json!({"confidence_threshold": 0.3}))
        .await;
    let form = reqwest::multipart::Form::new()
        .text("session", "voice-upload")
        .part(
            "audio",
            reqwest::multipart::Part::bytes(audio)
                .file_name("note.ogg")
                .mime_str("audio/ogg")
                .unwrap(),
        );
    let response = t
        .request(reqwest::Method::POST, "/api/v1/sandbox/demo/messages")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body["question"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("payment"),
        "{body}"
    );
    // knowledge/faq.md: cash, cards and MB WAY.
    assert!(body["reply"].as_str().unwrap().contains("MB WAY"), "{body}");

    // Something that is not audio gets the default voice reply, as a customer would.
    let form = reqwest::multipart::Form::new().part(
        "audio",
        reqwest::multipart::Part::bytes(b"not audio at all".to_vec()).file_name("x.ogg"),
    );
    let response = t
        .request(reqwest::Method::POST, "/api/v1/sandbox/demo/messages")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["reply"],
        palaver::domain::VoiceSettings::default().default_reply,
        "{body}"
    );
    // The prompt author sees why.
    let note = body["generation"]["note"].as_str().unwrap_or_default();
    assert!(note.contains("unsupported audio format"), "{body}");
    t.stop().await;
}
