//! Each Meta channel's Graph API version: chosen by owners and checked against the versions Meta
//! publishes, called for everything that channel does, shown with the channel, and reported on
//! its state once Meta has retired it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer};

use crate::support::app::{eventually, Options, TestApp};
use crate::webhooks::{meta_text_to, post_meta, sent_ok, APP_SECRET, CUSTOMER, GRAPH_VERSION};

/// The two newest versions Meta serves today, the older first: what a channel may choose now
/// and for as long as these tests are run.
fn current() -> (&'static str, &'static str) {
    let choosable = palaver::providers::meta::versions::choosable(chrono::Utc::now().date_naive());
    match choosable[..] {
        [.., older, newer] => (older, newer),
        _ => panic!("fewer than two versions to choose: {choosable:?}"),
    }
}

/// A customer writes to the numbers 1001 and 1002; each reply goes to that number's version:
/// `older` for 1001, `newer` for 1002.
async fn each_replies_on_its_version(t: &TestApp, graph: &MockServer, older: &str, newer: &str) {
    for (n, phone) in ["1001", "1002"].into_iter().enumerate() {
        let body = meta_text_to(
            phone,
            CUSTOMER,
            &format!("wamid.IN.{n}"),
            "Which payment methods do you accept? MB WAY?",
        );
        assert_eq!(post_meta(t, &body).await.status(), 200);
    }
    let replies = eventually(Duration::from_secs(20), || async {
        let replies = replies_by_path(graph).await;
        (replies.len() >= 2).then_some(replies)
    })
    .await
    .expect("both channels replied");
    assert_eq!(
        replies,
        BTreeMap::from([
            (format!("/{older}/1001/messages"), 1),
            (format!("/{newer}/1002/messages"), 1),
        ])
    );
}

