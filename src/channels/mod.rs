//! Channels: the WhatsApp numbers Palaver answers on, each served by a provider from the
//! [`Registry`]. This module owns what the channel layer does with a provider, one concern a
//! file: [`credentials`] (sealed at rest, never returned), [`lifecycle`] (create, update, link
//! by QR code, log out, delete, through the provider's capabilities), [`intake`] (webhooks in:
//! verify over the raw bytes, parse, journal durably, then record exactly once) and [`delivery`] (the
//! outbox out: within each channel's shared send rate and the provider's service window, with
//! the provider-error → outcome decision as a pure function).

pub mod credentials;
pub mod delivery;
pub mod intake;
pub mod lifecycle;
pub mod templates;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;

use crate::config::Settings;
use crate::crypto::Sealer;
use crate::domain::{Channel, Conversation, FieldError, MediaRef, ProviderKind};
use crate::pipeline::voice::{MediaError, MediaSource};
use crate::pipeline::ReadReceipts;
use crate::providers::{Provider, ProviderError, Registry, WebhookScope};
use crate::store::{Store, StoreError};

pub use delivery::{Attempt, MAX_INTERACTIVE_CHARS, MAX_TEXT_CHARS};
pub use intake::{Accepted, Receipt};
pub use lifecycle::ChannelInput;

/// A channel operation failure.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Bad webhook signature or token: nothing is stored.
    #[error("{0}")]
    Unauthorized(String),
    /// Malformed webhook or request.
    #[error("{0}")]
    BadRequest(String),
    /// Invalid fields (credentials, settings).
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    /// No such channel, or no such provider here.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what is stored (an idempotency key reused for another
    /// message).
    #[error("{0}")]
    Conflict(String),
    /// The operation does not apply to this channel's provider.
    #[error("{0}")]
    Unsupported(String),
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Credentials could not be unsealed (the encryption key changed?).
    #[error("channel credentials cannot be decrypted with the configured key")]
    Sealed,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Channels and their providers.
pub struct Channels {
    store: Arc<dyn Store>,
    sealer: Sealer,
    providers: Registry,
    settings: Arc<Settings>,
    templates: templates::TemplateCache,
    signers: intake::Signers,
    /// Woken when a delivery is journaled, for the journal's recorder.
    journaled: tokio::sync::Notify,
    /// Webhooks being journaled now: the recorder rests while many wait.
    journaling: std::sync::atomic::AtomicUsize,
}

impl Channels {
    /// Channels over `store`, served by `providers`, sealing credentials with `sealer`.
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Sealer,
        providers: Registry,
        settings: Arc<Settings>,
    ) -> Self {
        Self {
            store,
            sealer,
            providers,
            settings,
            templates: Default::default(),
            signers: Default::default(),
            journaled: Default::default(),
            journaling: Default::default(),
        }
    }

    /// The provider of `kind`, or `NotFound`.
    pub fn provider(&self, kind: ProviderKind) -> Result<&Arc<dyn Provider>, ChannelError> {
        self.providers
            .get(kind)
            .ok_or_else(|| ChannelError::NotFound(format!("no {} provider here", kind.as_str())))
    }

    /// The largest webhook body accepted from `kind` (its own limit, or the instance's).
    pub fn webhook_body_limit(&self, kind: ProviderKind) -> usize {
        let default = self.settings.server.max_webhook_bytes;
        self.providers
            .get(kind)
            .map_or(default, |p| p.webhook_body_limit(default))
    }

    /// The largest webhook body any provider may send: the limit of the webhook routes, each
    /// delivery then being held to its provider's.
    pub fn largest_webhook_body(&self) -> usize {
        let default = self.settings.server.max_webhook_bytes;
        self.providers
            .all()
            .map(|p| p.webhook_body_limit(default))
            .fold(default, usize::max)
    }

    /// The URL the provider must call for this channel, if it calls one.
    pub fn webhook_url(&self, channel: &Channel) -> Option<String> {
        let base = self.settings.server.public_url.trim_end_matches('/');
        let kind = channel.provider.as_str();
        match self.providers.get(channel.provider)?.webhooks()? {
            WebhookScope::Provider => Some(format!("{base}/webhooks/{kind}")),
            WebhookScope::Channel => Some(format!("{base}/webhooks/{kind}/{}", channel.id)),
        }
    }
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
