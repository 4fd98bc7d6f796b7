//! Assignment through the real server with workers and a recording provider: escalations go to
//! the workspace's agents in turn (or to a default person), only people who answer the inbox can
//! be given a conversation, replies and closings record the person's id, a person who leaves
//! gives their conversations back to nobody, and the support note links to the console.

use std::sync::Arc;
use std::time::Duration;

use palaver::domain::ProviderKind;
use palaver::providers::recording::RecordingProvider;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::app::{eventually, Options, TestApp, ADMIN_KEY};

pub(crate) const ROUTE: &str = "1065403522430";
pub(crate) const TOKEN: &str = "rec-token-assign";
const SUPPORT: &str = "351900000001";

/// A signed-in person: their id, session cookie and CSRF token.
pub struct Person {
    pub id: String,
    pub cookie: String,
    pub csrf: String,
}

impl Person {
    /// `method path` with this person's session (and CSRF token).
    pub async fn call(
        &self,
        t: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = t
            .client
            .request(method, format!("{}/api/v1{path}", t.url))
            .header("cookie", format!("palaver_session={}", self.cookie))
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Invites `email` with `role` (as the operator key) and accepts the link.
pub(crate) async fn join(t: &TestApp, email: &str, role: &str) -> Person {
    join_as(t, None, email, role, email).await
}

/// A person called `name` with `role` in workspace `slug` (made if needed; the default one
/// when `None`), invited there by the operator, signed in.
pub async fn join_as(
    t: &TestApp,
    slug: Option<&str>,
    email: &str,
    role: &str,
    name: &str,
) -> Person {
    if let Some(slug) = slug {
        let _ = t
            .client
            .post(format!("{}/api/v1/workspaces", t.url))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"slug": slug}))
            .send()
            .await
            .unwrap();
    }
    let invited: Value = t
        .client
        .post(format!("{}/api/v1/invitations", t.url))
        .bearer_auth(ADMIN_KEY)
        .header("x-palaver-workspace", slug.unwrap_or("default"))
        .json(&json!({"email": email, "role": role}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = t
        .client
        .post(format!("{}/api/v1/invitations/accept", t.url))
        .json(&json!({"token": invited["token"], "name": name, "password": "a fine passphrase"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.strip_prefix("palaver_session="))
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    Person {
        id: body["user"]["id"].as_str().unwrap().to_string(),
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    }
}

pub(crate) async fn customer_writes(t: &TestApp, channel: &str, id: &str, from: &str, text: &str) {
    let response = t
        .client
        .post(format!("{}/webhooks/meta/{channel}", t.url))
        .header("x-test-token", TOKEN)
        .json(&json!({"route": ROUTE, "messages": [{"id": id, "from": from, "text": text}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    t.settle().await;
}

/// The customer's conversation once it is escalated.
pub(crate) async fn escalated(t: &TestApp, customer: &str) -> Value {
    let found = eventually(Duration::from_secs(20), || async {
        let list = t.get(&format!("/api/v1/conversations?q={customer}")).await;
        let mine = list
            .as_array()?
            .iter()
            .find(|c| c["contact"]["wa_id"] == customer)?
            .clone();
        (mine["status"] == "escalated").then_some(mine)
    })
    .await;
    match found {
        Some(c) => c,
        None => panic!(
            "{customer}'s conversation was not escalated: {}",
            t.get("/api/v1/conversations").await
        ),
    }
}

#[tokio::test]
async fn escalations_are_assigned_and_people_are_recorded_by_id_sqlite() {
    escalations_are_assigned_and_people_are_recorded_by_id(false).await;
}

#[tokio::test]
async fn escalations_are_assigned_and_people_are_recorded_by_id_postgres() {
    escalations_are_assigned_and_people_are_recorded_by_id(true).await;
}

async fn escalations_are_assigned_and_people_are_recorded_by_id(postgres: bool) {
    let provider = Arc::new(RecordingProvider::new(ProviderKind::Meta));
    let Some(t) = TestApp::start(Options {
        workers: true,
        postgres,
        provider: Some(provider.clone()),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    t.demo_agent(
        "demo",
        json!({"escalation": {"keywords": ["humano"], "support_contact": SUPPORT}}),
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
    let ines = join(&t, "ines@casanube.example", "agent").await;
    let joao = join(&t, "joao@casanube.example", "agent").await;
    let rui = join(&t, "rui@casanube.example", "author").await;

    // Manual (the default): an escalation is nobody's until someone takes it.
    customer_writes(&t, &channel, "wamid.a1", "351911111111", "humano por favor").await;
    let first = escalated(&t, "351911111111").await;
    assert!(first["assignee_id"].is_null(), "{first}");

    // Round-robin: the agents in turn, the one waiting longest first; never the author.
    let (status, ws) = t
        .put(
            "/api/v1/workspace/assignment",
            &json!({"mode": "round_robin"}),
        )
        .await;
    assert_eq!(status, 200, "{ws}");
    assert_eq!(ws["assignment"]["mode"], "round_robin");
    let mut given = Vec::new();
    for (n, customer) in ["351922222222", "351933333333", "351944444444"]
        .iter()
        .enumerate()
    {
        customer_writes(
            &t,
            &channel,
            &format!("wamid.b{n}"),
            customer,
            "quero um humano",
        )
        .await;
        let c = escalated(&t, customer).await;
        given.push(c["assignee_id"].as_str().expect("assigned").to_string());
    }
    assert_ne!(
        given[0], given[1],
        "the second escalation went to the same agent"
    );
    assert_eq!(
        given[2], given[0],
        "the third went to the one waiting longest"
    );
    let agents = [ines.id.as_str(), joao.id.as_str()];
    assert!(
        given.iter().all(|g| agents.contains(&g.as_str())),
        "{given:?}"
    );

    // Only owners and agents of the workspace can be given a conversation.
    let first_id = first["id"].as_str().unwrap();
    let path = format!("/conversations/{first_id}/assignee");
    let (status, answer) = ines
        .call(&t, Method::PUT, &path, Some(json!({"user": rui.id})))
        .await;
    assert_eq!(status, 422, "an author was given a conversation: {answer}");
    let stranger = uuid::Uuid::now_v7().to_string();
    let (status, _) = ines
        .call(&t, Method::PUT, &path, Some(json!({"user": stranger})))
        .await;
    assert_eq!(status, 422);
    let (status, answer) = ines
        .call(&t, Method::PUT, &path, Some(json!({"user": joao.id})))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["assignee_id"], joao.id.as_str());
    let (status, mine) = joao
        .call(&t, Method::GET, "/conversations?assignee=me", None)
        .await;
    assert_eq!(status, 200);
    let joao_has = given.iter().filter(|g| **g == joao.id).count() + 1;
    assert_eq!(mine.as_array().unwrap().len(), joao_has, "{mine}");
    let (_, nobody) = joao
        .call(&t, Method::GET, "/conversations?assignee=none", None)
        .await;
    assert!(
        nobody
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["assignee_id"].is_null()),
        "{nobody}"
    );

    // A reply records who wrote it; resolving records who closed it, by id.
    let (status, sent) = joao
        .call(
            &t,
            Method::POST,
            &format!("/conversations/{first_id}/messages"),
            Some(json!({"text": "Olá, sou o João."})),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["sent_by"], joao.id.as_str());
    let (status, closed) = joao
        .call(
            &t,
            Method::POST,
            &format!("/conversations/{first_id}/resolve"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{closed}");
    let escalation = &closed["escalations"][0];
    assert_eq!(escalation["closed_by_user"], joao.id.as_str());
    assert_eq!(escalation["closed_by"], format!("user:{}", joao.id));
    // Who closes is the caller, never a name in the body.
    let (status, _) = joao
        .call(
            &t,
            Method::POST,
            &format!("/conversations/{first_id}/handback"),
            Some(json!({"by": "someone else"})),
        )
        .await;
    assert_eq!(status, 400);

    // A person who leaves the workspace gives their conversations back to nobody.
    let (status, _) = t.delete(&format!("/api/v1/members/{}", joao.id)).await;
    assert_eq!(status, 204);
    let (_, left) = ines
        .call(
            &t,
            Method::GET,
            &format!("/conversations?assignee={}", joao.id),
            None,
        )
        .await;
    assert_eq!(left.as_array().unwrap().len(), 0, "{left}");

    // A default person gets every escalation; they must answer the inbox.
    let (status, _) = t
        .put(
            "/api/v1/workspace/assignment",
            &json!({"mode": "default", "user": rui.id}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = t
        .put(
            "/api/v1/workspace/assignment",
            &json!({"mode": "default", "user": ines.id}),
        )
        .await;
    assert_eq!(status, 200);
    customer_writes(&t, &channel, "wamid.c1", "351955555555", "humano!").await;
    let c = escalated(&t, "351955555555").await;
    assert_eq!(c["assignee_id"], ines.id.as_str());

    // The support note links to the conversation in the console.
    let link = format!("/inbox/{}", c["id"].as_str().unwrap());
    let noted = eventually(Duration::from_secs(20), || async {
        provider
            .sent()
            .iter()
            .filter(|m| m.to == SUPPORT)
            .any(|m| format!("{:?}", m.body).contains(&link))
            .then_some(())
    })
    .await;
    assert!(noted.is_some(), "no support note links to {link}");
    t.stop().await;
}
