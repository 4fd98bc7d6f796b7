//! Evolution API v2, which links a number by QR code (WhatsApp Web, through Baileys): the webhook
//! token check, parsing of its webhook events (messages in every shape Evolution has emitted,
//! LID addressing, our own echoes, delivery acks, connection and QR changes, calls), sending,
//! media download, and the instance lifecycle (create, connect, state, settings, webhook,
//! logout, delete). Every REST call carries the `apikey` header; the server URL comes from the
//! channel's credentials.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::{
    endpoint, execute, secret_header, status_error, timestamp_or_now, token_matches, ChannelContext,
    Credentials, Event, Inbound, Media, Outbound, OutboundBody, Provider, ProviderError, Reply, Sent, StatusUpdate,
};
use crate::domain::{
    ChannelConfig, ChannelState, DeliveryError, DeliveryStatus, InteractiveReply, Location, MediaRef,
    MessageDetails, MessageKind, ProviderKind, Reaction,
};

/// Header Palaver asks Evolution to send with every webhook, holding the channel's webhook secret.
pub const WEBHOOK_TOKEN_HEADER: &str = "x-palaver-webhook-token";

/// Events Palaver subscribes to.
pub const WEBHOOK_EVENTS: [&str; 6] = [
    "MESSAGES_UPSERT",
    "MESSAGES_UPDATE",
    "SEND_MESSAGE",
    "CONNECTION_UPDATE",
    "QRCODE_UPDATED",
    "CALL",
];

/// Instance behaviour Evolution applies itself (all the fields `/settings/set` requires).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSettings {
    /// Reject incoming calls.
    pub reject_call: bool,
    /// Sent to a caller whose call was rejected.
    pub msg_call: Option<String>,
    /// Drop group messages before they reach us.
    pub groups_ignore: bool,
    /// Show the number as online all the time.
    pub always_online: bool,
    /// Mark every incoming message read on arrival.
    pub read_messages: bool,
    /// Mark contacts' status posts seen.
    pub read_status: bool,
    /// Import the phone's whole history when linking.
    pub sync_full_history: bool,
}

impl From<&ChannelConfig> for InstanceSettings {
    fn from(config: &ChannelConfig) -> Self {
        Self {
            reject_call: config.reject_calls,
            msg_call: config.call_message.clone(),
            groups_ignore: config.ignore_groups,
            always_online: false,
            read_messages: false,
            read_status: false,
            sync_full_history: false,
        }
    }
}

impl InstanceSettings {
    fn to_json(&self) -> Value {
        json!({
            "rejectCall": self.reject_call,
            // An empty string clears a message set earlier; leaving the field out would keep it.
            "msgCall": self.msg_call.as_deref().unwrap_or(""),
            "groupsIgnore": self.groups_ignore,
            "alwaysOnline": self.always_online,
            "readMessages": self.read_messages,
            "readStatus": self.read_status,
            "syncFullHistory": self.sync_full_history,
        })
    }
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

impl PairingQr {
    fn from_json(value: &Value) -> Option<Self> {
        let field = |key: &str| value.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let qr = Self {
            image: field("base64"),
            code: field("code"),
            pairing_code: field("pairingCode"),
        };
        (qr.image.is_some() || qr.code.is_some() || qr.pairing_code.is_some()).then_some(qr)
    }
}

/// A newly created instance.
#[derive(Debug, Clone)]
pub struct CreatedInstance {
    /// The instance's own API token (`hash`), accepted on its routes instead of the global key.
    pub token: SecretString,
    /// Evolution's id of the instance.
    pub instance_id: Option<String>,
    /// The first QR code, when Evolution generated one right away.
    pub qr: Option<PairingQr>,
}

/// What asking an instance to connect gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// Scan this (or type the pairing code) on the phone.
    Qr(PairingQr),
    /// The number is already linked.
    AlreadyOpen,
    /// Connecting, but no QR code yet; it will arrive in a `qrcode.updated` webhook.
    Pending,
}

/// Evolution API v2.
#[derive(Debug, Clone)]
pub struct EvolutionProvider {
    client: reqwest::Client,
    typing_delay: Option<Duration>,
}

impl EvolutionProvider {
    /// A provider using `client`, whose timeouts the caller sets. The server URL is per channel.
    pub fn new(client: reqwest::Client) -> Self {
        Self {
            client,
            typing_delay: None,
        }
    }

