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
    endpoint, execute, retry_after, status_error, timestamp_or_now, token_matches,
    verify_hmac_sha256, ChannelContext, Credentials, Event, Field, Inbound, Media, Outbound,
    OutboundBody, Provider, ProviderError, Reply, Sent, ServiceWindow, StatusUpdate, Subscription,
    WebhookScope, MAX_MEDIA_BYTES,
};
use crate::domain::{
    DeliveryError, DeliveryStatus, FieldError, InteractiveReply, Location, MediaRef,
    MessageDetails, MessageKind, ProviderKind, Reaction,
};
use crate::net::GuardedClient;

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
        return Err(ProviderError::BadSignature(
            "hub.mode is not `subscribe`".into(),
        ));
    }
    let token =
        token.ok_or_else(|| ProviderError::BadSignature("missing hub.verify_token".into()))?;
    if !token_matches(token, expected) {
        return Err(ProviderError::BadSignature(
            "hub.verify_token does not match".into(),
        ));
    }
    challenge
        .map(str::to_owned)
        .ok_or_else(|| ProviderError::BadPayload("missing hub.challenge".into()))
}

/// A Meta channel's secrets.
#[derive(Deserialize)]
pub(crate) struct MetaCredentials {
    /// Graph API access token (system user token).
    pub(crate) access_token: SecretString,
    /// App secret, the key of `X-Hub-Signature-256`.
    pub(crate) app_secret: SecretString,
    /// Token echoed in the webhook verification handshake.
    pub(crate) verify_token: SecretString,
}

/// The fields of [`MetaCredentials`].
const FIELDS: &[Field] = &[
    Field::required("access_token"),
    Field::required("app_secret"),
    Field::required("verify_token"),
];

/// Meta's customer-service window, closed errors carrying its code.
pub(crate) struct MetaWindow;

impl ServiceWindow for MetaWindow {
    fn closed_error(&self) -> DeliveryError {
        DeliveryError {
            code: Some(131047),
            title: "outside the 24-hour customer-service window".into(),
            detail: None,
        }
    }
}

impl Subscription for MetaProvider {
    fn answer(
        &self,
        query: &std::collections::HashMap<String, String>,
        credentials: &Credentials,
    ) -> Option<String> {
        let expected = credentials.read::<MetaCredentials>().ok()?.verify_token;
        let get = |k: &str| query.get(k).map(String::as_str);
        verify_subscription(
            get("hub.mode"),
            get("hub.verify_token"),
            get("hub.challenge"),
            &expected,
        )
        .ok()
    }
}

