//! The console in a real browser: `tests/browser/console.mjs` drives headless Chromium (through
//! `playwright-core` from npm) against this server on loopback, with the Graph API and an
//! Evolution server mocked. The script asks this test for what only the test can do (signed
//! provider webhooks, what reached a mock) one JSON line at a time. Skipped when Chromium or the
//! npm package is missing, unless `PALAVER_REQUIRE_BROWSER=1`; screenshots are kept in the
//! target directory for a person to look at.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

use crate::support::app::{eventually, Options, TestApp};
use crate::webhooks::{post_meta, sends, APP_SECRET, CUSTOMER, GRAPH_VERSION, PHONE_ID};

/// Two QR codes as Evolution sends them (made-up patterns, data URLs of PNGs).
const QR_FIRST: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAB0AAAAdCAAAAABz+DjTAAAAqUlEQVR4nI2TAQ6AMAgD+/9P1yi01Gmmi1kWCOxaJrhb+MqiFs9PW0UIlV+xbgYXKn41YW0TmXPkXrIsBK61xmPz5b2YGLgyL+KBW6DKhSyqkVYsKbmPDdABgVEaWoYcnIuRWavFHCWTEE/4FW4Ed1sQfCKKoVoRZ5jy4uGVe8Vww1VIbqPeZsQZZdQ66EqLi7eRTWJGfgnSjIXR3timlB72+VX/+Bc26wDbhhcG4moH1gAAAABJRU5ErkJggg==";
const QR_NEXT: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAB0AAAAdCAAAAABz+DjTAAAAoUlEQVR4nIVSixKAIAjb//80XcLGsCyvOw3EPQDxtfCXRa71py0jYDnsIUXWd99TrUdGFuv8ngW/LRuqQ+6OK85FeXAe2meoyBTeqrD3yQG6ikYWbsKFE0BbhBBbUJTL0dYou6WyxOIVEi1pRZJhaaMTly57U9vn40wMn2FNVLNaFIzCdJJKx2nOCWejdD3nqvVus9FlGl7n7N54F07rO3sBr1sSC019NLsAAAAASUVORK5CYII=";

/// Where the npm package is installed (by `.ci/run`, or `npm ci` in `tests/browser`).
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Whether the browser tests can run; panics when they must and cannot.
fn browser_ready() -> bool {
    let required = std::env::var("PALAVER_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let chromium = Path::new("/usr/bin/chromium").exists();
    let package = browser_dir()
        .join("node_modules/playwright-core/package.json")
        .exists();
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if chromium && package && node {
        return true;
    }
    let missing = format!(
        "chromium: {chromium}, node: {node}, playwright-core in tests/browser/node_modules: {package}"
    );
    assert!(
        !required,
        "PALAVER_REQUIRE_BROWSER=1 but the browser tests cannot run ({missing})"
    );
    eprintln!("skipping the console's browser tests ({missing})");
    false
}

/// Graph API sends answered with a new message id each.
struct NewIds(std::sync::atomic::AtomicUsize);

impl Respond for NewIds {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": CUSTOMER, "wa_id": CUSTOMER}],
            "messages": [{"id": format!("wamid.OUT.B{n}")}]
        }))
    }
}