/// A Meta channel on `phone_number_id`, with `extra` fields (a Graph API version).
fn meta_channel(name: &str, phone_number_id: &str, extra: Value) -> Value {
    let mut body = json!({
        "name": name, "provider": "meta", "phone_number_id": phone_number_id, "agent": "demo",
        "credentials": {"access_token": "test-token", "app_secret": APP_SECRET, "verify_token": "verify-me"}
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

/// An app with workers and the demo agent, calling the Graph API at `graph_url`.
async fn app(graph_url: String) -> TestApp {
    let t = TestApp::start(Options {
        workers: true,
        tweak: Box::new(move |s| s.channels.meta_graph_url = graph_url),
        ..Default::default()
    })
    .await
    .unwrap();
    t.demo_agent("demo", json!({"confidence_threshold": 0.2}))
        .await;
    t
}

/// The replies (not read receipts) the Graph mock received, by request path.
async fn replies_by_path(graph: &MockServer) -> BTreeMap<String, usize> {
    let mut paths = BTreeMap::new();
    for request in graph.received_requests().await.unwrap() {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if body.get("status").is_none() {
            *paths.entry(request.url.path().to_string()).or_default() += 1;
        }
    }
    paths
}

/// Every request path the Graph mock received.
async fn all_paths(graph: &MockServer) -> Vec<String> {
    graph
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.url.path().to_string())
        .collect()
}

#[tokio::test]
async fn two_meta_channels_on_different_versions_each_send_on_their_own() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sent_ok("wamid.OUT"))
        .mount(&graph)
        .await;
    let t = app(graph.uri()).await;
    let (older, newer) = current();
    for (name, phone, version) in [("North", "1001", older), ("South", "1002", newer)] {
        let (status, channel) = t
            .post(
                "/api/v1/channels",
                &meta_channel(name, phone, json!({"graph_version": version})),
            )
            .await;
        assert_eq!(status, 201, "{channel}");
        assert_eq!(channel["graph_version"], version, "{channel}");
    }
    each_replies_on_its_version(&t, &graph, older, newer).await;
    // Read receipts went the same way: nothing reached another version.
    for path in all_paths(&graph).await {
        assert!(
            path == format!("/{older}/1001/messages") || path == format!("/{newer}/1002/messages"),
            "{path}"
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn bad_versions_are_refused_with_the_field_and_nothing_is_stored() {
    let (_, newer) = current();
    let graph = MockServer::start().await;
    let t = app(graph.uri()).await;
    // (given, the start of the message)
    let cases = [
        ("v99.0", "v99.0 is not a Graph API version Meta publishes"),
        (
            "23",
            "must be a Graph API version written as Meta writes it",
        ),
        (
            "v23.0/../x",
            "must be a Graph API version written as Meta writes it",
        ),
        ("", "must be a Graph API version written as Meta writes it"),
        ("v19.0", "v19.0 was retired by Meta on 2026-05-21"),
    ];
    for (given, message) in cases {
        let (status, body) = t
            .post(
                "/api/v1/channels",
                &meta_channel("Shop", "1001", json!({"graph_version": given})),
            )
            .await;
        assert_eq!(status, 422, "{given}: {body}");
        let fields = body["error"]["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 1, "{given}: {body}");
        assert_eq!(fields[0]["field"], "graph_version", "{given}: {body}");
        let said = fields[0]["message"].as_str().unwrap();
        assert!(said.starts_with(message), "{given}: {said}");
        assert!(said.contains(newer), "names what may be chosen: {said}");
    }
    // Other providers have no version to choose.
    let (status, body) = t
        .post(
            "/api/v1/channels",
            &json!({"name": "K", "provider": "kapso", "phone_number_id": "2002", "graph_version": newer,
                    "credentials": {"api_key": "k", "webhook_secret": "s"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["fields"][0]["message"],
        "kapso channels have no Graph API version"
    );
    assert_eq!(t.get("/api/v1/channels").await, json!([]));

    // Without a version the channel calls the default; an owner changes it, and back.
    let (status, channel) = t
        .post("/api/v1/channels", &meta_channel("Shop", "1001", json!({})))
        .await;
    assert_eq!(status, 201, "{channel}");
    assert_eq!(channel["graph_version"], GRAPH_VERSION);
    let path = format!("/api/v1/channels/{}", channel["id"].as_str().unwrap());
    let (status, changed) = t
        .patch(&path, &json!({"graph_version": format!(" {newer} ")}))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["graph_version"], newer);
    assert_eq!(changed["warnings"], json!([]));
    for given in ["v99.0", "v23.0/../x", "v19.0"] {
        let (status, body) = t.patch(&path, &json!({"graph_version": given})).await;
        assert_eq!(status, 422, "{given}: {body}");
        assert_eq!(body["error"]["fields"][0]["field"], "graph_version");
    }
    assert_eq!(t.get(&path).await["graph_version"], newer);
    let (status, back) = t.patch(&path, &json!({"graph_version": null})).await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["graph_version"], GRAPH_VERSION);

    // People other than owners neither see nor change it.
    let response = t
        .request(reqwest::Method::POST, "/api/v1/api-keys")
        .json(&json!({"name": "desk", "role": "agent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let key = response.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let seen: Value = t
        .client
        .get(format!("{}{path}", t.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(seen.get("graph_version").is_none(), "{seen}");
    let refused = t
        .client
        .patch(format!("{}{path}", t.url))
        .bearer_auth(&key)
        .json(&json!({"graph_version": newer}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(t.get(&path).await["graph_version"], GRAPH_VERSION);
    t.stop().await;
}

#[tokio::test]
async fn a_channel_left_on_a_retired_version_says_so_on_its_state() {
    let (_, newer) = current();
    let graph = MockServer::start().await;
    let t = app(graph.uri()).await;
    let (status, created) = t
        .post(
            "/api/v1/channels",
            &meta_channel("Shop", "1001", json!({"graph_version": newer})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["warnings"], json!([]));
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/channels/{id}");

    // Chosen while Meta still served it (as a channel stored then has it).
    let mut channel = t
        .app
        .store
        .channel(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    channel.graph_version = Some("v19.0".into());
    t.app.store.update_channel(&channel, None).await.unwrap();

    let retired = "Graph API v19.0 was retired by Meta on 2026-05-21";
    let shown = t.get(&path).await;
    assert_eq!(shown["graph_version"], "v19.0");
    let warnings = shown["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{shown}");
    assert!(
        warnings[0].as_str().unwrap().starts_with(retired),
        "{shown}"
    );
    // Its state says so too, and so does the list, with nothing sent to find out.
    let state = t.get(&format!("{path}/state")).await;
    assert_eq!(state["warnings"], shown["warnings"], "{state}");
    assert_eq!(
        t.get("/api/v1/channels").await[0]["warnings"],
        shown["warnings"]
    );
    assert!(graph.received_requests().await.unwrap().is_empty());

    // Other changes keep the version it calls; choosing a current one clears the warning.
    let (status, renamed) = t.patch(&path, &json!({"name": "Shop line"})).await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["graph_version"], "v19.0");
    let (status, kept) = t.patch(&path, &json!({"graph_version": "v19.0"})).await;
    assert_eq!(status, 200, "{kept}");
    let (status, moved) = t.patch(&path, &json!({"graph_version": newer})).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["warnings"], json!([]));
    t.stop().await;
}

#[tokio::test]
async fn a_graph_url_that_ends_with_a_version_keeps_calling_it() {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sent_ok("wamid.OUT"))
        .mount(&graph)
        .await;
    // As earlier releases were configured.
    let (older, newer) = current();
    let t = app(format!("{}/{older}", graph.uri())).await;
    let (status, old) = t
        .post("/api/v1/channels", &meta_channel("Old", "1001", json!({})))
        .await;
    assert_eq!(status, 201, "{old}");
    assert_eq!(old["graph_version"], older);
    let (status, own) = t
        .post(
            "/api/v1/channels",
            &meta_channel("Own", "1002", json!({"graph_version": newer})),
        )
        .await;
    assert_eq!(status, 201, "{own}");
    each_replies_on_its_version(&t, &graph, older, newer).await;
    t.stop().await;

    // A version Meta never published is refused at start, naming the setting.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::support::app::base_settings(dir.path());
    settings.channels.meta_graph_url = "https://graph.facebook.com/v99.0".into();
    let refused = palaver::Parts::from_settings(
        &settings,
        &palaver::testing::test_model_store(),
        std::sync::Arc::new(palaver::testing::HashEmbedder::default()),
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(
        refused.starts_with("channels.meta_graph_url: ends with v99.0"),
        "{refused}"
    );
}
