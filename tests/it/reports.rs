//! Reports and the satisfaction survey end to end, through a recording provider standing in for
//! Meta (the real server, workers and store, SQLite and Postgres): what customers, the bot and
//! people did shows in `GET /reports`; resolving sends the survey as a list of five scores; a
//! tapped or typed score is stored, not answered, and counts once; a provider refusing the
//! survey never undoes the resolve; bad filters are refused by name.

use std::sync::Arc;
use std::time::Duration;

use palaver::config::Settings;
use palaver::providers::recording::RecordingProvider;
use palaver::providers::{OutboundBody, ProviderError};
use serde_json::{json, Value};

use crate::support::app::{eventually, Options, TestApp};

const ROUTE: &str = "1065403522431";
const TOKEN: &str = "rec-token-reports";
const QUESTION: &str = "Which payment methods do you accept? MB WAY?";

struct Rig {
    t: TestApp,
    provider: Arc<RecordingProvider>,
    channel: String,
}

/// An app with workers, an agent that escalates on "humano" and asks for the survey, and one
/// channel served by `provider`; `None` when the backend is not available.
async fn rig(
    provider: RecordingProvider,
    postgres: bool,
    tweak: impl FnOnce(&mut Settings) + Send + 'static,
) -> Option<Rig> {
    let provider = Arc::new(provider);
    let t = TestApp::start(Options {
        workers: true,
        postgres,
        provider: Some(provider.clone()),
        tweak: Box::new(tweak),
        ..Default::default()
    })
    .await?;
    t.demo_agent(
        "demo",
        json!({"confidence_threshold": 0.3, "escalation": {"keywords": ["humano"]},
               "csat": {"enabled": true}}),
    )
    .await;
    let (status, channel) = t
        .post(
            "/api/v1/channels",
            &json!({"name": "Casa Nube", "provider": "meta", "phone_number_id": ROUTE,
                    "agent": "demo", "credentials": {"token": TOKEN}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let channel = channel["id"].as_str().unwrap().to_string();
    Some(Rig {
        t,
        provider,
        channel,
    })
}

impl Rig {
    /// One customer message (`reply`: a tapped row), acknowledged and recorded.
    async fn customer(&self, id: &str, from: &str, text: &str, reply: Option<Value>) {
        let mut message = json!({"id": id, "from": from, "text": text});
        if let Some(reply) = reply {
            message["reply"] = reply;
        }
        let response = self
            .t
            .client
            .post(format!("{}/webhooks/meta/{}", self.t.url, self.channel))
            .header("x-test-token", TOKEN)
            .json(&json!({"route": ROUTE, "messages": [message]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        self.t.settle().await;
    }

    async fn conversation_of(&self, customer: &str) -> Value {
        let list = self
            .t
            .get(&format!("/api/v1/conversations?q={customer}"))
            .await;
        let id = list[0]["id"].as_str().expect("a conversation").to_string();
        self.t.get(&format!("/api/v1/conversations/{id}")).await
    }

    async fn messages(&self, conversation: &str) -> Vec<Value> {
        self.t
            .get(&format!("/api/v1/conversations/{conversation}/messages"))
            .await
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until the provider was asked to send `n` messages in all.
    async fn wait_attempts(&self, n: usize) {
        let provider = self.provider.clone();
        eventually(Duration::from_secs(30), || async {
            (provider.attempts().len() >= n).then_some(())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "expected {n} sends, got {:?}",
                self.provider.attempts().len()
            )
        });
    }

    async fn report(&self) -> Value {
        self.t.get("/api/v1/reports?zone=UTC").await
    }
}

fn meta() -> RecordingProvider {
    RecordingProvider::new(palaver::domain::ProviderKind::Meta)
}

fn unavailable() -> ProviderError {
    ProviderError::Transient {
        message: "HTTP 503".into(),
        retry_after: Some(Duration::from_millis(20)),
    }
}

crate::both_backends_flag!(
    the_report_counts_what_customers_the_bot_and_people_did,
    a_survey_the_provider_refuses_leaves_the_conversation_resolved,
    bad_filters_are_refused_by_name,
);

async fn the_report_counts_what_customers_the_bot_and_people_did(postgres: bool) {
    let Some(r) = rig(meta(), postgres, |_| {}).await else {
        return;
    };
    let empty = r.report().await;
    assert_eq!(empty["days"].as_array().unwrap().len(), 30, "{empty}");
    assert_eq!(empty["conversations"], 0);
    assert_eq!(empty["bot_only_share"], Value::Null);

    // Ana: the bot answers alone.
    r.customer("ana-1", "351910000001", QUESTION, None).await;
    r.wait_attempts(1).await;
    // Bruno: asks for a person, who replies and resolves; the survey goes out as a list.
    r.customer("bruno-1", "351910000002", "humano por favor", None)
        .await;
    let bruno = eventually(Duration::from_secs(20), || async {
        let c = r.conversation_of("351910000002").await;
        (c["status"] == "escalated").then_some(c)
    })
    .await
    .expect("escalated");
    let bruno_id = bruno["id"].as_str().unwrap().to_string();
    // Ana's answer and Bruno's notice that a person will write.
    r.wait_attempts(2).await;
    let before = r.provider.attempts().len();
    let (status, body) =
        r.t.post(
            &format!("/api/v1/conversations/{bruno_id}/messages"),
            &json!({"text": "Hello Bruno, I can help."}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    r.wait_attempts(before + 1).await;
    let (status, body) =
        r.t.post(
            &format!("/api/v1/conversations/{bruno_id}/resolve"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "resolved");
    let provider = r.provider.clone();
    let survey = eventually(Duration::from_secs(20), || async {
        provider
            .attempts()
            .into_iter()
            .find(|m| matches!(m.body, OutboundBody::List { .. }))
    })
    .await
    .expect("the survey was sent");
    assert_eq!(survey.to, "351910000002");
    let OutboundBody::List { text, button, rows } = &survey.body else {
        panic!("the survey is a list: {:?}", survey.body)
    };
    assert!(text.contains("rate"), "{text}");
    assert_eq!(button, "Rate us");
    let ids: Vec<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, ["csat:1", "csat:2", "csat:3", "csat:4", "csat:5"]);
    // Resolving again sends nothing more.
    r.t.post(
        &format!("/api/v1/conversations/{bruno_id}/resolve"),
        &json!({}),
    )
    .await;

    // Bruno taps "4"; the same delivery again, then another tap: one answer, the first.
    let tap = |id: &str, title: &str| Some(json!({"id": id, "title": title}));
    r.customer(
        "bruno-2",
        "351910000002",
        "4 - Very good",
        tap("csat:4", "4 - Very good"),
    )
    .await;
    r.customer(
        "bruno-2",
        "351910000002",
        "4 - Very good",
        tap("csat:4", "4 - Very good"),
    )
    .await;
    r.customer(
        "bruno-3",
        "351910000002",
        "2 - Fair",
        tap("csat:2", "2 - Fair"),
    )
    .await;
    let counted = eventually(Duration::from_secs(20), || async {
        let report = r.report().await;
        let handled = r
            .messages(&bruno_id)
            .await
            .iter()
            .filter(|m| m["direction"] == "inbound")
            .count();
        (report["csat"]["answered"] == 1 && handled == 3).then_some(report)
    })
    .await
    .expect("the answer counted");
    assert_eq!(
        counted["csat"]["scores"],
        json!([0, 0, 0, 1, 0]),
        "{counted}"
    );
    // Neither tap was a question: no reply, and the conversation is resolved again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outbound_after: Vec<Value> = r
        .messages(&bruno_id)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "outbound")
        .collect();
    assert_eq!(
        outbound_after.len(),
        3,
        "the escalation notice, the person's reply and the survey: {outbound_after:?}"
    );
    let bruno = r.conversation_of("351910000002").await;
    assert_eq!(bruno["status"], "resolved", "{bruno}");

    // Carla: escalated, resolved, and types "5" as her answer.
    r.customer("carla-1", "351910000003", "humano", None).await;
    let carla = eventually(Duration::from_secs(20), || async {
        let c = r.conversation_of("351910000003").await;
        (c["status"] == "escalated").then_some(c)
    })
    .await
    .expect("escalated");
    let carla_id = carla["id"].as_str().unwrap().to_string();
    let (status, _) =
        r.t.post(
            &format!("/api/v1/conversations/{carla_id}/resolve"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    r.customer("carla-2", "351910000003", "5", None).await;
    let report = eventually(Duration::from_secs(20), || async {
        let report = r.report().await;
        (report["csat"]["answered"] == 2).then_some(report)
    })
    .await
    .expect("the typed score counted");

    assert_eq!(report["csat"]["sent"], 2, "{report}");
    assert_eq!(report["csat"]["scores"], json!([0, 0, 0, 1, 1]));
    assert_eq!(report["csat"]["average"], 4.5);
    assert_eq!(report["csat"]["satisfied_share"], 1.0);
    // Three customers wrote today; the bot answered Ana alone.
    assert_eq!(report["conversations"], 3, "{report}");
    assert_eq!(report["bot_only"], 1);
    let today = report["days"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["conversations"], 3, "{today}");
    assert_eq!(today["escalations"], 2);
    assert_eq!(report["escalations_total"], 2);
    let by_reason: i64 = report["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_i64().unwrap())
        .sum();
    assert_eq!(by_reason, 2, "{report}");
    // A person answered Bruno; both escalations were resolved.
    assert_eq!(report["first_response"]["count"], 1, "{report}");
    assert!(report["first_response"]["median_secs"].as_f64().unwrap() >= 0.0);
    assert_eq!(report["resolution"]["count"], 2);
    assert!(
        report["resolution"]["p90_secs"].as_f64().unwrap()
            >= report["resolution"]["median_secs"].as_f64().unwrap()
    );
    // The channel filter: this channel counts everything, and the range can end before today.
    let one =
        r.t.get(&format!("/api/v1/reports?zone=UTC&channel={}", r.channel))
            .await;
    assert_eq!(one["conversations"], 3);
    let past =
        r.t.get("/api/v1/reports?from=2026-01-01&to=2026-01-31&zone=UTC")
            .await;
    assert_eq!(past["days"].as_array().unwrap().len(), 31);
    assert_eq!(past["conversations"], 0);
    assert_eq!(past["csat"]["sent"], 0);
    r.t.stop().await;
}

/// The provider answers the survey with 5xx until the send is given up: the conversation stays
/// resolved (no escalation for a survey), the survey is failed, and the report counts it sent
/// and unanswered.
async fn a_survey_the_provider_refuses_leaves_the_conversation_resolved(postgres: bool) {
    // The bot's answer and the person's reply go out; everything after fails.
    let provider = meta().script(
        [Ok(()), Ok(())]
            .into_iter()
            .chain((0..10_000).map(|_| Err(unavailable()))),
    );
    let Some(r) = rig(provider, postgres, |s| {
        s.workers.max_attempts = Settings::default().workers.max_attempts;
        s.workers.retry_for_secs = 1;
    })
    .await
    else {
        return;
    };
    r.customer("dora-1", "351910000004", QUESTION, None).await;
    r.wait_attempts(1).await;
    let dora = r.conversation_of("351910000004").await;
    let id = dora["id"].as_str().unwrap().to_string();
    let (status, body) =
        r.t.post(
            &format!("/api/v1/conversations/{id}/messages"),
            &json!({"text": "Let me check that for you."}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    r.wait_attempts(2).await;
    let (status, body) =
        r.t.post(&format!("/api/v1/conversations/{id}/resolve"), &json!({}))
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "resolved");
    let survey = eventually(Duration::from_secs(20), || async {
        r.messages(&id)
            .await
            .into_iter()
            .find(|m| m["role"] == "system" && m["status"] == "failed")
    })
    .await
    .expect("the survey is given up as failed");
    assert!(
        survey["text"].as_str().unwrap().contains("rate"),
        "{survey}"
    );
    assert!(r.provider.attempts().len() > 3, "the send was retried");
    let dora = r.conversation_of("351910000004").await;
    assert_eq!(dora["status"], "resolved", "{dora}");
    let escalations = dora["escalations"].as_array().unwrap();
    assert!(
        escalations.iter().all(|e| e["reason"] != "delivery_failed"),
        "{escalations:?}"
    );
    let report = r.report().await;
    assert_eq!(report["csat"]["sent"], 1, "{report}");
    assert_eq!(report["csat"]["answered"], 0);
    assert_eq!(report["csat"]["average"], Value::Null);
    r.t.stop().await;
}

async fn bad_filters_are_refused_by_name(postgres: bool) {
    let Some(t) = TestApp::start(Options {
        postgres,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let nobody = uuid::Uuid::now_v7();
    for (query, field) in [
        ("from=2026-11-30&to=2026-11-01", "from"),
        ("from=2025-01-01&to=2026-11-01", "to"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("zone=Mars/Olympus", "zone"),
        ("channel=not-an-id", "channel"),
        (&*format!("channel={nobody}"), "channel"),
        (&*format!("person={nobody}"), "person"),
    ] {
        let (status, body) = t
            .send(t.request(reqwest::Method::GET, &format!("/api/v1/reports?{query}")))
            .await;
        assert_eq!(status, 422, "{query}: {body}");
        let fields: Vec<&str> = body["error"]["fields"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: {body}"))
            .iter()
            .filter_map(|f| f["field"].as_str())
            .collect();
        assert_eq!(fields, [field], "{query}: {body}");
    }
    let (status, body) = t
        .send(t.request(reqwest::Method::GET, "/api/v1/reports?colour=red"))
        .await;
    assert_eq!(status, 400, "unknown parameters are refused: {body}");
    t.stop().await;
}
