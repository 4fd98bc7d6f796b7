//! WhatsApp providers: the [`Provider`] trait and its implementations — Meta's WhatsApp Cloud API
//! ([`meta`]), Evolution API for QR-linked numbers ([`evolution`]), Kapso ([`kapso`]).
//!
//! A provider checks a webhook's authenticity over the raw bytes, parses it into normalised
//! [`Event`]s, sends messages and fetches media, and validates its own credentials. Powers only
//! some providers have are capabilities a caller discovers at run time: [`Pairing`] (an
//! instance linked by QR code: Evolution), [`ServiceWindow`] (the 24-hour customer-service
//! rule: Meta, Kapso), [`Subscription`] (a webhook handshake: Meta), [`Templates`] (message
//! templates: Meta, Kapso), [`GraphVersions`] (an API version chosen per channel: Meta). The
//! [`Registry`] holds one provider per kind; adding a vendor is one directory and one registry
//! line. Vendor payload shapes never leave this module.

mod credentials;
pub mod evolution;
pub mod kapso;
pub mod meta;
#[cfg(test)]
mod properties;
#[cfg(any(test, feature = "test-utils"))]
pub mod recording;
pub mod registry;
pub mod sandbox;
pub mod templates;

pub use credentials::{non_empty, Credentials, Field, Missing};
pub use registry::Registry;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use http::HeaderMap;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::domain::{
    ChannelState, DeliveryError, DeliveryStatus, MediaRef, MessageDetails, MessageKind,
    ProviderKind,
};

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
    /// The request may have reached the provider, but no answer came back (a timeout after the
    /// request was written): sending again may deliver the message twice, unless the provider
    /// deduplicates by idempotency key or the message turns out to be sent.
    #[error("no answer from the provider: {0}")]
    Unconfirmed(String),
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

impl From<crate::net::UrlError> for ProviderError {
    fn from(e: crate::net::UrlError) -> Self {
        ProviderError::Permanent(format!("refused URL: {e}"))
    }
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

/// What a provider needs to act for one channel.
#[derive(Debug, Clone)]
pub struct ChannelContext {
    /// Meta/Kapso `phone_number_id`, Evolution instance name.
    pub route_key: String,
    /// Decrypted secrets.
    pub credentials: Credentials,
    /// The API version the channel chose (Meta's Graph API), if it chose one.
    pub graph_version: Option<String>,
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
    /// Meta's business-scoped user id (`US.1349…`), when given: a customer with a WhatsApp
    /// username may come with it and no phone number (then `from` is this id too).
    #[serde(default)]
    pub user_id: Option<String>,
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
    /// The reference we gave when sending ([`Outbound::idempotency_key`]), when the provider
    /// echoes it (Meta's `biz_opaque_callback_data`): it names our message even when the send's
    /// answer, with the provider's id, never reached us.
    pub reference: Option<String>,
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
    /// Its sender edited or deleted a message already delivered (the customer, or the business
    /// on its own phone).
    Changed {
        /// Routing key.
        route: String,
        /// The provider's id of the message that changed.
        original_id: String,
        /// What changed.
        change: crate::domain::MessageChange,
        /// When.
        timestamp: DateTime<Utc>,
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
    /// Our id for this message: providers that deduplicate sends by a key (Kapso's
    /// `X-Idempotency-Key`) or echo a reference back in status webhooks (Meta's
    /// `biz_opaque_callback_data`) are given it, so a retried send is recognised.
    #[serde(default)]
    pub idempotency_key: Option<String>,
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
        /// Values by placeholder (`body.1`, `header.image`, `button.0`; see [`templates`]).
        #[serde(default)]
        parameters: std::collections::BTreeMap<String, String>,
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
        /// `image`, `audio`, `video`, `document`, `sticker`, or `voice` (an OGG/Opus voice note,
        /// shown with a play button where the provider supports it).
        kind: String,
        /// Public URL.
        link: String,
        /// Caption.
        caption: Option<String>,
        /// File name for documents.
        filename: Option<String>,
    },
    /// A file a person sent from the inbox, as [`Provider::upload_media`] made it sendable.
    Upload {
        /// `image`, `audio`, `video` or `document`.
        kind: String,
        /// The provider's media id, or the bytes.
        media: Uploaded,
        /// Caption (images, videos and documents).
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

/// A file ready to be sent by a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Uploaded {
    /// Uploaded to the provider's media API (Meta, Kapso): sent by this id.
    Id(String),
    /// Sent with the message itself (Evolution), base64-encoded.
    Inline {
        /// The bytes, base64.
        base64: String,
        /// MIME type.
        mime_type: String,
    },
}

/// A file to upload.
#[derive(Debug, Clone, Copy)]
pub struct FileToSend<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// MIME type.
    pub mime_type: &'a str,
    /// File name.
    pub filename: &'a str,
}

/// What the provider said when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its id for our message, used to match status webhooks.
    pub provider_message_id: String,
}

