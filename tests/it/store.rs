//! The store suite: the same cases against SQLite and Postgres.

use std::sync::Arc;

use palaver::domain::{AgentConfig, ChunkId, MemberRole, WorkspaceId};
use palaver::store::{NewChunk, NewDocument, Store, StoreError};

/// The workspace the store tests work in.
const WS: WorkspaceId = WorkspaceId::DEFAULT;

crate::both_backends!(
    migrations_are_idempotent,
    agents_crud_and_unique_names,
    api_keys_lifecycle,
    documents_replace_and_delete,
    passages_keep_requested_order,
    keyword_search_is_accent_insensitive_and_scoped,
    keyword_ranking_is_the_collection_own,
    collection_versions_track_index_state,
    chunk_pages_cover_everything_once,
    embeddings_round_trip_and_update,
);

fn chunk(position: i64, text: &str, embedding: Vec<f32>) -> NewChunk {
    NewChunk {
        id: ChunkId::new(),
        position,
        heading: Some(format!("Section {position}")),
        text: text.to_string(),
        search_text: palaver::knowledge::text::search_text(text),
        token_count: text.split_whitespace().count() as i64,
        embedding,
    }
}

fn doc(collection: &str, source: &str, hash: &str) -> NewDocument {
    NewDocument {
        collection: collection.into(),
        source: source.into(),
        title: source.into(),
        format: "markdown".into(),
        content_hash: hash.into(),
        bytes: 100,
        embedding_model: "test-model".into(),
    }
}

async fn migrations_are_idempotent(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn agents_crud_and_unique_names(store: Arc<dyn Store>) {
    let config = AgentConfig {
        temperature: 0.7,
        business_name: "Casa Nube".into(),
        cite_sources: true,
        ..Default::default()
    };
    let agent = store.create_agent(WS, "demo", true, &config).await.unwrap();
    assert_eq!(agent.name, "demo");
    assert!(agent.active);
    assert_eq!(agent.config, config);

    let dup = store
        .create_agent(WS, "demo", true, &config)
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup:?}");

    assert_eq!(store.agent(agent.id).await.unwrap().unwrap(), agent);
    assert_eq!(
        store.agent_by_name(WS, "demo").await.unwrap().unwrap().id,
        agent.id
    );
    assert!(store.agent_by_name(WS, "nobody").await.unwrap().is_none());

    let other = store
        .create_agent(WS, "alpha", false, &AgentConfig::default())
        .await
        .unwrap();
    let names: Vec<_> = store
        .list_agents(WS)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alpha", "demo"]);

    let mut changed = agent.clone();
    changed.active = false;
    changed.config.top_k = 9;
    let saved = store.update_agent(&changed).await.unwrap();
    assert!(!saved.active);
    assert_eq!(saved.config.top_k, 9);
    assert!(saved.updated_at >= agent.updated_at);

    let mut clash = other.clone();
    clash.name = "demo".into();
    assert!(matches!(
        store.update_agent(&clash).await.unwrap_err(),
        StoreError::Conflict(_)
    ));

    assert!(store.delete_agent(agent.id).await.unwrap());
    assert!(!store.delete_agent(agent.id).await.unwrap());
    assert!(store.agent(agent.id).await.unwrap().is_none());
    let mut gone = agent.clone();
    gone.name = "ghost".into();
    assert!(matches!(
        store.update_agent(&gone).await.unwrap_err(),
        StoreError::NotFound(_)
    ));
}

async fn api_keys_lifecycle(store: Arc<dyn Store>) {
    let key = store
        .create_api_key(WS, MemberRole::Owner, "ci", "hash-1", "pk_abcdefg")
        .await
        .unwrap();
    assert_eq!(
        store.api_key_by_hash("hash-1").await.unwrap().unwrap().id,
        key.id
    );
    assert!(store.api_key_by_hash("hash-2").await.unwrap().is_none());
    assert!(matches!(
        store
            .create_api_key(WS, MemberRole::Owner, "dup", "hash-1", "pk_x")
            .await
            .unwrap_err(),
        StoreError::Conflict(_)
    ));
    assert!(store.revoke_api_key(WS, key.id).await.unwrap());
    assert!(!store.revoke_api_key(WS, key.id).await.unwrap());
    assert!(store.api_key_by_hash("hash-1").await.unwrap().is_none());
    let listed = store.list_api_keys(WS).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at.is_some());
}

async fn documents_replace_and_delete(store: Arc<dyn Store>) {
    let first = store
        .replace_document(
            doc("kb", "kb/faq.md", "h1"),
            vec![
                chunk(0, "We open at nine.", vec![1.0, 0.0]),
                chunk(1, "We close at six.", vec![0.0, 1.0]),
            ],
        )
        .await
        .unwrap();
    assert!(first.removed_chunks.is_empty());
    assert_eq!(first.document.chunk_count, 2);
    let again = store
        .document_by_source("kb", "kb/faq.md")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, first.document.id);
    assert_eq!(again.content_hash, "h1");

    let old_ids: Vec<ChunkId> = store
        .passages_in_range(first.document.id, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|p| p.chunk_id)
        .collect();
    let second = store
        .replace_document(
            doc("kb", "kb/faq.md", "h2"),
            vec![chunk(0, "We open at ten.", vec![1.0, 1.0])],
        )
        .await
        .unwrap();
    assert_eq!(
        second.document.id, first.document.id,
        "same source keeps its document id"
    );
    assert_eq!(second.removed_chunks, old_ids);
    assert!(second.version > first.version);
    let passages = store
        .passages_in_range(second.document.id, 0, 10)
        .await
        .unwrap();
    assert_eq!(passages.len(), 1);
    assert_eq!(passages[0].text, "We open at ten.");
    assert_eq!(
        store
            .document(first.document.id)
            .await
            .unwrap()
            .unwrap()
            .content_hash,
        "h2"
    );

    store
        .replace_document(
            doc("kb", "kb/other.md", "h3"),
            vec![chunk(0, "Other.", vec![0.5, 0.5])],
        )
        .await
        .unwrap();
    store
        .replace_document(
            doc("elsewhere", "kb/faq.md", "h4"),
            vec![chunk(0, "Elsewhere.", vec![0.5, 0.5])],
        )
        .await
        .unwrap();
    let sources: Vec<_> = store
        .list_documents("kb")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.source)
        .collect();
    assert_eq!(sources, ["kb/faq.md", "kb/other.md"]);

    let deleted = store
        .delete_document(first.document.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.removed_chunks, vec![passages[0].chunk_id]);
    assert!(store.document(first.document.id).await.unwrap().is_none());
    assert!(store
        .passages(&[passages[0].chunk_id])
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .delete_document(first.document.id)
        .await
        .unwrap()
        .is_none());
}

