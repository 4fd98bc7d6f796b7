//! Team work in the inbox: conversation labels (defined per workspace, put on conversations,
//! filtered by), canned responses (checked variables, filled on insert) and snoozing (woken by
//! time through the job queue, or by the customer). The store on both backends, then the API
//! with its roles and its walls between workspaces.

mod store {
    use std::sync::Arc;

    use chrono::{Duration, Utc};
    use palaver::domain::WorkspaceLimits;
    use palaver::domain::{EventKind, LabelColour, Task, WorkspaceId};
    use palaver::store::{ConversationFilter, Store, StoreError};

    use crate::store::conversations::{channel, inbound, policy};

    const WS: WorkspaceId = WorkspaceId::DEFAULT;

    crate::both_backends!(
        labels_are_unique_per_workspace_and_kept_apart,
        labelled_conversations_are_listed_by_label_with_their_chips,
        renaming_or_deleting_a_label_is_an_event,
        canned_responses_are_unique_per_workspace_and_kept_apart,
        a_snooze_ends_by_its_job_or_by_the_customer,
    );

    async fn other_workspace(store: &Arc<dyn Store>) -> WorkspaceId {
        store
            .create_workspace("other", "Other", &WorkspaceLimits::default())
            .await
            .unwrap()
            .id
    }

