//! What a channel can do for the engine besides sending: fetch a voice note's bytes through its
//! provider ([`MediaSource`]) and tell the customer their message was read ([`ReadReceipts`]).
//! The traits live here, with the channels that offer them; the pipeline holds them as
//! `Arc<dyn Trait>` so its tests can give it doubles.

use async_trait::async_trait;
use base64::Engine;

use super::Channels;
use crate::domain::{Conversation, MediaRef};
use crate::providers::ProviderError;

/// Why a voice note's bytes could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MediaError {
    /// Worth trying again later (provider down, throttled, credentials being fixed).
    #[error("voice note unavailable for now: {0}")]
    Unavailable(String),
    /// It will never be available (expired, deleted, malformed reference).
    #[error("voice note gone: {0}")]
    Gone(String),
}

/// Where voice-note bytes come from.
#[async_trait]
pub trait MediaSource: Send + Sync {
    /// The bytes of `media`, sent in `conversation`.
    async fn fetch(
        &self,
        conversation: &Conversation,
        media: &MediaRef,
    ) -> Result<Vec<u8>, MediaError>;
}

/// Tells the customer their messages were read (and that a reply is being typed).
#[async_trait]
pub trait ReadReceipts: Send + Sync {
    /// Marks `provider_message_id` read with a typing indicator. Failures are the
    /// implementation's to log: they never hold up the reply.
    async fn mark_read(&self, conversation: &Conversation, provider_message_id: &str);
}

#[async_trait]
impl MediaSource for Channels {
    async fn fetch(
        &self,
        conversation: &Conversation,
        media: &MediaRef,
    ) -> Result<Vec<u8>, MediaError> {
        if let Some(inline) = &media.inline_base64 {
            return base64::engine::general_purpose::STANDARD
                .decode(inline.trim())
                .map_err(|e| MediaError::Gone(format!("inline media is not base64: {e}")));
        }
        let channel = self
            .store
            .channel(conversation.channel_id)
            .await
            .map_err(|e| MediaError::Unavailable(e.to_string()))?
            .ok_or_else(|| MediaError::Gone("the channel no longer exists".into()))?;
        let provider = self
            .provider(channel.provider)
            .map_err(|e| MediaError::Gone(e.to_string()))?;
        let ctx = self
            .context(&channel)
            .await
            .map_err(|e| MediaError::Unavailable(e.to_string()))?;
        provider
            .fetch_media(&ctx, media)
            .await
            .map(|m| m.bytes)
            .map_err(|e| match e {
                ProviderError::Transient { .. }
                | ProviderError::Unconfirmed(_)
                | ProviderError::Auth(_) => MediaError::Unavailable(e.to_string()),
                _ => MediaError::Gone(e.to_string()),
            })
    }
}

#[async_trait]
impl ReadReceipts for Channels {
    async fn mark_read(&self, conversation: &Conversation, provider_message_id: &str) {
        let Ok(Some(channel)) = self.store.channel(conversation.channel_id).await else {
            return;
        };
        let Ok(provider) = self.provider(channel.provider) else {
            return;
        };
        let Ok(ctx) = self.context(&channel).await else {
            return;
        };
        if let Err(e) = provider.mark_read(&ctx, provider_message_id, true).await {
            tracing::debug!(error = %e, "mark-read failed");
        }
    }
}