async fn passages_keep_requested_order(store: Arc<dyn Store>) {
    let chunks: Vec<NewChunk> = (0..5)
        .map(|i| chunk(i, &format!("Passage {i}."), vec![i as f32, 1.0]))
        .collect();
    let ids: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
    store
        .replace_document(doc("kb", "a.md", "h"), chunks)
        .await
        .unwrap();
    let wanted = vec![ids[3], ids[0], ChunkId::new(), ids[4]];
    let got: Vec<ChunkId> = store
        .passages(&wanted)
        .await
        .unwrap()
        .iter()
        .map(|p| p.chunk_id)
        .collect();
    assert_eq!(got, vec![ids[3], ids[0], ids[4]]);
    let passage = &store.passages(&[ids[2]]).await.unwrap()[0];
    assert_eq!(passage.text, "Passage 2.");
    assert_eq!(passage.heading.as_deref(), Some("Section 2"));
    assert_eq!(passage.source, "a.md");
    assert_eq!(passage.position, 2);
    let range: Vec<i64> = store
        .passages_in_range(passage.document_id, 1, 3)
        .await
        .unwrap()
        .iter()
        .map(|p| p.position)
        .collect();
    assert_eq!(range, [1, 2, 3]);
}

async fn keyword_search_is_accent_insensitive_and_scoped(store: Arc<dyn Store>) {
    let c0 = chunk(
        0,
        "Pão de forma integral, código BR-101, custa 3,50 EUR.",
        vec![1.0, 0.0],
    );
    let c1 = chunk(1, "Our croissants are baked every morning.", vec![0.0, 1.0]);
    let c2 = chunk(
        2,
        "Croissants croissants croissants: the croissant page.",
        vec![0.0, 1.0],
    );
    let (id0, id1, id2) = (c0.id, c1.id, c2.id);
    store
        .replace_document(doc("kb", "a.md", "h"), vec![c0, c1, c2])
        .await
        .unwrap();
    store
        .replace_document(
            doc("other", "b.md", "h"),
            vec![chunk(0, "Croissants elsewhere.", vec![0.0, 1.0])],
        )
        .await
        .unwrap();

    let terms = palaver::knowledge::text::terms("Quanto custa o PAO? (BR-101)");
    let hits = store.keyword_search("kb", &terms, 10).await.unwrap();
    assert_eq!(hits.first().map(|h| h.chunk_id), Some(id0), "{hits:?}");

    let hits = store
        .keyword_search("kb", &palaver::knowledge::text::terms("croissants"), 10)
        .await
        .unwrap();
    let ids: Vec<_> = hits.iter().map(|h| h.chunk_id).collect();
    assert_eq!(ids.len(), 2, "scoped to the collection: {hits:?}");
    assert!(ids.contains(&id1) && ids.contains(&id2));
    assert_eq!(ids[0], id2, "more matches rank higher");
    assert!(hits[0].score >= hits[1].score);

    assert!(store
        .keyword_search("kb", &["zzzz".into()], 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .keyword_search("kb", &[], 10)
        .await
        .unwrap()
        .is_empty());
    // Quotes and operators in terms are data, never syntax.
    for nasty in ["\"", "'", "a OR b", "NEAR(", "*", "x\\y", "-", "&|!"] {
        store
            .keyword_search("kb", &[nasty.to_string()], 10)
            .await
            .unwrap();
    }
    let hits = store
        .keyword_search("kb", &["br".into(), "101".into()], 1)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chunk_id, id0);
}

/// A business's keyword ranking is its own: another business's documents, however often they
/// use the words asked, do not move it (a word rare in this collection stays telling here).
async fn keyword_ranking_is_the_collection_own(store: Arc<dyn Store>) {
    let rare = chunk(0, "Puncture repair while you wait.", vec![1.0, 0.0]);
    let common = chunk(1, "Tyre fitting while you wait.", vec![0.0, 1.0]);
    let (rare_id, common_id) = (rare.id, common.id);
    store
        .replace_document(
            doc("kb", "a.md", "h"),
            vec![
                rare,
                common,
                chunk(2, "Tyre pressure checked for free.", vec![0.0, 1.0]),
                chunk(3, "Tyre sizes we stock.", vec![0.0, 1.0]),
            ],
        )
        .await
        .unwrap();
    let terms = palaver::knowledge::text::terms("puncture tyre");
    let alone = store.keyword_search("kb", &terms, 10).await.unwrap();
    assert_eq!(
        alone.first().map(|h| h.chunk_id),
        Some(rare_id),
        "{alone:?}"
    );
    assert!(alone.iter().any(|h| h.chunk_id == common_id));

    let others: Vec<_> = (0..30)
        .map(|i| {
            chunk(
                i,
                "Puncture kits, puncture spray, puncture patches.",
                vec![1.0, 0.0],
            )
        })
        .collect();
    store
        .replace_document(doc("other", "b.md", "h2"), others)
        .await
        .unwrap();
    let beside = store.keyword_search("kb", &terms, 10).await.unwrap();
    assert_eq!(alone, beside, "another collection moved this one's ranking");
}

async fn collection_versions_track_index_state(store: Arc<dyn Store>) {
    assert!(store.collections().await.unwrap().is_empty());
    let r = store
        .replace_document(doc("kb", "a.md", "h"), vec![chunk(0, "x", vec![1.0])])
        .await
        .unwrap();
    let state = &store.collections().await.unwrap()[0];
    assert_eq!(
        (state.name.as_str(), state.documents, state.chunks),
        ("kb", 1, 1)
    );
    assert_eq!(state.version, r.version);
    assert!(state.indexed_version < state.version, "not indexed yet");

    store
        .mark_collection_indexed("kb", r.version)
        .await
        .unwrap();
    let state = &store.collections().await.unwrap()[0];
    assert_eq!(state.indexed_version, state.version);

    // A late writer marking an older version does not move the marker back.
    let r2 = store
        .replace_document(doc("kb", "b.md", "h"), vec![chunk(0, "y", vec![1.0])])
        .await
        .unwrap();
    store
        .mark_collection_indexed("kb", r2.version)
        .await
        .unwrap();
    store
        .mark_collection_indexed("kb", r.version)
        .await
        .unwrap();
    assert_eq!(
        store.collections().await.unwrap()[0].indexed_version,
        r2.version
    );
}

async fn chunk_pages_cover_everything_once(store: Arc<dyn Store>) {
    for d in 0..3 {
        let chunks = (0..7)
            .map(|i| chunk(i, &format!("d{d} c{i}"), vec![d as f32, i as f32]))
            .collect();
        store
            .replace_document(doc("kb", &format!("{d}.md"), "h"), chunks)
            .await
            .unwrap();
    }
    store
        .replace_document(
            doc("other", "x.md", "h"),
            vec![chunk(0, "x", vec![1.0, 1.0])],
        )
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut after = None;
    loop {
        let page = store.chunk_page("kb", after, 4).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 4);
        after = Some(last.id);
        for c in page {
            assert_eq!(c.embedding.len(), 2);
            assert!(seen.insert(c.id), "chunk seen twice");
        }
    }
    assert_eq!(seen.len(), 21);
}

async fn embeddings_round_trip_and_update(store: Arc<dyn Store>) {
    let v = vec![0.125f32, -1.5, 3.0e-7, f32::MIN_POSITIVE];
    let c = chunk(0, "x", v.clone());
    let id = c.id;
    let r = store
        .replace_document(doc("kb", "a.md", "h"), vec![c])
        .await
        .unwrap();
    assert_eq!(store.embeddings(&[id]).await.unwrap()[&id], v, "bit-exact");
    let version = store
        .update_embeddings(r.document.id, "other-model", &[(id, vec![9.0, 8.0])])
        .await
        .unwrap();
    assert!(version > r.version);
    assert_eq!(store.embeddings(&[id]).await.unwrap()[&id], vec![9.0, 8.0]);
    assert_eq!(
        store
            .document(r.document.id)
            .await
            .unwrap()
            .unwrap()
            .embedding_model,
        "other-model"
    );
}

