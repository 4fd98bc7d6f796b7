//! Kapso, a hosted layer over Meta's Cloud API: `X-Webhook-Signature` checks, parsing of Kapso's
//! v2 webhook events (single or batched) and of raw Meta payloads Kapso forwards, and sending,
//! marking read and media download through Kapso's Meta-compatible proxy. Message objects are
//! Cloud API-shaped, so parsing, request bodies and error mapping are Meta's, plus Kapso's extras
//! (server-side voice transcripts, media URLs) and its per-conversation send lock (409).

use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::meta::{self, MediaInfo, WaMessage, WaStatus};
use super::{
    endpoint, execute, retry_after, secret_header, verify_hmac_sha256, ChannelContext, Credentials, Event, Media,
    Outbound, Provider, ProviderError, Reply, Sent,
};
use crate::domain::{MediaRef, ProviderKind};

/// Kapso API base URL used unless settings say otherwise.
pub const DEFAULT_KAPSO_BASE_URL: &str = "https://api.kapso.ai";

/// Path of Kapso's Meta-compatible proxy under the base URL.
const PROXY: [&str; 3] = ["meta", "whatsapp", "v24.0"];

/// How long to wait after Kapso's 409 when it does not say: its lock lasts one send.
const IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

const API_KEY_HEADER: &str = "x-api-key";

/// Kapso, for numbers connected through it.
#[derive(Debug, Clone)]
pub struct KapsoProvider {
    client: reqwest::Client,
    base_url: String,
}

impl KapsoProvider {
    /// A provider calling `kapso_base_url` (e.g. [`DEFAULT_KAPSO_BASE_URL`]) with `client`, whose
    /// timeouts the caller sets.
    pub fn new(client: reqwest::Client, kapso_base_url: impl Into<String>) -> Self {
        let base_url = kapso_base_url.into().trim_end_matches('/').to_owned();
        Self { client, base_url }
    }

    fn api_key(credentials: &Credentials) -> Result<&SecretString, ProviderError> {
        match credentials {
            Credentials::Kapso { api_key, .. } => Ok(api_key),
            other => Err(ProviderError::Auth(format!(
                "the channel has {} credentials, not Kapso's",
                other.kind().as_str()
            ))),
        }
    }

    fn proxy_url(&self, segments: &[&str]) -> Result<reqwest::Url, ProviderError> {
        let all: Vec<&str> = PROXY.iter().chain(segments).copied().collect();
        endpoint(&self.base_url, &all)
    }

    async fn post_messages(&self, channel: &ChannelContext, body: &Value) -> Result<Reply, ProviderError> {
        let key = secret_header(Self::api_key(&channel.credentials)?)?;
        let url = self.proxy_url(&[&channel.route_key, "messages"])?;
        let reply = execute(self.client.post(url).header(API_KEY_HEADER, key).json(body)).await?;
        if !reply.status.is_success() {
            return Err(kapso_error(&reply));
        }
        Ok(reply)
    }

    /// Whether `url` is served by Kapso itself: only then does it get our API key.
    fn is_kapso_host(&self, url: &reqwest::Url) -> bool {
        reqwest::Url::parse(&self.base_url)
            .map(|base| base.origin() == url.origin())
            .unwrap_or(false)
    }
}

