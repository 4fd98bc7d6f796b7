//! Knowledge gaps from start to end, as a support team lives them: customers ask the bakery
//! things its documents do not say, the bot hands each to a person, the person answers; the
//! Knowledge gaps report groups the questions; each reply is proposed as an FAQ entry in one
//! call and approved; customers who then ask the same things in other words get the answer
//! from the bot, and the approved entries run as an eval suite.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::MockServer;

use crate::support::app::{eventually, Options, TestApp};
use crate::webhooks::{meta_app, meta_app_with, meta_text_to, post_meta, PHONE_ID};

/// A question the bakery's documents do not answer, a person's reply to it, the facts the
/// reply gives, and the same question in other words.
struct Gap {
    question: &'static str,
    reply: &'static str,
    facts: &'static [&'static str],
    paraphrase: &'static str,
}

const GAPS: &[Gap] = &[
    Gap {
        question: "Could I buy a jar of the starter you use for your sourdough bread?",
        reply: "Yes, a 200 g jar of our sourdough starter costs 6 EUR; ask for it at the counter.",
        facts: &["6 EUR"],
        paraphrase: "Do you sell your sourdough starter?",
    },
    Gap {
        question: "I need an invoice showing my business tax number for my purchase, is that possible?",
        reply: "Of course: ask at the till and we print an invoice with your company's NIF. Online orders get the invoice by email within 24 hours.",
        facts: &["NIF", "24 hours"],
        paraphrase: "Can I get a company invoice with VAT number?",
    },
    Gap {
        question: "Can I charge my electric car while I shop at the bakery?",
        reply: "We have no charger ourselves, but the Parque Camões car park, 200 metres away, has four charging points for electric cars.",
        facts: &["four charging points"],
        paraphrase: "Is there a charging station for electric vehicles?",
    },
    Gap {
        question: "Do you donate leftover bread to charity?",
        reply: "Yes: unsold bread goes to the Refood charity every evening at 20:00.",
        facts: &["Refood", "20:00"],
        paraphrase: "What happens to unsold loaves at closing time?",
    },
    Gap {
        question: "Is there somewhere to change my baby's nappy?",
        reply: "Yes, there is a baby changing table in the accessible toilet on the ground floor.",
        facts: &["changing table"],
        paraphrase: "Do you have a baby changing table in the toilets?",
    },
    Gap {
        question: "Do you give a discount for reusable mugs?",
        reply: "Bring your own cup and you get 0.20 EUR off any takeaway drink.",
        facts: &["0.20 EUR"],
        paraphrase: "Can I bring my own cup for takeaway coffee?",
    },
    Gap {
        question: "Do you sponsor local football teams?",
        reply: "We sponsor one local youth club each year: write to hello@casanube.pt with your club's name before 31 January.",
        facts: &["31 January"],
        paraphrase: "Will you sponsor our youth sports club?",
    },
    Gap {
        question: "Is there a defibrillator on site?",
        reply: "Yes, there is a defibrillator (AED) behind the counter, and two of our staff are trained to use it.",
        facts: &["behind the counter"],
        paraphrase: "Do you keep an AED in the shop in case someone has a heart attack?",
    },
];

