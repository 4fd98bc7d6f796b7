//! Meta's WhatsApp Cloud API: the subscription handshake, `X-Hub-Signature-256` checks, parsing
//! of `messages` webhooks (customer messages and delivery statuses), sending through the Graph
//! API, marking messages read and downloading media. The Cloud API's message shapes are also
//! used by Kapso, which reuses the parser, body builder and error mapping from here.

use async_trait::async_trait;
use http::{HeaderMap, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    endpoint, execute, retry_after, status_error, timestamp_or_now, token_matches, verify_hmac_sha256,
    ChannelContext, Credentials, Event, Inbound, Media, Outbound, OutboundBody, Provider, ProviderError, Reply,
    Sent, StatusUpdate,
};
use crate::domain::{
    DeliveryError, DeliveryStatus, InteractiveReply, Location, MediaRef, MessageDetails, MessageKind,
    ProviderKind, Reaction,
};

/// Graph API base URL used unless settings say otherwise.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com/v23.0";

/// The `object` of every WhatsApp Business Account webhook.
pub(crate) const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

/// Answers the GET handshake Meta makes when a webhook is subscribed: `hub.mode` must be
/// `subscribe` and `hub.verify_token` our verify token. Returns the challenge to echo as
/// `text/plain`; any error means 403.
pub fn verify_subscription(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    expected: &SecretString,
) -> Result<String, ProviderError> {
    if mode != Some("subscribe") {
        return Err(ProviderError::BadSignature("hub.mode is not `subscribe`".into()));
    }
    let token = token.ok_or_else(|| ProviderError::BadSignature("missing hub.verify_token".into()))?;
    if !token_matches(token, expected) {
        return Err(ProviderError::BadSignature("hub.verify_token does not match".into()));
    }
    challenge
        .map(str::to_owned)
        .ok_or_else(|| ProviderError::BadPayload("missing hub.challenge".into()))
}

/// Meta's WhatsApp Cloud API, called directly through the Graph API.
#[derive(Debug, Clone)]
pub struct MetaProvider {
    client: reqwest::Client,
    base_url: String,
}

impl MetaProvider {
    /// A provider calling `graph_base_url` (e.g. [`DEFAULT_GRAPH_BASE_URL`]) with `client`, whose
    /// timeouts the caller sets.
    pub fn new(client: reqwest::Client, graph_base_url: impl Into<String>) -> Self {
        let base_url = graph_base_url.into().trim_end_matches('/').to_owned();
        Self { client, base_url }
    }

    fn token(credentials: &Credentials) -> Result<&SecretString, ProviderError> {
        match credentials {
            Credentials::Meta { access_token, .. } => Ok(access_token),
            other => Err(ProviderError::Auth(format!(
                "the channel has {} credentials, not Meta's",
                other.kind().as_str()
            ))),
        }
    }

    async fn post_messages(&self, channel: &ChannelContext, body: &Value) -> Result<Reply, ProviderError> {
        let token = Self::token(&channel.credentials)?;
        let url = endpoint(&self.base_url, &[&channel.route_key, "messages"])?;
        let reply = execute(self.client.post(url).bearer_auth(token.expose_secret()).json(body)).await?;
        if !reply.status.is_success() {
            return Err(graph_error(reply.status, &reply.headers, &reply.body));
        }
        Ok(reply)
    }
}

