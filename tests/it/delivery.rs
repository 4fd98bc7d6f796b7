//! The delivery path end to end, through a recording provider standing in for Meta: the real
//! server, workers and store (SQLite and Postgres), with the provider's answers scripted. Bursts,
//! outages, lost answers, panics and escalated conversations: every customer gets exactly one
//! reply, or a person is told.

use std::sync::Arc;
use std::time::Duration;

use palaver::config::Settings;
use palaver::providers::recording::{Answer, RecordingProvider};
use palaver::providers::ProviderError;
use serde_json::{json, Value};

use crate::support::app::{eventually, Options, TestApp};

const ROUTE: &str = "1065403522429";
const TOKEN: &str = "rec-token-1";
const QUESTION: &str = "Which payment methods do you accept? MB WAY?";

struct Rig {
    t: TestApp,
    provider: Arc<RecordingProvider>,
    channel: String,
}

/// An app with workers, the demo agent (escalating on "humano") and one channel served by
/// `provider`; `None` when the backend is not available.
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
        json!({"confidence_threshold": 0.3, "escalation": {"keywords": ["humano"]}}),
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
    /// Posts a webhook and waits until what it carried is recorded.
    async fn hook(&self, body: Value) -> reqwest::Response {
        let response = self
            .t
            .client
            .post(format!("{}/webhooks/meta/{}", self.t.url, self.channel))
            .header("x-test-token", TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        self.t.settle().await;
        response
    }

    /// One customer message, acknowledged.
    async fn customer_writes(&self, id: &str, from: &str, text: &str) {
        let response = self
            .hook(json!({"route": ROUTE, "messages": [{"id": id, "from": from, "text": text}]}))
            .await;
        assert_eq!(response.status(), 200);
    }

    /// Outbound messages of every conversation, as the API shows them.
    async fn outbound(&self) -> Vec<Value> {
        let mut all = Vec::new();
        for c in self
            .t
            .get("/api/v1/conversations?limit=500")
            .await
            .as_array()
            .unwrap()
        {
            let id = c["id"].as_str().unwrap();
            let messages = self
                .t
                .get(&format!("/api/v1/conversations/{id}/messages"))
                .await;
            all.extend(
                messages
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["direction"] == "outbound")
                    .cloned(),
            );
        }
        all
    }

    async fn conversation_of(&self, customer: &str) -> Value {
        let list = self
            .t
            .get(&format!("/api/v1/conversations?q={customer}"))
            .await;
        let id = list[0]["id"].as_str().expect("a conversation").to_string();
        self.t.get(&format!("/api/v1/conversations/{id}")).await
    }

    async fn wait_sent(&self, n: usize, within: Duration) {
        let provider = self.provider.clone();
        eventually(within, || async {
            (provider.sent().len() >= n).then_some(())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "expected {n} sends, got {} after {within:?}",
                self.provider.sent().len()
            )
        });
    }
}

/// A recording provider standing in for Meta.
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
    a_burst_of_customers_all_get_replies,
    an_outage_longer_than_a_few_attempts_loses_no_reply,
    a_reply_that_cannot_be_sent_in_time_fails_and_escalates,
    a_panicking_send_fails_that_job_and_the_workers_go_on,
    a_lost_answer_waits_for_the_status_before_sending_again,
    a_lost_answer_is_resent_with_the_same_key_where_the_provider_deduplicates,
    an_escalated_conversation_gets_no_bot_message_at_all,
    nul_characters_do_not_hold_back_a_webhook_batch,
    an_update_without_the_secret_keeps_it_and_empty_tokens_never_authenticate,
    a_human_reply_repeated_with_its_idempotency_key_is_sent_once,
);