    async fn labels_are_unique_per_workspace_and_kept_apart(store: Arc<dyn Store>) {
        let other = other_workspace(&store).await;
        let vip = store
            .create_label(WS, "vip", LabelColour::Green)
            .await
            .unwrap();
        assert_eq!((vip.name.as_str(), vip.colour), ("vip", LabelColour::Green));
        let again = store
            .create_label(WS, "vip", LabelColour::Red)
            .await
            .unwrap_err();
        assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
        // Another workspace may have its own `vip`, and never sees this one.
        let theirs = store
            .create_label(other, "vip", LabelColour::Blue)
            .await
            .unwrap();
        assert!(store.label(other, vip.id).await.unwrap().is_none());
        assert!(store
            .update_label(other, vip.id, Some("gold"), None)
            .await
            .unwrap()
            .is_none());
        assert!(!store.delete_label(other, vip.id).await.unwrap());
        assert_eq!(
            store.label_by_name(other, "vip").await.unwrap().unwrap().id,
            theirs.id
        );
        let refund = store
            .create_label(WS, "refund", LabelColour::Red)
            .await
            .unwrap();
        let names = |labels: Vec<palaver::domain::Label>| -> Vec<String> {
            labels.into_iter().map(|l| l.name).collect()
        };
        assert_eq!(names(store.labels(WS).await.unwrap()), ["refund", "vip"]);
        assert_eq!(names(store.labels(other).await.unwrap()), ["vip"]);
        // Renaming onto a taken name is refused; a recolour keeps the name.
        let taken = store
            .update_label(WS, refund.id, Some("vip"), None)
            .await
            .unwrap_err();
        assert!(matches!(taken, StoreError::Conflict(_)), "{taken:?}");
        let recoloured = store
            .update_label(WS, refund.id, None, Some(LabelColour::Orange))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (recoloured.name.as_str(), recoloured.colour),
            ("refund", LabelColour::Orange)
        );
        assert!(store.delete_label(WS, refund.id).await.unwrap());
        assert_eq!(names(store.labels(WS).await.unwrap()), ["vip"]);
    }

    async fn renaming_or_deleting_a_label_is_an_event(store: Arc<dyn Store>) {
        let other = other_workspace(&store).await;
        let vip = store
            .create_label(WS, "vip", LabelColour::Green)
            .await
            .unwrap();
        store
            .create_label(WS, "refund", LabelColour::Red)
            .await
            .unwrap();
        let after = store.last_event_id(WS).await.unwrap();
        let theirs = store.last_event_id(other).await.unwrap();
        store
            .update_label(WS, vip.id, Some("gold"), Some(LabelColour::Yellow))
            .await
            .unwrap()
            .unwrap();
        // A rename onto a taken name changes nothing, and says nothing.
        store
            .update_label(WS, vip.id, Some("refund"), None)
            .await
            .unwrap_err();
        assert!(store.delete_label(WS, vip.id).await.unwrap());
        assert!(!store.delete_label(WS, vip.id).await.unwrap());
        let events = store.events_after(WS, after, 100).await.unwrap();
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::LabelUpdated, EventKind::LabelDeleted]);
        let updated = &events[0].data;
        assert_eq!(updated["label"]["name"], "gold");
        assert_eq!(updated["label"]["colour"], "yellow");
        assert_eq!(updated["previous"]["name"], "vip");
        assert_eq!(updated["label"]["id"], vip.id.to_string());
        assert_eq!(events[1].data["label"]["name"], "gold");
        assert!(events.iter().all(|e| e.conversation_id.is_none()));
        // Another workspace hears nothing of it.
        assert_eq!(store.last_event_id(other).await.unwrap(), theirs);
    }

    async fn labelled_conversations_are_listed_by_label_with_their_chips(store: Arc<dyn Store>) {
        let ch = channel(&store, "100000000000071").await;
        let mut ids = Vec::new();
        for n in 0..4 {
            let recorded = store
                .record_inbound(
                    &ch,
                    inbound(&format!("wamid.L{n}"), &format!("35191000000{n}"), "hello"),
                    policy(),
                )
                .await
                .unwrap();
            let palaver::store::RecordedInbound::New { conversation, .. } = recorded else {
                panic!("a new message")
            };
            ids.push(conversation.id);
        }
        let vip = store
            .create_label(WS, "vip", LabelColour::Green)
            .await
            .unwrap();
        let refund = store
            .create_label(WS, "refund", LabelColour::Red)
            .await
            .unwrap();
        let after = store.last_event_id(WS).await.unwrap();
        let (labels, changed) = store
            .set_conversation_label(ids[0], &vip, true)
            .await
            .unwrap();
        assert!(changed);
        assert_eq!(labels.len(), 1);
        // Labelling again changes nothing and says so.
        let (_, changed) = store
            .set_conversation_label(ids[0], &vip, true)
            .await
            .unwrap();
        assert!(!changed);
        store
            .set_conversation_label(ids[0], &refund, true)
            .await
            .unwrap();
        store
            .set_conversation_label(ids[2], &vip, true)
            .await
            .unwrap();
        let list = |label: &str| {
            let store = store.clone();
            let label = label.to_string();
            async move {
                store
                    .list_conversations(
                        WS,
                        &ConversationFilter {
                            conversation_label: Some(label),
                            limit: 50,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap()
            }
        };
        let vips = list("vip").await;
        let mut found: Vec<_> = vips.iter().map(|s| s.conversation.id).collect();
        found.sort();
        let mut expected = vec![ids[0], ids[2]];
        expected.sort();
        assert_eq!(found, expected);
        // Each row carries its labels, by name.
        let first = vips.iter().find(|s| s.conversation.id == ids[0]).unwrap();
        let chips: Vec<&str> = first.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(chips, ["refund", "vip"]);
        assert!(list("nothing").await.is_empty());
        // Taken off: out of the label's list; the events say what changed, with the labels now.
        let (labels, changed) = store
            .set_conversation_label(ids[0], &vip, false)
            .await
            .unwrap();
        assert!(changed);
        assert_eq!(
            labels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["refund"]
        );
        assert_eq!(list("vip").await.len(), 1);
        let events = store.events_after(WS, after, 100).await.unwrap();
        let changes: Vec<_> = events
            .iter()
            .filter(|e| e.kind == EventKind::ConversationLabelsChanged)
            .collect();
        assert_eq!(changes.len(), 4, "four changes, the repeat none");
        assert_eq!(changes[0].conversation_id, Some(ids[0]));
        assert_eq!(changes[0].data["added"], "vip");
        assert_eq!(
            changes[1].data["labels"],
            serde_json::json!(["refund", "vip"])
        );
        assert_eq!(changes[3].data["removed"], "vip");
        assert_eq!(changes[3].data["labels"], serde_json::json!(["refund"]));
        // Deleting a label takes it off its conversations.
        assert!(store.delete_label(WS, refund.id).await.unwrap());
        assert!(store.conversation_labels(ids[0]).await.unwrap().is_empty());
    }

    async fn canned_responses_are_unique_per_workspace_and_kept_apart(store: Arc<dyn Store>) {
        let other = other_workspace(&store).await;
        let hours = store
            .create_canned_response(WS, "hours", "We open at {{agent.name}}")
            .await
            .unwrap();
        let again = store
            .create_canned_response(WS, "hours", "Another")
            .await
            .unwrap_err();
        assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
        store
            .create_canned_response(other, "hours", "Theirs")
            .await
            .unwrap();
        store
            .create_canned_response(WS, "address", "Rua Augusta 1")
            .await
            .unwrap();
        let codes = |ws| {
            let store = store.clone();
            async move {
                store
                    .canned_responses(ws)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| (c.short_code, c.content))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            codes(WS).await,
            [
                ("address".to_string(), "Rua Augusta 1".to_string()),
                ("hours".to_string(), "We open at {{agent.name}}".to_string())
            ]
        );
        assert_eq!(codes(other).await.len(), 1);
        assert!(store
            .canned_response(other, hours.id)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .update_canned_response(other, hours.id, None, Some("mine now"))
            .await
            .unwrap()
            .is_none());
        assert!(!store.delete_canned_response(other, hours.id).await.unwrap());
        let changed = store
            .update_canned_response(WS, hours.id, None, Some("We open at 8:00"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (changed.short_code.as_str(), changed.content.as_str()),
            ("hours", "We open at 8:00")
        );
        let taken = store
            .update_canned_response(WS, hours.id, Some("address"), None)
            .await
            .unwrap_err();
        assert!(matches!(taken, StoreError::Conflict(_)), "{taken:?}");
        assert!(store.delete_canned_response(WS, hours.id).await.unwrap());
        assert_eq!(codes(WS).await.len(), 1);
    }

    async fn a_snooze_ends_by_its_job_or_by_the_customer(store: Arc<dyn Store>) {
        let ch = channel(&store, "100000000000072").await;
        let open = |id: &str, from: &str| {
            let store = store.clone();
            let ch = ch.clone();
            let (id, from) = (id.to_string(), from.to_string());
            async move {
                match store
                    .record_inbound(&ch, inbound(&id, &from, "hello"), policy())
                    .await
                    .unwrap()
                {
                    palaver::store::RecordedInbound::New { conversation, .. } => *conversation,
                    _ => panic!("a new message"),
                }
            }
        };
        let first = open("wamid.S1", "351910000001").await;
        let second = open("wamid.S2", "351910000002").await;
        let until = Utc::now() + Duration::hours(1);
        let snoozed = store
            .snooze_conversation(first.id, Some(until), Default::default())
            .await
            .unwrap();
        assert_eq!(
            snoozed.snoozed_until.map(|t| t.timestamp_millis()),
            Some(until.timestamp_millis())
        );
        // Out of the open list, in the snoozed one.
        let listed = |snoozed: Option<bool>| {
            let store = store.clone();
            async move {
                store
                    .list_conversations(
                        WS,
                        &ConversationFilter {
                            snoozed,
                            limit: 50,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| s.conversation.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(listed(Some(false)).await, [second.id]);
        assert_eq!(listed(Some(true)).await, [first.id]);
        assert_eq!(listed(None).await.len(), 2);
        // The job that wakes it is queued for its end.
        let wake = store
            .list_jobs(WS, "pending", 100)
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.kind == "wake")
            .expect("a wake job");
        assert_eq!(
            wake.task().unwrap(),
            Task::Wake {
                conversation_id: first.id
            }
        );
        assert_eq!(wake.run_at.timestamp_millis(), until.timestamp_millis());
        // Before its time the job does nothing; at it, the conversation is back, once.
        assert!(!store.wake_conversation(first.id, Utc::now()).await.unwrap());
        let after = store.last_event_id(WS).await.unwrap();
        assert!(store
            .wake_conversation(first.id, until + Duration::seconds(1))
            .await
            .unwrap());
        assert!(!store
            .wake_conversation(first.id, until + Duration::seconds(2))
            .await
            .unwrap());
        assert!(store
            .conversation(first.id)
            .await
            .unwrap()
            .unwrap()
            .snoozed_until
            .is_none());
        let events = store.events_after(WS, after, 100).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::ConversationUnsnoozed);
        assert_eq!(events[0].data["by"], "time");
        // Snoozed again, the customer writing wakes it at once.
        store
            .snooze_conversation(second.id, Some(until), Default::default())
            .await
            .unwrap();
        assert_eq!(listed(Some(true)).await, [second.id]);
        open("wamid.S3", "351910000002").await;
        assert!(store
            .conversation(second.id)
            .await
            .unwrap()
            .unwrap()
            .snoozed_until
            .is_none());
        assert!(listed(Some(true)).await.is_empty());
        // A person's unsnooze is an event; one of a conversation not snoozed is none.
        store
            .snooze_conversation(first.id, Some(until), Default::default())
            .await
            .unwrap();
        let after = store.last_event_id(WS).await.unwrap();
        store
            .snooze_conversation(first.id, None, Default::default())
            .await
            .unwrap();
        store
            .snooze_conversation(first.id, None, Default::default())
            .await
            .unwrap();
        let events = store.events_after(WS, after, 100).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::ConversationUnsnoozed);
        assert_eq!(events[0].data["by"], "person");
    }
}

mod api {
    use std::time::Duration;

    use reqwest::Method;
    use serde_json::{json, Value};

    use crate::support::app::{eventually, TestApp, ADMIN_KEY};
    use crate::webhooks::{graph_accepting, meta_app, meta_text_to, post_meta, PHONE_ID};

    /// A key of the default workspace with `role`.
    async fn key(t: &TestApp, role: &str) -> String {
        let (status, created) = t
            .post("/api/v1/api-keys", &json!({"name": role, "role": role}))
            .await;
        assert_eq!(status, 201, "{created}");
        created["key"].as_str().unwrap().to_string()
    }

    /// `method path` with `key` (in workspace `ws`, when given): status and JSON body.
    async fn call(
        t: &TestApp,
        key: &str,
        ws: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = t
            .client
            .request(method, format!("{}/api/v1{path}", t.url))
            .bearer_auth(key);
        if let Some(ws) = ws {
            request = request.header("x-palaver-workspace", ws);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        t.send(request).await
    }

    /// The conversation a customer's first message opens.
    async fn conversation_of(t: &TestApp, customer: &str, id: &str) -> String {
        post_meta(t, &meta_text_to(PHONE_ID, customer, id, "Hello there")).await;
        eventually(Duration::from_secs(10), || async {
            let list = t.get("/api/v1/conversations").await;
            list.as_array()
                .unwrap()
                .iter()
                .find(|c| c["contact"]["wa_id"] == customer)
                .map(|c| c["id"].as_str().unwrap().to_string())
        })
        .await
        .expect("the conversation is listed")
    }

    fn ids(list: &Value) -> Vec<String> {
        let mut ids: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn labels_are_defined_by_owners_put_on_by_the_inbox_and_filtered() {
        let graph = graph_accepting("wamid.OUT.labels").await;
        let t = meta_app(&graph, json!({})).await;
        let first = conversation_of(&t, "351910000101", "wamid.IN.L1").await;
        let second = conversation_of(&t, "351910000102", "wamid.IN.L2").await;
        let agent = key(&t, "agent").await;
        let author = key(&t, "author").await;

        // Owners define labels; names are checked, stored lowercased, unique.
        let (status, vip) = t
            .post(
                "/api/v1/labels",
                &json!({"name": " VIP ", "colour": "green"}),
            )
            .await;
        assert_eq!(status, 201, "{vip}");
        assert_eq!(
            (vip["name"].as_str(), vip["colour"].as_str()),
            (Some("vip"), Some("green"))
        );
        let (status, refused) = t
            .post("/api/v1/labels", &json!({"name": "two words"}))
            .await;
        assert_eq!(status, 422);
        assert_eq!(refused["error"]["fields"][0]["field"], "name");
        let (status, _) = t.post("/api/v1/labels", &json!({"name": "vip"})).await;
        assert_eq!(status, 409);
        let (status, refused) = t
            .post(
                "/api/v1/labels",
                &json!({"name": "odd", "colour": "magenta"}),
            )
            .await;
        assert_eq!(status, 422, "{refused}");
        let (status, refund) = t.post("/api/v1/labels", &json!({"name": "refund"})).await;
        assert_eq!(status, 201);
        assert_eq!(refund["colour"], "grey");
        let (status, _) = call(
            &t,
            &agent,
            None,
            Method::POST,
            "/labels",
            Some(json!({"name": "mine"})),
        )
        .await;
        assert_eq!(status, 403, "agents do not define labels");
        let (status, listed) = call(&t, &author, None, Method::GET, "/labels", None).await;
        assert_eq!(status, 200);
        assert_eq!(listed.as_array().unwrap().len(), 2);

        // The inbox puts them on conversations; an author may not.
        let (status, labels) = call(
            &t,
            &agent,
            None,
            Method::POST,
            &format!("/conversations/{first}/labels"),
            Some(json!({"label": "vip"})),
        )
        .await;
        assert_eq!(status, 200, "{labels}");
        assert_eq!(labels[0]["name"], "vip");
        let (status, _) = call(
            &t,
            &author,
            None,
            Method::POST,
            &format!("/conversations/{second}/labels"),
            Some(json!({"label": "vip"})),
        )
        .await;
        assert_eq!(status, 403);
        let (status, refused) = t
            .post(
                &format!("/api/v1/conversations/{second}/labels"),
                &json!({"label": "unknown"}),
            )
            .await;
        assert_eq!(status, 422);
        assert!(refused["error"]["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no label `unknown`"));
        for label in ["vip", "refund"] {
            let (status, _) = t
                .post(
                    &format!("/api/v1/conversations/{second}/labels"),
                    &json!({"label": label}),
                )
                .await;
            assert_eq!(status, 200);
        }

        // The list filters by label and shows each conversation's labels.
        let vips = t.get("/api/v1/conversations?conversation_label=vip").await;
        let mut both = vec![first.clone(), second.clone()];
        both.sort();
        assert_eq!(ids(&vips), both);
        let refunds = t
            .get("/api/v1/conversations?conversation_label=refund")
            .await;
        assert_eq!(ids(&refunds), [second.as_str()]);
        let chips: Vec<&str> = refunds[0]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        assert_eq!(chips, ["refund", "vip"]);
        let (status, _) = t
            .send(t.request(
                Method::GET,
                "/api/v1/conversations?conversation_label=not%20a%20label",
            ))
            .await;
        assert_eq!(status, 422);
        let read = t.get(&format!("/api/v1/conversations/{second}")).await;
        assert_eq!(read["labels"].as_array().unwrap().len(), 2);

        // Taken off: out of the filter; each change was an event.
        let (status, labels) = call(
            &t,
            &agent,
            None,
            Method::DELETE,
            &format!("/conversations/{second}/labels/vip"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(labels.as_array().unwrap().len(), 1);
        let vips = t.get("/api/v1/conversations?conversation_label=vip").await;
        assert_eq!(ids(&vips), [first.as_str()]);
        let page = t
            .get("/api/v1/events?after=0&type=conversation.labels_changed")
            .await;
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 4, "{events:?}");
        assert_eq!(events[3]["data"]["removed"], "vip");
        assert_eq!(events[3]["data"]["labels"], json!(["refund"]));

        // A rename keeps the conversations labelled; a deletion takes the label off them.
        let id = refund["id"].as_str().unwrap();
        let (status, renamed) = t
            .patch(
                &format!("/api/v1/labels/{id}"),
                &json!({"name": "refunds", "colour": "red"}),
            )
            .await;
        assert_eq!(status, 200, "{renamed}");
        let refunds = t
            .get("/api/v1/conversations?conversation_label=refunds")
            .await;
        assert_eq!(ids(&refunds), [second.as_str()]);
        let (status, _) = call(
            &t,
            &agent,
            None,
            Method::DELETE,
            &format!("/labels/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = t.delete(&format!("/api/v1/labels/{id}")).await;
        assert_eq!(status, 204);
        let read = t.get(&format!("/api/v1/conversations/{second}")).await;
        assert!(read["labels"].as_array().unwrap().is_empty());

        // Another workspace sees none of this, and cannot touch it.
        let (status, _) = t
            .post("/api/v1/workspaces", &json!({"slug": "north"}))
            .await;
        assert_eq!(status, 201);
        let north = Some("north");
        let (_, theirs) = call(&t, ADMIN_KEY, north, Method::GET, "/labels", None).await;
        assert_eq!(theirs, json!([]));
        let (status, own) = call(
            &t,
            ADMIN_KEY,
            north,
            Method::POST,
            "/labels",
            Some(json!({"name": "vip"})),
        )
        .await;
        assert_eq!(status, 201, "the same name in another workspace");
        let vip_id = vip["id"].as_str().unwrap();
        for (method, path, body) in [
            (
                Method::PATCH,
                format!("/labels/{vip_id}"),
                Some(json!({"name": "gold"})),
            ),
            (Method::DELETE, format!("/labels/{vip_id}"), None),
            (
                Method::POST,
                format!("/conversations/{first}/labels"),
                Some(json!({"label": "vip"})),
            ),
            (Method::GET, format!("/conversations/{first}/labels"), None),
        ] {
            let (status, _) = call(&t, ADMIN_KEY, north, method.clone(), &path, body).await;
            assert_eq!(status, 404, "{method} {path}");
        }
        let (_, listed) = call(
            &t,
            ADMIN_KEY,
            north,
            Method::GET,
            "/conversations?conversation_label=vip",
            None,
        )
        .await;
        assert_eq!(listed, json!([]));
        assert_eq!(t.get("/api/v1/labels").await.as_array().unwrap().len(), 1);
        assert_ne!(own["id"], vip["id"]);
        t.stop().await;
    }

    #[tokio::test]
    async fn canned_responses_refuse_unknown_variables_and_stay_in_their_workspace() {
        let graph = graph_accepting("wamid.OUT.canned").await;
        let t = meta_app(&graph, json!({})).await;
        let agent = key(&t, "agent").await;
        let (status, hours) = t
            .post(
                "/api/v1/canned-responses",
                &json!({"short_code": "/Hours", "content": "Hi {{contact.name}}, {{agent.name}} here: we open at 8:00."}),
            )
            .await;
        assert_eq!(status, 201, "{hours}");
        assert_eq!(hours["short_code"], "hours");
        // An unknown variable is refused, named, with the ones there are.
        let (status, refused) = t
            .post(
                "/api/v1/canned-responses",
                &json!({"short_code": "mail", "content": "We write to {{contact.email}}"}),
            )
            .await;
        assert_eq!(status, 422);
        let field = &refused["error"]["fields"][0];
        assert_eq!(field["field"], "content");
        let message = field["message"].as_str().unwrap();
        assert!(
            message.contains("{{contact.email}}") && message.contains("{{contact.phone}}"),
            "{message}"
        );
        let (status, refused) = t
            .post(
                "/api/v1/canned-responses",
                &json!({"short_code": "a b", "content": ""}),
            )
            .await;
        assert_eq!(status, 422);
        let fields: Vec<&str> = refused["error"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            ["short_code", "content"],
            "both fields are named at once"
        );
        let (status, _) = t
            .post(
                "/api/v1/canned-responses",
                &json!({"short_code": "hours", "content": "Again"}),
            )
            .await;
        assert_eq!(status, 409);
        // Owners manage them; everyone reads them.
        let (status, _) = call(
            &t,
            &agent,
            None,
            Method::POST,
            "/canned-responses",
            Some(json!({"short_code": "x", "content": "y"})),
        )
        .await;
        assert_eq!(status, 403);
        let (status, listed) = call(&t, &agent, None, Method::GET, "/canned-responses", None).await;
        assert_eq!(status, 200);
        assert_eq!(listed[0]["short_code"], "hours");
        let id = hours["id"].as_str().unwrap();
        let (status, refused) = t
            .patch(
                &format!("/api/v1/canned-responses/{id}"),
                &json!({"content": "{{agent.phone}}"}),
            )
            .await;
        assert_eq!(status, 422, "{refused}");
        let (status, changed) = t
            .patch(
                &format!("/api/v1/canned-responses/{id}"),
                &json!({"content": "Open at 8:00, {{contact.name}}."}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(changed["content"], "Open at 8:00, {{contact.name}}.");
        assert_eq!(changed["short_code"], "hours");
        // Another workspace neither sees nor changes them.
        let (status, _) = t
            .post("/api/v1/workspaces", &json!({"slug": "south"}))
            .await;
        assert_eq!(status, 201);
        let south = Some("south");
        let (_, theirs) = call(&t, ADMIN_KEY, south, Method::GET, "/canned-responses", None).await;
        assert_eq!(theirs, json!([]));
        for (method, body) in [
            (Method::PATCH, Some(json!({"content": "mine"}))),
            (Method::DELETE, None),
        ] {
            let (status, _) = call(
                &t,
                ADMIN_KEY,
                south,
                method,
                &format!("/canned-responses/{id}"),
                body,
            )
            .await;
            assert_eq!(status, 404);
        }
        let (status, _) = call(
            &t,
            &agent,
            None,
            Method::DELETE,
            &format!("/canned-responses/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = t.delete(&format!("/api/v1/canned-responses/{id}")).await;
        assert_eq!(status, 204);
        assert_eq!(t.get("/api/v1/canned-responses").await, json!([]));
        t.stop().await;
    }

    #[tokio::test]
    async fn a_snoozed_conversation_wakes_by_time_and_by_the_customer() {
        let graph = graph_accepting("wamid.OUT.snooze").await;
        let t = meta_app(&graph, json!({})).await;
        let first = conversation_of(&t, "351910000201", "wamid.IN.Z1").await;
        let second = conversation_of(&t, "351910000202", "wamid.IN.Z2").await;
        let author = key(&t, "author").await;
        let agent = key(&t, "agent").await;
        let snooze = |id: &str| format!("/api/v1/conversations/{id}/snooze");

        // What a snooze's end may be.
        for (body, field) in [
            (json!({}), "until"),
            (json!({"until": "2020-01-01T00:00:00Z"}), "until"),
            (json!({"until": "2099-01-01T00:00:00Z"}), "until"),
            (json!({"preset": "1w"}), "preset"),
            (
                json!({"preset": "tomorrow", "zone": "Mars/Olympus"}),
                "zone",
            ),
            (
                json!({"preset": "1h", "until": "2099-01-01T00:00:00Z"}),
                "preset",
            ),
        ] {
            let (status, refused) = t.post(&snooze(&first), &body).await;
            assert_eq!(status, 422, "{body}: {refused}");
            assert_eq!(refused["error"]["fields"][0]["field"], field, "{body}");
        }
        let (status, _) = call(
            &t,
            &author,
            None,
            Method::POST,
            &format!("/conversations/{first}/snooze"),
            Some(json!({"preset": "1h"})),
        )
        .await;
        assert_eq!(status, 403, "authors do not answer the inbox");

        // A preset, in the person's zone: tomorrow 09:00 in Lisbon.
        let (status, view) = call(
            &t,
            &agent,
            None,
            Method::POST,
            &format!("/conversations/{second}/snooze"),
            Some(json!({"preset": "tomorrow", "zone": "Europe/Lisbon"})),
        )
        .await;
        assert_eq!(status, 200, "{view}");
        let until: chrono::DateTime<chrono::Utc> =
            view["snoozed_until"].as_str().unwrap().parse().unwrap();
        let lisbon = until.with_timezone(&chrono_tz::Europe::Lisbon);
        assert_eq!(lisbon.format("%H:%M").to_string(), "09:00");
        assert!(
            until > chrono::Utc::now() && until < chrono::Utc::now() + chrono::Duration::hours(34)
        );

        // A time two seconds away: out of the open list, in the snoozed one, then back by itself.
        let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
        let (status, view) = t.post(&snooze(&first), &json!({"until": soon})).await;
        assert_eq!(status, 200, "{view}");
        assert!(view["snoozed_until"].is_string());
        let open = t.get("/api/v1/conversations?snoozed=false").await;
        assert!(ids(&open).is_empty(), "both snoozed: {open}");
        let snoozed = t.get("/api/v1/conversations?snoozed=true").await;
        let mut both = vec![first.clone(), second.clone()];
        both.sort();
        assert_eq!(ids(&snoozed), both);
        let woke = eventually(Duration::from_secs(15), || async {
            let open = t.get("/api/v1/conversations?snoozed=false").await;
            (ids(&open) == [first.as_str()]).then_some(())
        })
        .await;
        assert!(woke.is_some(), "the wake job brought it back");
        let read = t.get(&format!("/api/v1/conversations/{first}")).await;
        assert!(read["snoozed_until"].is_null());
        let page = t
            .get("/api/v1/events?after=0&type=conversation.unsnoozed")
            .await;
        assert_eq!(page["events"][0]["data"]["by"], "time");
        assert_eq!(page["events"][0]["conversation_id"], first.as_str());

        // The customer writing wakes the other at once.
        post_meta(
            &t,
            &meta_text_to(PHONE_ID, "351910000202", "wamid.IN.Z3", "Any news?"),
        )
        .await;
        let woke = eventually(Duration::from_secs(10), || async {
            let read = t.get(&format!("/api/v1/conversations/{second}")).await;
            read["snoozed_until"].is_null().then_some(())
        })
        .await;
        assert!(woke.is_some(), "a customer's message wakes it");
        assert!(t
            .get("/api/v1/conversations?snoozed=true")
            .await
            .as_array()
            .unwrap()
            .is_empty());

        // A person brings one back by hand.
        let (status, _) = t
            .post(&snooze(&first), &json!({"preset": "next_week"}))
            .await;
        assert_eq!(status, 200);
        let (status, view) = t.delete(&snooze(&first)).await;
        assert_eq!(status, 200);
        assert!(view["snoozed_until"].is_null());
        // Another workspace cannot snooze it.
        let (status, _) = t.post("/api/v1/workspaces", &json!({"slug": "east"})).await;
        assert_eq!(status, 201);
        let (status, _) = call(
            &t,
            ADMIN_KEY,
            Some("east"),
            Method::POST,
            &format!("/conversations/{first}/snooze"),
            Some(json!({"preset": "1h"})),
        )
        .await;
        assert_eq!(status, 404);
        t.stop().await;
    }
}
