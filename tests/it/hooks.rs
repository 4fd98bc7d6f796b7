//! Outgoing webhooks through the real server, on both backends: a subscription receives signed
//! deliveries that a receiver verifies, in order per conversation; it survives its receiver
//! failing five times; it is paused after the configured failures in a row and, resumed, sends
//! what waited; targets on private addresses are refused unless the instance allows them; a
//! workspace never sees another's subscriptions or events.

use std::time::Duration;

use palaver::events::hooks::{verify, SIGNATURE_HEADER};
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::app::{eventually, Options, TestApp, ADMIN_KEY};
use crate::webhooks::{meta_app_with, meta_text, mount_send, post_meta, sent_ok};

/// A delivery as the receiver got it, checked against the subscription's secret.
#[derive(Debug)]
struct Received {
    delivery: String,
    event: Value,
    signed: bool,
}

async fn received(receiver: &MockServer, secret: &str) -> Vec<Received> {
    let now = chrono::Utc::now().timestamp();
    receiver
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let header = r.headers[SIGNATURE_HEADER].to_str().unwrap().to_string();
            let event: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(
                r.headers["x-palaver-event"].to_str().unwrap(),
                event["type"].as_str().unwrap()
            );
            assert_eq!(
                r.headers["x-palaver-event-id"].to_str().unwrap(),
                event["id"].to_string()
            );
            Received {
                delivery: r.headers["x-palaver-delivery"]
                    .to_str()
                    .unwrap()
                    .to_string(),
                signed: verify(secret, &header, &r.body, now, Duration::from_secs(300)),
                event,
            }
        })
        .collect()
}

