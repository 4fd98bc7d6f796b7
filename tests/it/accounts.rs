//! Workspaces and roles through the real server: two workspaces with look-alike data never see
//! or change each other's (both backends); every route answers every role as the README's table
//! says; a database made before workspaces existed upgrades in place (both backends).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use palaver::domain::{EvalRunId, WorkspaceId};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::app::{eventually, Options, TestApp, ADMIN_KEY};
use crate::webhooks::sign;

/// One workspace's look-alike data: the same agent name, channel name and customer number as
/// the other's, with its own facts.
struct Tenant {
    ws: WorkspaceId,
    key: String,
    key_id: String,
    agent: String,
    document: String,
    channel: String,
    conversation: String,
    job: String,
    run: String,
    hook: String,
    phone: &'static str,
    secret: &'static str,
}

const CUSTOMER: &str = "351912345678";

/// A Meta webhook with one text message from [`CUSTOMER`] to `phone`.
fn meta_message(phone: &str, id: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": CUSTOMER}],
            "messages": [{"from": CUSTOMER, "id": id, "timestamp": chrono::Utc::now().timestamp().to_string(),
                          "type": "text", "text": {"body": text}}]
        }}]}]
    }))
    .unwrap()
}

/// Posts a signed Meta webhook and waits until what it carried is recorded.
async fn post_webhook(t: &TestApp, body: &[u8], secret: &str) -> u16 {
    let status = t
        .client
        .post(format!("{}/webhooks/meta", t.url))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(body, secret))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    t.settle().await;
    status
}

