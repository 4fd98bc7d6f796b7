//! Teams and each channel's assignment rule: a channel's escalations go to its team's members
//! in turn (fairly, however many go at once, on both backends), a person taken out of the team
//! or out of the workspace gets no more, only owners change teams, bad input is a 422 naming
//! the field, another workspace's teams and channels are 404, and the inbox filters by team.

use std::sync::Arc;

use futures::future::join_all;
use palaver::domain::{
    ChannelAssignment, ChannelConfig, ChannelState, MemberRole, ProviderKind, WorkspaceId,
};
use palaver::providers::recording::RecordingProvider;
use palaver::store::{NewChannel, NewEscalation, Store};
use reqwest::Method;
use serde_json::{json, Value};

use crate::assignment::{customer_writes, escalated, join, ROUTE, TOKEN};
use crate::support::app::{Options, TestApp};

crate::both_backends_flag!(a_channels_escalations_go_to_its_team_in_turn);
mod fair {
    use super::{
        picks_within_a_team_are_fair_however_many_go_at_once,
        the_workspaces_round_robin_is_fair_however_many_go_at_once,
    };
    crate::both_backends_with_url!(
        picks_within_a_team_are_fair_however_many_go_at_once,
        the_workspaces_round_robin_is_fair_however_many_go_at_once,
    );
}

/// `method path` as the operator in workspace `slug`.
async fn in_workspace(
    t: &TestApp,
    slug: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = t
        .request(method, &format!("/api/v1{path}"))
        .header("x-palaver-workspace", slug);
    if let Some(body) = body {
        request = request.json(&body);
    }
    t.send(request).await
}