async fn subscribe(t: &TestApp, url: &str, events: Value) -> (String, String) {
    let (status, hook) = t
        .post(
            "/api/v1/webhooks",
            &json!({"url": url, "events": events, "description": "CRM"}),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{hook}");
    let id = hook["id"].as_str().unwrap().to_string();
    // The secret is shown once.
    let shown = t.get(&format!("/api/v1/webhooks/{id}")).await;
    assert!(!shown.to_string().contains(&secret), "{shown}");
    assert_eq!(shown["status"], "active");
    (id, secret)
}

async fn signed_deliveries_survive_a_failing_receiver(postgres: bool) {
    let graph = MockServer::start().await;
    mount_send(&graph, sent_ok("wamid.OUT.H1")).await;
    let Some(t) = meta_app_with(&graph, json!({}), postgres, |s| {
        s.events.hook_pause_after = 8;
        s.workers.max_attempts = 20;
    })
    .await
    else {
        return;
    };
    let receiver = MockServer::start().await;
    // The receiver fails five times, then accepts everything.
    Mock::given(method("POST"))
        .and(path("/crm/hook"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(5)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/hook"))
        .respond_with(ResponseTemplate::new(204))
        .with_priority(2)
        .mount(&receiver)
        .await;
    let (hook, secret) = subscribe(
        &t,
        &format!("{}/crm/hook", receiver.uri()),
        json!(["message.received", "message.sent"]),
    )
    .await;

    let body = meta_text("wamid.IN.H1", "Which payment methods do you accept?");
    assert_eq!(post_meta(&t, &body).await.status(), 200);

    let deliveries = eventually(Duration::from_secs(30), || async {
        let list = t.get(&format!("/api/v1/webhooks/{hook}/deliveries")).await;
        let all = list.as_array()?.clone();
        (all.len() == 2 && all.iter().all(|d| d["status"] == "delivered")).then_some(all)
    })
    .await
    .expect("both events delivered");
    let got = received(&receiver, &secret).await;
    assert!(
        got.iter().all(|r| r.signed),
        "every request verifies: {got:#?}"
    );
    // Five failed attempts of the first delivery, then it, then the next one: in order.
    assert_eq!(got.len(), 7, "{got:#?}");
    assert!(got[..6].iter().all(|r| r.delivery == got[0].delivery));
    assert_eq!(got[0].event["type"], "message.received");
    assert_eq!(
        got[0].event["data"]["message"]["text"],
        "Which payment methods do you accept?"
    );
    assert_eq!(got[6].event["type"], "message.sent");
    assert!(got[0].event["id"].as_i64() < got[6].event["id"].as_i64());
    assert_eq!(
        got[0].event["conversation_id"],
        got[6].event["conversation_id"]
    );
    // The delivery log, newest first: attempts, status codes, timings.
    assert_eq!(deliveries[1]["event_type"], "message.received");
    assert_eq!(deliveries[1]["attempts"], 6);
    assert_eq!(deliveries[1]["response_status"], 204);
    assert!(deliveries[1]["response_ms"].is_u64());
    assert_eq!(deliveries[0]["attempts"], 1);
    let shown = t.get(&format!("/api/v1/webhooks/{hook}")).await;
    assert_eq!(shown["status"], "active", "{shown}");
    assert_eq!(shown["failures"], 0, "{shown}");

    // Sent again from the API: the same delivery id, signed again.
    let delivery = deliveries[1]["id"].as_str().unwrap();
    let (status, again) = t
        .post(
            &format!("/api/v1/webhooks/{hook}/deliveries/{delivery}/redeliver"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 202, "{again}");
    eventually(Duration::from_secs(10), || async {
        let got = received(&receiver, &secret).await;
        (got.len() == 8).then_some(())
    })
    .await
    .expect("redelivered");
    let got = received(&receiver, &secret).await;
    assert_eq!(got[7].delivery, delivery);
    assert!(got[7].signed);
    t.stop().await;
}

#[tokio::test]
async fn signed_deliveries_survive_a_failing_receiver_sqlite() {
    signed_deliveries_survive_a_failing_receiver(false).await;
}

#[tokio::test]
async fn signed_deliveries_survive_a_failing_receiver_postgres() {
    signed_deliveries_survive_a_failing_receiver(true).await;
}

async fn a_failing_subscription_is_paused_and_resumed(postgres: bool) {
    let graph = MockServer::start().await;
    mount_send(&graph, sent_ok("wamid.OUT.H2")).await;
    let Some(t) = meta_app_with(&graph, json!({}), postgres, |s| {
        s.events.hook_pause_after = 3;
    })
    .await
    else {
        return;
    };
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&receiver)
        .await;
    let (hook, secret) = subscribe(
        &t,
        &format!("{}/down", receiver.uri()),
        json!(["message.received"]),
    )
    .await;
    let body = meta_text("wamid.IN.H2", "Do you deliver to Oeiras?");
    assert_eq!(post_meta(&t, &body).await.status(), 200);

    let paused = eventually(Duration::from_secs(20), || async {
        let shown = t.get(&format!("/api/v1/webhooks/{hook}")).await;
        (shown["status"] == "paused").then_some(shown)
    })
    .await
    .expect("the subscription is paused");
    assert_eq!(paused["failures"], 3, "{paused}");
    assert!(
        paused["paused_reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{paused}"
    );
    // No attempt after the pause, however long we wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(received(&receiver, &secret).await.len(), 3);
    let list = t.get(&format!("/api/v1/webhooks/{hook}/deliveries")).await;
    assert_eq!(list[0]["status"], "paused", "{list}");
    assert_eq!(list[0]["attempts"], 3);
    assert_eq!(list[0]["last_error"], "the receiver answered HTTP 500");

    // Events while paused wait in the log.
    let body = meta_text("wamid.IN.H3", "And on Sundays?");
    assert_eq!(post_meta(&t, &body).await.status(), 200);

    // The receiver is fixed; the owner resumes the subscription: what waited is sent, in order.
    receiver.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let response = t
        .request(Method::PATCH, &format!("/api/v1/webhooks/{hook}"))
        .json(&json!({"active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let got = eventually(Duration::from_secs(20), || async {
        let got = received(&receiver, &secret).await;
        (got.len() == 2).then_some(got)
    })
    .await
    .expect("the waiting deliveries are sent");
    assert!(got.iter().all(|r| r.signed));
    let texts: Vec<&str> = got
        .iter()
        .map(|r| r.event["data"]["message"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Do you deliver to Oeiras?", "And on Sundays?"]);
    let shown = t.get(&format!("/api/v1/webhooks/{hook}")).await;
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["failures"], 0);
    t.stop().await;
}

#[tokio::test]
async fn a_failing_subscription_is_paused_and_resumed_sqlite() {
    a_failing_subscription_is_paused_and_resumed(false).await;
}

#[tokio::test]
async fn a_failing_subscription_is_paused_and_resumed_postgres() {
    a_failing_subscription_is_paused_and_resumed(true).await;
}

async fn create(t: &TestApp, key: &str, workspace: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = t
        .client
        .post(format!("{}/api/v1/webhooks", t.url))
        .bearer_auth(key)
        .json(&body);
    if let Some(ws) = workspace {
        request = request.header("x-palaver-workspace", ws);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn targets_are_checked_and_subscriptions_kept_to_their_workspace() {
    let t = TestApp::start(Options {
        tweak: Box::new(|s| s.channels.allow_private_urls = false),
        ..Default::default()
    })
    .await
    .unwrap();
    for (url, field) in [
        ("http://127.0.0.1:9/hook", "url"),
        ("http://169.254.169.254/latest/meta-data", "url"),
        ("http://[::1]/hook", "url"),
        ("http://10.1.2.3/hook", "url"),
        ("ftp://example.com/hook", "url"),
        ("https://user:pw@example.com/hook", "url"),
    ] {
        let (status, body) = create(&t, ADMIN_KEY, None, json!({"url": url})).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["fields"][0]["field"], field, "{url}: {body}");
    }
    let (status, body) = create(
        &t,
        ADMIN_KEY,
        None,
        json!({"url": "https://93.184.215.14/hook", "events": ["message.recieved"]}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("message.recieved"), "{body}");
    let (status, body) = create(
        &t,
        ADMIN_KEY,
        None,
        json!({"url": "https://93.184.215.14/hook", "secret": "mine"}),
    )
    .await;
    assert_eq!(status, 422, "unknown fields are refused: {body}");
    assert!(
        body.to_string().contains("unknown field `secret`"),
        "{body}"
    );

    // Workspace B's subscription is not A's to see, change, delete or read deliveries of.
    let (status, _) = t
        .post("/api/v1/workspaces", &json!({"slug": "south"}))
        .await;
    assert_eq!(status, 201);
    let (status, theirs) = create(
        &t,
        ADMIN_KEY,
        Some("south"),
        json!({"url": "https://93.184.215.14/south"}),
    )
    .await;
    assert_eq!(status, 201, "{theirs}");
    let theirs = theirs["id"].as_str().unwrap();
    let (status, mine) = create(
        &t,
        ADMIN_KEY,
        None,
        json!({"url": "https://93.184.215.14/north"}),
    )
    .await;
    assert_eq!(status, 201, "{mine}");
    let listed = t.get("/api/v1/webhooks").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert!(!listed.to_string().contains(theirs));
    for (method, path) in [
        (Method::GET, format!("/api/v1/webhooks/{theirs}")),
        (Method::PATCH, format!("/api/v1/webhooks/{theirs}")),
        (Method::DELETE, format!("/api/v1/webhooks/{theirs}")),
        (Method::GET, format!("/api/v1/webhooks/{theirs}/deliveries")),
    ] {
        let response = t
            .request(method.clone(), &path)
            .json(&json!({"description": "taken"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let shown = t
        .client
        .get(format!("{}/api/v1/webhooks/{theirs}", t.url))
        .bearer_auth(ADMIN_KEY)
        .header("x-palaver-workspace", "south")
        .send()
        .await
        .unwrap();
    let shown: Value = shown.json().await.unwrap();
    assert_eq!(shown["description"], "", "unchanged: {shown}");
    t.stop().await;
}

/// Events of workspace B never reach A's subscription: the dispatcher reads each workspace's
/// own log.
#[tokio::test]
async fn a_subscription_receives_only_its_workspace_events() {
    let t = TestApp::start(Options {
        workers: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let (status, _) = t
        .post("/api/v1/workspaces", &json!({"slug": "south"}))
        .await;
    assert_eq!(status, 201);
    let (status, hook) = create(
        &t,
        ADMIN_KEY,
        None,
        json!({"url": format!("{}/north", receiver.uri()), "events": ["message.received"]}),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    // One sandbox exchange in each workspace.
    for ws in ["default", "south"] {
        let response = t
            .client
            .post(format!("{}/api/v1/agents", t.url))
            .bearer_auth(ADMIN_KEY)
            .header("x-palaver-workspace", ws)
            .json(&json!({"name": "support"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let response = t
            .client
            .post(format!("{}/api/v1/sandbox/support/messages", t.url))
            .bearer_auth(ADMIN_KEY)
            .header("x-palaver-workspace", ws)
            .json(&json!({"text": format!("Hello from {ws}"), "session": "s"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    eventually(Duration::from_secs(10), || async {
        let got = received(&receiver, hook["secret"].as_str().unwrap()).await;
        (!got.is_empty()).then_some(())
    })
    .await
    .expect("a delivery");
    // Give a stray delivery of the other workspace time to arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = received(&receiver, hook["secret"].as_str().unwrap()).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(
        got[0].event["data"]["message"]["text"],
        "Hello from default"
    );
    assert_eq!(
        got[0].event["workspace_id"],
        palaver::domain::WorkspaceId::DEFAULT.to_string()
    );
    t.stop().await;
}

/// The README's example receiver, run as written: it accepts Palaver's signed deliveries and
/// refuses a forged one.
#[tokio::test]
async fn the_readme_receiver_verifies_real_deliveries() {
    use tokio::io::AsyncBufReadExt;

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```python\n# receiver.py")
        .expect("the README's receiver");
    let code = &readme[start + "```python\n".len()..];
    let code = &code[..code.find("```").unwrap()];
    assert!(code.lines().count() <= 22, "a short example");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("receiver.py");
    std::fs::write(&script, code).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let graph = MockServer::start().await;
    mount_send(&graph, sent_ok("wamid.OUT.H9")).await;
    let t = meta_app_with(&graph, json!({}), false, |_| {})
        .await
        .unwrap();
    let (_, secret) = subscribe(
        &t,
        &format!("http://127.0.0.1:{port}/palaver"),
        json!(["message.received"]),
    )
    .await;
    let mut child = tokio::process::Command::new("python3")
        .arg(&script)
        .env("PALAVER_WEBHOOK_SECRET", &secret)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let up = eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    assert!(up.is_some(), "the receiver listens");

    // A forged delivery is refused.
    let forged = t
        .client
        .post(format!("http://127.0.0.1:{port}/palaver"))
        .header(SIGNATURE_HEADER, "t=1700000000,v1=00ff")
        .header("x-palaver-delivery", "forged")
        .body(r#"{"id":1,"type":"message.received","conversation_id":null}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    let body = meta_text("wamid.IN.H9", "Is the shop open today?");
    assert_eq!(post_meta(&t, &body).await.status(), 200);
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the receiver printed the event")
        .unwrap()
        .unwrap();
    let conversations = t.get("/api/v1/conversations").await;
    let conversation = conversations[0]["id"].as_str().unwrap();
    assert!(
        line.ends_with(&format!("message.received {conversation}")),
        "{line}"
    );
    let hooks = t.get("/api/v1/webhooks").await;
    let hook = hooks[0]["id"].as_str().unwrap();
    let delivered = eventually(Duration::from_secs(5), || async {
        let deliveries = t.get(&format!("/api/v1/webhooks/{hook}/deliveries")).await;
        (deliveries[0]["status"] == "delivered").then_some(deliveries)
    })
    .await
    .expect("the delivery is recorded as delivered");
    assert_eq!(delivered[0]["response_status"], 204);
    child.kill().await.unwrap();
    t.stop().await;
}