/// How a provider's webhooks reach Palaver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookScope {
    /// One URL for every channel of the provider (`/webhooks/{provider}`): deliveries are
    /// checked against each channel's secret and routed by the number they name (Meta: one URL
    /// per app).
    Provider,
    /// One URL per channel (`/webhooks/{provider}/{channel}`).
    Channel,
}

/// A WhatsApp provider.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Which provider this is.
    fn kind(&self) -> ProviderKind;

    /// Checks credentials given for a new channel (`previous` is `None`) or for an update of
    /// a stored channel, and returns what to store. Fields an update leaves out keep their
    /// stored value; a secret is never accepted empty.
    fn accept_credentials(
        &self,
        given: Credentials,
        previous: Option<&Credentials>,
    ) -> Result<Credentials, Vec<crate::domain::FieldError>>;

    /// How webhooks arrive; `None` when the provider receives none (the sandbox).
    fn webhooks(&self) -> Option<WebhookScope>;

    /// Checks the webhook's signature or token over the raw bytes, before any parsing.
    fn verify(
        &self,
        credentials: &Credentials,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), ProviderError>;

    /// Parses a verified webhook body into events. Unknown message types become
    /// `MessageKind::Unsupported` messages; unknown event types become `Event::Ignored`.
    fn parse(&self, body: &[u8]) -> Result<Vec<Event>, ProviderError>;

    /// Sends a message.
    async fn send(
        &self,
        channel: &ChannelContext,
        message: &Outbound,
    ) -> Result<Sent, ProviderError>;

    /// Whether sending twice with the same [`Outbound::idempotency_key`] delivers once, so an
    /// unconfirmed send may simply be repeated.
    fn deduplicates_sends(&self) -> bool {
        false
    }

    /// Whether sends count against the channel's send rate (real numbers can be banned for
    /// flooding; the sandbox cannot).
    fn rate_limited(&self) -> bool {
        true
    }

    /// Makes a file sendable with [`OutboundBody::Upload`]: uploaded to the provider's media
    /// API (Meta, Kapso), or by default kept to travel with the message (base64).
    async fn upload_media(
        &self,
        channel: &ChannelContext,
        file: FileToSend<'_>,
    ) -> Result<Uploaded, ProviderError> {
        use base64::Engine as _;
        let _ = channel;
        Ok(Uploaded::Inline {
            base64: base64::engine::general_purpose::STANDARD.encode(file.bytes),
            mime_type: file.mime_type.to_string(),
        })
    }

    /// Downloads a media attachment.
    async fn fetch_media(
        &self,
        channel: &ChannelContext,
        media: &MediaRef,
    ) -> Result<Media, ProviderError>;

    /// Marks a customer message read and shows a typing indicator while we prepare the reply.
    async fn mark_read(
        &self,
        channel: &ChannelContext,
        provider_message_id: &str,
        typing: bool,
    ) -> Result<(), ProviderError> {
        let _ = (channel, provider_message_id, typing);
        Ok(())
    }

    /// The largest webhook body this provider may send, given the instance's limit
    /// (`server.max_webhook_bytes`).
    fn webhook_body_limit(&self, default: usize) -> usize {
        default
    }

    /// The URLs in a channel's credentials that Palaver will call, by credential field (an
    /// Evolution server): each must pass the instance's URL guard when it is saved.
    fn urls(&self, credentials: &Credentials) -> Vec<(&'static str, String)> {
        let _ = credentials;
        Vec::new()
    }

    /// Instance lifecycle and QR linking, for providers that have them.
    fn pairing(&self) -> Option<&dyn Pairing> {
        None
    }

    /// The customer-service window rule, for providers that enforce one.
    fn service_window(&self) -> Option<&dyn ServiceWindow> {
        None
    }

    /// Listing the channel's message templates, where the provider has them.
    fn templates(&self) -> Option<&dyn Templates> {
        None
    }

    /// The webhook subscription handshake, for providers that make one.
    fn subscription(&self) -> Option<&dyn Subscription> {
        None
    }

    /// The API versions a channel chooses among, for providers whose API has them (Meta's
    /// Graph API).
    fn graph_versions(&self) -> Option<&dyn GraphVersions> {
        None
    }
}