/// Asks the demo agent `text` in the sandbox, in a session of its own: whether it answered
/// (did not escalate) with every one of `facts`, and what it said.
async fn answered(t: &TestApp, session: &str, text: &str, facts: &[&str]) -> (bool, Value) {
    let (status, out) = t
        .post(
            "/api/v1/sandbox/demo/messages",
            &json!({"text": text, "session": session}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let reply = out["reply"].as_str().unwrap_or_default().to_lowercase();
    let ok = out["action"] == "replied" && facts.iter().all(|f| reply.contains(&f.to_lowercase()));
    (ok, out)
}

/// The conversation of customer `wa_id`, once it is escalated, or (unless `escalates`) once
/// the bot has answered it.
async fn handled_conversation(t: &TestApp, wa_id: &str, escalates: bool) -> Value {
    eventually(Duration::from_secs(60), || async {
        let list = t.get("/api/v1/conversations").await;
        let c = list
            .as_array()
            .and_then(|l| l.iter().find(|c| c["contact"]["wa_id"] == wa_id).cloned())?;
        if c["status"] == "escalated" {
            return Some(c);
        }
        let id = c["id"].as_str()?;
        let messages = t.get(&format!("/api/v1/conversations/{id}/messages")).await;
        let answered = messages
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "bot"));
        (answered && !escalates).then_some(c)
    })
    .await
    .unwrap_or_else(|| panic!("{wa_id}'s question was handled"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_answers_from_the_inbox_answer_the_same_questions_in_other_words() {
    let graph = crate::webhooks::graph_accepting("wamid.OUT.gaps").await;
    let t = meta_app(&graph, json!({})).await;
    gaps_closed(t, "test embedder, SQLite", true, GAPS.len() - 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_answers_answer_the_same_questions_in_other_words_on_postgres() {
    let graph = crate::webhooks::graph_accepting("wamid.OUT.gaps").await;
    let Some(t) = meta_app_with(&graph, json!({}), true, |_| {}).await else {
        return;
    };
    gaps_closed(t, "test embedder, Postgres", true, GAPS.len() - 1).await;
}

/// The same with the default local embedder (EmbeddingGemma-300M) and the agent's default
/// confidence threshold, when the model is available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_answers_answer_the_same_questions_in_other_words_with_the_local_model() {
    let graph = crate::webhooks::graph_accepting("wamid.OUT.gaps").await;
    let uri = graph.uri();
    let Some(t) = TestApp::start(Options {
        real_embedder: true,
        workers: true,
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
                "credentials": {"access_token": "test-token", "app_secret": crate::webhooks::APP_SECRET, "verify_token": "verify-me"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    gaps_closed(t, "embeddinggemma-300m, SQLite", false, GAPS.len() - 1).await;
}

/// Eight questions reach a person, whose replies are proposed and approved; the same
/// questions in other words are asked before and after.
/// With `strict`, every question must escalate; otherwise (another embedder) a person also
/// answers a question the bot answered without the facts. At least `min_after` paraphrases
/// must then be answered with the person's facts; the figures are printed.
async fn gaps_closed(t: TestApp, label: &str, strict: bool, min_after: usize) {
    let n = GAPS.len();
    let mut escalated = 0;

    // Before: the bot cannot answer any of them.
    let mut before = 0;
    for (i, gap) in GAPS.iter().enumerate() {
        let (ok, out) = answered(&t, &format!("before-{i}"), gap.paraphrase, gap.facts).await;
        assert!(!ok, "answered before anyone taught it: {out}");
        before += usize::from(ok);
    }

    // Each question reaches a person, who answers it from the inbox.
    let mut replies = Vec::new();
    for (i, gap) in GAPS.iter().enumerate() {
        let customer = format!("3519100000{i:02}");
        post_meta(
            &t,
            &meta_text_to(PHONE_ID, &customer, &format!("wamid.GAP.{i}"), gap.question),
        )
        .await;
        let conversation = handled_conversation(&t, &customer, strict).await;
        if strict {
            assert_eq!(
                conversation["status_reason"], "low_confidence",
                "{conversation}"
            );
        }
        if conversation["status"] == "escalated" {
            escalated += 1;
        }
        let id = conversation["id"].as_str().unwrap().to_string();
        let (status, reply) = t
            .post(
                &format!("/api/v1/conversations/{id}/messages"),
                &json!({"text": gap.reply}),
            )
            .await;
        assert!(
            status == 201 || status == 202 || status == 200,
            "{status} {reply}"
        );
        replies.push(reply["id"].as_str().unwrap().to_string());
    }

    // The report has every question, each its own group, escalated and answered by a person.
    let report = t.get("/api/v1/knowledge-gaps?weeks=4").await;
    assert_eq!(report["questions"], n, "{report}");
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), n, "{report}");
    for gap in GAPS {
        let group = groups
            .iter()
            .find(|g| g["question"] == gap.question)
            .unwrap_or_else(|| panic!("a group for {:?}: {report}", gap.question));
        assert_eq!(group["count"], 1);
        if strict {
            assert_eq!(group["escalated"], 1);
        }
        assert_eq!(group["answered_by_person"], 1);
        assert_eq!(group["last_7_days"], 1);
        assert_eq!(group["weekly"], json!([0, 0, 0, 1]));
        assert_eq!(group["examples"][0]["reply"]["text"], gap.reply);
        assert!(group["proposal"].is_null());
    }

    // One call proposes each reply; an author approves it as it stands.
    for (gap, reply) in GAPS.iter().zip(&replies) {
        let (status, proposal) = t
            .post("/api/v1/faq-proposals", &json!({"message_id": reply}))
            .await;
        assert_eq!(status, 201, "{proposal}");
        assert_eq!(proposal["question"], gap.question);
        assert_eq!(proposal["answer"], gap.reply);
        assert_eq!(proposal["status"], "proposed");
        // Proposing the same reply again gives the same proposal.
        let (status, again) = t
            .post("/api/v1/faq-proposals", &json!({"message_id": reply}))
            .await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["id"], proposal["id"]);
        let id = proposal["id"].as_str().unwrap();
        let (status, approved) = t
            .post(&format!("/api/v1/faq-proposals/{id}/approve"), &json!({}))
            .await;
        assert_eq!(status, 200, "{approved}");
        assert_eq!(approved["status"], "approved");
    }
    let documents = t.get("/api/v1/agents/demo/documents").await;
    assert!(
        documents
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["source"] == "approved-answers.md" && d["title"] == "Approved answers"),
        "{documents}"
    );
    let report = t.get("/api/v1/knowledge-gaps?weeks=4").await;
    assert!(
        report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["proposal"]["status"] == "approved"),
        "{report}"
    );

    // After: the same questions in other words are answered, with the person's facts.
    let mut after = 0;
    let mut missed = Vec::new();
    for (i, gap) in GAPS.iter().enumerate() {
        let (ok, out) = answered(&t, &format!("after-{i}"), gap.paraphrase, gap.facts).await;
        if ok {
            after += 1;
        } else {
            missed.push(format!("{}: {out}", gap.paraphrase));
        }
    }
    println!(
        "knowledge gaps ({label}): {escalated}/{n} questions escalated (the others a person \
         answered after the bot); before: {before}/{n} answered, after: {after}/{n} answered"
    );
    // The bag-of-words test embedder relates words, not meanings: "Do you keep an AED in the
    // shop…" finds the defibrillator entry first, by "AED" alone, at a confidence just under
    // the threshold. Every other paraphrase is answered with the person's facts.
    assert!(after >= min_after, "paraphrases not answered: {missed:#?}");

    // The approved entries are an eval suite that passes.
    let suite = t.get("/api/v1/agents/demo/faq-suite").await;
    assert_eq!(suite["cases"], n);
    let (status, run) = t
        .post("/api/v1/eval/runs", &json!({"suite": suite["suite"]}))
        .await;
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let done = eventually(Duration::from_secs(120), || async {
        let run = t.get(&format!("/api/v1/eval/runs/{id}")).await;
        (run["status"] != "running").then_some(run)
    })
    .await
    .expect("the run finishes");
    assert_eq!(done["cases_total"], n);
    assert_eq!(done["status"], "passed", "{done}");

    // Rejecting an approved entry takes it out of the knowledge again.
    let approved = t.get("/api/v1/faq-proposals?status=approved").await;
    let first = approved
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["question"] == GAPS[0].question)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, rejected) = t
        .post(&format!("/api/v1/faq-proposals/{first}/reject"), &json!({}))
        .await;
    assert_eq!(status, 200, "{rejected}");
    let (ok, out) = answered(&t, "rejected", GAPS[0].paraphrase, GAPS[0].facts).await;
    assert!(!ok, "a rejected entry still answers: {out}");
    t.stop().await;
}