#[async_trait]
impl Provider for KapsoProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Kapso
    }

    fn verify(&self, credentials: &Credentials, headers: &HeaderMap, body: &[u8]) -> Result<(), ProviderError> {
        let Credentials::Kapso { webhook_secret, .. } = credentials else {
            return Err(ProviderError::BadSignature("the channel does not have Kapso credentials".into()));
        };
        let signature = headers
            .get("x-webhook-signature")
            .ok_or_else(|| ProviderError::BadSignature("missing X-Webhook-Signature".into()))?
            .to_str()
            .map_err(|_| ProviderError::BadSignature("X-Webhook-Signature is not text".into()))?;
        verify_hmac_sha256(webhook_secret.expose_secret().as_bytes(), body, signature)
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<Event>, ProviderError> {
        parse_body(body)
    }

    async fn send(&self, channel: &ChannelContext, message: &Outbound) -> Result<Sent, ProviderError> {
        let body = meta::message_body(message)?;
        let reply = self.post_messages(channel, &body).await?;
        meta::sent_from(&reply)
    }

    async fn fetch_media(&self, channel: &ChannelContext, media: &MediaRef) -> Result<Media, ProviderError> {
        let key = secret_header(Self::api_key(&channel.credentials)?)?;
        let (url, mime_type) = match (&media.id, &media.url) {
            (Some(id), _) => {
                let url = self.proxy_url(&[id])?;
                let request = self
                    .client
                    .get(url)
                    .query(&[("phone_number_id", channel.route_key.as_str())])
                    .header(API_KEY_HEADER, key.clone());
                let reply = execute(request).await?;
                if !reply.status.is_success() {
                    return Err(kapso_error(&reply));
                }
                let info: MediaInfo = reply.json("media URL")?;
                (info.download_url.unwrap_or(info.url), info.mime_type)
            }
            (None, Some(url)) => (url.clone(), None),
            (None, None) => return Err(ProviderError::Permanent("the media has neither an id nor a URL".into())),
        };
        let url = reqwest::Url::parse(&url).map_err(|e| ProviderError::Permanent(format!("bad media URL: {e}")))?;
        let mut request = self.client.get(url.clone());
        if self.is_kapso_host(&url) {
            request = request.header(API_KEY_HEADER, key);
        }
        let reply = execute(request).await?;
        if !reply.status.is_success() {
            return Err(kapso_error(&reply));
        }
        Ok(meta::media_from(reply, mime_type.or_else(|| media.mime_type.clone())))
    }

    async fn mark_read(
        &self,
        channel: &ChannelContext,
        provider_message_id: &str,
        typing: bool,
    ) -> Result<(), ProviderError> {
        self.post_messages(channel, &meta::read_body(provider_message_id, typing)).await?;
        Ok(())
    }
}

/// Kapso answers 409 while another message of the same conversation is being sent; anything
/// else is Graph's error envelope.
fn kapso_error(reply: &Reply) -> ProviderError {
    if reply.status == StatusCode::CONFLICT {
        return ProviderError::Transient {
            message: "HTTP 409: another message is in flight for this conversation".into(),
            retry_after: retry_after(&reply.headers).or(Some(IN_FLIGHT_RETRY)),
        };
    }
    meta::graph_error(reply.status, &reply.headers, &reply.body)
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// Parses a Kapso delivery: one v2 event, a batch (`{"batch": true, "data": [...]}` or a bare
/// array), or a raw Meta payload forwarded by Kapso.
fn parse_body(body: &[u8]) -> Result<Vec<Event>, ProviderError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ProviderError::BadPayload(format!("not JSON: {e}")))?;
    match &value {
        Value::Array(items) => items.iter().map(|item| parse_item(item, None)).collect(),
        Value::Object(object) => {
            if object.contains_key("object") {
                return meta::parse_notification(body);
            }
            let batch = object.get("batch").and_then(Value::as_bool) == Some(true);
            match object.get("data").and_then(Value::as_array) {
                Some(items) if batch || object.get("type").is_some_and(Value::is_string) => {
                    let hint = object.get("type").and_then(Value::as_str);
                    items.iter().map(|item| parse_item(item, hint)).collect()
                }
                _ => Ok(vec![parse_item(&value, None)?]),
            }
        }
        _ => Err(ProviderError::BadPayload("a Kapso webhook is a JSON object or array".into())),
    }
}