async fn a_channels_escalations_go_to_its_team_in_turn(postgres: bool) {
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
    t.demo_agent("demo", json!({"escalation": {"keywords": ["humano"]}}))
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
    let maria = join(&t, "maria@casanube.example", "agent").await;
    let rui = join(&t, "rui@casanube.example", "author").await;

    // Only people who answer the inbox can be members; bad names and unknown fields are 422.
    let (status, refused) = t
        .post(
            "/api/v1/teams",
            &json!({"name": "Vendas", "members": [ines.id, rui.id]}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["fields"][0]["field"], "members[1]");
    for bad in [
        json!({"name": "  "}),
        json!({"name": "x".repeat(65)}),
        json!({"name": "Vendas", "colour": "red"}),
    ] {
        let (status, body) = t.post("/api/v1/teams", &bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, team) = t
        .post(
            "/api/v1/teams",
            &json!({"name": " Vendas ", "members": [ines.id, joao.id]}),
        )
        .await;
    assert_eq!(status, 201, "{team}");
    assert_eq!(team["name"], "Vendas");
    assert_eq!(team["members"].as_array().unwrap().len(), 2, "{team}");
    let team_id = team["id"].as_str().unwrap().to_string();
    let (status, _) = t.post("/api/v1/teams", &json!({"name": "Vendas"})).await;
    assert_eq!(status, 409, "a second team of the same name");

    // Owners change teams; an agent may read them but not change them.
    let (status, _) = ines
        .call(&t, Method::GET, &format!("/teams/{team_id}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = ines
        .call(
            &t,
            Method::PUT,
            &format!("/teams/{team_id}/members/{}", maria.id),
            None,
        )
        .await;
    assert_eq!(status, 403, "an agent added a team member");
    let (status, _) = ines
        .call(
            &t,
            Method::PUT,
            &format!("/channels/{channel}/assignment"),
            Some(json!({"mode": "manual"})),
        )
        .await;
    assert_eq!(status, 403, "an agent set a channel's rule");

    // The workspace's round-robin (all three agents) stays the default; the channel's team
    // rule overrides it, and escalations go to Inês and João in turn, never to Maria.
    let (status, _) = t
        .put(
            "/api/v1/workspace/assignment",
            &json!({"mode": "round_robin"}),
        )
        .await;
    assert_eq!(status, 200);
    let rule_path = format!("/api/v1/channels/{channel}/assignment");
    assert_eq!(t.get(&rule_path).await, json!({"mode": "workspace"}));
    for bad in [
        json!({"mode": "team"}),
        json!({"mode": "team", "team": uuid::Uuid::now_v7()}),
        json!({"mode": "default", "user": rui.id}),
        json!({"mode": "round_robin"}),
    ] {
        let (status, body) = t.put(&rule_path, &bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, rule) = t
        .put(&rule_path, &json!({"mode": "team", "team": team_id}))
        .await;
    assert_eq!(status, 200, "{rule}");
    assert_eq!(t.get(&rule_path).await["team"], team_id.as_str());
    let mut given = Vec::new();
    for n in 0..4 {
        let customer = format!("35192000000{n}");
        customer_writes(&t, &channel, &format!("wamid.t{n}"), &customer, "humano").await;
        let c = escalated(&t, &customer).await;
        given.push(c["assignee_id"].as_str().expect("assigned").to_string());
    }
    let count = |id: &str| given.iter().filter(|g| *g == id).count();
    assert_eq!(
        (count(&ines.id), count(&joao.id)),
        (2, 2),
        "turns: {given:?}"
    );
    assert_ne!(given[0], given[1], "{given:?}");

    // The inbox filters by team: the team's members' conversations.
    let team_list = t
        .get(&format!("/api/v1/conversations?team={team_id}"))
        .await;
    assert_eq!(team_list.as_array().unwrap().len(), 4, "{team_list}");
    let (status, _) = t
        .send(t.request(
            Method::GET,
            &format!("/api/v1/conversations?team={}", uuid::Uuid::now_v7()),
        ))
        .await;
    assert_eq!(status, 422, "an unknown team as a filter");

    // João leaves the team: the team's escalations go to Inês alone.
    let (status, after) = t
        .delete(&format!("/api/v1/teams/{team_id}/members/{}", joao.id))
        .await;
    assert_eq!(status, 200, "{after}");
    let (status, _) = t
        .delete(&format!("/api/v1/teams/{team_id}/members/{}", joao.id))
        .await;
    assert_eq!(status, 404, "taken out twice");
    for n in 4..6 {
        let customer = format!("35192000000{n}");
        customer_writes(&t, &channel, &format!("wamid.t{n}"), &customer, "humano").await;
        let c = escalated(&t, &customer).await;
        assert_eq!(c["assignee_id"], ines.id.as_str(), "{c}");
    }

    // Inês leaves the workspace: she is out of the team, and nobody is left to take turns.
    let (status, _) = t.delete(&format!("/api/v1/members/{}", ines.id)).await;
    assert_eq!(status, 204);
    let team_now = t.get(&format!("/api/v1/teams/{team_id}")).await;
    assert_eq!(team_now["members"], json!([]), "{team_now}");
    customer_writes(&t, &channel, "wamid.t6", "351920000006", "humano").await;
    let c = escalated(&t, "351920000006").await;
    assert!(c["assignee_id"].is_null(), "{c}");
    // Waiting on the team's channel, it is in the team's list.
    let team_list = t
        .get(&format!("/api/v1/conversations?team={team_id}"))
        .await;
    assert!(
        team_list
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == c["id"]),
        "{team_list}"
    );

    // Another workspace sees none of it: its teams and channels are 404 here, and ours there.
    let (status, _) = t
        .post("/api/v1/workspaces", &json!({"slug": "north"}))
        .await;
    assert_eq!(status, 201);
    for (method, path, body) in [
        (Method::GET, format!("/teams/{team_id}"), None),
        (
            Method::PATCH,
            format!("/teams/{team_id}"),
            Some(json!({"name": "Mine"})),
        ),
        (Method::DELETE, format!("/teams/{team_id}"), None),
        (
            Method::PUT,
            format!("/teams/{team_id}/members/{}", maria.id),
            None,
        ),
        (
            Method::PUT,
            format!("/channels/{channel}/assignment"),
            Some(json!({"mode": "manual"})),
        ),
    ] {
        let (status, answer) = in_workspace(&t, "north", method.clone(), &path, body).await;
        assert_eq!(
            status, 404,
            "{method} {path} from another workspace: {answer}"
        );
    }
    let (status, north_team) = in_workspace(
        &t,
        "north",
        Method::POST,
        "/teams",
        Some(json!({"name": "Norte"})),
    )
    .await;
    assert_eq!(status, 201, "{north_team}");
    let (status, _) = t
        .put(
            &rule_path,
            &json!({"mode": "team", "team": north_team["id"]}),
        )
        .await;
    assert_eq!(status, 422, "another workspace's team on our channel");
    let (_, north_list) = in_workspace(&t, "north", Method::GET, "/teams", None).await;
    assert_eq!(north_list.as_array().unwrap().len(), 1, "{north_list}");

    // Deleting the team gives its channel back to the workspace's rule.
    let (status, _) = t.delete(&format!("/api/v1/teams/{team_id}")).await;
    assert_eq!(status, 204);
    assert_eq!(t.get(&rule_path).await, json!({"mode": "workspace"}));
    t.stop().await;
}

/// Many escalations of one team's channel opened at once (several connections; on Postgres,
/// truly concurrent transactions) are shared out evenly: nobody gets a turn twice before
/// everyone had one.
async fn picks_within_a_team_are_fair_however_many_go_at_once(db: &crate::support::TestStore) {
    shared_fairly(db, true).await;
}

/// The same for the workspace's own round-robin (a channel following the workspace's rule).
async fn the_workspaces_round_robin_is_fair_however_many_go_at_once(
    db: &crate::support::TestStore,
) {
    shared_fairly(db, false).await;
}

/// 30 escalations opened at once over two store handles, on a channel whose escalations go to
/// a team of three agents (`team`) or to the workspace's three agents in turn: 10 each.
async fn shared_fairly(db: &crate::support::TestStore, team: bool) {
    let store: Arc<dyn Store> = db.store.clone();
    let ws = WorkspaceId::DEFAULT;
    let mut people = Vec::new();
    for n in 0..3 {
        let user = store
            .create_user(&format!("p{n}@example.com"), &format!("P{n}"), "x", false)
            .await
            .unwrap();
        store
            .set_membership(user.id, ws, MemberRole::Agent)
            .await
            .unwrap();
        people.push(user.id);
    }
    let channel = store
        .create_channel(NewChannel {
            workspace_id: ws,
            name: "fair".into(),
            provider: ProviderKind::Meta,
            route_key: "fair-route".into(),
            agent_id: None,
            settings: ChannelConfig::default(),
            graph_version: None,
            sealed_credentials: vec![1],
            state: ChannelState::Created,
        })
        .await
        .unwrap();
    if team {
        let team = store.create_team(ws, "Suporte", &people).await.unwrap();
        assert!(store
            .set_channel_assignment(ws, channel.id, ChannelAssignment::Team { team: team.id })
            .await
            .unwrap());
    } else {
        store
            .set_assignment_rule(ws, palaver::domain::AssignmentRule::RoundRobin)
            .await
            .unwrap();
    }
    let mut conversations = Vec::new();
    for n in 0..30 {
        let c = store
            .open_conversation(&channel, &format!("3519300000{n:02}"), None)
            .await
            .unwrap();
        conversations.push(c.id);
    }
    // Another handle on the same database, as another replica would have.
    let other = palaver::store::open(&db.url, 8).await.unwrap();
    let opened = join_all(conversations.iter().enumerate().map(|(n, id)| {
        let store = if n % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        let id = *id;
        async move {
            store
                .open_escalation(
                    id,
                    NewEscalation {
                        reason: palaver::domain::EscalationReason::Keyword,
                        detail: None,
                        message_id: None,
                    },
                )
                .await
        }
    }))
    .await;
    for result in opened {
        result.unwrap();
    }
    let mut counts = std::collections::HashMap::new();
    for id in &conversations {
        let c = store.conversation(*id).await.unwrap().unwrap();
        *counts.entry(c.assignee_id.expect("assigned")).or_insert(0) += 1;
    }
    for person in &people {
        assert_eq!(counts.get(person), Some(&10), "{counts:?}");
    }
}