pub(crate) mod conversations {
    use super::WS;
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::Utc;
    use palaver::domain::{
        ChannelConfig, ChannelState, ConversationStatus, DeliveryError, DeliveryStatus, Direction,
        EscalationReason, MessageDetails, MessageKind, ProviderKind, Resolution, Role,
    };
    use palaver::store::{
        ConversationFilter, Delivery, InboundPolicy, NewChannel, NewEscalation, NewInbound,
        NewOutbound, RecordedInbound, Store, StoreError,
    };

    crate::both_backends!(
        channels_are_unique_per_route,
        a_channel_keeps_the_graph_version_it_chose,
        inbound_is_recorded_once_with_one_debounced_job,
        concurrent_duplicates_store_one_message,
        a_burst_is_recorded_once_each_and_a_bad_message_costs_no_other,
        a_provider_id_given_twice_still_marks_the_second_message_sent,
        outbound_is_exactly_once_per_key,
        statuses_only_move_forward_even_before_the_id_is_known,
        escalation_opens_once_and_closes,
        inbox_lists_filters_and_searches,
        history_respects_context_reset,
        own_messages_are_recorded_once,
        contacts_keep_both_ids_and_are_found_by_their_user_id,
    );

    pub fn policy() -> InboundPolicy {
        InboundPolicy {
            debounce: Duration::from_millis(0),
            max_delay: Duration::from_secs(10),
            idle_reset: Duration::from_secs(24 * 3600),
            limits: Default::default(),
            schedule: true,
        }
    }

    pub fn inbound(id: &str, from: &str, text: &str) -> NewInbound {
        NewInbound {
            provider_message_id: id.into(),
            from: from.into(),
            reply_to: None,
            user_id: None,
            contact_name: Some("Ana".into()),
            kind: MessageKind::Text,
            text: Some(text.into()),
            details: MessageDetails::default(),
            sent_at: Utc::now(),
        }
    }

    pub async fn channel(store: &Arc<dyn Store>, route: &str) -> palaver::domain::Channel {
        store
            .create_channel(NewChannel {
                workspace_id: WS,
                name: format!("channel {route}"),
                provider: ProviderKind::Meta,
                route_key: route.into(),
                agent_id: None,
                settings: ChannelConfig::default(),
                graph_version: None,
                sealed_credentials: vec![1, 2, 3],
                state: ChannelState::Created,
            })
            .await
            .unwrap()
    }

    fn reply(
        conversation: palaver::domain::ConversationId,
        key: &str,
        handled: Vec<palaver::domain::MessageId>,
    ) -> NewOutbound {
        NewOutbound {
            conversation_id: conversation,
            role: Role::Bot,
            kind: MessageKind::Text,
            text: Some("We open at nine.".into()),
            details: MessageDetails::default(),
            generation: None,
            sent_by: None,
            idempotency_key: Some(key.into()),
            handled,
            delivery: Delivery::Outbox(Default::default()),
        }
    }