/// Meta's Graph API is published in versions, and Meta moves numbers between them separately:
/// each channel calls the version it chose, or the provider's default.
pub trait GraphVersions: Send + Sync {
    /// The version of channels that chose none.
    fn default_version(&self) -> &str;

    /// The versions a channel may choose on `today`, oldest first.
    fn choosable(&self, today: NaiveDate) -> Vec<&'static str>;

    /// `given` as a channel stores it, or why a channel cannot choose it on `today`.
    fn accept_version(&self, given: &str, today: NaiveDate) -> Result<String, String>;

    /// What the owner of a channel calling `version` should hear on `today` (that it is
    /// retired, or soon will be), if anything.
    fn version_warning(&self, version: &str, today: NaiveDate) -> Option<String>;
}

/// Message templates registered with the provider (Meta's WhatsApp Business Account).
#[async_trait]
pub trait Templates: Send + Sync {
    /// Every template of the channel's account, whatever its status.
    async fn list_templates(
        &self,
        channel: &ChannelContext,
    ) -> Result<Vec<templates::Template>, ProviderError>;
}

/// A QR code (or pairing code) to link the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingQr {
    /// `data:image/png;base64,...`.
    pub image: Option<String>,
    /// The raw QR payload.
    pub code: Option<String>,
    /// Code to type on the phone when linking by number.
    pub pairing_code: Option<String>,
}

/// What asking an instance to connect gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// Scan this (or type the pairing code) on the phone.
    Qr(PairingQr),
    /// The number is already linked.
    AlreadyOpen,
    /// Connecting, but no QR code yet; it will arrive in a webhook.
    Pending,
}

/// A number linked as a device (QR code or pairing code), through an instance the provider's
/// server runs for it.
#[async_trait]
pub trait Pairing: Send + Sync {
    /// Creates the instance named `route_key` with its webhook and settings; returns the
    /// credentials to keep from now on (an instance token replaces a global key).
    async fn create_instance(
        &self,
        route_key: &str,
        credentials: &Credentials,
        webhook_url: &str,
        settings: &crate::domain::ChannelConfig,
    ) -> Result<Credentials, ProviderError>;

    /// Points the instance's webhook at `webhook_url` and applies the channel's settings.
    async fn configure(
        &self,
        channel: &ChannelContext,
        webhook_url: &str,
        settings: &crate::domain::ChannelConfig,
    ) -> Result<(), ProviderError>;

    /// Starts linking: a QR code, or a pairing code for `pairing_number`.
    async fn connect(
        &self,
        channel: &ChannelContext,
        pairing_number: Option<&str>,
    ) -> Result<ConnectOutcome, ProviderError>;

    /// The connection state as the provider sees it now.
    async fn connection_state(
        &self,
        channel: &ChannelContext,
    ) -> Result<ChannelState, ProviderError>;

    /// Unlinks the phone; the instance stays.
    async fn logout(&self, channel: &ChannelContext) -> Result<(), ProviderError>;

    /// Deletes the instance.
    async fn delete(&self, channel: &ChannelContext) -> Result<(), ProviderError>;
}

/// The customer-service window: outside it, only approved templates may be sent.
pub trait ServiceWindow: Send + Sync {
    /// How long after the customer's last message free-form messages may be sent.
    fn length(&self) -> Duration {
        Duration::from_secs(24 * 3600)
    }

