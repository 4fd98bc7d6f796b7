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

/// Sends a request and reads the whole response; transport failures become [`ProviderError`]s.
pub(crate) async fn execute(request: reqwest::RequestBuilder) -> Result<Reply, ProviderError> {
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(transport_error)?.to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Maps a failure that produced no HTTP response. The URL is dropped from the message: media
/// URLs carry signed query strings.
pub(crate) fn transport_error(error: reqwest::Error) -> ProviderError {
    let error = error.without_url();
    if error.is_builder() {
        ProviderError::Permanent(format!("could not build the request: {error}"))
    } else if error.is_timeout() {
        ProviderError::transient(format!("timed out: {error}"))
    } else if error.is_connect() {
        ProviderError::transient(format!("connection failed: {error}"))
    } else {
        ProviderError::transient(error.to_string())
    }
}

/// The provider's `Retry-After`, in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - Utc::now()).to_std().unwrap_or_default())
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

    use super::{ChannelContext, Credentials, Event, Inbound};
    use crate::domain::{MessageDetails, MessageKind};

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
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
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
        }
    }

    /// A customer message event.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn message(
        route: &str,
        id: &str,
        from: &str,
        name: Option<&str>,
        seconds: i64,
        kind: MessageKind,
        text: Option<&str>,
        details: MessageDetails,
    ) -> Event {
        Event::Message {
            route: route.into(),
            message: Inbound {
                provider_message_id: id.into(),
                from: from.into(),
                reply_to: None,
                contact_name: name.map(Into::into),
                timestamp: at(seconds),
                kind,
                text: text.map(Into::into),
                details,
            },
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