/// Defect: refusals by the channel's own rate limiter counted as failed attempts, so in a burst
/// replies were dead-lettered and their messages stayed `queued`.
async fn a_burst_of_customers_all_get_replies(postgres: bool) {
    let Some(r) = rig(meta(), postgres, |s| {
        s.channels.rate_per_minute = 300;
        s.channels.burst = 5;
    })
    .await
    else {
        return;
    };
    let writes = (0..30).map(|i| {
        let id = format!("burst-{i}");
        let from = format!("52155500{i:02}");
        let r = &r;
        async move { r.customer_writes(&id, &from, QUESTION).await }
    });
    futures::future::join_all(writes).await;
    r.wait_sent(30, Duration::from_secs(40)).await;
    let recipients: std::collections::HashSet<_> =
        r.provider.sent().into_iter().map(|m| m.to).collect();
    assert_eq!(recipients.len(), 30, "one reply to each customer");
    let outbound = r.outbound().await;
    assert_eq!(outbound.len(), 30);
    let t = &r.t;
    eventually(Duration::from_secs(5), || async {
        let statuses: Vec<Value> = r
            .outbound()
            .await
            .iter()
            .map(|m| m["status"].clone())
            .collect();
        statuses.iter().all(|s| s == "sent").then_some(())
    })
    .await
    .expect("every reply marked sent");
    assert!(t
        .app
        .store
        .list_jobs(palaver::domain::WorkspaceId::DEFAULT, "dead", 10)
        .await
        .unwrap()
        .is_empty());
    r.t.stop().await;
}

/// Defect: eight attempts in about a minute was the whole retry budget, shorter than ordinary
/// outages.
async fn an_outage_longer_than_a_few_attempts_loses_no_reply(postgres: bool) {
    let provider = meta().script((0..12).map(|_| Err(unavailable())));
    let Some(r) = rig(provider, postgres, |s| {
        s.workers.max_attempts = Settings::default().workers.max_attempts;
        s.workers.retry_for_secs = 60;
    })
    .await
    else {
        return;
    };
    r.customer_writes("out-1", "5215550001", QUESTION).await;
    r.wait_sent(1, Duration::from_secs(30)).await;
    assert_eq!(r.provider.attempts().len(), 13);
    let outbound = r.outbound().await;
    assert_eq!(outbound.len(), 1);
    let conversation = r.conversation_of("5215550001").await;
    assert_eq!(conversation["status"], "active", "{conversation}");
    r.t.stop().await;
}

/// When the provider stays down past `workers.retry_for_secs`, the message is marked failed and a
/// person is told: never left `queued`.
async fn a_reply_that_cannot_be_sent_in_time_fails_and_escalates(postgres: bool) {
    let provider = meta().script((0..10_000).map(|_| Err(unavailable())));
    let Some(r) = rig(provider, postgres, |s| {
        s.workers.max_attempts = Settings::default().workers.max_attempts;
        s.workers.retry_for_secs = 1;
    })
    .await
    else {
        return;
    };
    r.customer_writes("down-1", "5215550002", QUESTION).await;
    let conversation = eventually(Duration::from_secs(20), || async {
        let c = r.conversation_of("5215550002").await;
        (c["status"] == "escalated").then_some(c)
    })
    .await
    .expect("escalated");
    assert_eq!(conversation["escalations"][0]["reason"], "delivery_failed");
    let outbound = r.outbound().await;
    assert_eq!(outbound.len(), 1);
    assert_eq!(outbound[0]["status"], "failed", "{outbound:?}");
    assert!(r.provider.sent().is_empty());
    let attempts = r.provider.attempts().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.provider.attempts().len(), attempts, "no more attempts");
    r.t.stop().await;
}