    async fn channels_are_unique_per_route(store: Arc<dyn Store>) {
        let c = channel(&store, "111").await;
        assert_eq!(
            store.channel_credentials(c.id).await.unwrap().unwrap(),
            vec![1, 2, 3]
        );
        let err = store
            .create_channel(NewChannel {
                workspace_id: WS,
                name: "again".into(),
                provider: ProviderKind::Meta,
                route_key: "111".into(),
                agent_id: None,
                settings: ChannelConfig::default(),
                graph_version: None,
                sealed_credentials: vec![],
                state: ChannelState::Created,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert_eq!(
            store
                .channel_by_route(ProviderKind::Meta, "111")
                .await
                .unwrap()
                .unwrap()
                .id,
            c.id
        );
        assert!(store
            .channel_by_route(ProviderKind::Kapso, "111")
            .await
            .unwrap()
            .is_none());
        store
            .set_channel_state(c.id, ChannelState::Broken, Some("token expired"), None)
            .await
            .unwrap();
        let c2 = store.channel(c.id).await.unwrap().unwrap();
        assert_eq!(
            (c2.state, c2.state_detail.as_deref()),
            (ChannelState::Broken, Some("token expired"))
        );
        assert_eq!(
            store
                .list_channels(None, Some(ProviderKind::Meta))
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(store
            .list_channels(None, Some(ProviderKind::Evolution))
            .await
            .unwrap()
            .is_empty());
        assert!(store.delete_channel(c.id).await.unwrap());
        assert!(store.channel(c.id).await.unwrap().is_none());
    }

    async fn a_channel_keeps_the_graph_version_it_chose(store: Arc<dyn Store>) {
        // Channels stored without one (every channel from before) call the default.
        let mut c = channel(&store, "121").await;
        assert_eq!(c.graph_version, None);
        let chosen = store
            .create_channel(NewChannel {
                workspace_id: WS,
                name: "chosen".into(),
                provider: ProviderKind::Meta,
                route_key: "122".into(),
                agent_id: None,
                settings: ChannelConfig::default(),
                graph_version: Some("v24.0".into()),
                sealed_credentials: vec![1],
                state: ChannelState::Created,
            })
            .await
            .unwrap();
        assert_eq!(chosen.graph_version.as_deref(), Some("v24.0"));
        c.graph_version = Some("v26.0".into());
        store.update_channel(&c, None).await.unwrap();
        let read = |route: &'static str| {
            let store = store.clone();
            async move {
                store
                    .channel_by_route(ProviderKind::Meta, route)
                    .await
                    .unwrap()
                    .unwrap()
                    .graph_version
            }
        };
        assert_eq!(read("121").await.as_deref(), Some("v26.0"));
        assert_eq!(read("122").await.as_deref(), Some("v24.0"));
        c.graph_version = None;
        store.update_channel(&c, None).await.unwrap();
        assert_eq!(read("121").await, None);
        assert_eq!(read("122").await.as_deref(), Some("v24.0"));
    }

    async fn inbound_is_recorded_once_with_one_debounced_job(store: Arc<dyn Store>) {
        let c = channel(&store, "222").await;
        let RecordedInbound::New {
            message,
            conversation,
        } = store
            .record_inbound(&c, inbound("wamid.1", "5511", "hi"), policy())
            .await
            .unwrap()
        else {
            panic!("first delivery is new")
        };
        assert_eq!(message.direction, Direction::Inbound);
        assert_eq!(message.status, DeliveryStatus::Received);
        assert_eq!(conversation.unread_count, 1);
        assert_eq!(conversation.contact.name.as_deref(), Some("Ana"));
        assert!(conversation.last_inbound_at.is_some());
        assert!(matches!(
            store
                .record_inbound(&c, inbound("wamid.1", "5511", "hi"), policy())
                .await
                .unwrap(),
            RecordedInbound::Duplicate
        ));
        // A burst: a second message joins the pending job instead of adding one.
        store
            .record_inbound(&c, inbound("wamid.2", "5511", "question"), policy())
            .await
            .unwrap();
        let pending = store.list_jobs(WS, "pending", 10).await.unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0].kind, "handle");
        assert_eq!(
            pending[0].queue_key.as_deref(),
            Some(conversation.id.to_string().as_str())
        );
        let unhandled = store.unhandled_inbound(conversation.id).await.unwrap();
        assert_eq!(
            unhandled
                .iter()
                .map(|m| m.text.as_deref().unwrap())
                .collect::<Vec<_>>(),
            ["hi", "question"]
        );

        // While the job runs, a new message gets a job of its own, which waits for the first.
        let job = store
            .claim_next_job("w1", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        store
            .record_inbound(&c, inbound("wamid.3", "5511", "more"), policy())
            .await
            .unwrap();
        assert!(
            store
                .claim_next_job("w2", Duration::from_secs(30))
                .await
                .unwrap()
                .is_none(),
            "same conversation is busy"
        );
        // Another conversation is not blocked.
        store
            .record_inbound(&c, inbound("wamid.4", "5522", "other"), policy())
            .await
            .unwrap();
        let other = store
            .claim_next_job("w2", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(other.queue_key, job.queue_key);
        store.complete_job(job.id, "w1").await.unwrap();
        let next = store
            .claim_next_job("w1", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.queue_key, job.queue_key);
    }

    async fn concurrent_duplicates_store_one_message(store: Arc<dyn Store>) {
        let c = channel(&store, "333").await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .record_inbound(&c, inbound("wamid.same", "5511", "hi"), policy())
                    .await
            }));
        }
        let mut new = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                RecordedInbound::New { .. } => new += 1,
                RecordedInbound::Duplicate => {}
            }
        }
        assert_eq!(new, 1);
        assert_eq!(store.list_jobs(WS, "pending", 10).await.unwrap().len(), 1);
    }

    /// Messages arriving together are committed together; each is still recorded exactly once,
    /// with one conversation (and one `conversation.created`) per contact and one job each, and
    /// a message that cannot be stored fails alone.
    async fn a_burst_is_recorded_once_each_and_a_bad_message_costs_no_other(store: Arc<dyn Store>) {
        use palaver::domain::EventKind;
        let c = channel(&store, "555").await;
        // A channel that is not in the store: its message breaks the foreign keys.
        let mut gone = c.clone();
        gone.id = palaver::domain::ChannelId::new();
        let mut tasks = Vec::new();
        for i in 0..60 {
            let store = store.clone();
            let (c, gone) = (c.clone(), gone.clone());
            // Contacts 0..10, each writing six times; every third message is a provider retry
            // of the one before.
            let id = if i % 3 == 2 { i - 1 } else { i };
            let from = format!("55{}", i % 10);
            tasks.push(tokio::spawn(async move {
                let channel = if i == 30 { gone } else { c };
                store
                    .record_inbound(
                        &channel,
                        inbound(&format!("wamid.{id}"), &from, "hi"),
                        policy(),
                    )
                    .await
            }));
        }
        let (mut new, mut duplicates, mut failed) = (0, 0, 0);
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(RecordedInbound::New { .. }) => new += 1,
                Ok(RecordedInbound::Duplicate) => duplicates += 1,
                Err(e) => {
                    assert_eq!(i, 30, "message {i} failed: {e}");
                    failed += 1;
                }
            }
        }
        // 40 distinct messages, of which one (30) went to the missing channel and failed alone.
        assert_eq!((new, duplicates, failed), (39, 20, 1));
        let conversations = store
            .list_conversations(
                WS,
                &ConversationFilter {
                    limit: 50,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(conversations.len(), 10);
        let unread: i64 = conversations
            .iter()
            .map(|c| c.conversation.unread_count)
            .sum();
        assert_eq!(unread, 39);
        assert_eq!(store.list_jobs(WS, "pending", 100).await.unwrap().len(), 10);
        let events = store.events_after(WS, 0, 1000).await.unwrap();
        let count = |kind| events.iter().filter(|e| e.kind == kind).count();
        assert_eq!(count(EventKind::ConversationCreated), 10);
        assert_eq!(count(EventKind::MessageReceived), 39);
        // The log has no gaps.
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    }

    /// A provider that answers a send with an id it gave before (or an echo of the send stored
    /// first) must not make the send fail: the job would retry and send it again.
    async fn a_provider_id_given_twice_still_marks_the_second_message_sent(store: Arc<dyn Store>) {
        let c = channel(&store, "556").await;
        let conv = store.open_conversation(&c, "5511", None).await.unwrap();
        let (first, _) = store
            .record_outbound(reply(conv.id, "k1", vec![]))
            .await
            .unwrap();
        let (second, _) = store
            .record_outbound(reply(conv.id, "k2", vec![]))
            .await
            .unwrap();
        store.mark_sent(first.id, "wamid.same").await.unwrap();
        store.mark_sent(second.id, "wamid.same").await.unwrap();
        let first = store.message(first.id).await.unwrap().unwrap();
        let second = store.message(second.id).await.unwrap().unwrap();
        assert_eq!(first.status, DeliveryStatus::Sent);
        assert_eq!(second.status, DeliveryStatus::Sent);
        assert_eq!(first.provider_message_id.as_deref(), Some("wamid.same"));
        assert_eq!(second.provider_message_id, None, "the id is kept once");
    }

    async fn outbound_is_exactly_once_per_key(store: Arc<dyn Store>) {
        let c = channel(&store, "444").await;
        let RecordedInbound::New {
            message,
            conversation,
        } = store
            .record_inbound(&c, inbound("wamid.1", "5511", "hours?"), policy())
            .await
            .unwrap()
        else {
            panic!()
        };
        let (first, created) = store
            .record_outbound(reply(conversation.id, "k1", vec![message.id]))
            .await
            .unwrap();
        assert!(created);
        assert_eq!(first.status, DeliveryStatus::Queued);
        assert!(
            store
                .unhandled_inbound(conversation.id)
                .await
                .unwrap()
                .is_empty(),
            "answered in the same transaction"
        );
        let (again, created) = store
            .record_outbound(reply(conversation.id, "k1", vec![message.id]))
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(again.id, first.id);
        let sends: Vec<_> = store
            .list_jobs(WS, "pending", 10)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.kind == "send")
            .collect();
        assert_eq!(sends.len(), 1);
        assert_eq!(sends[0].payload["message_id"], first.id.to_string());
    }

    async fn statuses_only_move_forward_even_before_the_id_is_known(store: Arc<dyn Store>) {
        let c = channel(&store, "555").await;
        let conv = store.open_conversation(&c, "5511", None).await.unwrap();
        let (m, _) = store
            .record_outbound(reply(conv.id, "k", vec![]))
            .await
            .unwrap();
        // `delivered` arrives before our send call returned the provider's id.
        let unknown = store
            .apply_status(
                c.id,
                "wamid.out",
                DeliveryStatus::Delivered,
                None,
                Utc::now(),
                None,
            )
            .await
            .unwrap();
        assert!(unknown.is_none());
        store.mark_sent(m.id, "wamid.out").await.unwrap();
        assert_eq!(
            store.message(m.id).await.unwrap().unwrap().status,
            DeliveryStatus::Delivered
        );
        // `sent` arriving late does not move it back; `read` moves it forward.
        store
            .apply_status(
                c.id,
                "wamid.out",
                DeliveryStatus::Sent,
                None,
                Utc::now(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            store.message(m.id).await.unwrap().unwrap().status,
            DeliveryStatus::Delivered
        );
        let id = store
            .apply_status(
                c.id,
                "wamid.out",
                DeliveryStatus::Read,
                None,
                Utc::now(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(id, Some(m.id));
        assert_eq!(
            store.message(m.id).await.unwrap().unwrap().status,
            DeliveryStatus::Read
        );
        let error = DeliveryError {
            code: Some(131047),
            title: "Re-engagement message".into(),
            detail: None,
        };
        store
            .apply_status(
                c.id,
                "wamid.out",
                DeliveryStatus::Failed,
                Some(&error),
                Utc::now(),
                None,
            )
            .await
            .unwrap();
        let failed = store.message(m.id).await.unwrap().unwrap();
        assert_eq!(failed.status, DeliveryStatus::Failed);
        assert_eq!(failed.error, Some(error));
    }

    async fn escalation_opens_once_and_closes(store: Arc<dyn Store>) {
        let c = channel(&store, "666").await;
        let conv = store.open_conversation(&c, "5511", None).await.unwrap();
        let (e, opened) = store
            .open_escalation(
                conv.id,
                NewEscalation {
                    reason: EscalationReason::Keyword,
                    detail: Some(String::from("humano")),
                    message_id: None,
                },
            )
            .await
            .unwrap();
        assert!(opened);
        let (again, opened) = store
            .open_escalation(
                conv.id,
                NewEscalation {
                    reason: EscalationReason::LowConfidence,
                    detail: None,
                    message_id: None,
                },
            )
            .await
            .unwrap();
        assert!(!opened);
        assert_eq!(again.id, e.id);
        let now = store.conversation(conv.id).await.unwrap().unwrap();
        assert_eq!(now.status, ConversationStatus::Escalated);
        assert_eq!(now.status_reason.as_deref(), Some("keyword"));
        let closed = store
            .close_escalation(conv.id, Resolution::HandedBack, "ops", None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(closed.resolution, Some(Resolution::HandedBack));
        assert!(closed.closed_at.is_some());
        assert_eq!(
            store.conversation(conv.id).await.unwrap().unwrap().status,
            ConversationStatus::Active
        );
        assert!(store
            .close_escalation(conv.id, Resolution::Resolved, "ops", None)
            .await
            .unwrap()
            .is_none());
        store
            .open_escalation(
                conv.id,
                NewEscalation {
                    reason: EscalationReason::HumanRequest,
                    detail: None,
                    message_id: None,
                },
            )
            .await
            .unwrap();
        store
            .close_escalation(conv.id, Resolution::Resolved, "ops", None)
            .await
            .unwrap();
        assert_eq!(
            store.conversation(conv.id).await.unwrap().unwrap().status,
            ConversationStatus::Resolved
        );
        assert_eq!(store.escalations(conv.id).await.unwrap().len(), 2);
        // A new customer message reopens a resolved conversation for the bot.
        store
            .record_inbound(&c, inbound("wamid.x", "5511", "hello again"), policy())
            .await
            .unwrap();
        assert_eq!(
            store.conversation(conv.id).await.unwrap().unwrap().status,
            ConversationStatus::Active
        );
    }

    async fn inbox_lists_filters_and_searches(store: Arc<dyn Store>) {
        let c = channel(&store, "777").await;
        let mut first = inbound("w1", "5511000001", "Do you deliver to Porto?");
        first.contact_name = Some("Beatriz".into());
        store.record_inbound(&c, first, policy()).await.unwrap();
        let mut second = inbound("w2", "5511000002", "100% rye bread?");
        second.contact_name = Some("Carlos".into());
        let RecordedInbound::New { conversation, .. } =
            store.record_inbound(&c, second, policy()).await.unwrap()
        else {
            panic!()
        };
        store
            .open_escalation(
                conversation.id,
                NewEscalation {
                    reason: EscalationReason::Keyword,
                    detail: None,
                    message_id: None,
                },
            )
            .await
            .unwrap();
        let all = |search: Option<&str>, status| ConversationFilter {
            status,
            search: search.map(String::from),
            limit: 50,
            ..Default::default()
        };
        let list = store
            .list_conversations(WS, &all(None, None))
            .await
            .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0].conversation.contact.name.as_deref(),
            Some("Carlos"),
            "most recent first"
        );
        assert_eq!(list[0].last_message.as_deref(), Some("100% rye bread?"));
        assert_eq!(list[0].conversation.unread_count, 1);
        let names = |l: Vec<palaver::store::ConversationSummary>| {
            l.into_iter()
                .map(|s| s.conversation.contact.name.unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(
                store
                    .list_conversations(WS, &all(Some("porto"), None))
                    .await
                    .unwrap()
            ),
            ["Beatriz"]
        );
        assert_eq!(
            names(
                store
                    .list_conversations(WS, &all(Some("beatriz"), None))
                    .await
                    .unwrap()
            ),
            ["Beatriz"]
        );
        assert_eq!(
            names(
                store
                    .list_conversations(WS, &all(Some("000002"), None))
                    .await
                    .unwrap()
            ),
            ["Carlos"]
        );
        assert_eq!(
            names(
                store
                    .list_conversations(WS, &all(Some("100%"), None))
                    .await
                    .unwrap()
            ),
            ["Carlos"]
        );
        assert!(
            store
                .list_conversations(WS, &all(Some("_"), None))
                .await
                .unwrap()
                .is_empty(),
            "LIKE wildcards are literal"
        );
        assert_eq!(
            names(
                store
                    .list_conversations(WS, &all(None, Some(ConversationStatus::Escalated)))
                    .await
                    .unwrap()
            ),
            ["Carlos"]
        );
        let search = |q: &'static str| {
            let store = store.clone();
            async move {
                names(
                    store
                        .list_conversations(WS, &all(Some(q), None))
                        .await
                        .unwrap(),
                )
            }
        };
        // Any part of a word, in any case; searches shorter than a trigram too.
        assert_eq!(search("ELIVER").await, ["Beatriz"]);
        assert_eq!(search("rt").await, ["Beatriz"]);
        assert_eq!(search("Rye Br").await, ["Carlos"]);
        // Quotes and FTS syntax are text.
        assert!(search("\"rye").await.is_empty());
        assert!(search("rye OR porto").await.is_empty());
        assert!(search("bread*").await.is_empty());
        // A voice note's transcript is found once it is written.
        let mut voice = inbound("w3", "5511000003", "");
        voice.text = None;
        voice.kind = MessageKind::Audio;
        voice.contact_name = Some("Dora".into());
        let RecordedInbound::New { message, .. } =
            store.record_inbound(&c, voice, policy()).await.unwrap()
        else {
            panic!()
        };
        assert!(search("sourdough").await.is_empty());
        store
            .set_transcript(
                message.id,
                "Is the sourdough ready?",
                &MessageDetails::default(),
            )
            .await
            .unwrap();
        assert_eq!(search("sourdough").await, ["Dora"]);
        // Messages deleted with their channel leave the search.
        let gone = channel(&store, "778").await;
        let mut other = inbound("w4", "5511000004", "Porto again");
        other.contact_name = Some("Eva".into());
        store.record_inbound(&gone, other, policy()).await.unwrap();
        assert_eq!(search("porto").await, ["Eva", "Beatriz"]);
        assert!(store.delete_channel(gone.id).await.unwrap());
        assert_eq!(search("porto").await, ["Beatriz"]);
        store.mark_read(conversation.id).await.unwrap();
        assert_eq!(
            store
                .conversation(conversation.id)
                .await
                .unwrap()
                .unwrap()
                .unread_count,
            0
        );
        let sandbox = ConversationFilter {
            sandbox: true,
            limit: 50,
            ..Default::default()
        };
        assert!(store
            .list_conversations(WS, &sandbox)
            .await
            .unwrap()
            .is_empty());
    }

    async fn history_respects_context_reset(store: Arc<dyn Store>) {
        let c = channel(&store, "888").await;
        let RecordedInbound::New {
            message,
            conversation,
        } = store
            .record_inbound(&c, inbound("w1", "5511", "first"), policy())
            .await
            .unwrap()
        else {
            panic!()
        };
        store
            .record_outbound(reply(conversation.id, "k1", vec![message.id]))
            .await
            .unwrap();
        let RecordedInbound::New {
            message: second, ..
        } = store
            .record_inbound(&c, inbound("w2", "5511", "second"), policy())
            .await
            .unwrap()
        else {
            panic!()
        };
        let history = store
            .history(conversation.id, 10, &[second.id])
            .await
            .unwrap();
        let texts: Vec<_> = history.iter().map(|m| m.text.clone().unwrap()).collect();
        assert_eq!(texts, ["first", "We open at nine."]);
        assert_eq!(
            store.history(conversation.id, 1, &[]).await.unwrap().len(),
            1
        );
        store.reset_context(conversation.id).await.unwrap();
        assert!(store
            .history(conversation.id, 10, &[])
            .await
            .unwrap()
            .is_empty());
        let page = store.messages(conversation.id, 2, None).await.unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(
            page[1].text.as_deref(),
            Some("second"),
            "oldest first, newest page"
        );
        let earlier = store
            .messages(conversation.id, 10, Some(page[0].id))
            .await
            .unwrap();
        assert_eq!(earlier.len(), 1);
    }

    /// Meta's business-scoped user ids: a customer known by a phone number and a user id, who
    /// later comes with the user id alone (a username hides the number), is the same contact;
    /// one who only ever came with the user id is keyed by it.
    async fn contacts_keep_both_ids_and_are_found_by_their_user_id(store: Arc<dyn Store>) {
        let c = channel(&store, "333").await;
        let with = |id: &str, from: &str, user_id: &str| NewInbound {
            user_id: Some(user_id.into()),
            ..inbound(id, from, "hola")
        };
        let conversation = |r: RecordedInbound| match r {
            RecordedInbound::New { conversation, .. } => conversation,
            RecordedInbound::Duplicate => panic!("new message"),
        };
        let first = conversation(
            store
                .record_inbound(&c, with("u1", "5511", "BR.1502576394655843"), policy())
                .await
                .unwrap(),
        );
        assert_eq!(first.contact.wa_id, "5511");
        assert_eq!(
            first.contact.user_id.as_deref(),
            Some("BR.1502576394655843")
        );
        let hidden = conversation(
            store
                .record_inbound(
                    &c,
                    with("u2", "BR.1502576394655843", "BR.1502576394655843"),
                    policy(),
                )
                .await
                .unwrap(),
        );
        assert_eq!(hidden.id, first.id, "the same customer");
        assert_eq!(hidden.contact.address(), "5511");

        let only = conversation(
            store
                .record_inbound(
                    &c,
                    with("u3", "PT.4821937560012833", "PT.4821937560012833"),
                    policy(),
                )
                .await
                .unwrap(),
        );
        assert_ne!(only.id, first.id);
        assert_eq!(only.contact.address(), "PT.4821937560012833");
        assert_eq!(only.contact.user_id.as_deref(), Some("PT.4821937560012833"));
        // A message without the user id still finds the contact by its key.
        let again = conversation(
            store
                .record_inbound(&c, inbound("u4", "5511", "otra"), policy())
                .await
                .unwrap(),
        );
        assert_eq!(again.id, first.id);
        assert_eq!(
            again.contact.user_id.as_deref(),
            Some("BR.1502576394655843"),
            "kept"
        );
    }

    async fn own_messages_are_recorded_once(store: Arc<dyn Store>) {
        let c = channel(&store, "999").await;
        let conv = store
            .record_own_message(&c, inbound("own.1", "5511", "typed on the phone"))
            .await
            .unwrap();
        let conv = conv.expect("new");
        let messages = store.messages(conv.id, 10, None).await.unwrap();
        assert_eq!(messages[0].role, Role::Agent);
        assert_eq!(messages[0].direction, Direction::Outbound);
        assert!(store
            .record_own_message(&c, inbound("own.1", "5511", "again"))
            .await
            .unwrap()
            .is_none());
        // Our own message echoed back is not a human's.
        let (m, _) = store
            .record_outbound(reply(conv.id, "k", vec![]))
            .await
            .unwrap();
        store.mark_sent(m.id, "wamid.ours").await.unwrap();
        assert!(store
            .record_own_message(&c, inbound("wamid.ours", "5511", "echo"))
            .await
            .unwrap()
            .is_none());
    }
}

mod jobs {
    use super::WS;
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::Utc;
    use palaver::domain::{MessageId, Task};
    use palaver::store::{Job, NewJob, Store};

    crate::both_backends!(
        retries_dead_letters_and_requeues,
        queues_run_in_order,
        expired_leases_are_reclaimed,
        parallel_claims_never_share_a_job,
        waiting_for_the_send_rate_is_not_an_attempt,
        jobs_carry_their_deadline_and_count_abandoned_leases,
    );

    fn job(queue: Option<&str>, n: i64) -> NewJob {
        NewJob {
            workspace_id: WS,
            task: Task::Send {
                message_id: MessageId(uuid::Uuid::from_u128(n as u128)),
            },
            queue_key: queue.map(String::from),
            run_at: Utc::now(),
            limits: Default::default(),
        }
    }

    /// The number a test job was made with.
    fn number(job: &Job) -> i64 {
        match job.task().unwrap() {
            Task::Send { message_id } => message_id.0.as_u128() as i64,
            other => panic!("not a test job: {other:?}"),
        }
    }

    async fn retries_dead_letters_and_requeues(store: Arc<dyn Store>) {
        let id = store.enqueue(job(None, 1)).await.unwrap();
        let j = store
            .claim_next_job("w", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((j.id, j.attempts), (id, 1));
        store
            .retry_job(
                id,
                "w",
                Utc::now() + chrono::Duration::milliseconds(300),
                "boom",
            )
            .await
            .unwrap();
        assert!(
            store
                .claim_next_job("w", Duration::from_secs(30))
                .await
                .unwrap()
                .is_none(),
            "not due yet"
        );
        let pending = store.list_jobs(WS, "pending", 10).await.unwrap();
        assert_eq!(pending[0].last_error.as_deref(), Some("boom"));
        tokio::time::sleep(Duration::from_millis(350)).await;
        let j = store
            .claim_next_job("w", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(j.attempts, 2);
        store.dead_letter_job(id, "w", "gave up").await.unwrap();
        let dead = store.list_jobs(WS, "dead", 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].last_error.as_deref(), Some("gave up"));
        assert_eq!(store.job_counts(None).await.unwrap().get("dead"), Some(&1));
        assert!(store.requeue_job(WS, id).await.unwrap());
        assert!(!store.requeue_job(WS, id).await.unwrap());
        let j = store
            .claim_next_job("w", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(j.attempts, 1);
        store.complete_job(id, "w").await.unwrap();
        assert!(store
            .claim_next_job("w", Duration::from_secs(30))
            .await
            .unwrap()
            .is_none());
    }

    async fn queues_run_in_order(store: Arc<dyn Store>) {
        for n in 0..3 {
            store.enqueue(job(Some("q"), n)).await.unwrap();
        }
        for n in 0..3 {
            let j = store
                .claim_next_job("w", Duration::from_secs(30))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(number(&j), n);
            assert!(store
                .claim_next_job("w2", Duration::from_secs(30))
                .await
                .unwrap()
                .is_none());
            // A failed job keeps its place: the queue waits for its retry.
            if n == 1 && j.attempts == 1 {
                store
                    .retry_job(j.id, "w", Utc::now(), "again")
                    .await
                    .unwrap();
                let again = store
                    .claim_next_job("w", Duration::from_secs(30))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(number(&again), 1);
                store.complete_job(again.id, "w").await.unwrap();
                continue;
            }
            store.complete_job(j.id, "w").await.unwrap();
        }
    }

    async fn expired_leases_are_reclaimed(store: Arc<dyn Store>) {
        let id = store.enqueue(job(Some("q"), 1)).await.unwrap();
        let j = store
            .claim_next_job("crashed", Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(j.id, id);
        // Jobs due even earlier do not keep an abandoned one waiting (a crashed replica's turn
        // is finished first, whatever the backlog).
        for (queue, n) in [(None, 2), (Some("other"), 3)] {
            store
                .enqueue(NewJob {
                    run_at: Utc::now() - chrono::Duration::hours(1),
                    ..job(queue, n)
                })
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let j = store
            .claim_next_job("survivor", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((j.id, j.attempts), (id, 2));
        assert!(!store
            .extend_lease(id, "crashed", Duration::from_secs(30))
            .await
            .unwrap());
        assert!(store
            .extend_lease(id, "survivor", Duration::from_secs(30))
            .await
            .unwrap());
        // The crashed worker finishing late does not remove the survivor's job.
        store.complete_job(id, "crashed").await.unwrap();
        assert_eq!(store.list_jobs(WS, "running", 10).await.unwrap().len(), 1);
        // Then the due jobs, earliest first.
        let next = store
            .claim_next_job("survivor", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(number(&next), 2);
    }

    async fn waiting_for_the_send_rate_is_not_an_attempt(store: Arc<dyn Store>) {
        let id = store.enqueue(job(Some("q"), 1)).await.unwrap();
        for _ in 0..3 {
            let j = store
                .claim_next_job("w", Duration::from_secs(30))
                .await
                .unwrap()
                .unwrap();
            assert_eq!((j.id, j.attempts), (id, 1), "a deferral is not an attempt");
            store.defer_job(id, "w", Utc::now()).await.unwrap();
        }
        // Deferred into the future: not due, and its queue waits for it.
        let j = store
            .claim_next_job("w", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        store
            .defer_job(j.id, "w", Utc::now() + chrono::Duration::seconds(60))
            .await
            .unwrap();
        store.enqueue(job(Some("q"), 2)).await.unwrap();
        assert!(store
            .claim_next_job("w", Duration::from_secs(30))
            .await
            .unwrap()
            .is_none());
        let pending = store.list_jobs(WS, "pending", 10).await.unwrap();
        assert_eq!(pending.len(), 2);
        assert!(pending.iter().all(|j| j.last_error.is_none()));
    }

    async fn jobs_carry_their_deadline_and_count_abandoned_leases(store: Arc<dyn Store>) {
        let mut new = job(None, 1);
        new.limits = palaver::store::JobLimits {
            retry_for: Duration::from_secs(3600),
            max_abandoned: 2,
        };
        let before = Utc::now();
        let id = store.enqueue(new).await.unwrap();
        let j = store
            .claim_next_job("crashed-1", Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        let expires = j.expires_at.expect("a deadline");
        let hour = chrono::Duration::seconds(3600);
        assert!(expires >= before + hour - chrono::Duration::seconds(1));
        assert!(expires <= Utc::now() + hour + chrono::Duration::seconds(1));
        assert_eq!((j.abandoned, j.max_abandoned), (0, 2));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let j = store
            .claim_next_job("crashed-2", Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((j.id, j.abandoned), (id, 1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let j = store
            .claim_next_job("survivor", Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(j.abandoned, 2, "the worker decides to give it up");
    }

    async fn parallel_claims_never_share_a_job(store: Arc<dyn Store>) {
        for n in 0..40 {
            store
                .enqueue(job(Some(&format!("q{}", n % 10)), n))
                .await
                .unwrap();
        }
        let mut tasks = Vec::new();
        for w in 0..6 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let worker = format!("w{w}");
                let mut done = Vec::new();
                loop {
                    match store
                        .claim_next_job(&worker, Duration::from_secs(30))
                        .await
                        .unwrap()
                    {
                        Some(j) => {
                            done.push((j.queue_key.clone().unwrap(), number(&j)));
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            store.complete_job(j.id, &worker).await.unwrap();
                        }
                        None => {
                            if store.list_jobs(WS, "pending", 1).await.unwrap().is_empty()
                                && store.list_jobs(WS, "running", 1).await.unwrap().is_empty()
                            {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
                done
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        assert_eq!(all.len(), 40, "every job ran exactly once");
        let mut ns: Vec<i64> = all.iter().map(|(_, n)| *n).collect();
        ns.sort();
        assert_eq!(ns, (0..40).collect::<Vec<_>>());
    }
}

mod evals {
    use super::WS;
    use std::sync::Arc;

    use palaver::domain::EvalRunId;
    use palaver::store::{EvalRunStatus, FinishedEvalRun, Store, StoreError};
    use serde_json::json;

    crate::both_backends!(eval_runs_record_progress_and_results);

    async fn eval_runs_record_progress_and_results(store: Arc<dyn Store>) {
        let first = EvalRunId::new();
        let run = store
            .create_eval_run(WS, first, &json!({"suites": ["faq.yaml"]}))
            .await
            .unwrap();
        assert_eq!(run.status, EvalRunStatus::Running);
        assert_eq!(run.request["suites"][0], "faq.yaml");
        assert_eq!((run.cases_done, run.cases_total), (0, 0));
        assert!(run.finished_at.is_none());

        store.record_eval_progress(first, 3, 10).await.unwrap();
        let run = store.eval_run(first).await.unwrap().unwrap();
        assert_eq!((run.cases_done, run.cases_total), (3, 10));

        store
            .finish_eval_run(
                first,
                FinishedEvalRun {
                    status: EvalRunStatus::Failed,
                    summary: Some(json!({"pass_rate": 0.5})),
                    results: Some(json!({"suites": [{"name": "faq"}]})),
                    error: None,
                },
            )
            .await
            .unwrap();
        let run = store.eval_run(first).await.unwrap().unwrap();
        assert_eq!(run.status, EvalRunStatus::Failed);
        assert_eq!(run.summary.unwrap()["pass_rate"], 0.5);
        assert_eq!(run.results.unwrap()["suites"][0]["name"], "faq");
        assert!(run.finished_at.is_some());
        // A finished run is not finished twice, nor moved by late progress.
        let again = store
            .finish_eval_run(
                first,
                FinishedEvalRun {
                    status: EvalRunStatus::Passed,
                    summary: None,
                    results: None,
                    error: None,
                },
            )
            .await;
        assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
        store.record_eval_progress(first, 9, 10).await.unwrap();
        let run = store.eval_run(first).await.unwrap().unwrap();
        assert_eq!(run.status, EvalRunStatus::Failed);
        assert_eq!(run.cases_done, 3);

        let second = EvalRunId::new();
        store.create_eval_run(WS, second, &json!({})).await.unwrap();
        store
            .finish_eval_run(
                second,
                FinishedEvalRun {
                    status: EvalRunStatus::Error,
                    summary: None,
                    results: None,
                    error: Some("no agent named `demo`".into()),
                },
            )
            .await
            .unwrap();
        // Newest first, without the (large) results.
        let list = store.list_eval_runs(WS, 10).await.unwrap();
        let ids: Vec<_> = list.iter().map(|r| r.id).collect();
        assert_eq!(ids, [second, first]);
        assert!(list.iter().all(|r| r.results.is_none()));
        assert_eq!(list[0].error.as_deref(), Some("no agent named `demo`"));
        assert_eq!(store.list_eval_runs(WS, 1).await.unwrap().len(), 1);
        assert!(store.eval_run(EvalRunId::new()).await.unwrap().is_none());

        // Runs left running by a stopped server are interrupted; fresh ones are not.
        let stale = EvalRunId::new();
        store.create_eval_run(WS, stale, &json!({})).await.unwrap();
        let cutoff = chrono::Utc::now() + chrono::Duration::seconds(1);
        assert_eq!(
            store
                .interrupt_eval_runs(chrono::Utc::now() - chrono::Duration::minutes(5))
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.interrupt_eval_runs(cutoff).await.unwrap(), 1);
        let run = store.eval_run(stale).await.unwrap().unwrap();
        assert_eq!(run.status, EvalRunStatus::Error);
        assert!(run.error.unwrap().contains("interrupted"));
        // Finished runs are left alone.
        assert_eq!(
            store.eval_run(first).await.unwrap().unwrap().status,
            EvalRunStatus::Failed
        );
    }
}

mod send_rate {
    use std::time::Duration;

    use crate::support::TestStore;

    crate::both_backends_with_url!(replicas_share_a_channels_send_rate);

    /// Two handles on one database stand for two replicas: together they send at the channel's
    /// rate, not twice it.
    async fn replicas_share_a_channels_send_rate(db: &TestStore) {
        let other = palaver::store::open(&db.url, 2).await.unwrap();
        let channel = super::conversations::channel(&db.store, "rate-1").await;
        let quiet = super::conversations::channel(&db.store, "rate-2").await;
        // 60 a minute with a burst of 4: four slots at once between both replicas, then one a
        // second.
        let mut taken = 0;
        for i in 0..8 {
            let replica = if i % 2 == 0 { &db.store } else { &other };
            if replica
                .take_send_slot(channel.id, 60, 4)
                .await
                .unwrap()
                .is_none()
            {
                taken += 1;
            }
        }
        assert_eq!(taken, 4, "the burst is shared");
        let wait = other
            .take_send_slot(channel.id, 60, 4)
            .await
            .unwrap()
            .expect("the rate is used up");
        assert!(
            wait > Duration::from_millis(500) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Each channel has its own rate.
        assert!(other
            .take_send_slot(quiet.id, 60, 4)
            .await
            .unwrap()
            .is_none());
        tokio::time::sleep(wait + Duration::from_millis(20)).await;
        assert!(db
            .store
            .take_send_slot(channel.id, 60, 4)
            .await
            .unwrap()
            .is_none());
    }
}

mod journal {

    use std::sync::Arc;
    use std::time::Duration;

    use chrono::Utc;
    use palaver::domain::{ChannelId, ProviderKind};
    use palaver::store::{NewJournalEntry, Store};

    crate::both_backends!(appends_take_lease_retry_and_finish);

    fn entry(body: &str) -> NewJournalEntry {
        NewJournalEntry {
            provider: ProviderKind::Meta,
            channels: vec![ChannelId::new(), ChannelId::new()],
            body: body.as_bytes().to_vec(),
        }
    }

    async fn appends_take_lease_retry_and_finish(store: Arc<dyn Store>) {
        // Concurrent appends share commits; each is answered once durable.
        let appends = (0..40).map(|i| store.journal(entry(&format!("{{\"n\":{i}}}"))));
        for appended in futures::future::join_all(appends).await {
            appended.unwrap();
        }
        assert_eq!(store.journal_backlog().await.unwrap().entries, 40);

        let lease = Duration::from_secs(60);
        let first = store.take_journal(25, lease).await.unwrap();
        assert_eq!(first.len(), 25);
        assert!(
            first.windows(2).all(|w| w[0].seq < w[1].seq),
            "oldest first"
        );
        assert_eq!(first[0].provider, ProviderKind::Meta);
        assert_eq!(first[0].channels.len(), 2);
        assert_eq!(first[0].attempts, 0);
        // Leased entries are not taken again while their lease holds.
        let second = store.take_journal(100, lease).await.unwrap();
        assert_eq!(second.len(), 15);
        assert!(second[0].seq > first[24].seq);
        assert!(store.take_journal(100, lease).await.unwrap().is_empty());

        // A failed entry waits for its retry; the others are finished.
        let failed = first[0].seq;
        store
            .retry_journal(failed, "store unavailable", Utc::now())
            .await
            .unwrap();
        let seqs: Vec<i64> = first[1..].iter().chain(&second).map(|e| e.seq).collect();
        store.finish_journal(&seqs).await.unwrap();
        let backlog = store.journal_backlog().await.unwrap();
        assert_eq!((backlog.entries, backlog.failing), (1, 1));
        let again = store.take_journal(100, lease).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].seq, again[0].attempts), (failed, 1));
        assert_eq!(again[0].body, first[0].body);
        // One whose retry is later is not taken yet.
        store
            .retry_journal(failed, "again", Utc::now() + chrono::Duration::seconds(60))
            .await
            .unwrap();
        assert!(store.take_journal(100, lease).await.unwrap().is_empty());

        // An expired lease (its holder died) makes the entry available again.
        store.journal(entry("{}")).await.unwrap();
        let held = store
            .take_journal(100, Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(held.len(), 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let retaken = store.take_journal(100, lease).await.unwrap();
        assert_eq!(retaken.len(), 1);
        assert_eq!(retaken[0].seq, held[0].seq);
    }

    /// One process owns a SQLite file: the leases of its previous life are void when it opens
    /// the journal again, and what was kept is still there.
    #[tokio::test]
    async fn sqlite_leases_end_with_the_process() {
        let db = crate::support::sqlite_store().await;
        db.store.journal(entry("{}")).await.unwrap();
        let lease = Duration::from_secs(600);
        assert_eq!(db.store.take_journal(10, lease).await.unwrap().len(), 1);
        let again = palaver::store::open(&db.url, 2).await.unwrap();
        let taken = again.take_journal(10, lease).await.unwrap();
        assert_eq!(taken.len(), 1, "kept across the restart, and not leased");
        assert_eq!(taken[0].body, b"{}");
    }
}