/// The event a v2 payload carries. Kapso names it only in the `X-Webhook-Event` header (and in a
/// batch's `type`), so single payloads are recognised by their shape.
fn event_name(item: &Value, hint: Option<&str>) -> Option<String> {
    if let Some(event) = item.get("event").and_then(Value::as_str) {
        return Some(event.to_owned());
    }
    if let Some(hint) = hint {
        return Some(hint.to_owned());
    }
    if let Some(message) = item.get("message") {
        let kapso = message.get("kapso");
        let direction = kapso.and_then(|k| k.get("direction")).and_then(Value::as_str);
        let status = kapso.and_then(|k| k.get("status")).and_then(Value::as_str);
        return match (direction, status) {
            (Some("inbound"), _) => Some("whatsapp.message.received".into()),
            (Some("outbound"), Some(status)) => Some(format!("whatsapp.message.{status}")),
            _ => None,
        };
    }
    if let Some(conversation) = item.get("conversation") {
        let name = if item.get("inactivity").is_some() {
            "inactive"
        } else if conversation.get("status").and_then(Value::as_str) == Some("ended") {
            "ended"
        } else {
            "created"
        };
        return Some(format!("whatsapp.conversation.{name}"));
    }
    if item.get("project").is_some() && item.get("phone_number_id").is_some() {
        return Some("whatsapp.phone_number.created".into());
    }
    None
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn route_of(item: &Value) -> Option<String> {
    str_at(item, "/phone_number_id")
        .or_else(|| str_at(item, "/conversation/phone_number_id"))
        .or_else(|| str_at(item, "/message/kapso/phone_number_id"))
        .map(str::to_owned)
}

fn parse_item(item: &Value, hint: Option<&str>) -> Result<Event, ProviderError> {
    if !item.is_object() {
        return Err(ProviderError::BadPayload("a Kapso event is a JSON object".into()));
    }
    let route = route_of(item);
    let Some(name) = event_name(item, hint) else {
        if route.is_some() {
            return Ok(Event::Ignored {
                route,
                reason: "unrecognised kapso event".into(),
            });
        }
        return Err(ProviderError::BadPayload("not a Kapso event".into()));
    };
    let Some(status) = name.strip_prefix("whatsapp.message.") else {
        return Ok(Event::Ignored {
            route,
            reason: format!("kapso event {name}"),
        });
    };
    let Some(route) = route else {
        return Ok(Event::Ignored {
            route: None,
            reason: format!("kapso {name} without phone_number_id"),
        });
    };
    let Some(raw) = item.get("message") else {
        return Ok(Event::Ignored {
            route: Some(route),
            reason: format!("kapso {name} without a message"),
        });
    };
    let message: WaMessage = match serde_json::from_value(raw.clone()) {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable kapso message object");
            return Ok(Event::Ignored {
                route: Some(route),
                reason: format!("unreadable message object: {e}"),
            });
        }
    };
    if status == "received" {
        Ok(received(item, raw, &message, &route))
    } else {
        Ok(status_update(raw, &message, status, &route))
    }
}

fn received(item: &Value, raw: &Value, message: &WaMessage, route: &str) -> Event {
    let from = message
        .from
        .clone()
        .filter(|f| !f.is_empty())
        .or_else(|| str_at(item, "/conversation/phone_number").map(digits))
        .or_else(|| str_at(item, "/conversation/business_scoped_user_id").map(str::to_owned));
    let Some(from) = from else {
        return Event::Ignored {
            route: Some(route.to_owned()),
            reason: "message without a sender id".into(),
        };
    };
    let contact_name = str_at(item, "/conversation/kapso/contact_name")
        .or_else(|| str_at(raw, "/kapso/contact_name"))
        .map(str::to_owned);
    let Some(mut inbound) = message.to_inbound(from, contact_name) else {
        return Event::Ignored {
            route: Some(route.to_owned()),
            reason: "message without an id".into(),
        };
    };
    inbound.details.provider_transcript = str_at(raw, "/kapso/transcript/text").map(str::to_owned);
    if let Some(media) = inbound.details.media.as_mut() {
        let url = str_at(raw, "/kapso/media_url").or_else(|| str_at(raw, "/kapso/media_data/url"));
        media.url = media.url.take().or_else(|| url.map(str::to_owned));
        media.mime_type = media
            .mime_type
            .take()
            .or_else(|| str_at(raw, "/kapso/media_data/content_type").map(str::to_owned));
        media.filename = media
            .filename
            .take()
            .or_else(|| str_at(raw, "/kapso/media_data/filename").map(str::to_owned));
    }
    Event::Message {
        route: route.to_owned(),
        message: inbound,
    }
}

/// A `whatsapp.message.{sent,delivered,read,failed}` event: the status entry of that name in
/// `kapso.statuses` carries its time and errors.
fn status_update(raw: &Value, message: &WaMessage, status: &str, route: &str) -> Event {
    let history: Vec<WaStatus> = raw
        .pointer("/kapso/statuses")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| serde_json::from_value(e.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    let entry = history
        .into_iter()
        .rev()
        .find(|entry| entry.status.as_deref() == Some(status))
        .unwrap_or(WaStatus {
            id: None,
            status: None,
            timestamp: None,
            errors: Vec::new(),
        });
    let entry = WaStatus {
        id: message.id.clone().or(entry.id),
        status: Some(status.to_owned()),
        timestamp: entry.timestamp.or_else(|| message.timestamp.clone()),
        errors: entry.errors,
    };
    entry.to_event(route)
}

fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