/// Defect: a panic in a job killed its worker for good while `/readyz` said ready.
async fn a_panicking_send_fails_that_job_and_the_workers_go_on(postgres: bool) {
    let provider = meta().answers([Answer::Panic]);
    let Some(r) = rig(provider, postgres, |_| {}).await else {
        return;
    };
    r.customer_writes("panic-1", "5215550003", QUESTION).await;
    let conversation = eventually(Duration::from_secs(20), || async {
        let c = r.conversation_of("5215550003").await;
        (c["status"] == "escalated").then_some(c)
    })
    .await
    .expect("the customer whose send panicked is handed to a person");
    assert_eq!(conversation["escalations"][0]["reason"], "delivery_failed");
    r.customer_writes("panic-2", "5215550004", QUESTION).await;
    r.wait_sent(1, Duration::from_secs(20)).await;
    assert_eq!(r.provider.sent()[0].to, "5215550004");
    let ready: Value =
        r.t.client
            .get(format!("{}/readyz", r.t.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["workers"]["ok"], true, "{ready}");
    r.t.stop().await;
}

/// Defect: a send whose answer was lost (a timeout) was sent again at once, so the customer got
/// the reply twice. Now the next attempt waits for the status webhook, which names our message.
async fn a_lost_answer_waits_for_the_status_before_sending_again(postgres: bool) {
    let provider = meta().answers([Answer::LoseAnswer]);
    let Some(r) = rig(provider, postgres, |s| {
        s.channels.unconfirmed_grace_secs = 2
    })
    .await
    else {
        return;
    };
    r.customer_writes("lost-1", "5215550005", QUESTION).await;
    r.wait_sent(1, Duration::from_secs(20)).await;
    let first = r.provider.attempts()[0].clone();
    let reference = first.idempotency_key.clone().expect("a reference");
    // The status comes a second later (well within the grace period): nothing is sent again
    // meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        r.provider.attempts().len(),
        1,
        "not sent again while waiting"
    );
    let status = r
        .hook(json!({"route": ROUTE, "statuses": [
            {"id": "rec.1", "status": "delivered", "reference": reference}]}))
        .await;
    assert_eq!(status.status(), 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(r.provider.attempts().len(), 1, "not sent again");
    let outbound = r.outbound().await;
    assert_eq!(outbound[0]["status"], "delivered", "{outbound:?}");
    assert_eq!(outbound[0]["provider_message_id"], "rec.1");
    r.t.stop().await;
}

async fn a_lost_answer_is_resent_with_the_same_key_where_the_provider_deduplicates(postgres: bool) {
    let provider = meta().deduplicating().answers([Answer::LoseAnswer]);
    let Some(r) = rig(provider, postgres, |s| {
        s.channels.unconfirmed_grace_secs = 60
    })
    .await
    else {
        return;
    };
    r.customer_writes("dedup-1", "5215550006", QUESTION).await;
    let provider = r.provider.clone();
    eventually(Duration::from_secs(20), || async {
        (provider.attempts().len() >= 2).then_some(())
    })
    .await
    .expect("sent again without waiting for the grace period");
    let attempts = r.provider.attempts();
    assert_eq!(attempts[0].idempotency_key, attempts[1].idempotency_key);
    assert_eq!(r.provider.sent().len(), 1, "the provider kept one");
    eventually(Duration::from_secs(5), || async {
        let o = r.outbound().await;
        (o[0]["status"] == "sent").then_some(())
    })
    .await
    .expect("marked sent");
    r.t.stop().await;
}

/// Defect: a customer writing to an escalated conversation caused a request to the provider
/// (the read receipt with a typing indicator, sent before the gate).
async fn an_escalated_conversation_gets_no_bot_message_at_all(postgres: bool) {
    let Some(r) = rig(meta(), postgres, |_| {}).await else {
        return;
    };
    r.customer_writes("esc-1", "5215550007", "quiero hablar con un humano")
        .await;
    eventually(Duration::from_secs(20), || async {
        let c = r.conversation_of("5215550007").await;
        (c["status"] == "escalated").then_some(())
    })
    .await
    .expect("escalated");
    // Whatever the escalation itself sent (a hand-over notice) has gone out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (sent, attempts, reads) = (
        r.provider.sent().len(),
        r.provider.attempts().len(),
        r.provider.reads().len(),
    );
    r.customer_writes("esc-2", "5215550007", "¿hola? ¿alguien?")
        .await;
    let conversation = r.conversation_of("5215550007").await;
    let id = conversation["id"].as_str().unwrap();
    eventually(Duration::from_secs(5), || async {
        let m =
            r.t.get(&format!("/api/v1/conversations/{id}/messages"))
                .await;
        m.as_array()
            .unwrap()
            .iter()
            .any(|m| m["provider_message_id"] == "esc-2")
            .then_some(())
    })
    .await
    .expect("the message is stored");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.provider.attempts().len(), attempts, "no send");
    assert_eq!(r.provider.sent().len(), sent);
    assert_eq!(r.provider.reads().len(), reads, "no read receipt or typing");
    assert!(r
        .t
        .app
        .store
        .list_jobs(palaver::domain::WorkspaceId::DEFAULT, "pending", 10)
        .await
        .unwrap()
        .is_empty());
    r.t.stop().await;
}

