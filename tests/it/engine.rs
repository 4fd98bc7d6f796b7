//! The conversation engine through the sandbox API: the gate, each escalation trigger and its
//! effects, silence while escalated, handing back, the OpenAI-compatible answerer (against
//! wiremock), conversation memory, and sandbox conversations kept apart from real ones.

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::app::{Options, TestApp};

async fn say(t: &TestApp, agent: &str, text: &str) -> Value {
    say_in(t, agent, "s1", text).await
}

async fn say_in(t: &TestApp, agent: &str, session: &str, text: &str) -> Value {
    let (status, body) = t
        .post(
            &format!("/api/v1/sandbox/{agent}/messages"),
            &json!({"text": text, "session": session}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn sandbox_conversation(t: &TestApp) -> String {
    let list = t.get("/api/v1/conversations?sandbox=true").await;
    list[0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn answers_from_the_knowledge_base_with_sources_and_timings() {
    let t = TestApp::start(Options::default()).await.unwrap();
    t.demo_agent("demo", json!({"confidence_threshold": 0.3}))
        .await;
    let out = say(&t, "demo", "Which payment methods do you accept? MB WAY?").await;
    assert_eq!(out["action"], "replied", "{out}");
    let reply = out["reply"].as_str().unwrap();
    assert!(reply.contains("MB WAY"), "{reply}");
    // The sources are shown beside the reply, not written into it (the agent does not cite).
    assert!(!reply.contains("Source"), "{reply}");
    assert!(!out["sources"].as_array().unwrap().is_empty());
    assert!(!out["generation"]["cited"].as_array().unwrap().is_empty());
    let g = &out["generation"];
    assert_eq!(g["answerer"], "extractive");
    assert!(g["confidence"].as_f64().unwrap() >= 0.3);
    assert!(g["retrieve_ms"].as_f64().unwrap() > 0.0);
    assert!(g["total_ms"].as_f64().unwrap() >= g["retrieve_ms"].as_f64().unwrap());
    assert!(g["tokens_in"].as_u64().unwrap() > 0);
    assert!(g["prompt"].as_str().unwrap().contains("<<<SOURCES"));
    // Sandbox conversations are kept apart from real ones.
    assert!(t
        .get("/api/v1/conversations")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        t.get("/api/v1/conversations?sandbox=true")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    t.stop().await;
}

#[tokio::test]
async fn a_request_for_a_person_escalates_and_the_bot_stays_silent_until_handed_back() {
    let t = TestApp::start(Options::default()).await.unwrap();
    t.demo_agent(
        "demo",
        json!({"confidence_threshold": 0.3, "escalation": {"support_contact": "351912345678"}}),
    )
    .await;
    let out = say(&t, "demo", "I want to talk to a person").await;
    assert_eq!(out["action"], "escalated", "{out}");
    assert_eq!(out["escalation"]["reason"], "human_request");
    assert!(out["reply"].as_str().unwrap().contains("colleague"));
    let note = out["support_note"].as_str().unwrap();
    assert!(note.contains("asked for a person"), "{note}");

    let id = sandbox_conversation(&t).await;
    let conversation = t.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(conversation["status"], "escalated");
    assert_eq!(conversation["escalations"].as_array().unwrap().len(), 1);

    // Silent while a person owns the conversation.
    let silent = say(&t, "demo", "Which payment methods do you accept?").await;
    assert_eq!(silent["action"], "silent");
    assert_eq!(silent["silence"], "human_owned");

    let (status, back) = t
        .post(&format!("/api/v1/conversations/{id}/handback"), &json!({}))
        .await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["status"], "active");
    assert_eq!(back["escalations"][0]["resolution"], "handed_back");
    assert_eq!(back["escalations"][0]["closed_by"], "operator");
    assert!(back["escalations"][0]["closed_by_user"].is_null());
    let answered = say(&t, "demo", "Which payment methods do you accept? MB WAY?").await;
    assert_eq!(answered["action"], "replied", "{answered}");

    // Resolving closes it; the next customer message reopens it for the bot.
    say(&t, "demo", "humano por favor").await;
    let (status, resolved) = t
        .post(&format!("/api/v1/conversations/{id}/resolve"), &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(resolved["status"], "resolved");
    let again = say(&t, "demo", "Which payment methods do you accept? MB WAY?").await;
    assert_eq!(again["action"], "replied");
    t.stop().await;
}

#[tokio::test]
async fn keywords_escalate_in_any_case_and_accent() {
    let t = TestApp::start(Options::default()).await.unwrap();
    t.demo_agent(
        "demo",
        json!({"escalation": {"keywords": ["reclamação", "atendente"]}}),
    )
    .await;
    let out = say(&t, "demo", "Tenho uma RECLAMACAO sobre o bolo").await;
    assert_eq!(out["action"], "escalated");
    assert_eq!(
        out["escalation"],
        json!({"reason": "keyword", "detail": "reclamação"})
    );
    let other = say_in(&t, "demo", "s2", "Quero um atendente.").await;
    assert_eq!(other["escalation"]["detail"], "atendente");
    t.stop().await;
}

#[tokio::test]
async fn questions_the_knowledge_base_cannot_answer_escalate_or_get_an_answer_as_configured() {
    let t = TestApp::start(Options::default()).await.unwrap();
    t.demo_agent("demo", json!({})).await;
    let out = say(&t, "demo", "Who won the football match yesterday?").await;
    assert_eq!(out["action"], "escalated", "{out}");
    assert_eq!(out["escalation"]["reason"], "low_confidence");

    let (status, _) = t
        .post("/api/v1/agents", &json!({"name": "lenient", "collection": "demo", "escalation": {"on_low_confidence": "answer"}}))
        .await;
    assert_eq!(status, 201);
    let out = say(&t, "lenient", "Who won the football match yesterday?").await;
    assert_eq!(out["action"], "replied", "{out}");
    t.stop().await;
}

#[tokio::test]
async fn inactive_agents_and_reactions_get_no_reply() {
    let t = TestApp::start(Options::default()).await.unwrap();
    t.demo_agent("demo", json!({})).await;
    let off = t
        .request(reqwest::Method::PATCH, "/api/v1/agents/demo")
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 200);
    let out = say(&t, "demo", "Which payment methods do you accept?").await;
    assert_eq!(out["action"], "silent");
    assert_eq!(out["silence"], "agent_inactive");
    t.stop().await;
}

#[tokio::test]
async fn overrides_are_validated_and_tried_without_saving() {
    let t = TestApp::start(Options::default()).await.unwrap();
    t.demo_agent("demo", json!({})).await;
    let (status, body) = t
        .post(
            "/api/v1/sandbox/demo/messages",
            &json!({"text": "hi", "overrides": {"temperature": 7}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = t
        .post(
            "/api/v1/sandbox/demo/messages",
            &json!({"text": "hi", "overrides": {"answerer": "openai"}}),
        )
        .await;
    // No OpenAI-compatible server is configured: the answerer fails, and a person takes over.
    assert_eq!(status, 200, "{body}");
    assert!(
        matches!(body["action"].as_str(), Some("escalated")),
        "{body}"
    );
    assert_eq!(
        t.get("/api/v1/agents/demo").await["answerer"],
        "extractive",
        "nothing saved"
    );
    t.stop().await;
}

fn chat_completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 321, "completion_tokens": 9, "total_tokens": 330}
    })
}

async fn openai_app(server: &MockServer) -> TestApp {
    let uri = server.uri();
    TestApp::start(Options {
        tweak: Box::new(move |s| {
            s.llm.openai.base_url = format!("{uri}/v1");
            s.llm.openai.api_key = Some(secrecy::SecretString::from("sk-test".to_string()));
            s.llm.openai.model = "test-model".into();
            s.llm.openai.max_retries = 1;
        }),
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_openai_answerer_gets_sources_and_history_in_its_prompt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(chat_completion("We take MB WAY and cards. (source 1)")),
        )
        .mount(&server)
        .await;
    let t = openai_app(&server).await;
    t.demo_agent("demo", json!({"answerer": "openai", "temperature": 0.3}))
        .await;
    let first = say(&t, "demo", "Which payment methods do you accept?").await;
    assert_eq!(first["action"], "replied", "{first}");
    // The model's "(source 1)" is not said to the customer: the agent does not cite.
    assert_eq!(first["reply"], "We take MB WAY and cards.");
    assert_eq!(first["generation"]["model"], "test-model");
    assert_eq!(first["generation"]["tokens_in"], 321);
    assert_eq!(first["generation"]["tokens_out"], 9);

    let second = say(&t, "demo", "And do you take cash?").await;
    assert_eq!(second["action"], "replied");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let body: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(body["model"], "test-model");
    assert!((body["temperature"].as_f64().unwrap() - 0.3).abs() < 1e-6);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(
        system.contains("<<<SOURCES") && system.contains("MB WAY"),
        "{system}"
    );
    // The earlier turn is history: question and answer, then the new question.
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(
        messages[1]["content"],
        "Which payment methods do you accept?"
    );
    assert_eq!(messages[3]["content"], "And do you take cash?");

    // /reset starts a fresh context: no history in the next prompt.
    let (status, _) = t
        .post("/api/v1/sandbox/demo/reset", &json!({"session": "s1"}))
        .await;
    assert_eq!(status, 204);
    say(&t, "demo", "Do you take cash?").await;
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[2].body).unwrap();
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
    t.stop().await;
}

#[tokio::test]
async fn a_failing_answerer_hands_the_conversation_to_a_person() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&server)
        .await;
    let t = openai_app(&server).await;
    t.demo_agent("demo", json!({"answerer": "openai"})).await;
    let out = say(&t, "demo", "Which payment methods do you accept?").await;
    assert_eq!(out["action"], "escalated", "{out}");
    assert_eq!(out["escalation"]["reason"], "answerer_failed");
    assert!(
        server.received_requests().await.unwrap().len() >= 2,
        "transient errors were retried"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_model_that_finds_no_answer_escalates() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(chat_completion("NO_ANSWER")))
        .mount(&server)
        .await;
    let t = openai_app(&server).await;
    t.demo_agent("demo", json!({"answerer": "openai"})).await;
    let out = say(&t, "demo", "Which payment methods do you accept?").await;
    assert_eq!(out["action"], "escalated", "{out}");
    assert_eq!(out["escalation"]["reason"], "low_confidence");
    t.stop().await;
}