#[async_trait]
impl Provider for MetaProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Meta
    }

    fn verify(&self, credentials: &Credentials, headers: &HeaderMap, body: &[u8]) -> Result<(), ProviderError> {
        let Credentials::Meta { app_secret, .. } = credentials else {
            return Err(ProviderError::BadSignature("the channel does not have Meta credentials".into()));
        };
        let header = headers
            .get("x-hub-signature-256")
            .ok_or_else(|| ProviderError::BadSignature("missing X-Hub-Signature-256".into()))?;
        let hex = header
            .to_str()
            .ok()
            .and_then(|value| value.trim().strip_prefix("sha256="))
            .ok_or_else(|| ProviderError::BadSignature("X-Hub-Signature-256 is not `sha256=<hex>`".into()))?;
        verify_hmac_sha256(app_secret.expose_secret().as_bytes(), body, hex)
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<Event>, ProviderError> {
        parse_notification(body)
    }

    async fn send(&self, channel: &ChannelContext, message: &Outbound) -> Result<Sent, ProviderError> {
        let body = message_body(message)?;
        let reply = self.post_messages(channel, &body).await?;
        sent_from(&reply)
    }

    async fn fetch_media(&self, channel: &ChannelContext, media: &MediaRef) -> Result<Media, ProviderError> {
        let token = Self::token(&channel.credentials)?.expose_secret();
        let (url, mime_type) = match (&media.id, &media.url) {
            (Some(id), _) => {
                let meta_url = endpoint(&self.base_url, &[id])?;
                let reply = execute(self.client.get(meta_url).bearer_auth(token)).await?;
                if !reply.status.is_success() {
                    return Err(graph_error(reply.status, &reply.headers, &reply.body));
                }
                let info: MediaInfo = reply.json("media URL")?;
                (info.url, info.mime_type)
            }
            (None, Some(url)) => (url.clone(), None),
            (None, None) => return Err(ProviderError::Permanent("the media has neither an id nor a URL".into())),
        };
        let url = reqwest::Url::parse(&url).map_err(|e| ProviderError::Permanent(format!("bad media URL: {e}")))?;
        // The lookaside URL only answers with the same bearer token that resolved it.
        let reply = execute(self.client.get(url).bearer_auth(token)).await?;
        if !reply.status.is_success() {
            return Err(graph_error(reply.status, &reply.headers, &reply.body));
        }
        Ok(media_from(reply, mime_type.or_else(|| media.mime_type.clone())))
    }

    async fn mark_read(
        &self,
        channel: &ChannelContext,
        provider_message_id: &str,
        typing: bool,
    ) -> Result<(), ProviderError> {
        self.post_messages(channel, &read_body(provider_message_id, typing)).await?;
        Ok(())
    }
}

/// What `GET /{media_id}` answers.
#[derive(Debug, Deserialize)]
pub(crate) struct MediaInfo {
    /// Short-lived download URL.
    pub(crate) url: String,
    /// Kapso's pre-authorised download link, when given.
    #[serde(default)]
    pub(crate) download_url: Option<String>,
    #[serde(default)]
    pub(crate) mime_type: Option<String>,
}

/// Downloaded bytes, typed by the provider's word or else the response's `Content-Type`.
pub(crate) fn media_from(reply: Reply, mime_type: Option<String>) -> Media {
    let mime_type = mime_type.or_else(|| {
        reply
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    Media {
        bytes: reply.body,
        mime_type,
    }
}

// ---------------------------------------------------------------------------------------------
// Webhooks

#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    value: Value,
}

/// Parses a Cloud API webhook body (also what Kapso forwards in "Meta webhooks" mode).
pub(crate) fn parse_notification(body: &[u8]) -> Result<Vec<Event>, ProviderError> {
    let notification: Notification =
        serde_json::from_slice(body).map_err(|e| ProviderError::BadPayload(format!("not a Meta webhook: {e}")))?;
    match notification.object.as_deref() {
        Some(WHATSAPP_OBJECT) => {}
        Some(other) => return Err(ProviderError::BadPayload(format!("webhook object `{other}` is not WhatsApp"))),
        None => return Err(ProviderError::BadPayload("not a Meta webhook: no `object`".into())),
    }
    let mut events = Vec::new();
    for change in notification.entry.iter().flat_map(|entry| &entry.changes) {
        parse_change(change, &mut events);
    }
    Ok(events)
}

fn parse_change(change: &Change, events: &mut Vec<Event>) {
    let field = change.field.as_deref().unwrap_or("");
    let route = change
        .value
        .pointer("/metadata/phone_number_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if field != "messages" {
        events.push(Event::Ignored {
            route,
            reason: format!("meta webhook field `{field}`"),
        });
        return;
    }
    let Some(route) = route else {
        events.push(Event::Ignored {
            route: None,
            reason: "meta messages change without metadata.phone_number_id".into(),
        });
        return;
    };
    let contacts: Vec<WaContact> = array(&change.value, "contacts")
        .iter()
        .filter_map(|c| serde_json::from_value(c.clone()).ok())
        .collect();
    for raw in array(&change.value, "messages") {
        events.push(message_event(&route, raw, &contacts));
    }
    for raw in array(&change.value, "statuses") {
        events.push(status_event(&route, raw));
    }
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn message_event(route: &str, raw: &Value, contacts: &[WaContact]) -> Event {
    let message = match serde_json::from_value::<WaMessage>(raw.clone()) {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable meta message object");
            return Event::Ignored {
                route: Some(route.to_owned()),
                reason: format!("unreadable message object: {e}"),
            };
        }
    };
    let contact = contacts
        .iter()
        .find(|c| c.wa_id.is_some() && c.wa_id == message.from)
        .or(contacts.first());
    let from = message
        .from
        .clone()
        .or_else(|| contact.and_then(|c| c.wa_id.clone().or_else(|| c.user_id.clone())));
    let contact_name = contact.and_then(|c| c.profile.as_ref()).and_then(|p| p.name.clone());
    match from {
        Some(from) => message.to_event(route, from, contact_name),
        None => Event::Ignored {
            route: Some(route.to_owned()),
            reason: "message without a sender id".into(),
        },
    }
}

fn status_event(route: &str, raw: &Value) -> Event {
    let status = match serde_json::from_value::<WaStatus>(raw.clone()) {
        Ok(status) => status,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable meta status object");
            return Event::Ignored {
                route: Some(route.to_owned()),
                reason: format!("unreadable status object: {e}"),
            };
        }
    };
    status.to_event(route)
}

