//! Private notes and presence through the real server, on SQLite and on Postgres: a note stays
//! with the team (never reaching the provider, nor an outgoing webhook), its `@mentions` reach
//! the person mentioned and nobody else (another workspace least of all), only the people who
//! answer the inbox write notes; presence says who else has a conversation open or is typing,
//! ends by itself, never shows a person to themselves, and crosses replicas on Postgres.

use std::sync::Arc;
use std::time::Duration;

use palaver::domain::ProviderKind;
use palaver::providers::recording::RecordingProvider;
use reqwest::Method;
use serde_json::{json, Value};

use crate::assignment::{join_as as join, Person};
use crate::support::app::{eventually, Options, TestApp, ADMIN_KEY};
use crate::support::sse::Stream;

const ROUTE: &str = "1065403522431";
const TOKEN: &str = "rec-token-notes";
const CUSTOMER: &str = "351911112222";
const SECRET: &str = "refund approved by finance, reference NOTE-7731";

/// An app with workers and a recording provider, one channel, and a customer's conversation.
async fn app_with_a_conversation(
    postgres: bool,
    tweak: Box<dyn FnOnce(&mut palaver::config::Settings) + Send>,
) -> Option<(TestApp, Arc<RecordingProvider>, String)> {
    let provider = Arc::new(RecordingProvider::new(ProviderKind::Meta));
    let t = TestApp::start(Options {
        workers: true,
        postgres,
        provider: Some(provider.clone()),
        tweak,
        ..Default::default()
    })
    .await?;
    t.demo_agent("demo", json!({})).await;
    let (status, channel) = t
        .post(
            "/api/v1/channels",
            &json!({"name": "Casa Nube", "provider": "meta", "phone_number_id": ROUTE,
                    "agent": "demo", "credentials": {"token": TOKEN}}),
        )
        .await;
    assert_eq!(status, 201, "{channel}");
    let channel = channel["id"].as_str().unwrap().to_string();
    let response = t
        .client
        .post(format!("{}/webhooks/meta/{channel}", t.url))
        .header("x-test-token", TOKEN)
        .json(&json!({"route": ROUTE, "messages": [{"id": "wamid.N1", "from": CUSTOMER, "text": "Is my refund on its way?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let conversation = eventually(Duration::from_secs(20), || async {
        let list = t.get("/api/v1/conversations").await;
        list.as_array()?
            .first()
            .map(|c| c["id"].as_str().unwrap().to_string())
    })
    .await
    .expect("the conversation is listed");
    Some((t, provider, conversation))
}

/// `person`'s event stream on the server at `url` (`query` after `?`).
async fn stream_of(t: &TestApp, url: &str, person: &Person, query: &str) -> Stream {
    Stream::open_request(
        t.client
            .get(format!("{url}/api/v1/events?{query}"))
            .header("cookie", format!("palaver_session={}", person.cookie)),
    )
    .await
}

/// The logged events a stream carries within `within` (presence frames left out).
async fn kinds_within(stream: &mut Stream, within: Duration) -> Vec<(String, Value)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    while let Some((id, kind, data)) = stream
        .frame(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        if id.is_some() {
            seen.push((kind, data));
        }
    }
    seen
}

async fn notes_stay_with_the_team_and_mentions_reach_only_the_mentioned(postgres: bool) {
    let Some((t, provider, conversation)) =
        app_with_a_conversation(postgres, Box::new(|_| {})).await
    else {
        return;
    };
    let ana = join(&t, None, "ana@casanube.example", "agent", "Ana Silva").await;
    let rui = join(&t, None, "rui@casanube.example", "agent", "Rui Pereira").await;
    let bea = join(&t, None, "bea@casanube.example", "author", "Bea").await;
    // Another business has its own Ana, who must hear nothing of this one's notes.
    let stranger = join(&t, Some("acme"), "ana@acme.example", "agent", "Ana").await;

    let mut ana_hears = stream_of(&t, &t.url, &ana, "").await;
    let mut rui_hears = stream_of(&t, &t.url, &rui, "").await;
    let mut stranger_hears = stream_of(&t, &t.url, &stranger, "").await;
    let mut key_hears = Stream::open(&t.client, &t.url, ADMIN_KEY, "", None).await;

    // Whatever the bot answered has gone; from here on nothing may reach the provider.
    t.settle().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent_before = provider.attempts().len();

    let notes = format!("/conversations/{conversation}/notes");
    let (status, note) = rui
        .call(
            &t,
            Method::POST,
            &notes,
            Some(json!({"text": format!("@ana {SECRET}; cc @nobody and ana@acme.example")})),
        )
        .await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["type"], "note");
    assert_eq!(note["author_id"], rui.id.as_str());
    assert_eq!(note["author_name"], "Rui Pereira");
    assert_eq!(note["mentions"], json!([ana.id]), "only Ana is mentioned");

    // Ana is told; Rui (who wrote it), the owner's key and the other workspace are not.
    let heard = kinds_within(&mut ana_hears, Duration::from_secs(3)).await;
    let mention = heard
        .iter()
        .find(|(k, _)| k == "note.mentioned")
        .unwrap_or_else(|| panic!("Ana was not told: {heard:?}"));
    assert_eq!(mention.1["data"]["user_id"], ana.id.as_str());
    assert_eq!(mention.1["conversation_id"], conversation.as_str());
    assert_eq!(mention.1["data"]["note"]["author_name"], "Rui Pereira");
    assert!(heard.iter().any(|(k, _)| k == "note.created"), "{heard:?}");
    let rui_heard = kinds_within(&mut rui_hears, Duration::from_secs(1)).await;
    assert!(rui_heard.iter().any(|(k, _)| k == "note.created"));
    assert!(
        !rui_heard.iter().any(|(k, _)| k == "note.mentioned"),
        "{rui_heard:?}"
    );
    let key_heard = kinds_within(&mut key_hears, Duration::from_secs(1)).await;
    assert!(!key_heard.iter().any(|(k, _)| k == "note.mentioned"));
    let stranger_heard = kinds_within(&mut stranger_hears, Duration::from_secs(1)).await;
    assert!(stranger_heard.is_empty(), "{stranger_heard:?}");
    // Polling says the same.
    let (_, page) = ana
        .call(&t, Method::GET, "/events?after=0&type=note.mentioned", None)
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    let (_, page) = rui
        .call(&t, Method::GET, "/events?after=0&type=note.mentioned", None)
        .await;
    assert!(page["events"].as_array().unwrap().is_empty(), "{page}");

    // The note is read with the conversation, and as its own list; it is no message.
    let (_, view) = bea
        .call(
            &t,
            Method::GET,
            &format!("/conversations/{conversation}"),
            None,
        )
        .await;
    assert_eq!(view["notes"][0]["type"], "note", "{view}");
    assert_eq!(view["notes"][0]["id"], note["id"]);
    let (status, listed) = bea.call(&t, Method::GET, &notes, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (_, messages) = ana
        .call(
            &t,
            Method::GET,
            &format!("/conversations/{conversation}/messages"),
            None,
        )
        .await;
    assert!(!messages.to_string().contains("NOTE-7731"), "{messages}");

    // Nothing went to the customer, now or later.
    t.settle().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = provider.attempts();
    assert_eq!(attempts.len(), sent_before, "{attempts:?}");
    assert!(!format!("{attempts:?}").contains("NOTE-7731"));

    // Refusals: an author may not write one; bad text; no CSRF token; another workspace.
    let (status, _) = bea
        .call(&t, Method::POST, &notes, Some(json!({"text": "hello"})))
        .await;
    assert_eq!(status, 403);
    for bad in [
        json!({"text": "   "}),
        json!({"text": "a\u{0}b"}),
        json!({"text": "x".repeat(4001)}),
    ] {
        let (status, body) = ana.call(&t, Method::POST, &notes, Some(bad)).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["fields"][0]["field"], "text");
    }
    let (status, _) = ana
        .call(
            &t,
            Method::POST,
            &notes,
            Some(json!({"text": "hi", "to": "x"})),
        )
        .await;
    assert!([400, 422].contains(&status), "{status}");
    let no_csrf = t
        .client
        .post(format!("{}/api/v1{notes}", t.url))
        .header("cookie", format!("palaver_session={}", ana.cookie))
        .json(&json!({"text": "without the token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    for method in [Method::GET, Method::POST] {
        let (status, _) = stranger
            .call(&t, method, &notes, Some(json!({"text": "@ana hello"})))
            .await;
        assert_eq!(status, 404);
    }
    let (status, _) = stranger
        .call(
            &t,
            Method::GET,
            &format!("/conversations/{conversation}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (_, listed) = bea.call(&t, Method::GET, &notes, None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "refused notes stored");

    // Notes are internal: an outgoing webhook cannot subscribe to them.
    let (status, body) = t
        .post(
            "/api/v1/webhooks",
            &json!({"url": "https://crm.example.com/hook", "events": ["note.created"]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    t.stop().await;
}

#[tokio::test]
async fn notes_stay_with_the_team_and_mentions_reach_only_the_mentioned_sqlite() {
    notes_stay_with_the_team_and_mentions_reach_only_the_mentioned(false).await;
}

#[tokio::test]
async fn notes_stay_with_the_team_and_mentions_reach_only_the_mentioned_postgres() {
    notes_stay_with_the_team_and_mentions_reach_only_the_mentioned(true).await;
}

/// The next `presence` frame of `stream` within `within`: the people in it, as (name, typing).
async fn next_presence(stream: &mut Stream, within: Duration) -> Option<Vec<(String, bool)>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (_, kind, data) = stream.frame(left).await?;
        if kind == "presence" {
            return Some(
                data["people"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap().to_string(),
                            p["typing"].as_bool().unwrap(),
                        )
                    })
                    .collect(),
            );
        }
    }
}

/// Presence frames until one `done` accepts, within `within`.
async fn presence_until(
    stream: &mut Stream,
    within: Duration,
    done: impl Fn(&[(String, bool)]) -> bool,
) -> Vec<Vec<(String, bool)>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_presence(stream, left).await {
            Some(people) => {
                let finished = done(&people);
                seen.push(people);
                if finished {
                    return seen;
                }
            }
            None => panic!("no such presence within {within:?}; saw {seen:?}"),
        }
    }
}

async fn presence_says_who_is_there_and_ends_by_itself(postgres: bool) {
    let Some((t, _provider, conversation)) =
        app_with_a_conversation(postgres, Box::new(|_| {})).await
    else {
        return;
    };
    let ana = join(&t, None, "ana@casanube.example", "agent", "Ana").await;
    let rui = join(&t, None, "rui@casanube.example", "agent", "Rui").await;
    let stranger = join(&t, Some("acme"), "ana@acme.example", "agent", "Ana").await;
    let path = format!("/conversations/{conversation}/presence");
    let watch = format!("presence={conversation}");

    // A stream starts with who is there now: nobody.
    let mut ana_sees = stream_of(&t, &t.url, &ana, &watch).await;
    let mut rui_sees = stream_of(&t, &t.url, &rui, &watch).await;
    assert_eq!(
        next_presence(&mut ana_sees, Duration::from_secs(2)).await,
        Some(vec![])
    );
    assert_eq!(
        next_presence(&mut rui_sees, Duration::from_secs(2)).await,
        Some(vec![])
    );

    let (status, answer) = ana
        .call(&t, Method::POST, &path, Some(json!({"state": "viewing"})))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["people"], json!([]), "nobody else is there");
    presence_until(&mut rui_sees, Duration::from_secs(3), |p| {
        p == [("Ana".to_string(), false)]
    })
    .await;
    // Rui types: Ana sees it, and Rui's answer shows Ana viewing, never Rui himself.
    let (_, answer) = rui
        .call(&t, Method::POST, &path, Some(json!({"state": "typing"})))
        .await;
    assert_eq!(answer["people"][0]["name"], "Ana");
    assert_eq!(answer["people"].as_array().unwrap().len(), 1);
    let seen = presence_until(&mut ana_sees, Duration::from_secs(3), |p| {
        p == [("Rui".to_string(), true)]
    })
    .await;
    assert!(
        seen.iter().flatten().all(|(who, _)| who != "Ana"),
        "Ana was shown herself: {seen:?}"
    );
    // Typing ends by itself; viewing stays while it is renewed.
    presence_until(&mut ana_sees, Duration::from_secs(10), |p| {
        p == [("Rui".to_string(), false)]
    })
    .await;
    // Leaving ends it at once.
    let (status, _) = ana
        .call(&t, Method::POST, &path, Some(json!({"state": "left"})))
        .await;
    assert_eq!(status, 200);
    presence_until(&mut rui_sees, Duration::from_secs(3), |p| p.is_empty()).await;

    // Refusals: another workspace, an API key (no person), bad state, no CSRF token.
    let (status, _) = stranger
        .call(&t, Method::POST, &path, Some(json!({"state": "viewing"})))
        .await;
    assert_eq!(status, 404);
    let refused = t
        .client
        .get(format!("{}/api/v1/events?{watch}", t.url))
        .header("cookie", format!("palaver_session={}", stranger.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let (status, _) = t
        .post(&format!("/api/v1{path}"), &json!({"state": "viewing"}))
        .await;
    assert_eq!(status, 422);
    let (status, _) = ana
        .call(&t, Method::POST, &path, Some(json!({"state": "dancing"})))
        .await;
    assert!([400, 422].contains(&status), "{status}");
    let no_csrf = t
        .client
        .post(format!("{}/api/v1{path}", t.url))
        .header("cookie", format!("palaver_session={}", ana.cookie))
        .json(&json!({"state": "viewing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);

    // On Postgres, a second replica's people are seen from the first, and back.
    if postgres {
        let url = t.app.settings.database_url();
        let replica = TestApp::start(Options {
            postgres: false,
            tweak: Box::new(move |s| {
                s.database.url = Some(secrecy::SecretString::from(url));
            }),
            ..Default::default()
        })
        .await
        .unwrap();
        // The second replica hears the first's notifications once its listener is connected,
        // which `/readyz` tells; before, a change it missed reaches it only by a reminder.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = replica.get("/readyz").await;
            if ready["events"]["listening"] == json!(true) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the second replica never listened: {ready}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut ana_on_b = stream_of(&t, &replica.url, &ana, &watch).await;
        assert_eq!(
            next_presence(&mut ana_on_b, Duration::from_secs(2)).await,
            Some(vec![]),
            "Rui's typing ended and Ana left"
        );
        // Rui still has it open, on the first replica: a reminder reaches the second.
        let (_, _) = rui
            .call(&t, Method::POST, &path, Some(json!({"state": "typing"})))
            .await;
        presence_until(&mut ana_on_b, Duration::from_secs(5), |p| {
            p == [("Rui".to_string(), true)]
        })
        .await;
        let answer = replica
            .client
            .post(format!("{}/api/v1{path}", replica.url))
            .header("cookie", format!("palaver_session={}", ana.cookie))
            .header("x-csrf-token", &ana.csrf)
            .json(&json!({"state": "viewing"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        presence_until(&mut rui_sees, Duration::from_secs(5), |p| {
            p.iter().any(|(who, _)| who == "Ana")
        })
        .await;
        replica.stop().await;
    }
    t.stop().await;
}

#[tokio::test]
async fn presence_says_who_is_there_and_ends_by_itself_sqlite() {
    presence_says_who_is_there_and_ends_by_itself(false).await;
}

#[tokio::test]
async fn presence_says_who_is_there_and_ends_by_itself_postgres() {
    presence_says_who_is_there_and_ends_by_itself(true).await;
}
