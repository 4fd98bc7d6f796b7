//! WhatsApp providers: the [`Provider`] trait and its implementations — Meta's WhatsApp Cloud API
//! ([`meta`]), Evolution API for QR-linked numbers ([`evolution`]), Kapso ([`kapso`]).
//!
//! A provider checks a webhook's authenticity over the raw bytes, parses it into normalised
//! [`Event`]s, sends messages and fetches media. Vendor payload shapes never leave this module.

pub mod evolution;
pub mod kapso;
pub mod meta;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::domain::{ChannelState, DeliveryError, DeliveryStatus, MediaRef, MessageDetails, MessageKind, ProviderKind};

/// A provider failure, split by what the caller does about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The webhook's signature or token is missing or wrong (answer 401, store nothing).
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The webhook body is not a payload of this provider (answer 400).
    #[error("bad payload: {0}")]
    BadPayload(String),
    /// Worth retrying later: 5xx, 429, throttling codes, timeouts, connection errors.
    #[error("provider unavailable: {message}")]
    Transient {
        /// What happened.
        message: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Outside the 24-hour customer-service window: only a template may be sent (Meta 131047).
    #[error("outside the 24-hour window: {0}")]
    NeedsTemplate(String),
    /// The channel's credentials were refused: the channel needs attention.
    #[error("credentials refused: {0}")]
    Auth(String),
    /// Refused for good (bad number, bad request).
    #[error("refused: {0}")]
    Permanent(String),
    /// The provider cannot do this.
    #[error("not supported by this provider: {0}")]
    Unsupported(String),
}

impl ProviderError {
    /// A transient error without a retry hint.
    pub fn transient(message: impl Into<String>) -> Self {
        ProviderError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }
}

/// A channel's secrets, per provider. Sealed at rest; never serialised into API responses.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "provider", rename_all = "lowercase", deny_unknown_fields)]
pub enum Credentials {
    /// Meta WhatsApp Cloud API.
    Meta {
        /// Graph API access token (system user token).
        #[serde(serialize_with = "expose")]
        access_token: SecretString,
        /// App secret, the key of `X-Hub-Signature-256`.
        #[serde(serialize_with = "expose")]
        app_secret: SecretString,
        /// Token echoed in the webhook verification handshake.
        #[serde(serialize_with = "expose")]
        verify_token: SecretString,
    },
    /// Evolution API (a QR-linked number).
    Evolution {
        /// Evolution server base URL, e.g. `http://127.0.0.1:8081`.
        server_url: String,
        /// `apikey` header value (global key or the instance token).
        #[serde(serialize_with = "expose")]
        api_key: SecretString,
        /// Shared secret Evolution sends back in a header on every webhook.
        #[serde(serialize_with = "expose")]
        webhook_secret: SecretString,
    },
    /// Kapso.
    Kapso {
        /// `X-API-Key` for Kapso's API.
        #[serde(serialize_with = "expose")]
        api_key: SecretString,
        /// Key of `X-Webhook-Signature`.
        #[serde(serialize_with = "expose")]
        webhook_secret: SecretString,
    },
    /// The sandbox: nothing to keep secret.
    Sandbox,
}

fn expose<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    s.serialize_str(secret.expose_secret())
}

impl Credentials {
    /// The provider these credentials belong to.
    pub fn kind(&self) -> ProviderKind {
        match self {
            Credentials::Meta { .. } => ProviderKind::Meta,
            Credentials::Evolution { .. } => ProviderKind::Evolution,
            Credentials::Kapso { .. } => ProviderKind::Kapso,
            Credentials::Sandbox => ProviderKind::Sandbox,
        }
    }
}

/// What a provider needs to act for one channel.
#[derive(Debug, Clone)]
pub struct ChannelContext {
    /// Meta/Kapso `phone_number_id`, Evolution instance name.
    pub route_key: String,
    /// Decrypted secrets.
    pub credentials: Credentials,
}

/// Downloaded media.
#[derive(Debug, Clone)]
pub struct Media {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// MIME type, when known.
    pub mime_type: Option<String>,
}

/// A customer's message, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    /// The provider's id of the message (Meta wamid, Evolution key id); unique per channel.
    pub provider_message_id: String,
    /// The customer's WhatsApp id (digits for Meta/Kapso; the JID user part for Evolution).
    pub from: String,
    /// Where replies must go when it differs from `from` (Evolution LID addressing).
    pub reply_to: Option<String>,
    /// Profile name, when given.
    pub contact_name: Option<String>,
    /// When the customer sent it.
    pub timestamp: DateTime<Utc>,
    /// What kind of message it is.
    pub kind: MessageKind,
    /// Text, caption, or the title of the picked button.
    pub text: Option<String>,
    /// Everything else.
    pub details: MessageDetails,
}

