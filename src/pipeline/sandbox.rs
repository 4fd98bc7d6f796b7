//! The sandbox for prompt authors: the same [`Pipeline::handle`] as production, on a sandbox
//! channel per agent whose replies are recorded, never sent. Each session (a terminal chat, an
//! API caller's session id) is its own conversation, kept apart from real ones.

use base64::Engine;
use chrono::Utc;
use uuid::Uuid;

use super::{Outcome, Overrides, Pipeline, PipelineError};
use crate::domain::{
    Agent, ChannelConfig, ChannelState, Conversation, MediaRef, MessageDetails, MessageKind,
    ProviderKind,
};
use crate::store::{InboundPolicy, NewChannel, NewInbound, RecordedInbound, StoreError};

/// What a prompt author says.
#[derive(Debug, Clone)]
pub enum Said {
    /// A text message.
    Text(String),
    /// A voice note: its bytes and MIME type.
    Audio(Vec<u8>, Option<String>),
}

/// The sandbox conversation of `session` with `agent`.
pub async fn conversation(
    pipeline: &Pipeline,
    agent: &Agent,
    session: &str,
) -> Result<Conversation, PipelineError> {
    let store = &pipeline.store;
    let route = agent.id.to_string();
    let channel = match store
        .channel_by_route(ProviderKind::Sandbox, &route)
        .await?
    {
        Some(c) => c,
        None => match store
            .create_channel(NewChannel {
                workspace_id: agent.workspace_id,
                name: format!("sandbox: {}", agent.name),
                provider: ProviderKind::Sandbox,
                route_key: route.clone(),
                agent_id: Some(agent.id),
                settings: ChannelConfig::default(),
                graph_version: None,
                sealed_credentials: Vec::new(),
                state: ChannelState::Connected,
            })
            .await
        {
            Ok(c) => c,
            // Created concurrently by another session.
            Err(StoreError::Conflict(_)) => store
                .channel_by_route(ProviderKind::Sandbox, &route)
                .await?
                .ok_or_else(|| StoreError::NotFound("sandbox channel".into()))?,
            Err(e) => return Err(e.into()),
        },
    };
    Ok(store
        .open_conversation(&channel, session, Some(session))
        .await?)
}

/// Sends `said` as customer `session` and returns what the agent did.
pub async fn say(
    pipeline: &Pipeline,
    agent: &Agent,
    session: &str,
    said: Said,
    overrides: &Overrides,
) -> Result<Outcome, PipelineError> {
    let conv = conversation(pipeline, agent, session).await?;
    let channel = pipeline
        .store
        .channel(conv.channel_id)
        .await?
        .ok_or_else(|| StoreError::NotFound("sandbox channel".into()))?;
    let (kind, text, details) = match said {
        Said::Text(text) => (MessageKind::Text, Some(text), MessageDetails::default()),
        Said::Audio(bytes, mime) => (
            MessageKind::Audio,
            None,
            MessageDetails {
                media: Some(MediaRef {
                    mime_type: mime,
                    voice: true,
                    inline_base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
    };
    let settings = &pipeline.settings;
    let recorded = pipeline
        .store
        .record_inbound(
            &channel,
            NewInbound {
                provider_message_id: format!("sandbox.{}", Uuid::now_v7()),
                from: session.to_string(),
                reply_to: None,
                user_id: None,
                contact_name: Some(session.to_string()),
                kind,
                text,
                details,
                sent_at: Utc::now(),
            },
            InboundPolicy {
                debounce: std::time::Duration::ZERO,
                max_delay: std::time::Duration::ZERO,
                idle_reset: std::time::Duration::from_secs(
                    settings.pipeline.idle_reset_hours * 3600,
                ),
                limits: settings.workers.limits(),
                schedule: false,
            },
        )
        .await?;
    let conversation = match recorded {
        RecordedInbound::New { conversation, .. } => *conversation,
        RecordedInbound::Duplicate => conv,
    };
    let turn = pipeline.store.unhandled_inbound(conversation.id).await?;
    pipeline.handle(&conversation, &turn, overrides).await
}

/// Starts the session's conversation afresh: a new context, and the bot answering again.
pub async fn reset(pipeline: &Pipeline, agent: &Agent, session: &str) -> Result<(), PipelineError> {
    let conv = conversation(pipeline, agent, session).await?;
    pipeline.store.reset_context(conv.id).await?;
    pipeline
        .store
        .close_escalation(
            conv.id,
            crate::domain::Resolution::HandedBack,
            "sandbox",
            None,
        )
        .await?;
    Ok(())
}
