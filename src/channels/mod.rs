//! Channels: the WhatsApp numbers Palaver answers on, each served by a provider from the
//! [`Registry`]. This module owns what the channel layer does with a provider, one concern a
//! file: [`credentials`] (sealed at rest, never returned), [`lifecycle`] (create, update, link
//! by QR code, log out, delete, through the provider's capabilities), [`versions`] (the Graph
//! API version each channel calls, and a warning once Meta retires it), [`intake`] (webhooks in:
//! verify over the raw bytes, parse, journal durably, then record exactly once) and [`delivery`] (the
//! outbox out: within each channel's shared send rate and the provider's service window, with
//! the provider-error → outcome decision as a pure function); [`templates`] and the
//! customer-service [`window`] say what a person may send.

mod capabilities;
pub mod credentials;
pub mod delivery;
pub mod intake;
pub mod lifecycle;
pub mod templates;
pub mod versions;
pub mod window;

use std::sync::Arc;

use crate::config::Settings;
use crate::crypto::Sealer;
use crate::domain::{Channel, FieldError, ProviderKind};
use crate::providers::{Provider, ProviderError, Registry, WebhookScope};
use crate::store::{Store, StoreError};

pub use capabilities::{MediaError, MediaSource, ReadReceipts};
pub use credentials::GivenCredentials;
pub use delivery::{Attempt, MAX_INTERACTIVE_CHARS, MAX_TEXT_CHARS};
pub use intake::{Accepted, Receipt};
pub use lifecycle::{ChannelInput, Linking};
pub use versions::VersionChoice;
pub use window::WindowState;

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
    Provider(ProviderError),
    /// Credentials could not be unsealed (the encryption key changed?).
    #[error("channel credentials cannot be decrypted with the configured key")]
    Sealed,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ProviderError> for ChannelError {
    /// An operation the provider does not offer is the channel's: callers above the channel
    /// layer need not know provider errors to tell it apart.
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Unsupported(m) => ChannelError::Unsupported(m),
            e => ChannelError::Provider(e),
        }
    }
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