/// Whether `id` is a business-scoped user id: a two-letter country code, a dot, `ENT.` for a
/// parent id, then up to 128 letters and digits (`US.13491208655302741918`,
/// `US.ENT.11815799212886844830`). Phone numbers are digits only.
pub(crate) fn is_business_scoped_user_id(id: &str) -> bool {
    let Some((country, rest)) = id.split_once('.') else {
        return false;
    };
    let rest = rest.strip_prefix("ENT.").unwrap_or(rest);
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && (1..=128).contains(&rest.len())
        && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether a media link is Meta's own (the lookaside CDN), which is given the access token.
fn is_meta_media_host(host: &str) -> bool {
    ["fbsbx.com", "facebook.com", "whatsapp.net"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// Meta's WhatsApp Cloud API, called directly through the Graph API.
#[derive(Debug, Clone)]
pub struct MetaProvider {
    client: reqwest::Client,
    external: GuardedClient,
    base_url: String,
}

impl MetaProvider {
    /// A provider calling `graph_base_url` (e.g. [`DEFAULT_GRAPH_BASE_URL`]) with `client`, and
    /// media links a webhook carries with `external`; the caller sets their timeouts.
    pub fn new(
        client: reqwest::Client,
        external: GuardedClient,
        graph_base_url: impl Into<String>,
    ) -> Self {
        let base_url = graph_base_url.into().trim_end_matches('/').to_owned();
        Self {
            client,
            external,
            base_url,
        }
    }

    fn token(credentials: &Credentials) -> Result<SecretString, ProviderError> {
        let token = credentials.read::<MetaCredentials>()?.access_token;
        super::non_empty(&token, "access token")?;
        Ok(token)
    }

    async fn post_messages(
        &self,
        channel: &ChannelContext,
        body: &Value,
    ) -> Result<Reply, ProviderError> {
        let token = Self::token(&channel.credentials)?;
        let url = endpoint(&self.base_url, &[&channel.route_key, "messages"])?;
        let reply = execute(
            self.client
                .post(url)
                .bearer_auth(token.expose_secret())
                .json(body),
        )
        .await?;
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

    fn accept_credentials(
        &self,
        given: Credentials,
        previous: Option<&Credentials>,
    ) -> Result<Credentials, Vec<FieldError>> {
        Credentials::accept(given, previous, FIELDS, "meta")
    }

    fn webhooks(&self) -> Option<WebhookScope> {
        // One callback URL per Meta app, whatever number a delivery is for.
        Some(WebhookScope::Provider)
    }

    fn service_window(&self) -> Option<&dyn ServiceWindow> {
        Some(&MetaWindow)
    }

    fn subscription(&self) -> Option<&dyn Subscription> {
        Some(self)
    }

    fn verify(
        &self,
        credentials: &Credentials,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), ProviderError> {
        let app_secret = credentials
            .read::<MetaCredentials>()
            .map_err(|_| {
                ProviderError::BadSignature("the channel does not have Meta credentials".into())
            })?
            .app_secret;
        super::non_empty(&app_secret, "app secret")
            .map_err(|e| ProviderError::BadSignature(e.to_string()))?;
        let header = headers
            .get("x-hub-signature-256")
            .ok_or_else(|| ProviderError::BadSignature("missing X-Hub-Signature-256".into()))?;
        let hex = header
            .to_str()
            .ok()
            .and_then(|value| value.trim().strip_prefix("sha256="))
            .ok_or_else(|| {
                ProviderError::BadSignature("X-Hub-Signature-256 is not `sha256=<hex>`".into())
            })?;
        verify_hmac_sha256(app_secret.expose_secret().as_bytes(), body, hex)
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<Event>, ProviderError> {
        parse_notification(body)
    }

    async fn send(
        &self,
        channel: &ChannelContext,
        message: &Outbound,
    ) -> Result<Sent, ProviderError> {
        let body = message_body(message)?;
        let reply = self.post_messages(channel, &body).await?;
        sent_from(&reply)
    }

    async fn fetch_media(
        &self,
        channel: &ChannelContext,
        media: &MediaRef,
    ) -> Result<Media, ProviderError> {
        let token = Self::token(&channel.credentials)?;
        let token = token.expose_secret();
        let parse = |url: &str| {
            reqwest::Url::parse(url)
                .map_err(|e| ProviderError::Permanent(format!("bad media URL: {e}")))
        };
        let (request, mime_type) = match (&media.id, &media.url) {
            (Some(id), _) => {
                let meta_url = endpoint(&self.base_url, &[id])?;
                let reply = execute(self.client.get(meta_url).bearer_auth(token)).await?;
                if !reply.status.is_success() {
                    return Err(graph_error(reply.status, &reply.headers, &reply.body));
                }
                let info: MediaInfo = reply.json("media URL")?;
                // The lookaside URL only answers with the same bearer token that resolved it.
                let url = parse(&info.url)?;
                (self.client.get(url).bearer_auth(token), info.mime_type)
            }
            // A link in the webhook itself: fetched through the URL guard, and given the token
            // only when it is Meta's.
            (None, Some(url)) => {
                let url = parse(url)?;
                let is_meta = url.host_str().is_some_and(is_meta_media_host);
                let mut request = self.external.request(reqwest::Method::GET, url)?;
                if is_meta {
                    request = request.bearer_auth(token);
                }
                (request, None)
            }
            (None, None) => {
                return Err(ProviderError::Permanent(
                    "the media has neither an id nor a URL".into(),
                ))
            }
        };
        let reply = super::execute_limited(request, MAX_MEDIA_BYTES).await?;
        if !reply.status.is_success() {
            return Err(graph_error(reply.status, &reply.headers, &reply.body));
        }
        Ok(media_from(
            reply,
            mime_type.or_else(|| media.mime_type.clone()),
        ))
    }

    async fn mark_read(
        &self,
        channel: &ChannelContext,
        provider_message_id: &str,
        typing: bool,
    ) -> Result<(), ProviderError> {
        self.post_messages(channel, &read_body(provider_message_id, typing))
            .await?;
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
    let notification: Notification = serde_json::from_slice(body)
        .map_err(|e| ProviderError::BadPayload(format!("not a Meta webhook: {e}")))?;
    match notification.object.as_deref() {
        Some(WHATSAPP_OBJECT) => {}
        Some(other) => {
            return Err(ProviderError::BadPayload(format!(
                "webhook object `{other}` is not WhatsApp"
            )))
        }
        None => {
            return Err(ProviderError::BadPayload(
                "not a Meta webhook: no `object`".into(),
            ))
        }
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
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
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
    // A customer with a WhatsApp username may come with a business-scoped user id and no phone
    // number (`from_user_id`, the contact's `user_id`, no `from` or `wa_id`).
    let contact = contacts
        .iter()
        .find(|c| c.wa_id.is_some() && c.wa_id == message.from)
        .or_else(|| {
            contacts
                .iter()
                .find(|c| c.user_id.is_some() && c.user_id == message.from_user_id)
        })
        .or(contacts.first());
    let user_id = message
        .from_user_id
        .clone()
        .or_else(|| contact.and_then(|c| c.user_id.clone()))
        .filter(|id| !id.is_empty());
    let from = message
        .from
        .clone()
        .or_else(|| contact.and_then(|c| c.wa_id.clone()))
        .or_else(|| user_id.clone())
        .filter(|id| !id.is_empty());
    let contact_name = contact
        .and_then(|c| c.profile.as_ref())
        .and_then(|p| p.name.clone());
    match from {
        Some(from) => match message.to_event(route, from, contact_name) {
            Event::Message { route, mut message } => {
                message.user_id = user_id;
                Event::Message { route, message }
            }
            other => other,
        },
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
    /// The sender's business-scoped user id (2026), beside or instead of `from`.
    #[serde(default)]
    pub(crate) from_user_id: Option<String>,
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
    pub(crate) fn to_event(
        &self,
        route: &str,
        from: String,
        contact_name: Option<String>,
    ) -> Event {
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
            user_id: None,
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
                if let Some(reply) =
                    self.interactive
                        .as_ref()
                        .and_then(|i| match i.kind.as_deref() {
                            Some("button_reply") => i.button_reply.as_ref(),
                            Some("list_reply") => i.list_reply.as_ref(),
                            _ => None,
                        })
                {
                    details.interactive = Some(InteractiveReply {
                        id: reply.id.clone(),
                        title: reply.title.clone(),
                        description: reply.description.clone(),
                    });
                    return (MessageKind::Interactive, Some(reply.title.clone()), details);
                }
                let sub = self
                    .interactive
                    .as_ref()
                    .and_then(|i| i.kind.as_deref())
                    .unwrap_or("unknown");
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
        details.original_type = Some(if type_name.is_empty() {
            "unknown".into()
        } else {
            type_name.into()
        });
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
    /// What we sent as `biz_opaque_callback_data`.
    #[serde(default)]
    pub(crate) biz_opaque_callback_data: Option<String>,
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
        let id = self
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or("status without a message id")?;
        let name = self.status.as_deref().unwrap_or("");
        let status =
            delivery_status(name).ok_or_else(|| format!("status `{name}` is not tracked"))?;
        let error = match status {
            DeliveryStatus::Failed => Some(
                self.errors
                    .first()
                    .map(WaError::to_delivery_error)
                    .unwrap_or(DeliveryError {
                        code: None,
                        title: "delivery failed".into(),
                        detail: None,
                    }),
            ),
            _ => None,
        };
        Ok(StatusUpdate {
            provider_message_id: id,
            status,
            timestamp: timestamp_or_now(self.timestamp.as_ref()),
            error,
            reference: self
                .biz_opaque_callback_data
                .clone()
                .filter(|r| !r.is_empty()),
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
    });
    // A customer known only by a business-scoped user id is addressed by `recipient`; `to`
    // takes phone numbers (and WhatsApp ids) only.
    let address = if is_business_scoped_user_id(&message.to) {
        "recipient"
    } else {
        "to"
    };
    body[address] = json!(message.to);
    // Echoed back in this message's status webhooks: names our message even if the send's
    // answer is lost.
    if let Some(key) = &message.idempotency_key {
        body["biz_opaque_callback_data"] = json!(key);
    }
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
                let parameters: Vec<Value> = parameters
                    .iter()
                    .map(|p| json!({ "type": "text", "text": p }))
                    .collect();
                template["components"] = json!([{ "type": "body", "parameters": parameters }]);
            }
            ("template", template)
        }
        OutboundBody::Reaction { message_id, emoji } => (
            "reaction",
            json!({ "message_id": message_id, "emoji": emoji }),
        ),
        OutboundBody::Media {
            kind,
            link,
            caption,
            filename,
        } => media_content(kind, link, caption.as_deref(), filename.as_deref())?,
        OutboundBody::Buttons { text, buttons } => ("interactive", buttons_content(text, buttons)?),
        OutboundBody::List { text, button, rows } => {
            ("interactive", list_content(text, button, rows)?)
        }
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
pub(crate) fn has_link(text: &str) -> bool {
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
        other => {
            return Err(ProviderError::Permanent(format!(
                "unknown media kind `{other}`"
            )))
        }
    };
    let mut content = json!({ "link": link });
    if let Some(caption) = caption {
        if !captioned {
            return Err(ProviderError::Permanent(format!(
                "{kind} messages cannot carry a caption"
            )));
        }
        content["caption"] = json!(caption);
    }
    if let Some(filename) = filename {
        if kind != "document" {
            return Err(ProviderError::Permanent(
                "only documents carry a file name".into(),
            ));
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

fn list_content(
    text: &str,
    button: &str,
    rows: &[(String, String, Option<String>)],
) -> Result<Value, ProviderError> {
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
        Err(_) => (
            None,
            String::from_utf8_lossy(body).chars().take(300).collect(),
        ),
    };
    let message = match code {
        Some(code) => format!("HTTP {}, code {code}: {message}", status.as_u16()),
        None => format!("HTTP {}: {message}", status.as_u16()),
    };
    match code {
        Some(REENGAGEMENT) => ProviderError::NeedsTemplate(message),
        Some(code) if THROTTLED.contains(&code) || SERVER_TROUBLE.contains(&code) => {
            ProviderError::Transient {
                message,
                retry_after: retry_after(headers),
            }
        }
        Some(code) if AUTH_TROUBLE.contains(&code) || (200..=299).contains(&code) => {
            ProviderError::Auth(message)
        }
        _ => status_error(status, headers, message),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::providers::test_support::{
        channel, check_webhook_snapshots, fixture, fixture_json, fixture_names, ignored,
    };

    const ROUTE: &str = "106540352242922";
    const CUSTOMER: &str = "16505551234";
    const TOKEN: &str = "test-access-token";

    fn credentials(app_secret: &str) -> Credentials {
        Credentials::from_pairs([
            ("access_token", TOKEN),
            ("app_secret", app_secret),
            ("verify_token", "my-verify-token"),
        ])
    }

    fn provider(base: &str) -> MetaProvider {
        MetaProvider::new(
            reqwest::Client::new(),
            GuardedClient::allowing_private(),
            format!("{base}/v23.0"),
        )
    }

    #[test]
    fn every_webhook_fixture_matches_its_snapshot() {
        let names = fixture_names("meta");
        let webhooks = names
            .iter()
            .map(String::as_str)
            // The GET handshake is not a POST body; it has its own test.
            .filter(|n| n.starts_with("webhook.") && *n != "webhook.verify.get.json");
        check_webhook_snapshots(&provider("http://unused"), "meta", webhooks, |_, b| b);
    }

    #[test]
    fn bodies_that_are_not_meta_webhooks_are_bad_payloads() {
        let meta = provider("http://unused");
        let mut bodies: Vec<Vec<u8>> = [
            "send.text.request.json",
            "media.get_url.response.json",
            "send.error.response.json",
        ]
        .iter()
        .map(|f| fixture("meta", f))
        .collect();
        bodies.push(b"not json".to_vec());
        bodies.push(b"[]".to_vec());
        bodies.push(br#"{"object":"page","entry":[]}"#.to_vec());
        bodies.push(fixture(
            "evolution",
            "webhook.messages.upsert.text_conversation.json",
        ));
        for body in bodies {
            assert!(
                matches!(meta.parse(&body), Err(ProviderError::BadPayload(_))),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn unknown_fields_types_and_statuses_never_lose_the_rest() {
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [
                {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}},
                {"field": "messages", "value": {
                    "metadata": {"phone_number_id": ROUTE, "brand_new": true},
                    "contacts": [{"profile": {"name": "Ana"}, "wa_id": "351912345678",
                                  "identity_key_hash": "abc", "user_id": "US.1"}],
                    "messages": [
                        {"from": "351912345678", "id": "w1", "timestamp": "1749416383", "type": "order",
                         "order": {"catalog_id": "1"}},
                        {"from": "351912345678", "id": "w2", "timestamp": "1749416384", "type": "location",
                         "location": {"latitude": "north"}},
                        {"from": "351912345678", "id": "w3", "timestamp": "1749416385", "type": "button",
                         "button": {"payload": "STOP", "text": "Stop promotions"}},
                        {"from": "351912345678", "timestamp": "1749416386", "type": "text", "text": {"body": "no id"}}
                    ],
                    "statuses": [
                        {"id": "w9", "status": "played", "timestamp": "1749416390", "recipient_id": "351912345678",
                         "recipient_type": "group", "conversation": {"id": "c1"}},
                        {"id": "w9", "status": "deleted", "timestamp": "1749416391"}
                    ]
                }}
            ]}]
        });
        let events = parse_notification(body.to_string().as_bytes()).unwrap();
        assert_eq!(events.len(), 7, "{events:#?}");
        assert_eq!(
            events[0],
            ignored(None, "meta webhook field `account_update`")
        );
        let Event::Message { message: order, .. } = &events[1] else {
            panic!("{:?}", events[1])
        };
        assert_eq!(
            (order.kind, order.details.original_type.as_deref()),
            (MessageKind::Unsupported, Some("order"))
        );
        assert_eq!(order.contact_name.as_deref(), Some("Ana"));
        assert!(
            matches!(&events[2], Event::Ignored { reason, .. } if reason.starts_with("unreadable message"))
        );
        let Event::Message {
            message: button, ..
        } = &events[3]
        else {
            panic!("{:?}", events[3])
        };
        assert_eq!(button.kind, MessageKind::Interactive);
        assert_eq!(button.text.as_deref(), Some("Stop promotions"));
        assert_eq!(
            button.details.interactive.as_ref().map(|i| i.id.as_str()),
            Some("STOP")
        );
        assert_eq!(events[4], ignored(Some(ROUTE), "message without an id"));
        assert!(
            matches!(&events[5], Event::Status { update, .. } if update.status == DeliveryStatus::Played)
        );
        assert_eq!(
            events[6],
            ignored(Some(ROUTE), "status `deleted` is not tracked")
        );
    }

    #[test]
    fn truncated_bodies_never_panic() {
        let meta = provider("http://unused");
        for file in fixture_names("meta") {
            let body = fixture("meta", &file);
            for end in (0..body.len()).step_by(7) {
                let _ = meta.parse(&body[..end]);
            }
        }
    }

    #[test]
    fn every_signature_vector_verifies() {
        let vectors = fixture_json("meta", "signature_vectors.json");
        let secret = vectors["app_secret"].as_str().unwrap();
        let meta = provider("http://unused");
        let entries = vectors["vectors"].as_object().unwrap();
        assert_eq!(entries.len(), 18);
        for (file, signature) in entries {
            let mut headers = HeaderMap::new();
            headers.insert(
                "x-hub-signature-256",
                signature.as_str().unwrap().parse().unwrap(),
            );
            let body = fixture("meta", file);
            assert!(
                meta.verify(&credentials(secret), &headers, &body).is_ok(),
                "{file}"
            );
            assert!(
                meta.verify(&credentials("another secret"), &headers, &body)
                    .is_err(),
                "{file}"
            );
        }
    }

    #[test]
    fn negative_signature_vectors_are_rejected() {
        let vectors = fixture_json("meta", "signature_vectors.json");
        let credentials = credentials(vectors["app_secret"].as_str().unwrap());
        let negative = &vectors["negative_cases"];
        let meta = provider("http://unused");
        let original = fixture("meta", negative["tampered_body"]["file"].as_str().unwrap());
        let tampered = String::from_utf8(original.clone())
            .unwrap()
            .replace("Lisbon", "Berlin")
            .into_bytes();
        assert_ne!(original, tampered);
        let good = negative["tampered_body"]["header"].as_str().unwrap();
        let sha1 = negative["wrong_prefix"]["header"].as_str().unwrap();
        let headers = |name: &str, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
            headers
        };
        let cases = [
            (
                "tampered body",
                headers("x-hub-signature-256", good),
                tampered,
            ),
            (
                "sha1 prefix",
                headers("x-hub-signature-256", sha1),
                original.clone(),
            ),
            (
                "legacy header",
                headers("x-hub-signature", sha1),
                original.clone(),
            ),
            (
                "no prefix",
                headers("x-hub-signature-256", &good["sha256=".len()..]),
                original.clone(),
            ),
            ("missing header", HeaderMap::new(), original.clone()),
        ];
        for (case, headers, body) in cases {
            assert!(
                matches!(
                    meta.verify(&credentials, &headers, &body),
                    Err(ProviderError::BadSignature(_))
                ),
                "{case}"
            );
        }
        assert!(meta
            .verify(
                &credentials,
                &headers("x-hub-signature-256", good),
                &original
            )
            .is_ok());
        let kapso = Credentials::from_pairs([
            ("api_key", "k"),
            ("webhook_secret", "fixture_app_secret_do_not_use"),
        ]);
        assert!(meta
            .verify(&kapso, &headers("x-hub-signature-256", good), &original)
            .is_err());
    }

    #[test]
    fn subscription_handshake() {
        let get = fixture_json("meta", "webhook.verify.get.json");
        let query = |key: &str| get["query"][key].as_str();
        let expected = SecretString::from("my-verify-token");
        assert_eq!(
            verify_subscription(
                query("hub.mode"),
                query("hub.verify_token"),
                query("hub.challenge"),
                &expected
            )
            .unwrap(),
            get["expected_response"]["body"].as_str().unwrap()
        );
        let refused = [
            (Some("subscribe"), Some("wrong-token"), Some("1")),
            (
                Some("subscribe"),
                Some("my-verify-token-and-more"),
                Some("1"),
            ),
            (Some("unsubscribe"), Some("my-verify-token"), Some("1")),
            (None, Some("my-verify-token"), Some("1")),
            (Some("subscribe"), None, Some("1")),
            (Some("subscribe"), Some("my-verify-token"), None),
        ];
        for (mode, token, challenge) in refused {
            assert!(
                verify_subscription(mode, token, challenge, &expected).is_err(),
                "{mode:?} {token:?} {challenge:?}"
            );
        }
    }

    fn outbound(body: OutboundBody, reply_to: Option<&str>) -> Outbound {
        Outbound {
            idempotency_key: None,
            to: CUSTOMER.into(),
            reply_to_message: reply_to.map(Into::into),
            body,
        }
    }

    #[test]
    fn business_scoped_user_ids_are_told_from_phone_numbers() {
        for (id, bsuid) in [
            ("US.13491208655302741918", true),
            ("US.ENT.11815799212886844830", true),
            ("BR.1502576394655843", true),
            ("PT.abc123XYZ", true),
            ("16505551234", false),
            ("+16505551234", false),
            ("us.1349", false),
            ("USA.1349", false),
            ("US.", false),
            ("US.12-34", false),
            ("", false),
        ] {
            assert_eq!(is_business_scoped_user_id(id), bsuid, "{id}");
        }
    }

    #[test]
    fn request_bodies_match_the_cloud_api() {
        let text = outbound(
            OutboundBody::text("Yes, we ship to Lisbon. Delivery takes 3-5 business days."),
            None,
        );
        assert_eq!(
            message_body(&text).unwrap(),
            fixture_json("meta", "send.text.request.json")
        );

        // A customer known only by a business-scoped user id is addressed by `recipient`.
        let mut to_user_id = outbound(OutboundBody::text("Temos sim, até às 19h."), None);
        to_user_id.to = "PT.4821937560012833".into();
        assert_eq!(
            message_body(&to_user_id).unwrap(),
            fixture_json("meta", "send.text_to_user_id.request.json")
        );

        // The fixture leaves `preview_url` out, which Meta reads as false; we always say it.
        let reply = outbound(
            OutboundBody::text("Yes, we ship to Lisbon."),
            Some("wamid.TEST.inbound.text.0001"),
        );
        let mut expected = fixture_json("meta", "send.text_reply_with_context.request.json");
        expected["text"]["preview_url"] = json!(false);
        assert_eq!(message_body(&reply).unwrap(), expected);

        let template = outbound(
            OutboundBody::Template {
                name: "support_followup".into(),
                language: "en_US".into(),
                parameters: vec!["Test Customer".into(), "#4821".into()],
            },
            None,
        );
        assert_eq!(
            message_body(&template).unwrap(),
            fixture_json("meta", "send.template.request.json")
        );

        let base = |kind: &str, content: Value| {
            let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER, "type": kind});
            body[kind] = content;
            body
        };
        let cases = [
            (
                outbound(OutboundBody::text("See https://example.com/help"), None),
                base(
                    "text",
                    json!({"preview_url": true, "body": "See https://example.com/help"}),
                ),
            ),
            (
                outbound(
                    OutboundBody::Template {
                        name: "hello".into(),
                        language: "pt_BR".into(),
                        parameters: vec![],
                    },
                    None,
                ),
                base(
                    "template",
                    json!({"name": "hello", "language": {"code": "pt_BR"}}),
                ),
            ),
            (
                outbound(
                    OutboundBody::Reaction {
                        message_id: "wamid.X".into(),
                        emoji: "👍".into(),
                    },
                    Some("wamid.X"),
                ),
                base("reaction", json!({"message_id": "wamid.X", "emoji": "👍"})),
            ),
            (
                outbound(
                    OutboundBody::Media {
                        kind: "image".into(),
                        link: "https://example.com/a.jpg".into(),
                        caption: Some("Here".into()),
                        filename: None,
                    },
                    None,
                ),
                base(
                    "image",
                    json!({"link": "https://example.com/a.jpg", "caption": "Here"}),
                ),
            ),
            (
                outbound(
                    OutboundBody::Media {
                        kind: "document".into(),
                        link: "https://example.com/a.pdf".into(),
                        caption: None,
                        filename: Some("a.pdf".into()),
                    },
                    None,
                ),
                base(
                    "document",
                    json!({"link": "https://example.com/a.pdf", "filename": "a.pdf"}),
                ),
            ),
            (
                outbound(
                    OutboundBody::Media {
                        kind: "voice".into(),
                        link: "https://example.com/a.ogg".into(),
                        caption: None,
                        filename: None,
                    },
                    None,
                ),
                base(
                    "audio",
                    json!({"link": "https://example.com/a.ogg", "voice": true}),
                ),
            ),
            (
                outbound(
                    OutboundBody::Buttons {
                        text: "Did that help?".into(),
                        buttons: vec![
                            ("yes".into(), "Yes".into()),
                            ("human".into(), "Talk to a human".into()),
                        ],
                    },
                    None,
                ),
                base(
                    "interactive",
                    json!({"type": "button", "body": {"text": "Did that help?"}, "action": {"buttons": [
                        {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                        {"type": "reply", "reply": {"id": "human", "title": "Talk to a human"}}
                    ]}}),
                ),
            ),
            (
                outbound(
                    OutboundBody::List {
                        text: "Pick a topic".into(),
                        button: "Topics".into(),
                        rows: vec![
                            (
                                "topic_billing".into(),
                                "Billing".into(),
                                Some("Invoices, refunds and payments".into()),
                            ),
                            ("topic_other".into(), "Other".into(), None),
                        ],
                    },
                    None,
                ),
                base(
                    "interactive",
                    json!({"type": "list", "body": {"text": "Pick a topic"}, "action": {"button": "Topics", "sections": [
                        {"rows": [
                            {"id": "topic_billing", "title": "Billing", "description": "Invoices, refunds and payments"},
                            {"id": "topic_other", "title": "Other"}
                        ]}
                    ]}}),
                ),
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(
                message_body(&message).unwrap(),
                expected,
                "{:?}",
                message.body
            );
        }
    }

    #[test]
    fn requests_meta_would_refuse_are_refused_before_sending() {
        let button = |title: &str| (String::from("id"), title.to_owned());
        let media =
            |kind: &str, caption: Option<&str>, filename: Option<&str>| OutboundBody::Media {
                kind: kind.into(),
                link: "https://example.com/x".into(),
                caption: caption.map(Into::into),
                filename: filename.map(Into::into),
            };
        let bad = [
            OutboundBody::Buttons {
                text: "t".into(),
                buttons: vec![],
            },
            OutboundBody::Buttons {
                text: "t".into(),
                buttons: vec![button("a"), button("b"), button("c"), button("d")],
            },
            OutboundBody::Buttons {
                text: "t".into(),
                buttons: vec![button("This title is far too long")],
            },
            OutboundBody::List {
                text: "t".into(),
                button: "b".into(),
                rows: vec![],
            },
            OutboundBody::List {
                text: "t".into(),
                button: "b".into(),
                rows: (0..11)
                    .map(|i| (format!("r{i}"), "Row".into(), None))
                    .collect(),
            },
            media("gif", None, None),
            media("audio", Some("caption"), None),
            media("image", None, Some("a.jpg")),
        ];
        for body in bad {
            assert!(
                matches!(
                    message_body(&outbound(body.clone(), None)),
                    Err(ProviderError::Permanent(_))
                ),
                "{body:?}"
            );
        }
    }

    #[test]
    fn graph_errors_map_to_what_the_caller_does() {
        let graph = |code: i64, kind: &str| {
            json!({"error": {"message": "m", "type": kind, "code": code, "fbtrace_id": "x"}})
                .to_string()
                .into_bytes()
        };
        let mut retry = HeaderMap::new();
        retry.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        let none = HeaderMap::new();
        let cases: Vec<(u16, Vec<u8>, &HeaderMap, &str)> = vec![
            (
                400,
                fixture("meta", "send.error.response.json"),
                &none,
                "permanent",
            ),
            (
                400,
                graph(131047, "OAuthException"),
                &none,
                "needs_template",
            ),
            (400, graph(131056, "OAuthException"), &none, "transient"),
            (429, graph(130429, "OAuthException"), &retry, "transient 7s"),
            (400, graph(80007, "OAuthException"), &none, "transient"),
            (400, graph(4, "OAuthException"), &none, "transient"),
            (429, b"{}".to_vec(), &retry, "transient 7s"),
            (401, graph(190, "OAuthException"), &none, "auth"),
            (400, graph(190, "OAuthException"), &none, "auth"),
            (403, graph(10, "OAuthException"), &none, "auth"),
            (403, graph(200, "OAuthException"), &none, "auth"),
            (401, b"".to_vec(), &none, "auth"),
            (400, graph(100, "OAuthException"), &none, "permanent"),
            (404, b"not found".to_vec(), &none, "permanent"),
            (500, graph(131000, "OAuthException"), &none, "transient"),
            (503, b"<html>down</html>".to_vec(), &none, "transient"),
            (
                409,
                br#"{"error":"Another message in-flight"}"#.to_vec(),
                &none,
                "permanent",
            ),
        ];
        for (status, body, headers, expected) in cases {
            let error = graph_error(StatusCode::from_u16(status).unwrap(), headers, &body);
            let got = match &error {
                ProviderError::NeedsTemplate(_) => "needs_template".to_owned(),
                ProviderError::Transient {
                    retry_after: Some(d),
                    ..
                } => format!("transient {}s", d.as_secs()),
                ProviderError::Transient { .. } => "transient".to_owned(),
                ProviderError::Auth(_) => "auth".to_owned(),
                ProviderError::Permanent(_) => "permanent".to_owned(),
                other => format!("{other:?}"),
            };
            assert_eq!(
                got,
                expected,
                "HTTP {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        let error = graph_error(
            StatusCode::BAD_REQUEST,
            &none,
            &fixture("meta", "send.error.response.json"),
        );
        assert_eq!(
            error.to_string(),
            "refused: HTTP 400, code 131030: (#131030) Recipient phone number not in allowed list: Recipient phone \
             number not in allowed list: Add recipient phone number to recipient list and try again."
        );
    }

    #[tokio::test]
    async fn sends_exactly_the_documented_requests() {
        let server = MockServer::start().await;
        let meta = provider(&server.uri());
        let channel = channel(ROUTE, credentials("s"));
        let messages_path = format!("/v23.0/{ROUTE}/messages");
        let cases = [
            (
                outbound(
                    OutboundBody::text("Yes, we ship to Lisbon. Delivery takes 3-5 business days."),
                    None,
                ),
                "send.text.request.json",
                "send.text.response.json",
                "wamid.TEST.outbound.text.0102",
            ),
            (
                outbound(
                    OutboundBody::Template {
                        name: "support_followup".into(),
                        language: "en_US".into(),
                        parameters: vec!["Test Customer".into(), "#4821".into()],
                    },
                    None,
                ),
                "send.template.request.json",
                "send.template.response.json",
                "wamid.TEST.outbound.template.0104",
            ),
        ];
        for (message, request, response, id) in cases {
            let _guard = Mock::given(method("POST"))
                .and(path(messages_path.as_str()))
                .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
                .and(header("content-type", "application/json"))
                .and(body_json(fixture_json("meta", request)))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_raw(fixture("meta", response), "application/json"),
                )
                .expect(1)
                .mount_as_scoped(&server)
                .await;
            let sent = meta
                .send(&channel, &message)
                .await
                .unwrap_or_else(|e| panic!("{request}: {e}"));
            assert_eq!(sent.provider_message_id, id);
        }
    }

    #[tokio::test]
    async fn marks_read_with_typing_indicator() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("/v23.0/{ROUTE}/messages")))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(body_json(fixture_json(
                "meta",
                "send.mark_read_typing.request.json",
            )))
            .respond_with(ResponseTemplate::new(200).set_body_raw(
                fixture("meta", "send.mark_read.response.json"),
                "application/json",
            ))
            .expect(1)
            .mount(&server)
            .await;
        provider(&server.uri())
            .mark_read(
                &channel(ROUTE, credentials("s")),
                "wamid.TEST.inbound.text.0001",
                true,
            )
            .await
            .unwrap();
        assert_eq!(
            read_body("wamid.X", false),
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"})
        );
    }

    #[tokio::test]
    async fn send_failures_are_mapped_and_never_show_the_token() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "12")
                    .set_body_json(
                        json!({"error": {"message": "(#130429) Rate limit hit", "code": 130429}}),
                    ),
            )
            .mount(&server)
            .await;
        let error = provider(&server.uri())
            .send(
                &channel(ROUTE, credentials("s")),
                &outbound(OutboundBody::text("hi"), None),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ProviderError::Transient { retry_after: Some(d), .. } if *d == Duration::from_secs(12)),
            "{error:?}"
        );
        assert!(!format!("{error:?}").contains(TOKEN));

        // Wrong credentials for the channel: nothing is sent.
        let evolution = Credentials::from_pairs([
            ("server_url", server.uri().as_str()),
            ("api_key", "k"),
            ("webhook_secret", "w"),
        ]);
        let error = provider(&server.uri())
            .send(
                &channel(ROUTE, evolution),
                &outbound(OutboundBody::text("hi"), None),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, ProviderError::Auth(_)), "{error:?}");
    }

    #[tokio::test]
    async fn timeouts_are_unconfirmed_and_refused_connections_transient() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let slow = MetaProvider::new(
            client,
            GuardedClient::allowing_private(),
            format!("{}/v23.0", server.uri()),
        );
        let message = outbound(OutboundBody::text("hi"), None);
        let error = slow
            .send(&channel(ROUTE, credentials("s")), &message)
            .await
            .unwrap_err();
        // The request was written: Meta may have sent the message.
        assert!(
            matches!(&error, ProviderError::Unconfirmed(message) if message.contains("timed out")),
            "{error:?}"
        );

        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let error = provider(&format!("http://{closed}"))
            .send(&channel(ROUTE, credentials("s")), &message)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProviderError::Transient { .. }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn fetches_media_in_two_steps_with_the_same_token() {
        let server = MockServer::start().await;
        let media_id = "1234567890987654321";
        let mut info = fixture_json("meta", "media.get_url.response.json");
        info["url"] = json!(format!(
            "{}/whatsapp_business/attachments/?mid={media_id}&hash=ATtest",
            server.uri()
        ));
        Mock::given(method("GET"))
            .and(path(format!("/v23.0/{media_id}")))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(info))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/whatsapp_business/attachments/"))
            .and(wiremock::matchers::query_param("mid", media_id))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(b"OggS\x00\x02voice".to_vec(), "application/octet-stream"),
            )
            .expect(1)
            .mount(&server)
            .await;
        let media = provider(&server.uri())
            .fetch_media(
                &channel(ROUTE, credentials("s")),
                &MediaRef {
                    id: Some(media_id.into()),
                    ..MediaRef::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(media.bytes, b"OggS\x00\x02voice");
        assert_eq!(media.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));
    }

    #[tokio::test]
    async fn expired_media_is_reported_not_retried_forever() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(404).set_body_json(
                json!({"error": {"message": "Unsupported get request.", "code": 100, "error_subcode": 33}}),
            ))
            .mount(&server)
            .await;
        let error = provider(&server.uri())
            .fetch_media(
                &channel(ROUTE, credentials("s")),
                &MediaRef {
                    id: Some("gone".into()),
                    ..MediaRef::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(error, ProviderError::Permanent(_)), "{error:?}");
    }
}