    /// Shows "typing…" for `delay` before each message is delivered (Evolution's `delay`), so
    /// replies on a linked phone read less like a machine. Sends take that much longer.
    pub fn with_typing_delay(mut self, delay: Duration) -> Self {
        self.typing_delay = Some(delay).filter(|d| !d.is_zero());
        self
    }

    fn credentials(channel: &ChannelContext) -> Result<(&str, &SecretString), ProviderError> {
        match &channel.credentials {
            Credentials::Evolution {
                server_url, api_key, ..
            } => Ok((server_url.trim_end_matches('/'), api_key)),
            other => Err(ProviderError::Auth(format!(
                "the channel has {} credentials, not Evolution's",
                other.kind().as_str()
            ))),
        }
    }

    async fn call(
        &self,
        method: Method,
        server: &str,
        key: &SecretString,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Reply, ProviderError> {
        let url = endpoint(server.trim_end_matches('/'), segments)?;
        let mut request = self.client.request(method, url).header("apikey", secret_header(key)?);
        if let Some(body) = body {
            request = request.json(body);
        }
        let reply = execute(request).await?;
        if !reply.status.is_success() {
            return Err(evolution_error(&reply));
        }
        Ok(reply)
    }

    async fn channel_call(
        &self,
        method: Method,
        channel: &ChannelContext,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ProviderError> {
        let (server, key) = Self::credentials(channel)?;
        let (group, action) = route.split_once('/').unwrap_or((route, ""));
        self.call(method, server, key, &[group, action, &channel.route_key], body)
            .await
    }

    /// Creates `instance` with the global key, its webhook (token header, inline media) and its
    /// settings. Returns the instance token and the first QR code.
    pub async fn create_instance(
        &self,
        server: &str,
        global_key: &SecretString,
        instance: &str,
        webhook_url: &str,
        webhook_secret: &SecretString,
        settings: &InstanceSettings,
    ) -> Result<CreatedInstance, ProviderError> {
        let mut body = json!({
            "instanceName": instance,
            "integration": "WHATSAPP-BAILEYS",
            "qrcode": true,
            "webhook": webhook_config(webhook_url, webhook_secret, &WEBHOOK_EVENTS),
        });
        if let (Some(body), Value::Object(settings)) = (body.as_object_mut(), settings.to_json()) {
            body.extend(settings);
        }
        let reply = self
            .call(Method::POST, server, global_key, &["instance", "create"], Some(&body))
            .await?;
        let created: Value = reply.json("instance create")?;
        // v2 answers a plain string; v1 answered `{"apikey": ...}`.
        let token = match created.get("hash") {
            Some(Value::String(hash)) => Some(hash.clone()),
            Some(hash) => hash.get("apikey").and_then(Value::as_str).map(str::to_owned),
            None => None,
        }
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ProviderError::Permanent("instance created without a token (`hash`)".into()))?;
        Ok(CreatedInstance {
            token: SecretString::from(token),
            instance_id: created
                .pointer("/instance/instanceId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            qr: created.get("qrcode").and_then(PairingQr::from_json),
        })
    }

    /// Starts linking: a QR code to scan, or a pairing code when `pairing_number` (the phone's
    /// number, digits) is given.
    pub async fn connect(
        &self,
        channel: &ChannelContext,
        pairing_number: Option<&str>,
    ) -> Result<ConnectOutcome, ProviderError> {
        let (server, key) = Self::credentials(channel)?;
        let url = endpoint(server, &["instance", "connect", &channel.route_key])?;
        let mut request = self.client.get(url).header("apikey", secret_header(key)?);
        if let Some(number) = pairing_number {
            request = request.query(&[("number", number)]);
        }
        let reply = execute(request).await?;
        if !reply.status.is_success() {
            return Err(evolution_error(&reply));
        }
        let answer: Value = reply.json("connect")?;
        if answer.pointer("/instance/state").and_then(Value::as_str) == Some("open") {
            return Ok(ConnectOutcome::AlreadyOpen);
        }
        Ok(PairingQr::from_json(&answer).map_or(ConnectOutcome::Pending, ConnectOutcome::Qr))
    }

    /// The instance's connection state as Evolution sees it now.
    pub async fn connection_state(&self, channel: &ChannelContext) -> Result<ChannelState, ProviderError> {
        let reply = self
            .channel_call(Method::GET, channel, "instance/connectionState", None)
            .await?;
        let answer: Value = reply.json("connection state")?;
        let state = answer
            .pointer("/instance/state")
            .or_else(|| answer.get("state"))
            .and_then(Value::as_str)
            .unwrap_or("");
        channel_state(state).ok_or_else(|| ProviderError::Permanent(format!("unknown connection state `{state}`")))
    }

    /// Unlinks the phone; the instance stays and can be connected again. Evolution answers 400
    /// when it is not connected.
    pub async fn logout(&self, channel: &ChannelContext) -> Result<(), ProviderError> {
        self.channel_call(Method::DELETE, channel, "instance/logout", None)
            .await
            .map(drop)
    }

    /// Deletes the instance (Evolution logs it out first).
    pub async fn delete(&self, channel: &ChannelContext) -> Result<(), ProviderError> {
        self.channel_call(Method::DELETE, channel, "instance/delete", None)
            .await
            .map(drop)
    }

    /// Replaces the instance's settings.
    pub async fn set_settings(&self, channel: &ChannelContext, settings: &InstanceSettings) -> Result<(), ProviderError> {
        self.channel_call(Method::POST, channel, "settings/set", Some(&settings.to_json()))
            .await
            .map(drop)
    }

    /// Points the instance's webhook at `url`, sending `secret` in [`WEBHOOK_TOKEN_HEADER`] and
    /// media inline (base64) so voice notes need no second download.
    pub async fn set_webhook(
        &self,
        channel: &ChannelContext,
        url: &str,
        secret: &SecretString,
        events: &[&str],
    ) -> Result<(), ProviderError> {
        let body = json!({ "webhook": webhook_config(url, secret, events) });
        self.channel_call(Method::POST, channel, "webhook/set", Some(&body))
            .await
            .map(drop)
    }

    fn with_common(&self, mut body: Value, message: &Outbound) -> Value {
        if let Some(delay) = self.typing_delay {
            body["delay"] = json!(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        }
        // Evolution finds the quoted message by its key in its own store.
        if let Some(quoted) = &message.reply_to_message {
            body["quoted"] = json!({ "key": { "id": quoted } });
        }
        body
    }
}

fn webhook_config(url: &str, secret: &SecretString, events: &[&str]) -> Value {
    json!({
        "enabled": true,
        "url": url,
        "headers": { WEBHOOK_TOKEN_HEADER: secret.expose_secret() },
        "byEvents": false,
        "base64": true,
        "events": events,
    })
}

fn channel_state(state: &str) -> Option<ChannelState> {
    match state {
        "open" => Some(ChannelState::Connected),
        "connecting" => Some(ChannelState::Connecting),
        "close" => Some(ChannelState::Disconnected),
        "refused" => Some(ChannelState::Broken),
        _ => None,
    }
}

/// Maps Evolution's error envelope `{status, error, response: {message}}` by HTTP status.
fn evolution_error(reply: &Reply) -> ProviderError {
    let envelope: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let text = envelope
        .as_ref()
        .and_then(|e| e.pointer("/response/message").or_else(|| e.get("message")))
        .map(render)
        .filter(|t| !t.is_empty())
        .or_else(|| envelope.as_ref().and_then(|e| e.get("error")).map(render))
        .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).chars().take(300).collect());
    status_error(reply.status, &reply.headers, format!("HTTP {}: {text}", reply.status.as_u16()))
}

/// Evolution's `message` is a string, a list of strings, or a list of objects (e.g. a number
/// that is not on WhatsApp: `[{"exists": false, ...}]`).
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(render).collect::<Vec<_>>().join("; "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A WhatsApp JID for `to`: numbers get the user domain, JIDs pass through.
fn to_jid(to: &str) -> String {
    if to.contains('@') {
        to.to_owned()
    } else {
        format!("{to}@s.whatsapp.net")
    }
}

/// The user part of a JID, without the device suffix (`5511...:12@s.whatsapp.net` → `5511...`).
fn jid_user(jid: &str) -> &str {
    let user = jid.split('@').next().unwrap_or(jid);
    user.split(':').next().unwrap_or(user)
}

fn decode_base64(data: &str) -> Result<Vec<u8>, ProviderError> {
    let data = data.rsplit_once(";base64,").map_or(data, |(_, payload)| payload);
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| ProviderError::Permanent(format!("media is not valid base64: {e}")))
}

#[async_trait]
impl Provider for EvolutionProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Evolution
    }

    fn verify(&self, credentials: &Credentials, headers: &HeaderMap, _body: &[u8]) -> Result<(), ProviderError> {
        let Credentials::Evolution { webhook_secret, .. } = credentials else {
            return Err(ProviderError::BadSignature("the channel does not have Evolution credentials".into()));
        };
        let presented = headers
            .get(WEBHOOK_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
            })
            .ok_or_else(|| ProviderError::BadSignature(format!("missing {WEBHOOK_TOKEN_HEADER}")))?;
        if token_matches(presented.trim(), webhook_secret) {
            Ok(())
        } else {
            Err(ProviderError::BadSignature("webhook token does not match".into()))
        }
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<Event>, ProviderError> {
        parse_webhook(body)
    }

    async fn send(&self, channel: &ChannelContext, message: &Outbound) -> Result<Sent, ProviderError> {
        let (route, body) = match &message.body {
            OutboundBody::Text { text } => (
                "message/sendText",
                self.with_common(
                    json!({ "number": message.to, "text": text, "linkPreview": text.contains("://") }),
                    message,
                ),
            ),
            OutboundBody::Reaction { message_id, emoji } => (
                "message/sendReaction",
                json!({
                    "key": { "remoteJid": to_jid(&message.to), "fromMe": false, "id": message_id },
                    "reaction": emoji,
                }),
            ),
            OutboundBody::Media {
                kind,
                link,
                caption,
                filename,
            } => match kind.as_str() {
                "voice" => (
                    "message/sendWhatsAppAudio",
                    self.with_common(json!({ "number": message.to, "audio": link }), message),
                ),
                "image" | "video" | "document" | "audio" => {
                    let mut body = json!({ "number": message.to, "mediatype": kind, "media": link });
                    if let Some(caption) = caption {
                        body["caption"] = json!(caption);
                    }
                    if let Some(filename) = filename {
                        body["fileName"] = json!(filename);
                    }
                    ("message/sendMedia", self.with_common(body, message))
                }
                other => {
                    return Err(ProviderError::Unsupported(format!("Evolution cannot send `{other}` media")));
                }
            },
            OutboundBody::Template { .. } => {
                return Err(ProviderError::Unsupported("templates exist only on the Cloud API".into()));
            }
            OutboundBody::Buttons { .. } | OutboundBody::List { .. } => {
                return Err(ProviderError::Unsupported(
                    "WhatsApp Web numbers cannot send buttons or lists reliably".into(),
                ));
            }
        };
        let reply = self.channel_call(Method::POST, channel, route, Some(&body)).await?;
        let answer: Value = reply.json("send")?;
        let id = answer
            .pointer("/key/id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ProviderError::Permanent("send response without key.id".into()))?;
        Ok(Sent {
            provider_message_id: id.to_owned(),
        })
    }

    async fn fetch_media(&self, channel: &ChannelContext, media: &MediaRef) -> Result<Media, ProviderError> {
        if let Some(inline) = &media.inline_base64 {
            return Ok(Media {
                bytes: decode_base64(inline)?,
                mime_type: media.mime_type.clone(),
            });
        }
        if let Some(id) = &media.id {
            let body = json!({ "message": { "key": { "id": id } }, "convertToMp4": false });
            let reply = self
                .channel_call(Method::POST, channel, "chat/getBase64FromMediaMessage", Some(&body))
                .await?;
            let answer: Value = reply.json("media")?;
            let data = answer
                .get("base64")
                .and_then(Value::as_str)
                .ok_or_else(|| ProviderError::Permanent("media response without base64".into()))?;
            let mime_type = answer
                .get("mimetype")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| media.mime_type.clone());
            return Ok(Media {
                bytes: decode_base64(data)?,
                mime_type,
            });
        }
        if let Some(url) = &media.url {
            let url = reqwest::Url::parse(url).map_err(|e| ProviderError::Permanent(format!("bad media URL: {e}")))?;
            let reply = execute(self.client.get(url)).await?;
            if !reply.status.is_success() {
                return Err(evolution_error(&reply));
            }
            return Ok(super::meta::media_from(reply, media.mime_type.clone()));
        }
        Err(ProviderError::Permanent("the media has no inline data, id or URL".into()))
    }
}