/// [`crate::webhooks::evolution_server`], linking by QR code.
async fn evolution_server() -> MockServer {
    let evolution = crate::webhooks::evolution_server().await;
    Mock::given(method("GET"))
        .and(path("/instance/connect/support-bot"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "pairingCode": null, "code": "2@first", "base64": QR_FIRST, "count": 1
        })))
        .mount(&evolution)
        .await;
    Mock::given(method("GET"))
        .and(path("/instance/connectionState/support-bot"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"instance": {"instanceName": "support-bot", "state": "connecting"}}),
        ))
        .mount(&evolution)
        .await;
    evolution
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/evolution")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// What the script asks for, done.
async fn answer(t: &TestApp, graph: &MockServer, ask: &Value) -> Result<Value, String> {
    match ask["ask"].as_str().unwrap_or("") {
        // From the test customer, or from `from` named `name`.
        "meta_text" => {
            let id = ask["id"].as_str().unwrap_or("wamid.IN");
            let text = ask["text"].as_str().unwrap_or("");
            let body = match ask["from"].as_str() {
                Some(from) => {
                    let mut body: Value = serde_json::from_slice(&crate::webhooks::meta_text_to(
                        PHONE_ID, from, id, text,
                    ))
                    .unwrap();
                    body["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] =
                        ask["name"].clone();
                    serde_json::to_vec(&body).unwrap()
                }
                None => crate::webhooks::meta_text(id, text),
            };
            let status = post_meta(t, &body).await.status();
            (status == 200)
                .then(|| json!({"ok": true}))
                .ok_or(format!("the webhook was answered {status}"))
        }
        // Any message object (an edit, a revoke...) from the customer, in a signed webhook.
        "meta_message" => {
            let mut message = ask["message"].clone();
            message["from"] = json!(CUSTOMER);
            message["timestamp"] = json!(chrono::Utc::now().timestamp().to_string());
            let body = serde_json::to_vec(&json!({
                "object": "whatsapp_business_account",
                "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
                    "contacts": [{"profile": {"name": "Test Customer"}, "wa_id": CUSTOMER}],
                    "messages": [message]
                }}]}]
            }))
            .unwrap();
            let status = post_meta(t, &body).await.status();
            (status == 200)
                .then(|| json!({"ok": true}))
                .ok_or(format!("the webhook was answered {status}"))
        }
        "meta_status" => {
            let body = serde_json::to_vec(&json!({
                "object": "whatsapp_business_account",
                "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
                    "statuses": [{"id": ask["provider_id"], "status": ask["status"],
                                  "timestamp": chrono::Utc::now().timestamp().to_string(),
                                  "recipient_id": CUSTOMER}]
                }}]}]
            }))
            .unwrap();
            let status = post_meta(t, &body).await.status();
            (status == 200)
                .then(|| json!({"ok": true}))
                .ok_or(format!("the status webhook was answered {status}"))
        }
        "bot_reply" => {
            // The provider id of the newest outbound message sent.
            let conversations = t.get("/api/v1/conversations").await;
            let id = conversations[0]["id"]
                .as_str()
                .ok_or("no conversation")?
                .to_string();
            let found = eventually(Duration::from_secs(10), || async {
                let messages = t.get(&format!("/api/v1/conversations/{id}/messages")).await;
                messages.as_array().and_then(|m| {
                    m.iter()
                        .filter(|m| m["direction"] == "outbound")
                        .find_map(|m| m["provider_message_id"].as_str().map(str::to_string))
                })
            })
            .await;
            found
                .map(|id| json!({"provider_id": id}))
                .ok_or("no outbound message was sent".into())
        }
        "graph_sends" => {
            let text = ask["text"].as_str().unwrap_or("");
            let count = || async {
                sends(graph)
                    .await
                    .iter()
                    .filter(|s| {
                        [
                            &s["text"]["body"],
                            &s["image"]["caption"],
                            &s["document"]["caption"],
                        ]
                        .iter()
                        .any(|b| b.as_str().is_some_and(|b| b.contains(text)))
                    })
                    .count()
            };
            eventually(Duration::from_secs(10), || async {
                (count().await > 0).then_some(())
            })
            .await;
            // A second send, if there were one, would come within the workers' retry backoff.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Ok(json!({"count": count().await}))
        }
        "graph_total" => {
            // What reached the Graph API in all, once anything queued has had time to go.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Ok(json!({"count": sends(graph).await.len()}))
        }
        "evolution_event" => {
            let channel: palaver::domain::ChannelId = ask["channel"]
                .as_str()
                .and_then(|c| c.parse().ok())
                .ok_or("no channel id")?;
            let channel = t
                .app
                .store
                .channel(channel)
                .await
                .unwrap()
                .ok_or("no channel")?;
            let secret = t
                .app
                .channels
                .credential(&channel, "webhook_secret")
                .await
                .ok_or("no webhook secret")?;
            let mut body = fixture(ask["fixture"].as_str().unwrap_or(""));
            if body["event"] == "qrcode.updated" {
                body["data"]["qrcode"]["base64"] = json!(QR_NEXT);
            }
            let status = t
                .client
                .post(format!("{}/webhooks/evolution/{}", t.url, channel.id))
                .header("x-palaver-webhook-token", secret)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status();
            (status == 200)
                .then(|| json!({"ok": true}))
                .ok_or(format!("the Evolution webhook was answered {status}"))
        }
        // The Meta number gets its WhatsApp Business Account, whose templates the Graph API
        // lists.
        "templates_on" => {
            Mock::given(method("GET"))
                .and(path(format!(
                    "/{GRAPH_VERSION}/{}/message_templates",
                    crate::templates::WABA
                )))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(
                        serde_json::from_slice::<Value>(
                            &std::fs::read(
                                Path::new(env!("CARGO_MANIFEST_DIR"))
                                    .join("tests/fixtures/meta/templates.list.response.json"),
                            )
                            .unwrap(),
                        )
                        .unwrap(),
                    ),
                )
                .mount(graph)
                .await;
            let channels = t.get("/api/v1/channels").await;
            let id = channels
                .as_array()
                .and_then(|l| l.iter().find(|c| c["provider"] == "meta"))
                .and_then(|c| c["id"].as_str())
                .ok_or("no Meta channel")?
                .to_string();
            let (status, body) = t
                .patch(
                    &format!("/api/v1/channels/{id}"),
                    &json!({"credentials": {"business_account_id": crate::templates::WABA}}),
                )
                .await;
            (status == 200)
                .then(|| json!({"channel": id}))
                .ok_or(format!("the channel was answered {status}: {body}"))
        }
        // Templates that reached the Graph API, to whom.
        "template_sends" => {
            let to: Vec<Value> = sends(graph)
                .await
                .into_iter()
                .filter(|s| s["type"] == "template")
                .map(|s| s["to"].clone())
                .collect();
            Ok(json!({"to": to}))
        }
        other => Err(format!("nothing to do for `{other}`")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    if !browser_ready() {
        return;
    }
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/messages")))
        .respond_with(NewIds(Default::default()))
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{GRAPH_VERSION}/{PHONE_ID}/media")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "MEDIA.BROWSER.1"})))
        .mount(&graph)
        .await;
    let evolution = evolution_server().await;

    // An eval directory beside the sample knowledge, as in a project checkout.
    let root = tempfile::tempdir().unwrap();
    let eval_dir = root.path().join("eval");
    let knowledge = Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge");
    std::fs::create_dir(&eval_dir).unwrap();
    std::fs::create_dir(root.path().join("knowledge")).unwrap();
    std::fs::copy(
        knowledge.join("faq.md"),
        root.path().join("knowledge/faq.md"),
    )
    .unwrap();
    std::fs::write(
        eval_dir.join("faq.yaml"),
        "agent: {confidence_threshold: 0.3}\nknowledge: [../knowledge]\ncases:\n  - id: payments\n    say: Which payment methods do you accept? MB WAY?\n    expect: [contains: MB WAY]\n",
    )
    .unwrap();
    // The agent the script makes (`demo`) has a suite of its own, run beside its drafts.
    std::fs::write(
        eval_dir.join("demo.yaml"),
        "agent: {from: demo}\ncases:\n  - id: payments\n    say: Which payment methods do you accept? MB WAY?\n    expect: [contains: MB WAY]\n  - id: bitcoin\n    say: Do you take bitcoin?\n    expect: [contains: bitcoin]\n",
    )
    .unwrap();
    // An OpenAI-compatible server for the agent page's model draft: a draft of instructions,
    // and a reply naming MB WAY for the customers' questions of the eval suite.
    let openai = MockServer::start().await;
    let completion = |text: &str| {
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-browser", "object": "chat.completion", "created": 1_700_000_000,
            "model": "draft-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 500, "completion_tokens": 40, "total_tokens": 540}
        }))
    };
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(wiremock::matchers::body_string_contains("<<<OUTLINE"))
        .respond_with(completion("You answer Casa Nube's customers on WhatsApp, written by the model.\nName every payment method, MB WAY included."))
        .with_priority(1)
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(completion("We take cash, cards and MB WAY."))
        .with_priority(2)
        .mount(&openai)
        .await;
    let graph_url = graph.uri();
    let openai_url = format!("{}/v1", openai.uri());
    let t = TestApp::start(Options {
        workers: true,
        tweak: Box::new(move |s| {
            s.channels.meta_graph_url = graph_url;
            s.eval.dir = eval_dir;
            s.llm.openai.base_url = openai_url;
            s.llm.openai.model = "draft-model".into();
            s.llm.openai.max_retries = 0;
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let token = palaver::accounts::people::setup_token(t.app.store.as_ref())
        .await
        .unwrap()
        .expect("a fresh install has a set-up token");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");

    let mut script = tokio::process::Command::new("node")
        .arg(browser_dir().join("console.mjs"))
        .env("PALAVER_URL", &t.url)
        .env("SETUP_URL", format!("{}/setup?token={token}", t.url))
        .env("SCREENSHOTS", &shots)
        .env("PHONE_ID", PHONE_ID)
        .env("APP_SECRET", APP_SECRET)
        .env("EVOLUTION_URL", evolution.uri())
        .env("KNOWLEDGE_FAQ", knowledge.join("faq.md"))
        .env("KNOWLEDGE_HOURS", knowledge.join("opening-hours.md"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut to_script = script.stdin.take().unwrap();
    let mut from_script = BufReader::new(script.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    let run = async {
        while let Some(line) = from_script.next_line().await.unwrap() {
            eprintln!("browser: {line}");
            if let Some(request) = line.strip_prefix("ASK ") {
                let request: Value = serde_json::from_str(request).unwrap();
                let reply = match answer(&t, &graph, &request).await {
                    Ok(v) => v,
                    Err(e) => json!({"error": e}),
                };
                to_script
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .unwrap();
            }
            said.push(line);
        }
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the browser script finishes within 5 minutes");
    let status = script.wait().await.unwrap();
    eprintln!("screenshots: {}", shots.display());
    assert!(
        status.success(),
        "the browser script failed:\n{}",
        said.join("\n")
    );
    assert!(said.iter().any(|l| l == "DONE"));
    t.stop().await;
}