/// Defect: on Postgres a NUL in a message's text or a contact's name failed the insert and every
/// later message of the webhook batch with it.
async fn nul_characters_do_not_hold_back_a_webhook_batch(postgres: bool) {
    let Some(r) = rig(meta(), postgres, |_| {}).await else {
        return;
    };
    let response = r
        .hook(json!({"route": ROUTE, "messages": [
            {"id": "nul-1", "from": "5215550008", "name": "Ana\u{0}", "text": "ho\u{0}la"},
            {"id": "nul-2", "from": "5215550009", "text": QUESTION}]}))
        .await;
    assert_eq!(response.status(), 200);
    // Both recorded, nothing left failing in the journal.
    let backlog = r.t.app.store.journal_backlog().await.unwrap();
    assert_eq!(backlog.entries, 0, "{backlog:?}");
    let second = r.conversation_of("5215550009").await;
    let second = second["id"].as_str().unwrap();
    let second =
        r.t.get(&format!("/api/v1/conversations/{second}/messages"))
            .await;
    assert_eq!(second[0]["text"], QUESTION);
    let conversation = r.conversation_of("5215550008").await;
    let id = conversation["id"].as_str().unwrap();
    let messages =
        r.t.get(&format!("/api/v1/conversations/{id}/messages"))
            .await;
    assert_eq!(messages[0]["text"], "hola");
    r.wait_sent(2, Duration::from_secs(20)).await;
    r.t.stop().await;
}

/// Channel credentials: an update without the webhook secret keeps it; an empty one is never
/// accepted, so an empty header never authenticates.
async fn an_update_without_the_secret_keeps_it_and_empty_tokens_never_authenticate(postgres: bool) {
    let Some(r) = rig(meta(), postgres, |_| {}).await else {
        return;
    };
    let patch = |body: Value| {
        r.t.request(
            reqwest::Method::PATCH,
            &format!("/api/v1/channels/{}", r.channel),
        )
        .json(&body)
        .send()
    };
    let kept = patch(json!({"name": "Casa Nube 2", "credentials": {}}))
        .await
        .unwrap();
    assert_eq!(kept.status(), 200, "{}", kept.text().await.unwrap());
    let empty = patch(json!({"credentials": {"token": ""}})).await.unwrap();
    assert_eq!(empty.status(), 422);
    let body: Value = empty.json().await.unwrap();
    assert!(body.to_string().contains("credentials.token"), "{body}");
    // The stored secret still authenticates; an empty header does not.
    r.customer_writes("cred-1", "5215550010", QUESTION).await;
    let refused =
        r.t.client
            .post(format!("{}/webhooks/meta/{}", r.t.url, r.channel))
            .header("x-test-token", "")
            .json(&json!({"route": ROUTE, "messages": []}))
            .send()
            .await
            .unwrap();
    assert_eq!(refused.status(), 401);
    r.t.stop().await;
}

/// Defect: a person's reply retried by its client after a timeout was recorded and sent twice.
/// With an `Idempotency-Key` the repeat answers 200 with the first message and nothing more is
/// sent; the same key with other text is a conflict.
async fn a_human_reply_repeated_with_its_idempotency_key_is_sent_once(postgres: bool) {
    let Some(r) = rig(meta(), postgres, |_| {}).await else {
        return;
    };
    r.customer_writes("idem-1", "5215550011", "Hola").await;
    r.wait_sent(1, Duration::from_secs(20)).await;
    let conversation = r.conversation_of("5215550011").await;
    let path = format!(
        "/api/v1/conversations/{}/messages",
        conversation["id"].as_str().unwrap()
    );
    let reply = |key: &'static str, text: &'static str| {
        r.t.request(reqwest::Method::POST, &path)
            .header("idempotency-key", key)
            .json(&json!({"text": text}))
            .send()
    };
    let first = reply("k-1", "Soy Marta, te ayudo yo.").await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = reply("k-1", "Soy Marta, te ayudo yo.").await.unwrap();
    assert_eq!(
        again.status(),
        200,
        "a repeat is answered with the first reply"
    );
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let other = reply("k-1", "Otra cosa").await.unwrap();
    assert_eq!(other.status(), 409);
    r.wait_sent(2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let texts: Vec<String> = r
        .provider
        .sent()
        .iter()
        .filter_map(|s| match &s.body {
            palaver::providers::OutboundBody::Text { text } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts.iter().filter(|t| t.contains("Marta")).count(),
        1,
        "the person's reply went out once: {texts:?}"
    );
    assert_eq!(r.provider.sent().len(), 2, "{texts:?}");
    r.t.stop().await;
}