// ---------------------------------------------------------------------------------------------
// Webhooks

fn parse_webhook(body: &[u8]) -> Result<Vec<Event>, ProviderError> {
    let envelope: Value =
        serde_json::from_slice(body).map_err(|e| ProviderError::BadPayload(format!("not JSON: {e}")))?;
    let event = envelope
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::BadPayload("not an Evolution webhook: no `event`".into()))?;
    let route = envelope
        .get("instance")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ProviderError::BadPayload("not an Evolution webhook: no `instance`".into()))?;
    // The body names events in dotted lowercase; configuration uses UPPER_SNAKE. Accept both.
    let event = event.to_ascii_lowercase().replace('_', ".");
    let data = envelope.get("data").unwrap_or(&Value::Null);
    let sent_at = envelope
        .get("date_time")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let items = || match data {
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        other => vec![other],
    };
    let events = match event.as_str() {
        "messages.upsert" => items().into_iter().map(|d| upsert_event(route, d)).collect(),
        "messages.update" => items()
            .into_iter()
            .map(|d| update_event(route, d, sent_at))
            .collect(),
        "send.message" => vec![ignored(route, "echo of a message sent through the API")],
        "connection.update" => vec![connection_event(route, data)],
        "qrcode.updated" => vec![qr_event(route, data)],
        "call" => items().into_iter().map(|d| call_event(route, d)).collect(),
        other => vec![ignored(route, &format!("evolution event {other}"))],
    };
    Ok(events)
}