#[derive(Debug, Deserialize)]
struct WaContact {
    #[serde(default)]
    wa_id: Option<String>,
    /// Business-scoped user id, sent alongside or instead of `wa_id`.
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    profile: Option<WaProfile>,
}

#[derive(Debug, Deserialize)]
struct WaProfile {
    #[serde(default)]
    name: Option<String>,
}

/// A message object as the Cloud API (and Kapso) sends it. Every field is optional so that one
/// new or missing field never loses the message.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct WaMessage {
    #[serde(default)]
    pub(crate) from: Option<String>,
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) timestamp: Option<Value>,
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    context: Option<WaContext>,
    #[serde(default)]
    text: Option<WaText>,
    #[serde(default)]
    image: Option<WaMedia>,
    #[serde(default)]
    audio: Option<WaMedia>,
    #[serde(default)]
    video: Option<WaMedia>,
    #[serde(default)]
    document: Option<WaMedia>,
    #[serde(default)]
    sticker: Option<WaMedia>,
    #[serde(default)]
    location: Option<WaLocation>,
    #[serde(default)]
    interactive: Option<WaInteractive>,
    #[serde(default)]
    button: Option<WaButton>,
    #[serde(default)]
    reaction: Option<WaReaction>,
    #[serde(default)]
    unsupported: Option<WaUnsupported>,
}