/// A delivery status for one of our messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// The provider's id of our message.
    pub provider_message_id: String,
    /// New status.
    pub status: DeliveryStatus,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// Why it failed, for `Failed`.
    pub error: Option<DeliveryError>,
}

/// Something a webhook told us.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A customer wrote to us.
    Message {
        /// The channel's routing key (phone number id or instance name).
        route: String,
        /// The message.
        message: Inbound,
    },
    /// A message sent from the business's own phone or account, not by Palaver: a person has
    /// taken over the conversation (Evolution `fromMe` typed on the paired phone).
    OwnMessage {
        /// Routing key.
        route: String,
        /// The message (its `from` is the customer it was sent to).
        message: Inbound,
    },
    /// One of our messages changed status.
    Status {
        /// Routing key.
        route: String,
        /// The update.
        update: StatusUpdate,
    },
    /// The channel's connection changed (Evolution).
    Connection {
        /// Routing key.
        route: String,
        /// New state.
        state: ChannelState,
        /// Provider's reason, if any.
        detail: Option<String>,
    },
    /// A new QR code to pair the number (Evolution).
    QrCode {
        /// Routing key.
        route: String,
        /// `data:image/png;base64,...`, when given.
        image: Option<String>,
        /// The raw QR payload.
        code: Option<String>,
        /// Pairing code for linking by number.
        pairing_code: Option<String>,
    },
    /// Someone is calling the number (Evolution).
    Call {
        /// Routing key.
        route: String,
        /// Call id.
        call_id: String,
        /// Caller.
        from: String,
        /// `offer`, `ringing`, `terminate`...
        status: String,
    },
    /// Understood and deliberately not acted on (our own echoes, group messages, unknown events).
    Ignored {
        /// Routing key, when known.
        route: Option<String>,
        /// Why.
        reason: String,
    },
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    /// Recipient (WhatsApp id or number).
    pub to: String,
    /// Provider id of the customer message this answers (shown as a quote where supported).
    pub reply_to_message: Option<String>,
    /// What to send.
    pub body: OutboundBody,
}

/// Kinds of outbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundBody {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An approved template (the only thing allowed outside the 24-hour window on Meta).
    Template {
        /// Template name.
        name: String,
        /// Language code.
        language: String,
        /// Body parameters, in order.
        #[serde(default)]
        parameters: Vec<String>,
    },
    /// A reaction to a message.
    Reaction {
        /// Provider id of the message.
        message_id: String,
        /// The emoji; empty removes our reaction.
        emoji: String,
    },
    /// Media by link.
    Media {
        /// `image`, `audio`, `video`, `document`.
        kind: String,
        /// Public URL.
        link: String,
        /// Caption.
        caption: Option<String>,
        /// File name for documents.
        filename: Option<String>,
    },
    /// Up to three reply buttons.
    Buttons {
        /// Message text.
        text: String,
        /// `(id, title)` pairs.
        buttons: Vec<(String, String)>,
    },
    /// A list of choices.
    List {
        /// Message text.
        text: String,
        /// Label of the button that opens the list.
        button: String,
        /// `(id, title, description)` rows.
        rows: Vec<(String, String, Option<String>)>,
    },
}

impl OutboundBody {
    /// Plain text body.
    pub fn text(text: impl Into<String>) -> Self {
        OutboundBody::Text { text: text.into() }
    }
}

/// What the provider said when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its id for our message, used to match status webhooks.
    pub provider_message_id: String,
}

/// A WhatsApp provider.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Which provider this is.
    fn kind(&self) -> ProviderKind;

    /// Checks the webhook's signature or token over the raw bytes, before any parsing.
    fn verify(&self, credentials: &Credentials, headers: &HeaderMap, body: &[u8]) -> Result<(), ProviderError>;

    /// Parses a verified webhook body into events. Unknown message types become
    /// `MessageKind::Unsupported` messages; unknown event types become `Event::Ignored`.
    fn parse(&self, body: &[u8]) -> Result<Vec<Event>, ProviderError>;

    /// Sends a message.
    async fn send(&self, channel: &ChannelContext, message: &Outbound) -> Result<Sent, ProviderError>;

    /// Downloads a media attachment.
    async fn fetch_media(&self, channel: &ChannelContext, media: &MediaRef) -> Result<Media, ProviderError>;

    /// Marks a customer message read and shows a typing indicator while we prepare the reply.
    async fn mark_read(&self, channel: &ChannelContext, provider_message_id: &str, typing: bool) -> Result<(), ProviderError> {
        let _ = (channel, provider_message_id, typing);
        Ok(())
    }
}