fn ignored(route: &str, reason: &str) -> Event {
    Event::Ignored {
        route: Some(route.to_owned()),
        reason: reason.to_owned(),
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn upsert_event(route: &str, data: &Value) -> Event {
    let (Some(remote_jid), Some(id)) = (str_at(data, "/key/remoteJid"), str_at(data, "/key/id")) else {
        return ignored(route, "message without a key");
    };
    if remote_jid.ends_with("@g.us") {
        return ignored(route, "group");
    }
    if remote_jid.ends_with("@broadcast") {
        return ignored(route, "status broadcast");
    }
    if remote_jid.ends_with("@newsletter") {
        return ignored(route, "channel (newsletter)");
    }
    // Baileys 7 may address a chat by LID; the phone-number JID then comes in remoteJidAlt.
    let (from, reply_to) = if remote_jid.ends_with("@lid") {
        match str_at(data, "/key/remoteJidAlt").filter(|alt| alt.ends_with("@s.whatsapp.net")) {
            Some(alt) => (jid_user(alt), Some(alt)),
            None => (jid_user(remote_jid), Some(remote_jid)),
        }
    } else {
        (jid_user(remote_jid), None)
    };
    let message = data.get("message").unwrap_or(&Value::Null);
    let type_name = data
        .get("messageType")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| detect_type(message));
    let Some((kind, text, mut details)) = content(type_name.as_deref().unwrap_or(""), message, id) else {
        return ignored(route, &format!("{} message", type_name.as_deref().unwrap_or("empty")));
    };
    details.context_message_id = str_at(data, "/contextInfo/stanzaId")
        .or_else(|| {
            type_name
                .as_deref()
                .and_then(|t| message.get(t))
                .and_then(|inner| str_at(inner, "/contextInfo/stanzaId"))
        })
        .map(str::to_owned);
    let inbound = Inbound {
        provider_message_id: id.to_owned(),
        from: from.to_owned(),
        reply_to: reply_to.map(str::to_owned),
        contact_name: str_at(data, "/pushName").map(str::to_owned),
        timestamp: message_time(data.get("messageTimestamp")),
        kind,
        text,
        details,
    };
    if data.pointer("/key/fromMe").and_then(Value::as_bool) == Some(true) {
        Event::OwnMessage {
            route: route.to_owned(),
            message: inbound,
        }
    } else {
        Event::Message {
            route: route.to_owned(),
            message: inbound,
        }
    }
}

/// Baileys timestamps come as a number, a string, or a protobuf Long `{low, high}`.
fn message_time(value: Option<&Value>) -> DateTime<Utc> {
    if let Some(low) = value.and_then(|v| v.get("low")).and_then(Value::as_i64) {
        let high = value.and_then(|v| v.get("high")).and_then(Value::as_i64).unwrap_or(0);
        if let Some(at) = DateTime::from_timestamp((high << 32) | (low & 0xffff_ffff), 0) {
            return at;
        }
    }
    timestamp_or_now(value)
}

/// Keys that only carry encryption or device metadata next to the real content.
const METADATA_KEYS: &[&str] = &["messageContextInfo", "base64", "mediaUrl"];

fn detect_type(message: &Value) -> Option<String> {
    message
        .as_object()?
        .keys()
        .find(|k| !METADATA_KEYS.contains(&k.as_str()))
        .cloned()
}

/// Kind, text and details of an Evolution message, or `None` for protocol traffic that is not a
/// customer message at all (deletions, key distribution, history sync notices).
fn content(type_name: &str, message: &Value, id: &str) -> Option<(MessageKind, Option<String>, MessageDetails)> {
    let mut details = MessageDetails::default();
    let inner = message.get(type_name).unwrap_or(&Value::Null);
    let text_at = |pointer: &str| str_at(inner, pointer).map(str::to_owned);
    match type_name {
        "conversation" => {
            if let Some(text) = message.get("conversation").and_then(Value::as_str) {
                return Some((MessageKind::Text, Some(text.to_owned()), details));
            }
        }
        "extendedTextMessage" => {
            if let Some(text) = text_at("/text") {
                return Some((MessageKind::Text, Some(text), details));
            }
        }
        "imageMessage" | "videoMessage" | "audioMessage" | "documentMessage" | "stickerMessage" | "ptvMessage" => {
            let kind = match type_name {
                "imageMessage" => MessageKind::Image,
                "videoMessage" | "ptvMessage" => MessageKind::Video,
                "audioMessage" => MessageKind::Audio,
                "documentMessage" => MessageKind::Document,
                _ => MessageKind::Sticker,
            };
            let media = media_ref(inner, message, id);
            let caption = media.caption.clone();
            details.media = Some(media);
            return Some((kind, caption, details));
        }
        "documentWithCaptionMessage" => {
            let document = message
                .pointer("/documentWithCaptionMessage/message/documentMessage")
                .unwrap_or(&Value::Null);
            let media = media_ref(document, message, id);
            let caption = media.caption.clone();
            details.media = Some(media);
            return Some((MessageKind::Document, caption, details));
        }
        "locationMessage" | "liveLocationMessage" => {
            let coordinate = |key: &str| inner.get(key).and_then(Value::as_f64);
            if let (Some(latitude), Some(longitude)) = (coordinate("degreesLatitude"), coordinate("degreesLongitude")) {
                details.location = Some(Location {
                    latitude,
                    longitude,
                    name: text_at("/name"),
                    address: text_at("/address"),
                });
                return Some((MessageKind::Location, None, details));
            }
        }
        "reactionMessage" => {
            if let Some(message_id) = text_at("/key/id") {
                details.reaction = Some(Reaction {
                    message_id,
                    emoji: text_at("/text"),
                });
                return Some((MessageKind::Reaction, None, details));
            }
        }
        "buttonsResponseMessage" | "templateButtonReplyMessage" | "listResponseMessage" => {
            let (id, title) = match type_name {
                "buttonsResponseMessage" => (text_at("/selectedButtonId"), text_at("/selectedDisplayText")),
                "templateButtonReplyMessage" => (text_at("/selectedId"), text_at("/selectedDisplayText")),
                _ => (text_at("/singleSelectReply/selectedRowId"), text_at("/title")),
            };
            if let Some(id) = id {
                let title = title.unwrap_or_else(|| id.clone());
                details.interactive = Some(InteractiveReply {
                    id,
                    title: title.clone(),
                    description: text_at("/description"),
                });
                return Some((MessageKind::Interactive, Some(title), details));
            }
        }
        "protocolMessage" | "senderKeyDistributionMessage" | "messageContextInfo" | "" => return None,
        _ => {}
    }
    details.original_type = Some(if type_name.is_empty() { "unknown".into() } else { type_name.into() });
    Some((MessageKind::Unsupported, None, details))
}

fn media_ref(inner: &Value, message: &Value, id: &str) -> MediaRef {
    let text = |key: &str| inner.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    MediaRef {
        // Evolution downloads media by the message's key.
        id: Some(id.to_owned()),
        // `url` in the message is the encrypted CDN file; only an S3 copy is directly usable.
        url: str_at(message, "/mediaUrl").map(str::to_owned),
        mime_type: text("mimetype"),
        sha256: text("fileSha256"),
        filename: text("fileName"),
        caption: text("caption"),
        voice: inner.get("ptt").and_then(Value::as_bool).unwrap_or(false),
        seconds: inner.get("seconds").and_then(Value::as_u64).and_then(|s| u32::try_from(s).ok()),
        inline_base64: str_at(message, "/base64").map(str::to_owned),
    }
}

fn update_event(route: &str, data: &Value, sent_at: Option<DateTime<Utc>>) -> Event {
    let from_me = data
        .get("fromMe")
        .or_else(|| data.pointer("/key/fromMe"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !from_me {
        // Acks of the customer's own messages (we read them): not a status of ours.
        return ignored(route, "status of a customer message");
    }
    let Some(id) = str_at(data, "/keyId").or_else(|| str_at(data, "/key/id")) else {
        return ignored(route, "status without a message id");
    };
    let status = match data.get("status") {
        Some(Value::String(s)) => s.clone(),
        // Baileys' numeric WAMessageStatus.
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => "ERROR".into(),
            Some(1) => "PENDING".into(),
            Some(2) => "SERVER_ACK".into(),
            Some(3) => "DELIVERY_ACK".into(),
            Some(4) => "READ".into(),
            Some(5) => "PLAYED".into(),
            _ => n.to_string(),
        },
        _ => String::new(),
    };
    let (status, error) = match status.as_str() {
        "SERVER_ACK" => (DeliveryStatus::Sent, None),
        "DELIVERY_ACK" => (DeliveryStatus::Delivered, None),
        "READ" => (DeliveryStatus::Read, None),
        "PLAYED" => (DeliveryStatus::Played, None),
        "ERROR" => (
            DeliveryStatus::Failed,
            Some(DeliveryError {
                code: None,
                title: "WhatsApp reported an error delivering the message".into(),
                detail: None,
            }),
        ),
        other => return ignored(route, &format!("status `{other}` is not tracked")),
    };
    Event::Status {
        route: route.to_owned(),
        update: StatusUpdate {
            provider_message_id: id.to_owned(),
            status,
            timestamp: sent_at.unwrap_or_else(Utc::now),
            error,
        },
    }
}

/// Baileys' disconnect reasons, in words.
fn disconnect_reason(code: i64) -> Option<&'static str> {
    Some(match code {
        401 => "logged out from the phone",
        403 => "forbidden by WhatsApp",
        408 => "connection lost or QR code timed out",
        411 => "multi-device mismatch",
        428 => "connection closed",
        440 => "replaced by another session",
        500 => "bad session",
        503 => "WhatsApp unavailable",
        515 => "restart required",
        _ => return None,
    })
}

fn connection_event(route: &str, data: &Value) -> Event {
    let state_name = data.get("state").and_then(Value::as_str).unwrap_or("");
    let Some(state) = channel_state(state_name) else {
        return ignored(route, &format!("connection state `{state_name}`"));
    };
    let code = data.get("statusReason").and_then(Value::as_i64);
    let detail = match (state, code) {
        (ChannelState::Connected | ChannelState::Connecting, _) | (_, None) => None,
        (_, Some(code)) => Some(match disconnect_reason(code) {
            Some(words) => format!("{state_name}: {words} ({code})"),
            None => format!("{state_name} ({code})"),
        }),
    };
    Event::Connection {
        route: route.to_owned(),
        state,
        detail,
    }
}

fn qr_event(route: &str, data: &Value) -> Event {
    if let Some(qr) = data.get("qrcode").and_then(PairingQr::from_json) {
        return Event::QrCode {
            route: route.to_owned(),
            image: qr.image,
            code: qr.code,
            pairing_code: qr.pairing_code,
        };
    }
    // Evolution stops generating codes after QRCODE_LIMIT and says so in this event.
    match str_at(data, "/message") {
        Some(message) => Event::Connection {
            route: route.to_owned(),
            state: ChannelState::Disconnected,
            detail: Some(message.to_owned()),
        },
        None => ignored(route, "qrcode.updated without a code"),
    }
}

fn call_event(route: &str, data: &Value) -> Event {
    let id = str_at(data, "/id");
    // `from` may be a LID; `callerPn` is the phone number when Baileys knows it.
    let from = str_at(data, "/callerPn").or_else(|| str_at(data, "/from"));
    let status = str_at(data, "/status");
    match (id, from, status) {
        (Some(id), Some(from), Some(status)) => Event::Call {
            route: route.to_owned(),
            call_id: id.to_owned(),
            from: jid_user(from).to_owned(),
            status: status.to_owned(),
        },
        _ => ignored(route, "call event without id, caller or status"),
    }
}