#[tokio::test]
async fn proposals_are_checked_and_kept_to_their_workspace() {
    let graph = MockServer::start().await;
    let t = meta_app(&graph, json!({})).await;
    // Neither a reply nor an entry; both at once; an empty question; an unknown reply.
    for (body, status) in [
        (json!({}), 422),
        (
            json!({"message_id": uuid::Uuid::now_v7(), "question": "Q?", "answer": "A."}),
            422,
        ),
        (json!({"question": "  ", "answer": "Yes."}), 422),
        (
            json!({"question": "Q?", "answer": "A.", "agent": "nobody"}),
            404,
        ),
        (json!({"message_id": uuid::Uuid::now_v7()}), 404),
        (json!({"message_id": "not-an-id"}), 422),
    ] {
        let (got, out) = t.post("/api/v1/faq-proposals", &body).await;
        assert_eq!(got, status, "{body}: {out}");
    }
    // A customer's own message is not a person's reply.
    post_meta(
        &t,
        &meta_text_to(
            PHONE_ID,
            "351910000999",
            "wamid.GAP.X",
            "hello there, friends?",
        ),
    )
    .await;
    let conversation = eventually(Duration::from_secs(30), || async {
        t.get("/api/v1/conversations")
            .await
            .as_array()?
            .first()
            .cloned()
    })
    .await
    .unwrap();
    let id = conversation["id"].as_str().unwrap();
    let messages = t.get(&format!("/api/v1/conversations/{id}/messages")).await;
    let customer = messages[0]["id"].as_str().unwrap();
    let (status, out) = t
        .post("/api/v1/faq-proposals", &json!({"message_id": customer}))
        .await;
    assert_eq!(status, 422, "{out}");
    assert_eq!(out["error"]["fields"][0]["field"], "message_id", "{out}");

    // A written-out entry without an agent cannot be approved until one is chosen.
    let (status, made) = t
        .post(
            "/api/v1/faq-proposals",
            &json!({"question": "Do you bake on Christmas day?", "answer": "No, we close on 25 December."}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let pid = made["id"].as_str().unwrap();
    let (status, out) = t
        .post(&format!("/api/v1/faq-proposals/{pid}/approve"), &json!({}))
        .await;
    assert_eq!(status, 422, "{out}");
    let (status, out) = t
        .patch(
            &format!("/api/v1/faq-proposals/{pid}"),
            &json!({"answer": "x".repeat(4001)}),
        )
        .await;
    assert_eq!(status, 422, "{out}");
    let (status, out) = t
        .post(
            &format!("/api/v1/faq-proposals/{pid}/approve"),
            &json!({"agent": "demo", "question": "Are you open on Christmas day?"}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["question"], "Are you open on Christmas day?");
    let suite = t.get("/api/v1/agents/demo/faq-suite").await;
    assert!(suite["suite"].as_str().unwrap().contains("25"), "{suite}");

    // Another workspace sees none of it.
    let (status, _) = t
        .post("/api/v1/workspaces", &json!({"slug": "elsewhere"}))
        .await;
    assert_eq!(status, 201);
    let key: Value = t
        .client
        .post(format!("{}/api/v1/api-keys", t.url))
        .bearer_auth(crate::support::app::ADMIN_KEY)
        .header("x-palaver-workspace", "elsewhere")
        .json(&json!({"name": "owner", "role": "owner"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other = key["key"].as_str().unwrap();
    let get = |path: String| {
        t.client
            .get(format!("{}{path}", t.url))
            .bearer_auth(other)
            .send()
    };
    let list: Value = get("/api/v1/faq-proposals".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
    let report: Value = get("/api/v1/knowledge-gaps".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["questions"], 0, "{report}");
    let one = get(format!("/api/v1/faq-proposals/{pid}")).await.unwrap();
    assert_eq!(one.status(), 404);
    let (status, _) = t
        .send(
            t.client
                .post(format!("{}/api/v1/faq-proposals/{pid}/approve", t.url))
                .bearer_auth(other)
                .json(&json!({})),
        )
        .await;
    assert_eq!(status, 404);
    t.stop().await;
}