/// `method path` with `key`, a JSON body for writes; the status and the JSON answer.
async fn call(t: &TestApp, key: &str, method: Method, path: &str) -> (u16, Value) {
    let mut request = t
        .client
        .request(method.clone(), format!("{}/api/v1{path}", t.url))
        .bearer_auth(key);
    if method != Method::GET && method != Method::DELETE {
        request = request.json(&json!({}));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn call_json(t: &TestApp, key: &str, method: Method, path: &str, body: Value) -> Value {
    let response = t
        .client
        .request(method.clone(), format!("{}/api/v1{path}", t.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

/// A workspace made by the operator, an owner key, and the look-alike data.
async fn tenant(
    t: &TestApp,
    slug: &str,
    phone: &'static str,
    secret: &'static str,
    fact: &str,
) -> Tenant {
    let ws = call_json(
        t,
        ADMIN_KEY,
        Method::POST,
        "/workspaces",
        json!({"slug": slug}),
    )
    .await;
    let ws: WorkspaceId = id(&ws).parse().unwrap();
    let response = t
        .client
        .post(format!("{}/api/v1/api-keys", t.url))
        .bearer_auth(ADMIN_KEY)
        .header("x-palaver-workspace", slug)
        .json(&json!({"name": "owner", "role": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let key_id = id(&created);
    assert_eq!(created["role"], "owner");

    let agent = id(&call_json(t, &key, Method::POST, "/agents", json!({"name": "support"})).await);
    let form = Form::new().part(
        "file",
        Part::bytes(format!("# Opening hours\n\n{fact}\n").into_bytes())
            .file_name("faq.md")
            .mime_str("text/markdown")
            .unwrap(),
    );
    let response = t
        .client
        .post(format!("{}/api/v1/agents/support/documents", t.url))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let (_, documents) = call(t, &key, Method::GET, "/agents/support/documents").await;
    let document = id(&documents[0]);
    assert_eq!(documents[0]["collection"], "support");

    let channel = id(&call_json(
        t,
        &key,
        Method::POST,
        "/channels",
        json!({"name": "Front desk", "provider": "meta", "phone_number_id": phone, "agent": "support",
               "credentials": {"access_token": "t", "app_secret": secret, "verify_token": "v"}}),
    )
    .await);
    let body = meta_message(phone, &format!("wamid.{slug}.1"), "When are you open?");
    assert_eq!(post_webhook(t, &body, secret).await, 200);
    let (_, conversations) = call(t, &key, Method::GET, "/conversations").await;
    assert_eq!(
        conversations.as_array().unwrap().len(),
        1,
        "{conversations}"
    );
    let conversation = id(&conversations[0]);
    assert_eq!(conversations[0]["agent_id"], agent.as_str());

    let jobs = t.app.store.list_jobs(ws, "pending", 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let run = EvalRunId::new();
    t.app
        .store
        .create_eval_run(ws, run, &json!({"suites": ["faq.yaml"]}))
        .await
        .unwrap();
    // An outgoing webhook for events that never happen here (no deliveries, no jobs).
    let hook = id(&call_json(
        t,
        &key,
        Method::POST,
        "/webhooks",
        json!({"url": format!("http://127.0.0.1:9/{slug}"), "events": ["eval.run.finished"]}),
    )
    .await);
    Tenant {
        hook,
        ws,
        key,
        key_id,
        agent,
        document,
        channel,
        conversation,
        job: jobs[0].id.to_string(),
        run: run.to_string(),
        phone,
        secret,
    }
}

/// What workspace `b` holds, read with its own key (times of key use left out).
async fn state_of(t: &TestApp, b: &Tenant) -> BTreeMap<String, Value> {
    let paths = [
        format!("/agents/{}", b.agent),
        format!("/agents/{}/documents", b.agent),
        format!("/channels/{}", b.channel),
        format!("/conversations/{}", b.conversation),
        format!("/conversations/{}/messages", b.conversation),
        "/api-keys".to_string(),
        "/webhooks".to_string(),
        format!("/webhooks/{}", b.hook),
        "/jobs?status=dead".to_string(),
        format!("/eval/runs/{}", b.run),
        "/workspace".to_string(),
    ];
    let mut state = BTreeMap::new();
    for path in paths {
        let (status, mut body) = call(t, &b.key, Method::GET, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        if let Some(keys) = body.as_array_mut() {
            for k in keys {
                if let Some(k) = k.as_object_mut() {
                    k.remove("last_used_at");
                }
            }
        }
        state.insert(path, body);
    }
    state
}

/// A request that would succeed on the caller's own resource.
fn acting(t: &TestApp, key: &str, method: &Method, path: &str) -> reqwest::RequestBuilder {
    let request = t
        .client
        .request(method.clone(), format!("{}/api/v1{path}", t.url))
        .bearer_auth(key);
    if path.ends_with("/documents") && *method == Method::POST {
        let form = Form::new().part(
            "file",
            Part::bytes(b"# Taken over\n\nNothing here.\n".to_vec())
                .file_name("intruder.md")
                .mime_str("text/markdown")
                .unwrap(),
        );
        return request.multipart(form);
    }
    match body_for(method, path) {
        Some(body) => request.json(&body),
        None => request,
    }
}

/// `text` with every UUID blanked.
fn strip_ids(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let candidate = rest.get(..36).filter(|c| uuid::Uuid::parse_str(c).is_ok());
        if candidate.is_some() {
            out.push_str("<id>");
            rest = &rest[36..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Every route that names a resource, with workspace `of`'s ids.
fn routes_with_ids(of: &Tenant, mine: &Tenant) -> Vec<(Method, String)> {
    let (a, d, c, v, k, j, r) = (
        &of.agent,
        &of.document,
        &of.channel,
        &of.conversation,
        &of.key_id,
        &of.job,
        &of.run,
    );
    let m = &mine.agent;
    let h = &of.hook;
    vec![
        (Method::GET, format!("/agents/{a}")),
        (Method::PATCH, format!("/agents/{a}")),
        (Method::DELETE, format!("/agents/{a}")),
        (Method::GET, format!("/agents/{a}/documents")),
        (Method::POST, format!("/agents/{a}/documents")),
        (Method::GET, format!("/agents/{a}/documents/{d}")),
        (Method::DELETE, format!("/agents/{a}/documents/{d}")),
        (Method::GET, format!("/agents/{m}/documents/{d}")),
        (Method::DELETE, format!("/agents/{m}/documents/{d}")),
        (Method::GET, format!("/agents/{a}/search?q=open")),
        (Method::POST, format!("/sandbox/{a}/messages")),
        (Method::POST, format!("/sandbox/{a}/reset")),
        (Method::GET, format!("/eval/runs/{r}")),
        (Method::GET, format!("/channels/{c}")),
        (Method::PATCH, format!("/channels/{c}")),
        (Method::DELETE, format!("/channels/{c}")),
        (Method::POST, format!("/channels/{c}/connect")),
        (Method::GET, format!("/channels/{c}/state")),
        (Method::POST, format!("/channels/{c}/logout")),
        (Method::GET, format!("/conversations/{v}")),
        (Method::GET, format!("/conversations/{v}/messages")),
        (Method::POST, format!("/conversations/{v}/messages")),
        (
            Method::GET,
            format!("/conversations/{v}/messages/{}/media", uuid::Uuid::now_v7()),
        ),
        (
            Method::GET,
            format!(
                "/conversations/{v}/messages/{}/eval-case",
                uuid::Uuid::now_v7()
            ),
        ),
        (Method::POST, format!("/conversations/{v}/read")),
        (Method::PUT, format!("/conversations/{v}/assignee")),
        (Method::POST, format!("/conversations/{v}/resolve")),
        (Method::POST, format!("/conversations/{v}/handback")),
        (Method::DELETE, format!("/api-keys/{k}")),
        (Method::POST, format!("/jobs/{j}/requeue")),
        (Method::GET, format!("/webhooks/{h}")),
        (Method::PATCH, format!("/webhooks/{h}")),
        (Method::GET, format!("/webhooks/{h}/deliveries")),
        (Method::DELETE, format!("/webhooks/{h}")),
    ]
}

/// Bodies that would succeed on the caller's own resources, so that a 404 says "not yours" and
/// not "bad request".
fn body_for(method: &Method, path: &str) -> Option<Value> {
    let body = if path.ends_with("/messages") && path.starts_with("/conversations") {
        json!({"text": "Hello from the other workspace"})
    } else if path.starts_with("/sandbox") && path.ends_with("/messages") {
        json!({"text": "When are you open?"})
    } else if path.starts_with("/agents") && *method == Method::PATCH {
        json!({"temperature": 0.9})
    } else if path.starts_with("/channels") && *method == Method::PATCH {
        json!({"name": "Taken over"})
    } else if [Method::POST, Method::PATCH, Method::PUT].contains(method) {
        json!({})
    } else {
        return None;
    };
    Some(body)
}

async fn isolation(postgres: bool) {
    let Some(t) = TestApp::start(Options {
        postgres,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let a = tenant(
        &t,
        "north",
        "1065400000001",
        "north-secret",
        "We open at 9 on weekdays.",
    )
    .await;
    let b = tenant(
        &t,
        "south",
        "1065400000002",
        "south-secret",
        "Kiwi lemonade is free on Fridays.",
    )
    .await;
    // Both tenants' jobs given up, so that requeueing has something to act on.
    while let Some(job) = t
        .app
        .store
        .claim_next_job("test", Duration::from_secs(60))
        .await
        .unwrap()
    {
        t.app
            .store
            .dead_letter_job(job.id, "test", "made dead by the test")
            .await
            .unwrap();
    }
    let before = state_of(&t, &b).await;

    // Every route with B's ids, called with A's key: 404, as for an id that does not exist.
    for (method, path) in routes_with_ids(&b, &a) {
        let response = acting(&t, &a.key, &method, &path).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(
            status, 404,
            "{method} {path} with another workspace's id: {text}"
        );
        // Word for word what an id that exists nowhere gets.
        let mut unknown = path.clone();
        let mut foreign = text.clone();
        for id in [
            &b.agent,
            &b.document,
            &b.channel,
            &b.conversation,
            &b.key_id,
            &b.job,
            &b.run,
            &b.hook,
        ] {
            let fresh = uuid::Uuid::now_v7().to_string();
            unknown = unknown.replace(id.as_str(), &fresh);
            foreign = foreign.replace(id.as_str(), &fresh);
        }
        let response = acting(&t, &a.key, &method, &unknown).send().await.unwrap();
        let (unknown_status, unknown_text) =
            (response.status().as_u16(), response.text().await.unwrap());
        assert_eq!(
            (status, strip_ids(&foreign)),
            (unknown_status, strip_ids(&unknown_text)),
            "{method} {path}: another workspace's id is answered unlike an unknown one"
        );
    }
    // The same routes with A's own ids work: the 404s above are not broken routes. (Deleting
    // A's agent, channel or key is left out: later calls need them.)
    let mut document_deleted = false;
    for (method, path) in routes_with_ids(&a, &a) {
        let keeps = [&a.agent, &a.channel, &a.key_id];
        if method == Method::DELETE && keeps.iter().any(|k| path.ends_with(k.as_str())) {
            continue;
        }
        if path.ends_with("/documents") && method == Method::POST {
            continue; // multipart only; tested in the API suite
        }
        if path.contains("/messages/") {
            continue; // needs a message with an attachment or a bot reply: tests/it/inbox.rs
        }
        let mut request = t
            .client
            .request(method.clone(), format!("{}/api/v1{path}", t.url))
            .bearer_auth(&a.key);
        if let Some(body) = body_for(&method, &path) {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        // Meta numbers have no pairing (connect, logout: refused on their own terms); A's
        // document is gone once deleted through the first of the two paths naming it.
        let expected = status < 300
            || ((path.ends_with("/connect") || path.ends_with("/logout")) && status != 404)
            || (document_deleted && path.contains("/documents/") && status == 404);
        assert!(
            expected,
            "{method} {path} on the caller's own resources: {status} {text}"
        );
        document_deleted |= path.contains("/documents/") && method == Method::DELETE;
    }

    // Lists show only the caller's workspace.
    for path in [
        "/agents",
        "/channels",
        "/conversations",
        "/api-keys",
        "/jobs?status=dead",
        "/eval/runs",
        "/webhooks",
    ] {
        let (status, body) = call(&t, &a.key, Method::GET, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let text = body.to_string();
        for foreign in [
            &b.agent,
            &b.channel,
            &b.conversation,
            &b.key_id,
            &b.job,
            &b.run,
            &b.hook,
        ] {
            assert!(
                !text.contains(foreign.as_str()),
                "{path} lists workspace B's {foreign}: {text}"
            );
        }
    }
    // Search sees only the caller's knowledge.
    let (status, hits) = call(
        &t,
        &b.key,
        Method::GET,
        "/agents/support/search?q=kiwi%20lemonade%20fridays",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        hits.to_string().contains("Kiwi"),
        "B finds its own fact: {hits}"
    );
    let (status, hits) = call(
        &t,
        &a.key,
        Method::GET,
        "/agents/support/search?q=kiwi%20lemonade%20fridays",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !hits.to_string().contains("Kiwi"),
        "A found B's knowledge: {hits}"
    );
    // The sandbox answers from the caller's knowledge only.
    let reply = call_json(
        &t,
        &a.key,
        Method::POST,
        "/sandbox/support/messages",
        json!({"text": "Is kiwi lemonade free on Fridays?", "session": "iso"}),
    )
    .await;
    assert!(
        !reply.to_string().contains("Kiwi"),
        "A's sandbox used B's knowledge: {reply}"
    );

    // A webhook for B's number signed with A's secret reaches nobody (acknowledged, dropped);
    // with B's secret it reaches B's agent only.
    let body = meta_message(b.phone, "wamid.south.2", "Do you deliver?");
    assert_eq!(post_webhook(&t, &body, a.secret).await, 200);
    let (_, m) = call(
        &t,
        &b.key,
        Method::GET,
        &format!("/conversations/{}/messages", b.conversation),
    )
    .await;
    assert_eq!(
        m.as_array().unwrap().len(),
        1,
        "a message signed by A reached B: {m}"
    );
    assert_eq!(post_webhook(&t, &body, b.secret).await, 200);
    let (_, listed) = call(&t, &a.key, Method::GET, "/conversations").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], a.conversation.as_str());
    let messages = eventually(Duration::from_secs(5), || async {
        let (_, m) = call(
            &t,
            &b.key,
            Method::GET,
            &format!("/conversations/{}/messages", b.conversation),
        )
        .await;
        (m.as_array().map_or(0, Vec::len) == 2).then_some(m)
    })
    .await
    .expect("B's second message is in B's conversation");
    assert!(messages.to_string().contains("Do you deliver?"));
    let conversation = t
        .app
        .store
        .conversation(b.conversation.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.workspace_id, b.ws);
    assert_eq!(conversation.agent_id.unwrap().to_string(), b.agent);

    // Nothing of B changed, but for the message B's own customer just sent (and the 24-hour
    // window it opened anew).
    let mut after = state_of(&t, &b).await;
    let key = format!("/conversations/{}/messages", b.conversation);
    after.insert(key.clone(), before[&key].clone());
    let key = format!("/conversations/{}", b.conversation);
    for field in [
        "last_activity_at",
        "last_inbound_at",
        "unread_count",
        "service_window",
    ] {
        after.get_mut(&key).unwrap()[field] = before[&key][field].clone();
    }
    // B's subscription has looked at B's own new event.
    let key = format!("/webhooks/{}", b.hook);
    after.get_mut(&key).unwrap()["cursor"] = before[&key]["cursor"].clone();
    after.get_mut("/webhooks").unwrap()[0]["cursor"] = before["/webhooks"][0]["cursor"].clone();
    for (path, value) in &before {
        assert_eq!(&after[path], value, "workspace B's {path} changed");
    }
    // A workspace key cannot name another workspace.
    let response = t
        .client
        .get(format!("{}/api/v1/agents", t.url))
        .bearer_auth(&a.key)
        .header("x-palaver-workspace", "south")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    t.stop().await;
}

crate::both_backends_flag!(isolation, upgrade_in_place);

/// Who may call a route besides the roles it names.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Access {
    Roles,
    Operator,
    Public,
}

/// The README's role table: (methods, path, who may call it per role, who else).
fn role_table() -> Vec<(Vec<Method>, String, [bool; 3], Access)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in readme.lines() {
        if line.starts_with("| Method | Path | owner | author | agent |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 5, "bad role table line: {line}");
        let methods = cells[0]
            .split(", ")
            .map(|m| Method::from_bytes(m.as_bytes()).unwrap())
            .collect();
        let access = match cells[2] {
            "operator" => Access::Operator,
            "public" => Access::Public,
            _ => Access::Roles,
        };
        let allowed = [cells[2] == "✓", cells[3] == "✓", cells[4] == "✓"];
        rows.push((methods, cells[1].to_string(), allowed, access));
    }
    assert!(rows.len() > 20, "the README's role table was not found");
    rows
}

/// Every path the router serves under `/api/v1`.
fn declared_paths(t: &TestApp) -> BTreeSet<String> {
    palaver::http::route_table(&t.app)
        .into_iter()
        .filter_map(|r| r.path.strip_prefix("/api/v1").map(str::to_string))
        .collect()
}

/// `call`, with a body that no allowed caller can act on: an eval run that would start is
/// refused by its own checks.
async fn probe(t: &TestApp, key: &str, method: &Method, path: &str) -> (u16, Value) {
    // The event stream never ends; its polling form answers under the same rule.
    if path == "/events" && *method == Method::GET {
        return call(t, key, Method::GET, "/events?after=0").await;
    }
    if path == "/eval/runs" && *method == Method::POST {
        let response = t
            .client
            .post(format!("{}/api/v1{path}", t.url))
            .bearer_auth(key)
            .json(&json!({"min_pass": 5}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        return (status, response.json().await.unwrap_or(Value::Null));
    }
    call(t, key, method.clone(), path).await
}

/// Every route × every role answers as the README's table says: allowed roles never get 403,
/// the others always do; the table lists every route and method there is.
#[tokio::test]
async fn every_route_answers_each_role_as_the_readme_table_says() {
    let t = TestApp::start(Options::default()).await.unwrap();
    let mut keys = Vec::new();
    for role in ["owner", "author", "agent"] {
        let created = call_json(
            &t,
            ADMIN_KEY,
            Method::POST,
            "/api-keys",
            json!({"name": role, "role": role}),
        )
        .await;
        keys.push(created["key"].as_str().unwrap().to_string());
    }
    let table = role_table();
    let listed: BTreeSet<String> = table.iter().map(|r| r.1.clone()).collect();
    assert_eq!(
        listed,
        declared_paths(&t),
        "the README's role table and the routes differ"
    );

    // Ids nobody has: allowed calls end in 404 or 422, never in 403.
    let fill = |path: &str| {
        let mut out = String::new();
        for part in path.split('/').skip(1) {
            out.push('/');
            if part.starts_with('{') {
                out.push_str(&uuid::Uuid::now_v7().to_string());
            } else {
                out.push_str(part);
            }
        }
        out
    };
    let all = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let mut by_path: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (methods, path, allowed, access) in &table {
        for method in methods {
            by_path
                .entry(path.clone())
                .or_default()
                .insert(method.to_string());
            let url = fill(path);
            if *access == Access::Public {
                // No credentials needed: never 401 or 403 for want of them.
                let (status, body) = probe(&t, "", method, &url).await;
                assert!(
                    ![401, 403, 405].contains(&status)
                        || status == 401 && body["error"]["code"] == "bad_credentials",
                    "{method} {path} without credentials: {status} {body}"
                );
                continue;
            }
            let (status, _) = probe(&t, "", method, &url).await;
            assert_eq!(status, 401, "{method} {path} without credentials");
            for (role, key) in keys.iter().enumerate() {
                let (status, body) = probe(&t, key, method, &url).await;
                if *access == Access::Operator || !allowed[role] {
                    assert_eq!(
                        status,
                        403,
                        "{method} {path} as {}: {body}",
                        ["owner", "author", "agent"][role]
                    );
                } else {
                    assert_ne!(
                        status,
                        403,
                        "{method} {path} as {}: {body}",
                        ["owner", "author", "agent"][role]
                    );
                    assert_ne!(
                        status, 405,
                        "{method} {path} is in the table but not served"
                    );
                }
            }
            if *access == Access::Operator {
                let (status, body) = probe(&t, ADMIN_KEY, method, &url).await;
                assert!(
                    status != 403 && status != 405,
                    "{method} {path} as the operator: {status} {body}"
                );
            }
        }
    }
    // A method the table does not list is not served at all.
    for (path, methods) in by_path {
        for method in &all {
            if methods.contains(method.as_str()) {
                continue;
            }
            let (status, _) = call(&t, ADMIN_KEY, method.clone(), &fill(&path)).await;
            assert_eq!(
                status, 405,
                "{method} {path} is served but not in the README's table"
            );
        }
    }
    // No key, or a revoked one: 401 everywhere.
    let (status, _) = call(
        &t,
        "pk_not_a_key_at_all_0000000000",
        Method::GET,
        "/workspace",
    )
    .await;
    assert_eq!(status, 401);
    t.stop().await;
}

/// A database made by the previous release (migration 1 only: before delivery deadlines, user
/// ids, workspaces, people, events and outgoing webhooks) starts, migrates, and keeps its agent,
/// channel (credentials sealed by that release), conversation and API key, whose use is then
/// recorded.
async fn upgrade_in_place(postgres: bool) {
    use palaver::crypto::{generate_key, hash_api_key, parse_key, Sealer};
    use palaver::providers::Credentials;
    use sqlx::Executor;

    let dir = tempfile::tempdir().unwrap();
    let url = if postgres {
        match crate::support::pg::fresh_database().await {
            Some(url) => url,
            None => return,
        }
    } else {
        format!("sqlite://{}", dir.path().join("old.db").display())
    };
    let old = palaver::store::SqlStore::connect(&url, 2).await.unwrap();
    old.migrate_to(1).await.unwrap();
    drop(old);

    const KEY: &str = "pk_legacy_owner_key_0123456789abcdef";
    const PHONE: &str = "1065409999999";
    const SECRET: &str = "legacy-secret";
    let encryption_key = generate_key();
    let sealed = Sealer::new(&parse_key(&encryption_key).unwrap()).seal(
        &Credentials::from_pairs([
            ("access_token", "t"),
            ("app_secret", SECRET),
            ("verify_token", "v"),
        ])
        .to_bytes(),
    );
    sqlx::any::install_default_drivers();
    let raw_url = if postgres {
        url.clone()
    } else {
        format!("{url}?mode=rw")
    };
    let pool = sqlx::AnyPool::connect(&raw_url).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    // That release's agents kept a confidence threshold on the old scale (its default, 0.45).
    let mut config = serde_json::to_value(palaver::domain::AgentConfig::default()).unwrap();
    config["confidence_threshold"] = json!(0.45);
    let config = config.to_string();
    let settings = serde_json::to_string(&palaver::domain::ChannelConfig::default()).unwrap();
    let statements = [
        format!("INSERT INTO agents (id, name, active, config, created_at, updated_at) VALUES ('0193a000-0000-7000-8000-000000000001', 'legacy', 1, $1, {now}, {now})"),
        format!("INSERT INTO api_keys (id, name, key_hash, prefix, created_at) VALUES ('0193a000-0000-7000-8000-000000000002', 'old', '{}', 'pk_legacy_', {now})", hash_api_key(KEY)),
        format!("INSERT INTO contacts (id, channel_id, wa_id, name, created_at, updated_at) VALUES ('0193a000-0000-7000-8000-000000000004', '0193a000-0000-7000-8000-000000000003', '{CUSTOMER}', 'Ana', {now}, {now})"),
        format!("INSERT INTO conversations (id, channel_id, contact_id, agent_id, status, last_activity_at, context_started_at, created_at, updated_at) VALUES ('0193a000-0000-7000-8000-000000000005', '0193a000-0000-7000-8000-000000000003', '0193a000-0000-7000-8000-000000000004', '0193a000-0000-7000-8000-000000000001', 'active', {now}, {now}, {now}, {now})"),
        format!("INSERT INTO messages (id, conversation_id, channel_id, direction, role, kind, body, provider_message_id, status, handled, created_at, updated_at) VALUES ('0193a000-0000-7000-8000-000000000006', '0193a000-0000-7000-8000-000000000005', '0193a000-0000-7000-8000-000000000003', 'inbound', 'customer', 'text', 'Hello from before', 'wamid.old.1', 'received', 1, {now}, {now})"),
    ];
    let channel_sql = "INSERT INTO channels (id, name, provider, route_key, agent_id, credentials, settings, state, created_at, updated_at) VALUES ('0193a000-0000-7000-8000-000000000003', 'Legacy desk', 'meta', $1, '0193a000-0000-7000-8000-000000000001', $2, $3, 'created', $4, $4)";
    pool.execute(sqlx::query(sqlx::AssertSqlSafe(statements[0].clone())).bind(config))
        .await
        .unwrap();
    pool.execute(sqlx::query(sqlx::AssertSqlSafe(statements[1].clone())))
        .await
        .unwrap();
    pool.execute(
        sqlx::query(channel_sql)
            .bind(PHONE)
            .bind(sealed)
            .bind(settings)
            .bind(now),
    )
    .await
    .unwrap();
    for statement in &statements[2..] {
        pool.execute(sqlx::query(sqlx::AssertSqlSafe(statement.clone())))
            .await
            .unwrap();
    }
    pool.close().await;

    let database = url.clone();
    let Some(t) = TestApp::start(Options {
        tweak: Box::new(move |s| {
            s.database.url = Some(secrecy::SecretString::from(database));
            s.channels.encryption_key = Some(secrecy::SecretString::from(encryption_key));
        }),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let (status, workspace) = call(&t, KEY, Method::GET, "/workspace").await;
    assert_eq!(
        (status, workspace["slug"].as_str()),
        (200, Some("default")),
        "{workspace}"
    );
    let (status, agent) = call(&t, KEY, Method::GET, "/agents/legacy").await;
    assert_eq!(
        status, 200,
        "the old key is an owner key of the default workspace: {agent}"
    );
    // Confidence is measured on a new scale: the old threshold gave way to the new default.
    assert_eq!(
        agent["confidence_threshold"]
            .as_f64()
            .map(|t| (t * 100.0).round()),
        Some(
            (f64::from(palaver::domain::AgentConfig::default().confidence_threshold) * 100.0)
                .round()
        ),
        "{agent}"
    );
    let (_, channels) = call(&t, KEY, Method::GET, "/channels").await;
    assert_eq!(channels[0]["name"], "Legacy desk");
    // The channel still verifies with the credentials sealed before, and the customer's next
    // message joins the conversation they had.
    let body = meta_message(PHONE, "wamid.new.1", "Still there?");
    assert_eq!(post_webhook(&t, &body, SECRET).await, 200);
    let (_, conversations) = call(&t, KEY, Method::GET, "/conversations").await;
    assert_eq!(
        conversations.as_array().unwrap().len(),
        1,
        "{conversations}"
    );
    assert_eq!(
        conversations[0]["id"],
        "0193a000-0000-7000-8000-000000000005"
    );
    let (_, messages) = call(
        &t,
        KEY,
        Method::GET,
        "/conversations/0193a000-0000-7000-8000-000000000005/messages",
    )
    .await;
    let texts: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str().or(m["body"].as_str()))
        .collect();
    assert_eq!(texts, ["Hello from before", "Still there?"], "{messages}");
    // The old key's use is recorded.
    let (_, keys) = call(&t, KEY, Method::GET, "/api-keys").await;
    let old_key = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "old")
        .expect("the old key is listed");
    assert_eq!(old_key["role"], "owner");
    assert!(old_key["last_used_at"].is_string(), "{old_key}");
    // Names stay unique per workspace: another workspace may reuse `legacy`.
    let other = call_json(
        &t,
        ADMIN_KEY,
        Method::POST,
        "/workspaces",
        json!({"slug": "other"}),
    )
    .await;
    let other: WorkspaceId = id(&other).parse().unwrap();
    t.app
        .store
        .create_agent(other, "legacy", true, &Default::default())
        .await
        .unwrap();
    t.stop().await;
}

/// A browser's view of a sign-in answer: the session cookie's value and attributes, the CSRF
/// token and the body.
struct Browser {
    cookie: String,
    attributes: String,
    csrf: String,
    body: Value,
}

async fn browser(response: reqwest::Response) -> Browser {
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status} {body}");
    let (pair, attributes) = set_cookie.split_once(';').unwrap_or((&set_cookie, ""));
    let cookie = pair
        .strip_prefix("palaver_session=")
        .unwrap_or_else(|| panic!("no session cookie in `{set_cookie}`"))
        .to_string();
    Browser {
        cookie,
        attributes: attributes.to_string(),
        csrf: body["csrf_token"].as_str().unwrap_or_default().to_string(),
        body,
    }
}

async fn sign_in(
    t: &TestApp,
    email: &str,
    password: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = t
        .client
        .post(format!("{}/api/v1/sign-in", t.url))
        .json(&json!({"email": email, "password": password}));
    if let Some(c) = cookie {
        request = request.header("cookie", format!("palaver_session={c}"));
    }
    request.send().await.unwrap()
}

/// `method path` as a browser with `cookie`, and `csrf` when given.
async fn as_browser(
    t: &TestApp,
    cookie: &str,
    csrf: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = t
        .client
        .request(method, format!("{}/api/v1{path}", t.url))
        .header("cookie", format!("palaver_session={cookie}"));
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const OWNER_EMAIL: &str = "owner@casanube.example";
const OWNER_PASSWORD: &str = "a long owner passphrase";

/// An app whose instance owner was made with the one-time set-up token.
async fn with_owner(
    tweak: impl FnOnce(&mut palaver::config::Settings) + Send + 'static,
) -> (TestApp, Browser) {
    let t = TestApp::start(Options {
        tweak: Box::new(tweak),
        ..Default::default()
    })
    .await
    .unwrap();
    let token = palaver::accounts::people::setup_token(t.app.store.as_ref())
        .await
        .unwrap()
        .expect("nobody can sign in yet");
    let setup = |token: String| {
        t.client
            .post(format!("{}/api/v1/setup", t.url))
            .json(&json!({"token": token, "email": OWNER_EMAIL, "name": "Marta", "password": OWNER_PASSWORD}))
            .send()
    };
    let wrong = setup("not-the-token".into()).await.unwrap();
    assert_eq!(wrong.status(), 404);
    let owner = browser(setup(token.clone()).await.unwrap()).await;
    assert_eq!(owner.body["user"]["instance_owner"], true);
    assert_eq!(owner.body["workspaces"][0]["role"], "owner");
    let again = setup(token).await.unwrap();
    assert_eq!(again.status(), 404, "the set-up token works once");
    (t, owner)
}

#[tokio::test]
async fn session_cookies_are_http_only_lax_and_secure_behind_https() {
    let (t, owner) = with_owner(|_| {}).await;
    let attributes = owner.attributes.to_lowercase();
    for expected in ["httponly", "samesite=lax", "path=/", "max-age="] {
        assert!(attributes.contains(expected), "{attributes}");
    }
    assert!(
        !attributes.contains("secure"),
        "plain HTTP on loopback: {attributes}"
    );
    let response = t
        .client
        .post(format!("{}/api/v1/sign-in", t.url))
        .header("x-forwarded-proto", "https")
        .json(&json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(browser(response)
        .await
        .attributes
        .to_lowercase()
        .contains("secure"));
    let (status, me) = as_browser(&t, &owner.cookie, None, Method::GET, "/me", None).await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["email"], OWNER_EMAIL);
    assert_eq!(me["operator"], true);
    t.stop().await;
}

/// Fixation: a token the browser held before signing in is never the session after it; a live
/// session it held is ended.
#[tokio::test]
async fn sign_in_never_keeps_a_token_it_was_given() {
    let (t, owner) = with_owner(|_| {}).await;
    let planted = "attacker-chosen-token-value-0000000000000";
    let fresh = browser(sign_in(&t, OWNER_EMAIL, OWNER_PASSWORD, Some(planted)).await).await;
    assert_ne!(fresh.cookie, planted);
    let (status, _) = as_browser(&t, planted, None, Method::GET, "/me", None).await;
    assert_eq!(status, 401, "a planted token opens nothing");
    let again = browser(sign_in(&t, OWNER_EMAIL, OWNER_PASSWORD, Some(&fresh.cookie)).await).await;
    assert_ne!(
        again.cookie, fresh.cookie,
        "every sign-in makes a new session"
    );
    let (status, _) = as_browser(&t, &fresh.cookie, None, Method::GET, "/me", None).await;
    assert_eq!(
        status, 401,
        "the session held before signing in again is ended"
    );
    let (status, _) = as_browser(&t, &again.cookie, None, Method::GET, "/me", None).await;
    assert_eq!(status, 200);
    // The set-up's session is another browser's: untouched.
    let (status, _) = as_browser(&t, &owner.cookie, None, Method::GET, "/me", None).await;
    assert_eq!(status, 200);
    // Sign-out ends it.
    let (status, _) = as_browser(
        &t,
        &again.cookie,
        Some(&again.csrf),
        Method::POST,
        "/sign-out",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = as_browser(&t, &again.cookie, None, Method::GET, "/me", None).await;
    assert_eq!(status, 401);
    t.stop().await;
}

/// CSRF: with a session cookie, a request that changes something needs the session's token;
/// reads and API keys do not.
#[tokio::test]
async fn cookie_requests_that_change_something_need_the_csrf_token() {
    let (t, owner) = with_owner(|_| {}).await;
    let body = || Some(json!({"name": "csrf-demo"}));
    let (status, answer) =
        as_browser(&t, &owner.cookie, None, Method::POST, "/agents", body()).await;
    assert_eq!(status, 403, "{answer}");
    let (status, _) = as_browser(
        &t,
        &owner.cookie,
        Some("wrong"),
        Method::POST,
        "/agents",
        body(),
    )
    .await;
    assert_eq!(status, 403);
    let other = browser(sign_in(&t, OWNER_EMAIL, OWNER_PASSWORD, None).await).await;
    let (status, _) = as_browser(
        &t,
        &owner.cookie,
        Some(&other.csrf),
        Method::POST,
        "/agents",
        body(),
    )
    .await;
    assert_eq!(status, 403, "another session's token is no good");
    let (status, answer) = as_browser(
        &t,
        &owner.cookie,
        Some(&owner.csrf),
        Method::POST,
        "/agents",
        body(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (status, _) = as_browser(&t, &owner.cookie, None, Method::GET, "/agents", None).await;
    assert_eq!(status, 200, "reads need no token");
    let (status, _) = call(&t, ADMIN_KEY, Method::POST, "/agents").await;
    assert_eq!(
        status, 422,
        "API keys need no token (and the empty body is refused on its merits)"
    );
    // The audit log names who did it.
    let (_, log) = as_browser(&t, &owner.cookie, None, Method::GET, "/audit", None).await;
    assert_eq!(log[0]["action"], "agent.create", "{log}");
    assert!(log[0]["actor"].as_str().unwrap().starts_with("user:"));
    t.stop().await;
}

#[tokio::test]
async fn sessions_expire() {
    let (t, owner) = with_owner(|s| s.accounts.session_ttl_secs = 1).await;
    let (status, _) = as_browser(&t, &owner.cookie, None, Method::GET, "/me", None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, _) = as_browser(&t, &owner.cookie, None, Method::GET, "/me", None).await;
    assert_eq!(status, 401, "an expired session opens nothing");
    t.stop().await;
}

#[tokio::test]
async fn a_password_change_ends_every_session() {
    let (t, owner) = with_owner(|_| {}).await;
    let phone = browser(sign_in(&t, OWNER_EMAIL, OWNER_PASSWORD, None).await).await;
    let change =
        |current: &str, new: &str| Some(json!({"current_password": current, "new_password": new}));
    let (status, answer) = as_browser(
        &t,
        &owner.cookie,
        Some(&owner.csrf),
        Method::POST,
        "/me/password",
        change("not the password", "a brand new passphrase"),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let response = t
        .client
        .post(format!("{}/api/v1/me/password", t.url))
        .header("cookie", format!("palaver_session={}", owner.cookie))
        .header("x-csrf-token", &owner.csrf)
        .json(&change(OWNER_PASSWORD, "a brand new passphrase"))
        .send()
        .await
        .unwrap();
    let renewed = browser(response).await;
    for old in [&owner.cookie, &phone.cookie] {
        let (status, _) = as_browser(&t, old, None, Method::GET, "/me", None).await;
        assert_eq!(status, 401, "a session from before the change still works");
    }
    let (status, _) = as_browser(&t, &renewed.cookie, None, Method::GET, "/me", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        sign_in(&t, OWNER_EMAIL, OWNER_PASSWORD, None)
            .await
            .status(),
        401
    );
    assert_eq!(
        sign_in(&t, OWNER_EMAIL, "a brand new passphrase", None)
            .await
            .status(),
        200
    );
    t.stop().await;
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled() {
    let (t, owner) = with_owner(|s| s.accounts.sign_in_attempts = 3).await;
    // Someone else, to show the throttle is per email.
    let (status, invited) = as_browser(
        &t,
        &owner.cookie,
        Some(&owner.csrf),
        Method::POST,
        "/invitations",
        Some(json!({"email": "ines@casanube.example", "role": "agent"})),
    )
    .await;
    assert_eq!(status, 201, "{invited}");
    let response = t
        .client
        .post(format!("{}/api/v1/invitations/accept", t.url))
        .json(&json!({"token": invited["token"], "name": "Inês", "password": "ines passphrase 1"}))
        .send()
        .await
        .unwrap();
    let ines = browser(response).await;
    assert_eq!(ines.body["workspaces"][0]["role"], "agent");
    for _ in 0..3 {
        let r = sign_in(&t, OWNER_EMAIL, "guess guess guess", None).await;
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_credentials");
    }
    let refused = sign_in(&t, OWNER_EMAIL, OWNER_PASSWORD, None).await;
    assert_eq!(refused.status(), 429, "even the right password waits");
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0);
    assert_eq!(
        sign_in(&t, "ines@casanube.example", "ines passphrase 1", None)
            .await
            .status(),
        200,
        "another person is not locked out"
    );
    // An invitation link works once; the agent it made sees the inbox and nothing else.
    let reused = t
        .client
        .post(format!("{}/api/v1/invitations/accept", t.url))
        .json(&json!({"token": invited["token"], "name": "Mallory", "password": "mallory passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), 404);
    let (status, _) = as_browser(&t, &ines.cookie, None, Method::GET, "/conversations", None).await;
    assert_eq!(status, 200);
    let (status, _) = as_browser(&t, &ines.cookie, None, Method::GET, "/agents", None).await;
    assert_eq!(status, 403);
    t.stop().await;
}

/// `method path` as the operator acting in workspace `slug`.
async fn in_workspace(
    t: &TestApp,
    slug: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = t
        .client
        .request(method, format!("{}/api/v1{path}", t.url))
        .bearer_auth(ADMIN_KEY)
        .header("x-palaver-workspace", slug);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_workspace_at_its_limits_refuses_more_and_others_are_not_held_back() {
    let t = TestApp::start(Options::default()).await.unwrap();
    call_json(
        &t,
        ADMIN_KEY,
        Method::POST,
        "/workspaces",
        json!({"slug": "small", "limits": {"agents": 1, "channels": 1, "documents": 1}}),
    )
    .await;
    let (status, _) = in_workspace(
        &t,
        "small",
        Method::POST,
        "/agents",
        Some(json!({"name": "one"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, refused) = in_workspace(
        &t,
        "small",
        Method::POST,
        "/agents",
        Some(json!({"name": "two"})),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "limit_reached");
    let channel = |phone: &str| {
        Some(
            json!({"name": phone, "provider": "meta", "phone_number_id": phone, "agent": "one",
                    "credentials": {"access_token": "t", "app_secret": "s", "verify_token": "v"}}),
        )
    };
    let (status, created) =
        in_workspace(&t, "small", Method::POST, "/channels", channel("5001")).await;
    assert_eq!(status, 201, "{created}");
    let (status, refused) =
        in_workspace(&t, "small", Method::POST, "/channels", channel("5002")).await;
    assert_eq!(status, 409, "{refused}");
    let upload = |name: &str| {
        t.client
            .post(format!("{}/api/v1/agents/one/documents", t.url))
            .bearer_auth(ADMIN_KEY)
            .header("x-palaver-workspace", "small")
            .multipart(
                Form::new().part(
                    "file",
                    Part::bytes(b"# Hours\n\nWe open at nine.\n".to_vec())
                        .file_name(name.to_string())
                        .mime_str("text/markdown")
                        .unwrap(),
                ),
            )
            .send()
    };
    assert_eq!(upload("a.md").await.unwrap().status(), 201);
    let refused = upload("b.md").await.unwrap();
    assert_eq!(refused.status(), 409);
    // The usage shows what is held; the default workspace is not limited by another's limits.
    let (_, small) = in_workspace(&t, "small", Method::GET, "/workspace", None).await;
    assert_eq!(small["usage"]["agents"], 1);
    assert_eq!(small["usage"]["channels"], 1);
    assert_eq!(small["usage"]["documents"], 1);
    for name in ["two", "three"] {
        let (status, _) = t.post("/api/v1/agents", &json!({"name": name})).await;
        assert_eq!(status, 201);
    }
    // Raising the limit lets the workspace grow again.
    let ws = in_workspace(&t, "small", Method::GET, "/workspace", None)
        .await
        .1;
    let (status, _) = call(&t, ADMIN_KEY, Method::GET, "/workspaces").await;
    assert_eq!(status, 200);
    let response = t
        .client
        .patch(format!("{}/api/v1/workspaces/{}", t.url, id(&ws)))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"limits": {"agents": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, _) = in_workspace(
        &t,
        "small",
        Method::POST,
        "/agents",
        Some(json!({"name": "two"})),
    )
    .await;
    assert_eq!(status, 201);
    t.stop().await;
}

/// The audit log records what an owner's key changed (agents, channel credentials, keys,
/// outgoing webhooks), by whom, without a secret in it, and only in its own workspace.
async fn the_audit_log_records_changes_by_whom(postgres: bool) {
    let Some(t) = TestApp::start(Options {
        postgres,
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let owner = call_json(
        &t,
        ADMIN_KEY,
        Method::POST,
        "/api-keys",
        json!({"name": "owner", "role": "owner"}),
    )
    .await;
    let (key, key_id) = (owner["key"].as_str().unwrap(), id(&owner));
    call_json(&t, key, Method::POST, "/agents", json!({"name": "desk"})).await;
    call_json(
        &t,
        key,
        Method::PATCH,
        "/agents/desk",
        json!({"temperature": 0.5}),
    )
    .await;
    let channel = id(&call_json(
        &t,
        key,
        Method::POST,
        "/channels",
        json!({"name": "Front", "provider": "meta", "phone_number_id": "1065401111111", "agent": "desk",
               "credentials": {"access_token": "first-token-value", "app_secret": "app-secret-value", "verify_token": "v"}}),
    )
    .await);
    call_json(
        &t,
        key,
        Method::PATCH,
        &format!("/channels/{channel}"),
        json!({"credentials": {"access_token": "second-token-value"}}),
    )
    .await;
    let author = call_json(
        &t,
        key,
        Method::POST,
        "/api-keys",
        json!({"name": "ci", "role": "author"}),
    )
    .await;
    let (status, _) = call(
        &t,
        key,
        Method::DELETE,
        &format!("/api-keys/{}", id(&author)),
    )
    .await;
    assert_eq!(status, 204);
    call_json(
        &t,
        key,
        Method::POST,
        "/webhooks",
        json!({"url": "http://127.0.0.1:9/crm"}),
    )
    .await;

    let (status, log) = call(&t, key, Method::GET, "/audit").await;
    assert_eq!(status, 200, "{log}");
    let text = log.to_string();
    for secret in [
        "first-token-value",
        "second-token-value",
        "app-secret-value",
        "whsec_",
    ] {
        assert!(
            !text.contains(secret),
            "the audit log shows a secret: {text}"
        );
    }
    let by = format!("key:{key_id}");
    let mine: Vec<(&str, &Value)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == by.as_str())
        .map(|e| (e["action"].as_str().unwrap(), e))
        .collect();
    let actions: BTreeSet<&str> = mine.iter().map(|(a, _)| *a).collect();
    for expected in [
        "agent.create",
        "agent.update",
        "channel.create",
        "channel.update",
        "key.create",
        "key.revoke",
        "webhook.create",
    ] {
        assert!(actions.contains(expected), "{expected} missing: {text}");
    }
    let update = mine.iter().find(|(a, _)| *a == "channel.update").unwrap().1;
    assert_eq!(update["target"], channel.as_str());
    assert_eq!(update["detail"]["credentials_changed"], true, "{update}");
    // The operator made the owner key.
    assert!(log
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"] == "operator"
            && e["action"] == "key.create"
            && e["target"] == key_id.as_str()));

    // Another workspace's log has none of it.
    call_json(
        &t,
        ADMIN_KEY,
        Method::POST,
        "/workspaces",
        json!({"slug": "elsewhere"}),
    )
    .await;
    let (_, elsewhere) = in_workspace(&t, "elsewhere", Method::GET, "/audit", None).await;
    assert!(
        !elsewhere.to_string().contains(&channel),
        "another workspace sees the log: {elsewhere}"
    );
    t.stop().await;
}

#[tokio::test]
async fn the_audit_log_records_changes_by_whom_sqlite() {
    the_audit_log_records_changes_by_whom(false).await;
}

#[tokio::test]
async fn the_audit_log_records_changes_by_whom_postgres() {
    the_audit_log_records_changes_by_whom(true).await;
}

/// `palaver` with a data directory, `input` on standard input; exit code, stdout, stderr.
fn palaver_cli(data: &std::path::Path, args: &[&str], input: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_palaver"))
        .args(args)
        .env("PALAVER__DATA__DIR", data)
        .env("PALAVER_LOG", "error")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn sign_in_status(t: &TestApp, email: &str, password: &str) -> (u16, Value) {
    let response = t
        .client
        .post(format!("{}/api/v1/sign-in", t.url))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `palaver users` manages people from the command line: a person it creates signs in with the
/// role it gave; a password it sets replaces the old one; bad input is refused by name.
#[tokio::test]
async fn the_users_command_manages_people() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, out, err) = palaver_cli(
        &data,
        &[
            "users",
            "create",
            "Ana@Example.com",
            "--role",
            "agent",
            "--name",
            "Ana",
        ],
        "a long enough password\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ana@example.com") && out.contains("agent"),
        "{out}"
    );
    let (code, _, err) = palaver_cli(
        &data,
        &["users", "create", "bo@example.com", "--role", "agent"],
        "short\n",
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("password"),
        "the refusal names the field: {err}"
    );
    let (code, _, err) = palaver_cli(
        &data,
        &["users", "create", "bo@example.com", "--role", "chief"],
        "a long enough password\n",
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("--role must be owner, author or agent"),
        "{err}"
    );
    let (code, out, _) = palaver_cli(&data, &["users", "list"], "");
    assert_eq!(code, 0);
    assert!(
        out.contains("ana@example.com") && !out.contains("bo@example.com"),
        "{out}"
    );

    let database = format!("sqlite://{}", data.join("palaver.db").display());
    let t = TestApp::start(Options {
        tweak: Box::new(move |s| {
            s.database.url = Some(secrecy::SecretString::from(database));
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let (status, body) = sign_in_status(&t, "ana@example.com", "a long enough password").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = sign_in_status(&t, "ana@example.com", "another long password").await;
    assert_eq!(status, 401);

    let (code, out, err) = palaver_cli(
        &data,
        &["users", "set-password", "ana@example.com"],
        "another long password\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (status, _) = sign_in_status(&t, "ana@example.com", "a long enough password").await;
    assert_eq!(status, 401, "the old password no longer works");
    let (status, body) = sign_in_status(&t, "ana@example.com", "another long password").await;
    assert_eq!(status, 200, "{body}");
    let (code, _, err) = palaver_cli(
        &data,
        &["users", "set-password", "nobody@example.com"],
        "another long password\n",
    );
    assert_ne!(code, 0);
    assert!(err.contains("no user nobody@example.com"), "{err}");
    t.stop().await;
}

/// An eval run starts from the stored agents of its own workspace only: another workspace's
/// agent is unknown to it, as if it did not exist.
#[tokio::test]
async fn eval_runs_read_only_their_workspace_agents() {
    let t = TestApp::start(Options::default()).await.unwrap();
    call_json(
        &t,
        ADMIN_KEY,
        Method::POST,
        "/workspaces",
        json!({"slug": "south"}),
    )
    .await;
    let (status, agent) = in_workspace(
        &t,
        "south",
        Method::POST,
        "/agents",
        Some(json!({"name": "south-desk", "escalation": {"keywords": ["kiwi"]}})),
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let suite = json!({"suite": {"name": "from-stored", "agent": {"from": "south-desk"},
        "cases": [{"id": "kiwi", "say": "kiwi please", "expect": [{"escalates": true}]}]}});
    let run = |workspace: &'static str| {
        let t = &t;
        let suite = suite.clone();
        async move {
            let (status, body) =
                in_workspace(t, workspace, Method::POST, "/eval/runs", Some(suite)).await;
            if status != 202 {
                return body;
            }
            let path = format!("/eval/runs/{}", body["id"].as_str().unwrap());
            eventually(Duration::from_secs(60), || async {
                let (_, run) = in_workspace(t, workspace, Method::GET, &path, None).await;
                (run["status"] != "running").then_some(run)
            })
            .await
            .expect("the run finishes")
        }
    };
    let own = run("south").await;
    assert_eq!(own["status"], "passed", "{own}");
    let other = run("default").await;
    assert_ne!(other["status"], "passed", "{other}");
    assert!(
        other.to_string().contains("south-desk"),
        "the run names the agent it cannot find: {other}"
    );
    t.stop().await;
}

/// How a channel is set up (its number, settings and webhook address) is an owner's: an agent
/// or an author reading the channels gets their names and states, enough for the inbox filter.
#[tokio::test]
async fn only_owners_see_how_channels_are_set_up() {
    let t = TestApp::start(Options::default()).await.unwrap();
    call_json(
        &t,
        ADMIN_KEY,
        Method::POST,
        "/agents",
        json!({"name": "desk"}),
    )
    .await;
    let channel = id(&call_json(
        &t,
        ADMIN_KEY,
        Method::POST,
        "/channels",
        json!({"name": "Front", "provider": "meta", "phone_number_id": "1065402222222", "agent": "desk",
               "settings": {"rate_per_minute": 30},
               "credentials": {"access_token": "token-value", "app_secret": "secret-value", "verify_token": "v"}}),
    )
    .await);
    let (_, owner_view) = call(&t, ADMIN_KEY, Method::GET, "/channels").await;
    assert!(owner_view[0]["webhook_url"].is_string(), "{owner_view}");
    assert!(owner_view[0]["settings"].is_object(), "{owner_view}");
    assert_eq!(owner_view[0]["route_key"], "1065402222222");
    for role in ["agent", "author"] {
        let key = call_json(
            &t,
            ADMIN_KEY,
            Method::POST,
            "/api-keys",
            json!({"name": role, "role": role}),
        )
        .await;
        let key = key["key"].as_str().unwrap();
        let (status, list) = call(&t, key, Method::GET, "/channels").await;
        assert_eq!(status, 200, "{list}");
        let (status, one) = call(&t, key, Method::GET, &format!("/channels/{channel}")).await;
        assert_eq!(status, 200, "{one}");
        for shown in [&list[0], &one] {
            assert_eq!(shown["name"], "Front", "{role}: {shown}");
            assert!(shown["state"].is_string(), "{role}: {shown}");
            for hidden in ["webhook_url", "settings", "route_key"] {
                assert!(shown.get(hidden).is_none(), "{role} sees {hidden}: {shown}");
            }
        }
    }
    t.stop().await;
}

/// Defect: the throttle's count, the password check and the record of a failure were separate
/// steps, so 30 parallel wrong guesses for one email all got 401 (want at most 5, then 429),
/// and 40 parallel guesses from one address across 40 emails all did too (its limit is 20).
#[tokio::test]
async fn parallel_guesses_are_throttled_like_sequential_ones() {
    let (t, _owner) = with_owner(|s| s.accounts.sign_in_attempts = 5).await;
    let statuses = |emails: Vec<String>| {
        let t = &t;
        async move {
            let attempts = emails
                .iter()
                .map(|email| sign_in(t, email, "guess guess guess", None));
            futures::future::join_all(attempts)
                .await
                .into_iter()
                .map(|r| r.status().as_u16())
                .collect::<Vec<u16>>()
        }
    };
    let one_email = statuses(vec![OWNER_EMAIL.to_string(); 30]).await;
    let refused = one_email.iter().filter(|s| **s == 401).count();
    assert!(refused <= 5, "{refused} guesses checked: {one_email:?}");
    assert!(
        one_email.iter().all(|s| [401, 429].contains(s)),
        "{one_email:?}"
    );

    let many = (0..40)
        .map(|i| format!("guess{i}@casanube.example"))
        .collect();
    let one_address = statuses(many).await;
    let checked = one_address.iter().filter(|s| **s == 401).count();
    assert!(
        refused + checked <= 20,
        "{} guesses checked from one address: {one_address:?}",
        refused + checked
    );
    t.stop().await;
}

/// Defect: a person invited with the operator key who accepted before the instance's owner
/// was created ended set-up: the set-up link answered 404 and no owner could be made but from
/// the command line. Set-up lasts until an owner exists.
#[tokio::test]
async fn the_setup_link_works_until_an_owner_exists() {
    let t = TestApp::start(Options::default()).await.unwrap();
    let token = palaver::accounts::people::setup_token(t.app.store.as_ref())
        .await
        .unwrap()
        .expect("nobody can sign in yet");
    let invited = call_json(
        &t,
        ADMIN_KEY,
        Method::POST,
        "/invitations",
        json!({"email": "ines@casanube.example", "role": "agent"}),
    )
    .await;
    let accepted = t
        .client
        .post(format!("{}/api/v1/invitations/accept", t.url))
        .json(&json!({"token": invited["token"], "name": "Inês", "password": "ines passphrase 1"}))
        .send()
        .await
        .unwrap();
    assert!(accepted.status().is_success(), "{}", accepted.status());
    // A restart in between still has set-up to finish: a new link is made.
    assert!(palaver::accounts::people::setup_token(t.app.store.as_ref())
        .await
        .unwrap()
        .is_some());
    let setup = t
        .client
        .post(format!("{}/api/v1/setup", t.url))
        .json(&json!({"token": token, "email": OWNER_EMAIL, "name": "Marta", "password": OWNER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        setup.status(),
        404,
        "the earlier link was replaced by the new one"
    );
    let fresh = palaver::accounts::people::setup_token(t.app.store.as_ref())
        .await
        .unwrap()
        .expect("still no owner");
    let owner = browser(
        t.client
            .post(format!("{}/api/v1/setup", t.url))
            .json(&json!({"token": fresh, "email": OWNER_EMAIL, "name": "Marta", "password": OWNER_PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(owner.body["user"]["instance_owner"], true);
    assert!(palaver::accounts::people::setup_token(t.app.store.as_ref())
        .await
        .unwrap()
        .is_none());
    t.stop().await;
}