#[derive(Debug, Clone, Deserialize)]
struct WaContext {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct WaText {
    #[serde(default)]
    body: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct WaMedia {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    voice: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
struct WaLocation {
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct WaInteractive {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    button_reply: Option<WaReply>,
    #[serde(default)]
    list_reply: Option<WaReply>,
}

#[derive(Debug, Clone, Deserialize)]
struct WaReply {
    id: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
}

/// A tap on a template's quick-reply button.
#[derive(Debug, Clone, Deserialize)]
struct WaButton {
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct WaReaction {
    message_id: String,
    #[serde(default)]
    emoji: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct WaUnsupported {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

impl WaMessage {
    /// The customer message this object describes, sent by `from`.
    pub(crate) fn to_event(&self, route: &str, from: String, contact_name: Option<String>) -> Event {
        match self.to_inbound(from, contact_name) {
            Some(message) => Event::Message {
                route: route.to_owned(),
                message,
            },
            None => Event::Ignored {
                route: Some(route.to_owned()),
                reason: "message without an id".into(),
            },
        }
    }

    /// `None` when the message has no id: without one it cannot be deduplicated or answered.
    pub(crate) fn to_inbound(&self, from: String, contact_name: Option<String>) -> Option<Inbound> {
        let provider_message_id = self.id.clone().filter(|id| !id.is_empty())?;
        let (kind, text, mut details) = self.content();
        details.context_message_id = self.context.as_ref().and_then(|c| c.id.clone());
        Some(Inbound {
            provider_message_id,
            from,
            reply_to: None,
            contact_name: contact_name.filter(|n| !n.trim().is_empty()),
            timestamp: timestamp_or_now(self.timestamp.as_ref()),
            kind,
            text,
            details,
        })
    }

    fn content(&self) -> (MessageKind, Option<String>, MessageDetails) {
        let type_name = self.kind.as_deref().unwrap_or("");
        let mut details = MessageDetails::default();
        let media = |media: &Option<WaMedia>, kind: MessageKind| {
            media.as_ref().map(|m| {
                let caption = m.caption.clone();
                let media_ref = MediaRef {
                    id: m.id.clone(),
                    url: m.url.clone(),
                    mime_type: m.mime_type.clone(),
                    sha256: m.sha256.clone(),
                    filename: m.filename.clone(),
                    caption: caption.clone(),
                    voice: m.voice.unwrap_or(false),
                    ..MediaRef::default()
                };
                (kind, caption, media_ref)
            })
        };
        let media = match type_name {
            "image" => media(&self.image, MessageKind::Image),
            "audio" => media(&self.audio, MessageKind::Audio),
            "video" => media(&self.video, MessageKind::Video),
            "document" => media(&self.document, MessageKind::Document),
            "sticker" => media(&self.sticker, MessageKind::Sticker),
            _ => None,
        };
        if let Some((kind, caption, media_ref)) = media {
            details.media = Some(media_ref);
            return (kind, caption, details);
        }
        match type_name {
            "text" => {
                if let Some(text) = &self.text {
                    return (MessageKind::Text, text.body.clone(), details);
                }
            }
            "location" => {
                if let Some(l) = &self.location {
                    details.location = Some(Location {
                        latitude: l.latitude,
                        longitude: l.longitude,
                        name: l.name.clone(),
                        address: l.address.clone(),
                    });
                    return (MessageKind::Location, None, details);
                }
            }
            "interactive" => {
                if let Some(reply) = self.interactive.as_ref().and_then(|i| match i.kind.as_deref() {
                    Some("button_reply") => i.button_reply.as_ref(),
                    Some("list_reply") => i.list_reply.as_ref(),
                    _ => None,
                }) {
                    details.interactive = Some(InteractiveReply {
                        id: reply.id.clone(),
                        title: reply.title.clone(),
                        description: reply.description.clone(),
                    });
                    return (MessageKind::Interactive, Some(reply.title.clone()), details);
                }
                let sub = self.interactive.as_ref().and_then(|i| i.kind.as_deref()).unwrap_or("unknown");
                details.original_type = Some(format!("interactive.{sub}"));
                return (MessageKind::Unsupported, None, details);
            }
            "button" => {
                if let Some(b) = &self.button {
                    let title = b.text.clone().unwrap_or_default();
                    details.interactive = Some(InteractiveReply {
                        id: b.payload.clone().unwrap_or_else(|| title.clone()),
                        title: title.clone(),
                        description: None,
                    });
                    return (MessageKind::Interactive, b.text.clone(), details);
                }
            }
            "reaction" => {
                if let Some(r) = &self.reaction {
                    details.reaction = Some(Reaction {
                        message_id: r.message_id.clone(),
                        emoji: r.emoji.clone().filter(|e| !e.is_empty()),
                    });
                    return (MessageKind::Reaction, None, details);
                }
            }
            "unsupported" => {
                let inner = self.unsupported.as_ref().and_then(|u| u.kind.clone());
                details.original_type = Some(inner.unwrap_or_else(|| "unsupported".into()));
                return (MessageKind::Unsupported, None, details);
            }
            _ => {}
        }
        details.original_type = Some(if type_name.is_empty() { "unknown".into() } else { type_name.into() });
        (MessageKind::Unsupported, None, details)
    }
}

/// A delivery status object (Cloud API `statuses[]`, Kapso `kapso.statuses[]`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaStatus {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) timestamp: Option<Value>,
    #[serde(default)]
    pub(crate) errors: Vec<WaError>,
}

/// An entry of `errors[]` on a status or message.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WaError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<WaErrorData>,
}

#[derive(Debug, Clone, Deserialize)]
struct WaErrorData {
    #[serde(default)]
    details: Option<String>,
}

impl WaError {
    pub(crate) fn to_delivery_error(&self) -> DeliveryError {
        let title = self
            .title
            .clone()
            .or_else(|| self.message.clone())
            .unwrap_or_else(|| "delivery failed".into());
        let detail = self
            .error_data
            .as_ref()
            .and_then(|d| d.details.clone())
            .or_else(|| self.message.clone().filter(|m| *m != title));
        DeliveryError {
            code: self.code,
            title,
            detail,
        }
    }
}

/// A status name of the Cloud API, or `None` for ones we do not track (`deleted`, `warning`...).
pub(crate) fn delivery_status(name: &str) -> Option<DeliveryStatus> {
    match name {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "read" => Some(DeliveryStatus::Read),
        "played" => Some(DeliveryStatus::Played),
        "failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

impl WaStatus {
    pub(crate) fn to_event(&self, route: &str) -> Event {
        match self.to_update() {
            Ok(update) => Event::Status {
                route: route.to_owned(),
                update,
            },
            Err(reason) => Event::Ignored {
                route: Some(route.to_owned()),
                reason,
            },
        }
    }

    pub(crate) fn to_update(&self) -> Result<StatusUpdate, String> {
        let id = self.id.clone().filter(|id| !id.is_empty()).ok_or("status without a message id")?;
        let name = self.status.as_deref().unwrap_or("");
        let status = delivery_status(name).ok_or_else(|| format!("status `{name}` is not tracked"))?;
        let error = match status {
            DeliveryStatus::Failed => Some(self.errors.first().map(WaError::to_delivery_error).unwrap_or(
                DeliveryError {
                    code: None,
                    title: "delivery failed".into(),
                    detail: None,
                },
            )),
            _ => None,
        };
        Ok(StatusUpdate {
            provider_message_id: id,
            status,
            timestamp: timestamp_or_now(self.timestamp.as_ref()),
            error,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Sending

/// Buttons and list limits of the Cloud API, checked before sending so a bad message fails with
/// a clear reason instead of Graph's generic parameter error.
const MAX_BUTTONS: usize = 3;
const MAX_BUTTON_TITLE: usize = 20;
const MAX_LIST_ROWS: usize = 10;
const MAX_ROW_TITLE: usize = 24;
const MAX_ROW_DESCRIPTION: usize = 72;
const MAX_ID: usize = 200;

/// The Cloud API request body for `message` (Kapso's proxy takes the same).
pub(crate) fn message_body(message: &Outbound) -> Result<Value, ProviderError> {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to,
    });
    let (kind, content) = match &message.body {
        OutboundBody::Text { text } => (
            "text",
            json!({ "preview_url": has_link(text), "body": text }),
        ),
        OutboundBody::Template {
            name,
            language,
            parameters,
        } => {
            let mut template = json!({ "name": name, "language": { "code": language } });
            if !parameters.is_empty() {
                let parameters: Vec<Value> = parameters.iter().map(|p| json!({ "type": "text", "text": p })).collect();
                template["components"] = json!([{ "type": "body", "parameters": parameters }]);
            }
            ("template", template)
        }
        OutboundBody::Reaction { message_id, emoji } => {
            ("reaction", json!({ "message_id": message_id, "emoji": emoji }))
        }
        OutboundBody::Media {
            kind,
            link,
            caption,
            filename,
        } => media_content(kind, link, caption.as_deref(), filename.as_deref())?,
        OutboundBody::Buttons { text, buttons } => ("interactive", buttons_content(text, buttons)?),
        OutboundBody::List { text, button, rows } => ("interactive", list_content(text, button, rows)?),
    };
    // A reaction already names its message; a quote on it is meaningless.
    if let (Some(reply_to), false) = (&message.reply_to_message, kind == "reaction") {
        body["context"] = json!({ "message_id": reply_to });
    }
    body["type"] = json!(kind);
    body[kind] = content;
    Ok(body)
}

/// Link previews only when there is a link, so a plain answer never waits on a preview fetch.
fn has_link(text: &str) -> bool {
    text.contains("https://") || text.contains("http://")
}

fn media_content(
    kind: &str,
    link: &str,
    caption: Option<&str>,
    filename: Option<&str>,
) -> Result<(&'static str, Value), ProviderError> {
    let voice = kind == "voice";
    let (kind, captioned): (&'static str, bool) = match kind {
        "image" => ("image", true),
        "video" => ("video", true),
        "document" => ("document", true),
        "audio" | "voice" => ("audio", false),
        "sticker" => ("sticker", false),
        other => return Err(ProviderError::Permanent(format!("unknown media kind `{other}`"))),
    };
    let mut content = json!({ "link": link });
    if let Some(caption) = caption {
        if !captioned {
            return Err(ProviderError::Permanent(format!("{kind} messages cannot carry a caption")));
        }
        content["caption"] = json!(caption);
    }
    if let Some(filename) = filename {
        if kind != "document" {
            return Err(ProviderError::Permanent("only documents carry a file name".into()));
        }
        content["filename"] = json!(filename);
    }
    if voice {
        content["voice"] = json!(true);
    }
    Ok((kind, content))
}

fn check_len(what: &str, value: &str, max: usize) -> Result<(), ProviderError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(ProviderError::Permanent(format!(
            "{what} must have 1 to {max} characters, not {len}"
        )));
    }
    Ok(())
}

fn buttons_content(text: &str, buttons: &[(String, String)]) -> Result<Value, ProviderError> {
    if buttons.is_empty() || buttons.len() > MAX_BUTTONS {
        return Err(ProviderError::Permanent(format!(
            "a message takes 1 to {MAX_BUTTONS} buttons, not {}",
            buttons.len()
        )));
    }
    let mut out = Vec::with_capacity(buttons.len());
    for (id, title) in buttons {
        check_len("button id", id, MAX_ID)?;
        check_len("button title", title, MAX_BUTTON_TITLE)?;
        out.push(json!({ "type": "reply", "reply": { "id": id, "title": title } }));
    }
    Ok(json!({
        "type": "button",
        "body": { "text": text },
        "action": { "buttons": out },
    }))
}

fn list_content(text: &str, button: &str, rows: &[(String, String, Option<String>)]) -> Result<Value, ProviderError> {
    if rows.is_empty() || rows.len() > MAX_LIST_ROWS {
        return Err(ProviderError::Permanent(format!(
            "a list takes 1 to {MAX_LIST_ROWS} rows, not {}",
            rows.len()
        )));
    }
    check_len("list button", button, MAX_BUTTON_TITLE)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, title, description) in rows {
        check_len("row id", id, MAX_ID)?;
        check_len("row title", title, MAX_ROW_TITLE)?;
        let mut row = json!({ "id": id, "title": title });
        if let Some(description) = description {
            check_len("row description", description, MAX_ROW_DESCRIPTION)?;
            row["description"] = json!(description);
        }
        out.push(row);
    }
    Ok(json!({
        "type": "list",
        "body": { "text": text },
        "action": { "button": button, "sections": [{ "rows": out }] },
    }))
}

/// Body marking `message_id` read, optionally showing "typing…" until we answer (at most 25 s).
pub(crate) fn read_body(message_id: &str, typing: bool) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": message_id,
    });
    if typing {
        body["typing_indicator"] = json!({ "type": "text" });
    }
    body
}

#[derive(Debug, Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Debug, Deserialize)]
struct SentMessage {
    id: String,
}

/// Reads `messages[0].id` from a successful send.
pub(crate) fn sent_from(reply: &Reply) -> Result<Sent, ProviderError> {
    let response: SendResponse = reply.json("send")?;
    let id = response
        .messages
        .into_iter()
        .next()
        .map(|m| m.id)
        .ok_or_else(|| ProviderError::Permanent("send response without messages[0].id".into()))?;
    Ok(Sent {
        provider_message_id: id,
    })
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

/// Graph's `error`, or a bare string from proxies that simplify it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    Graph(GraphError),
    Text(String),
}

#[derive(Debug, Deserialize)]
struct GraphError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error_data: Option<WaErrorData>,
}

/// Codes that mean "slow down": retry later.
const THROTTLED: &[i64] = &[4, 80007, 130429, 131048, 131056];
/// Codes Meta documents as temporary server-side failures.
const SERVER_TROUBLE: &[i64] = &[1, 2, 131000, 131016, 131057, 133004, 133005];
/// Codes for a token, permission or account problem: the channel needs a person's attention.
const AUTH_TROUBLE: &[i64] = &[0, 3, 10, 190, 368, 130497, 131005, 131031];
/// Outside the 24-hour customer-service window.
const REENGAGEMENT: i64 = 131047;

/// Maps a failed Graph call (also Kapso's proxy) to a [`ProviderError`] by the envelope's code,
/// falling back to the HTTP status.
pub(crate) fn graph_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let (code, message) = match serde_json::from_slice::<ErrorEnvelope>(body).map(|e| e.error) {
        Ok(ErrorBody::Graph(error)) => {
            let mut message = error.message.unwrap_or_else(|| "unknown error".into());
            if let Some(details) = error.error_data.and_then(|d| d.details) {
                message = format!("{message}: {details}");
            }
            (error.code, message)
        }
        Ok(ErrorBody::Text(message)) => (None, message),
        Err(_) => (None, String::from_utf8_lossy(body).chars().take(300).collect()),
    };
    let message = match code {
        Some(code) => format!("HTTP {}, code {code}: {message}", status.as_u16()),
        None => format!("HTTP {}: {message}", status.as_u16()),
    };
    match code {
        Some(REENGAGEMENT) => ProviderError::NeedsTemplate(message),
        Some(code) if THROTTLED.contains(&code) || SERVER_TROUBLE.contains(&code) => ProviderError::Transient {
            message,
            retry_after: retry_after(headers),
        },
        Some(code) if AUTH_TROUBLE.contains(&code) || (200..=299).contains(&code) => ProviderError::Auth(message),
        _ => status_error(status, headers, message),
    }
}