    /// The error a message that could not be sent because the window closed is marked with.
    fn closed_error(&self) -> DeliveryError {
        DeliveryError {
            code: None,
            title: "outside the 24-hour customer-service window".into(),
            detail: None,
        }
    }
}

/// A webhook subscription handshake: the provider calls the webhook URL with a challenge that
/// must be echoed when its token is one of ours.
pub trait Subscription: Send + Sync {
    /// The text to answer with when `query` carries a valid challenge for `credentials`.
    fn answer(
        &self,
        query: &std::collections::HashMap<String, String>,
        credentials: &Credentials,
    ) -> Option<String>;
}

/// An HTTP response read to the end, so error mapping can look at status, headers and body.
pub(crate) struct Reply {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as JSON, or `Permanent`: a success we cannot read must not be retried, because
    /// retrying a send that went through would deliver the message twice.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
    ) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ProviderError::Permanent(format!("unreadable {what} response: {e}")))
    }
}

/// The most of a provider's API answer Palaver reads: answers are small JSON envelopes, and a
/// misbehaving server must not make a worker hold an unbounded body in memory.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The most of one media download Palaver reads (WhatsApp's own largest media, documents, is
/// 100 MB).
pub const MAX_MEDIA_BYTES: usize = 100 * 1024 * 1024;

/// Sends a request and reads the response, up to [`MAX_RESPONSE_BYTES`]; transport failures
/// become [`ProviderError`]s.
pub(crate) async fn execute(request: reqwest::RequestBuilder) -> Result<Reply, ProviderError> {
    execute_limited(request, MAX_RESPONSE_BYTES).await
}

/// Sends a request and reads at most `limit` bytes of the response: a longer body is refused
/// (`Permanent`), without reading the rest.
pub(crate) async fn execute_limited(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Reply, ProviderError> {
    let mut response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let too_large = || {
        ProviderError::Permanent(format!(
            "the provider's answer is larger than {limit} bytes"
        ))
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(read_error)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Maps a failure while reading an answer: the request reached the provider, so whatever it
/// asked for may have happened.
fn read_error(error: reqwest::Error) -> ProviderError {
    ProviderError::Unconfirmed(format!("the answer was cut off: {}", error.without_url()))
}

/// Maps a failure that produced no HTTP response. The URL is dropped from the message: media
/// URLs carry signed query strings. A timeout may come after the request was written, so the
/// provider may have acted on it: that is [`ProviderError::Unconfirmed`]; a failure to connect
/// is not.
pub(crate) fn transport_error(error: reqwest::Error) -> ProviderError {
    let error = error.without_url();
    if error.is_builder() {
        ProviderError::Permanent(format!("could not build the request: {error}"))
    } else if error.is_connect() {
        ProviderError::transient(format!("connection failed: {error}"))
    } else if error.is_timeout() || error.is_request() || error.is_body() {
        ProviderError::Unconfirmed(with_causes(&error))
    } else {
        ProviderError::transient(with_causes(&error))
    }
}

/// An error and its causes, `outer: inner: innermost` ("error sending request: operation timed
/// out").
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The longest wait a provider's `Retry-After` is taken at its word for; longer asks are cut to
/// this (a huge value must not overflow a date or park a reply for days).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// The provider's `Retry-After`, in seconds or as an HTTP date, capped at [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else if value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds.
        MAX_RETRY_AFTER
    } else {
        let at = DateTime::parse_from_rfc2822(value)
            .ok()?
            .with_timezone(&Utc);
        at.signed_duration_since(Utc::now())
            .to_std()
            .unwrap_or_default()
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Maps an HTTP failure by status alone, for providers without a richer error envelope.
pub(crate) fn status_error(
    status: http::StatusCode,
    headers: &HeaderMap,
    message: String,
) -> ProviderError {
    match status.as_u16() {
        401 | 403 => ProviderError::Auth(message),
        408 | 425 | 429 | 500..=599 => ProviderError::Transient {
            message,
            retry_after: retry_after(headers),
        },
        _ => ProviderError::Permanent(message),
    }
}

/// A header value holding a secret: marked sensitive so it never shows in debug output.
pub(crate) fn secret_header(secret: &SecretString) -> Result<http::HeaderValue, ProviderError> {
    use secrecy::ExposeSecret;
    let mut value = http::HeaderValue::from_str(secret.expose_secret())
        .map_err(|_| ProviderError::Auth("the credential is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// `base` with `segments` appended as percent-encoded path segments, so ids and instance names
/// cannot change the path.
pub(crate) fn endpoint(base: &str, segments: &[&str]) -> Result<reqwest::Url, ProviderError> {
    let mut url = reqwest::Url::parse(base)
        .map_err(|e| ProviderError::Permanent(format!("bad base URL: {e}")))?;
    url.path_segments_mut()
        .map_err(|_| ProviderError::Permanent("bad base URL: it cannot have a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Checks a hex HMAC-SHA256 of `body` in constant time.
pub(crate) fn verify_hmac_sha256(
    key: &[u8],
    body: &[u8],
    hex_signature: &str,
) -> Result<(), ProviderError> {
    use hmac::{Hmac, Mac};
    let signature = hex::decode(hex_signature.trim())
        .map_err(|_| ProviderError::BadSignature("signature is not hex".into()))?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key)
        .map_err(|_| ProviderError::BadSignature("unusable signing key".into()))?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| ProviderError::BadSignature("signature does not match".into()))
}

/// Compares a presented token with the expected secret in constant time.
pub(crate) fn token_matches(presented: &str, expected: &SecretString) -> bool {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    presented
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into()
}

/// Seconds since the epoch, given as a number or a numeric string.
pub(crate) fn unix_seconds(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    let seconds = match value {
        serde_json::Value::Number(n) => n.as_i64()?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    DateTime::from_timestamp(seconds, 0)
}

/// A provider timestamp, or the time of receipt when the provider's is missing or unreadable
/// (one odd field must not lose the message).
pub(crate) fn timestamp_or_now(value: Option<&serde_json::Value>) -> DateTime<Utc> {
    match value.and_then(unix_seconds) {
        Some(at) => at,
        None => {
            tracing::debug!("provider timestamp missing or unreadable; using the time of receipt");
            Utc::now()
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Fixture loading and event builders shared by the provider tests.

    use std::path::PathBuf;

    use chrono::{DateTime, Utc};

    use super::{ChannelContext, Credentials, Event};

    /// Parses each fixture of `dir` named by `names` with `provider` (through `wrap`, for
    /// fragments) and checks the events against the snapshot beside it
    /// (`tests/fixtures/<dir>/snapshots/`). A new fixture gets its snapshot with
    /// `INSTA_UPDATE=always cargo test`, to be read and committed; CI fails on a fixture without
    /// one.
    pub(crate) fn check_webhook_snapshots<'a>(
        provider: &dyn super::Provider,
        dir: &str,
        names: impl IntoIterator<Item = &'a str>,
        wrap: impl Fn(&str, Vec<u8>) -> Vec<u8>,
    ) {
        let mut checked = 0;
        for name in names {
            let events = provider
                .parse(&wrap(name, fixture(dir, name)))
                .unwrap_or_else(|e| panic!("{dir}/{name}: {e}"));
            insta::with_settings!({
                snapshot_path => format!("../../tests/fixtures/{dir}/snapshots"),
                prepend_module_to_snapshot => false,
                omit_expression => true,
                info => &format!("{dir}/{name}"),
            }, {
                insta::assert_yaml_snapshot!(name.trim_end_matches(".json"), events);
            });
            checked += 1;
        }
        assert!(checked > 0, "no webhook fixtures for {dir}");
    }

    fn dir(provider: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(provider)
    }

    /// The exact bytes of `tests/fixtures/<provider>/<name>`.
    pub(crate) fn fixture(provider: &str, name: &str) -> Vec<u8> {
        let path = dir(provider).join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A fixture as JSON.
    pub(crate) fn fixture_json(provider: &str, name: &str) -> serde_json::Value {
        serde_json::from_slice(&fixture(provider, name)).expect("fixture is JSON")
    }

    /// Names of every fixture file of `provider`.
    pub(crate) fn fixture_names(provider: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir(provider))
            .expect("fixture directory")
            .map(|e| e.expect("entry"))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Seconds since the epoch.
    pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("valid timestamp")
    }

    /// A channel on `route` with `credentials`.
    pub(crate) fn channel(route: &str, credentials: Credentials) -> ChannelContext {
        ChannelContext {
            route_key: route.into(),
            credentials,
            graph_version: None,
        }
    }

    /// An ignored event.
    pub(crate) fn ignored(route: Option<&str>, reason: &str) -> Event {
        Event::Ignored {
            route: route.map(Into::into),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_are_read_up_to_a_limit_and_no_further() {
        use wiremock::matchers::path;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(path("/small"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 1000]))
            .mount(&server)
            .await;
        Mock::given(path("/huge"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 3 * 1024 * 1024]))
            .mount(&server)
            .await;
        let client = reqwest::Client::new();
        let small = execute(client.get(format!("{}/small", server.uri())))
            .await
            .unwrap();
        assert_eq!(small.body.len(), 1000);
        let Err(huge) = execute(client.get(format!("{}/huge", server.uri()))).await else {
            panic!("a 3 MiB answer was read whole");
        };
        assert!(
            matches!(&huge, ProviderError::Permanent(m) if m.contains("larger than")),
            "{huge:?}"
        );
        // Media have their own, larger limit.
        let media = execute_limited(
            client.get(format!("{}/huge", server.uri())),
            MAX_MEDIA_BYTES,
        )
        .await
        .unwrap();
        assert_eq!(media.body.len(), 3 * 1024 * 1024);
    }

    #[test]
    fn hmac_matches_the_published_sanity_vector() {
        let good = "0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914";
        assert!(verify_hmac_sha256(b"secret", b"test", good).is_ok());
        assert!(verify_hmac_sha256(b"secret", b"test", &good.to_uppercase()).is_ok());
        let cases = [
            (&b"secret"[..], &b"test!"[..], good),
            (b"Secret", b"test", good),
            (b"secret", b"test", &good[..62]),
            (b"secret", b"test", "not hex"),
            (b"secret", b"test", ""),
        ];
        for (key, body, signature) in cases {
            assert!(
                matches!(
                    verify_hmac_sha256(key, body, signature),
                    Err(ProviderError::BadSignature(_))
                ),
                "{signature}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = (Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        headers.insert(http::header::RETRY_AFTER, later.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        headers.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
        // Huge asks are capped, never overflowing a date.
        for huge in [
            "18446744073709551615",
            "99999999999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            headers.insert(http::header::RETRY_AFTER, huge.parse().unwrap());
            assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER), "{huge}");
        }
    }

    #[test]
    fn status_errors_split_by_what_the_caller_does() {
        let headers = HeaderMap::new();
        let cases = [
            (401, "auth"),
            (403, "auth"),
            (400, "permanent"),
            (404, "permanent"),
            (408, "transient"),
            (429, "transient"),
            (500, "transient"),
            (503, "transient"),
        ];
        for (status, expected) in cases {
            let error = status_error(
                http::StatusCode::from_u16(status).unwrap(),
                &headers,
                "x".into(),
            );
            let got = match error {
                ProviderError::Auth(_) => "auth",
                ProviderError::Permanent(_) => "permanent",
                ProviderError::Transient { .. } => "transient",
                _ => "other",
            };
            assert_eq!(got, expected, "HTTP {status}");
        }
    }

    #[test]
    fn endpoint_encodes_segments() {
        let url = endpoint("http://h:1/v23.0/", &["a b", "../x", "messages"]).unwrap();
        assert_eq!(url.as_str(), "http://h:1/v23.0/a%20b/..%2Fx/messages");
        assert!(endpoint("not a url", &["x"]).is_err());
    }

    #[test]
    fn secret_headers_are_sensitive_and_never_printed() {
        let value = secret_header(&SecretString::from("s3cr3t-token")).unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("s3cr3t"));
        assert!(matches!(
            secret_header(&SecretString::from("bad\nvalue")),
            Err(ProviderError::Auth(_))
        ));
    }
}
