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
    endpoint, execute, secret_header, status_error, timestamp_or_now, token_matches,
    ChannelContext, ConnectOutcome, Credentials, Event, Field, Inbound, Media, Outbound,
    OutboundBody, Pairing, PairingQr, Provider, ProviderError, Reply, Sent, StatusUpdate,
    WebhookScope,
};
use crate::domain::{
    ChannelConfig, ChannelState, DeliveryError, DeliveryStatus, FieldError, InteractiveReply,
    Location, MediaRef, MessageDetails, MessageKind, ProviderKind, Reaction,
};
use crate::net::GuardedClient;

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

/// A QR code from Evolution's answer (`base64`, `code`, `pairingCode`), if it has one.
fn pairing_qr(value: &Value) -> Option<PairingQr> {
    let field = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let qr = PairingQr {
        image: field("base64"),
        code: field("code"),
        pairing_code: field("pairingCode"),
    };
    (qr.image.is_some() || qr.code.is_some() || qr.pairing_code.is_some()).then_some(qr)
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

/// An Evolution channel's secrets.
#[derive(serde::Deserialize)]
struct EvolutionCredentials {
    /// Evolution server base URL, e.g. `http://127.0.0.1:8081`.
    server_url: String,
    /// `apikey` header value (global key or the instance token).
    api_key: SecretString,
    /// Shared secret Evolution sends back in a header on every webhook.
    webhook_secret: SecretString,
}

/// The fields of [`EvolutionCredentials`].
const FIELDS: &[Field] = &[
    Field::required("server_url"),
    Field::required("api_key"),
    Field::generated("webhook_secret"),
];

/// Evolution API v2.
#[derive(Debug, Clone)]
pub struct EvolutionProvider {
    client: GuardedClient,
    typing_delay: Option<Duration>,
}

impl EvolutionProvider {
    /// A provider using `client`, whose timeouts the caller sets. The server URL is per channel,
    /// so every request goes through the client's URL guard.
    pub fn new(client: GuardedClient) -> Self {
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

    fn credentials(channel: &ChannelContext) -> Result<(String, SecretString), ProviderError> {
        let c = channel.credentials.read::<EvolutionCredentials>()?;
        super::non_empty(&c.api_key, "API key")?;
        Ok((c.server_url.trim_end_matches('/').to_owned(), c.api_key))
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
        let mut request = self
            .client
            .request(method, url)?
            .header("apikey", secret_header(key)?);
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
        self.call(
            method,
            &server,
            &key,
            &[group, action, &channel.route_key],
            body,
        )
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
            .call(
                Method::POST,
                server,
                global_key,
                &["instance", "create"],
                Some(&body),
            )
            .await?;
        let created: Value = reply.json("instance create")?;
        // v2 answers a plain string; v1 answered `{"apikey": ...}`.
        let token = match created.get("hash") {
            Some(Value::String(hash)) => Some(hash.clone()),
            Some(hash) => hash
                .get("apikey")
                .and_then(Value::as_str)
                .map(str::to_owned),
            None => None,
        }
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ProviderError::Permanent("instance created without a token (`hash`)".into())
        })?;
        Ok(CreatedInstance {
            token: SecretString::from(token),
            instance_id: created
                .pointer("/instance/instanceId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            qr: created.get("qrcode").and_then(pairing_qr),
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
        let url = endpoint(&server, &["instance", "connect", &channel.route_key])?;
        let mut request = self
            .client
            .request(Method::GET, url)?
            .header("apikey", secret_header(&key)?);
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
        Ok(pairing_qr(&answer).map_or(ConnectOutcome::Pending, ConnectOutcome::Qr))
    }

    /// The instance's connection state as Evolution sees it now.
    pub async fn connection_state(
        &self,
        channel: &ChannelContext,
    ) -> Result<ChannelState, ProviderError> {
        let reply = self
            .channel_call(Method::GET, channel, "instance/connectionState", None)
            .await?;
        let answer: Value = reply.json("connection state")?;
        let state = answer
            .pointer("/instance/state")
            .or_else(|| answer.get("state"))
            .and_then(Value::as_str)
            .unwrap_or("");
        channel_state(state)
            .ok_or_else(|| ProviderError::Permanent(format!("unknown connection state `{state}`")))
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
    pub async fn set_settings(
        &self,
        channel: &ChannelContext,
        settings: &InstanceSettings,
    ) -> Result<(), ProviderError> {
        self.channel_call(
            Method::POST,
            channel,
            "settings/set",
            Some(&settings.to_json()),
        )
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
        // Media is fetched by message id when it is needed (`getBase64FromMediaMessage`): inline
        // base64 would make a long voice note or a video outgrow any sane webhook body limit.
        "base64": false,
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

/// Maps Evolution's error envelope `{status, error, response: {message}}` by HTTP status. The
/// server is a URL the channel's owner chose, so its answer is not handed back to the caller as
/// it came: only the message of an Evolution error envelope, cut to 200 characters; anything
/// else is logged at debug level and named by its status alone.
fn evolution_error(reply: &Reply) -> ProviderError {
    let envelope: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let text = envelope
        .as_ref()
        .filter(|e| e.get("status").is_some() && e.get("response").is_some_and(Value::is_object))
        .and_then(|e| e.pointer("/response/message"))
        .map(render)
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().take(200).collect::<String>());
    let message = match text {
        Some(text) => format!("HTTP {}: {text}", reply.status.as_u16()),
        None => {
            tracing::debug!(
                status = reply.status.as_u16(),
                body = %String::from_utf8_lossy(&reply.body).chars().take(300).collect::<String>(),
                "Evolution answered without its error envelope"
            );
            format!(
                "HTTP {} (not an Evolution error answer)",
                reply.status.as_u16()
            )
        }
    };
    status_error(reply.status, &reply.headers, message)
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
    let data = data
        .rsplit_once(";base64,")
        .map_or(data, |(_, payload)| payload);
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| ProviderError::Permanent(format!("media is not valid base64: {e}")))
}

#[async_trait]
impl Pairing for EvolutionProvider {
    async fn create_instance(
        &self,
        route_key: &str,
        credentials: &Credentials,
        webhook_url: &str,
        settings: &ChannelConfig,
    ) -> Result<Credentials, ProviderError> {
        let c = credentials.read::<EvolutionCredentials>()?;
        let created = EvolutionProvider::create_instance(
            self,
            &c.server_url,
            &c.api_key,
            route_key,
            webhook_url,
            &c.webhook_secret,
            &InstanceSettings::from(settings),
        )
        .await?;
        // The instance token replaces the global key: least privilege from here on.
        let mut kept = credentials.clone();
        kept.set("api_key", created.token.expose_secret());
        Ok(kept)
    }

    async fn configure(
        &self,
        channel: &ChannelContext,
        webhook_url: &str,
        settings: &ChannelConfig,
    ) -> Result<(), ProviderError> {
        let c = channel.credentials.read::<EvolutionCredentials>()?;
        self.set_webhook(channel, webhook_url, &c.webhook_secret, &WEBHOOK_EVENTS)
            .await?;
        self.set_settings(channel, &InstanceSettings::from(settings))
            .await
    }

    async fn connect(
        &self,
        channel: &ChannelContext,
        pairing_number: Option<&str>,
    ) -> Result<ConnectOutcome, ProviderError> {
        EvolutionProvider::connect(self, channel, pairing_number).await
    }

    async fn connection_state(
        &self,
        channel: &ChannelContext,
    ) -> Result<ChannelState, ProviderError> {
        EvolutionProvider::connection_state(self, channel).await
    }

    async fn logout(&self, channel: &ChannelContext) -> Result<(), ProviderError> {
        EvolutionProvider::logout(self, channel).await
    }

    async fn delete(&self, channel: &ChannelContext) -> Result<(), ProviderError> {
        EvolutionProvider::delete(self, channel).await
    }
}

#[async_trait]
impl Provider for EvolutionProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Evolution
    }

    fn accept_credentials(
        &self,
        given: Credentials,
        previous: Option<&Credentials>,
    ) -> Result<Credentials, Vec<FieldError>> {
        let mut accepted = Credentials::accept(given, previous, FIELDS, "evolution")?;
        let url = accepted.get("server_url").unwrap_or_default().to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || reqwest::Url::parse(&url).is_err()
        {
            return Err(vec![FieldError::new(
                "credentials.server_url",
                "must be an http:// or https:// URL",
            )]);
        }
        accepted.set("server_url", url.trim_end_matches('/'));
        Ok(accepted)
    }

    fn webhooks(&self) -> Option<WebhookScope> {
        Some(WebhookScope::Channel)
    }

    fn webhook_body_limit(&self, default: usize) -> usize {
        default.max(MAX_WEBHOOK_BYTES)
    }

    fn urls(&self, credentials: &Credentials) -> Vec<(&'static str, String)> {
        credentials
            .get("server_url")
            .map(|url| vec![("server_url", url.to_owned())])
            .unwrap_or_default()
    }

    fn pairing(&self) -> Option<&dyn Pairing> {
        Some(self)
    }

    fn verify(
        &self,
        credentials: &Credentials,
        headers: &HeaderMap,
        _body: &[u8],
    ) -> Result<(), ProviderError> {
        let webhook_secret = credentials
            .read::<EvolutionCredentials>()
            .map_err(|_| {
                ProviderError::BadSignature(
                    "the channel does not have Evolution credentials".into(),
                )
            })?
            .webhook_secret;
        // An empty secret would let an empty header through.
        super::non_empty(&webhook_secret, "webhook secret")
            .map_err(|e| ProviderError::BadSignature(e.to_string()))?;
        let webhook_secret = &webhook_secret;
        let presented = headers
            .get(WEBHOOK_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
            })
            .ok_or_else(|| {
                ProviderError::BadSignature(format!("missing {WEBHOOK_TOKEN_HEADER}"))
            })?;
        if token_matches(presented.trim(), webhook_secret) {
            Ok(())
        } else {
            Err(ProviderError::BadSignature(
                "webhook token does not match".into(),
            ))
        }
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<Event>, ProviderError> {
        parse_webhook(body)
    }

    async fn send(
        &self,
        channel: &ChannelContext,
        message: &Outbound,
    ) -> Result<Sent, ProviderError> {
        let (route, body) = match &message.body {
            OutboundBody::Text { text } => (
                "message/sendText",
                self.with_common(
                    json!({ "number": message.to, "text": text, "linkPreview": super::meta::has_link(text) }),
                    message,
                ),
            ),
            // Palaver only reacts to the customer's messages, hence `fromMe: false`.
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
        let reply = self
            .channel_call(Method::POST, channel, route, Some(&body))
            .await?;
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

    async fn fetch_media(
        &self,
        channel: &ChannelContext,
        media: &MediaRef,
    ) -> Result<Media, ProviderError> {
        if let Some(inline) = &media.inline_base64 {
            return Ok(Media {
                bytes: decode_base64(inline)?,
                mime_type: media.mime_type.clone(),
            });
        }
        if let Some(id) = &media.id {
            let body = json!({ "message": { "key": { "id": id } }, "convertToMp4": false });
            let reply = self
                .channel_call(
                    Method::POST,
                    channel,
                    "chat/getBase64FromMediaMessage",
                    Some(&body),
                )
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
            let url = reqwest::Url::parse(url)
                .map_err(|e| ProviderError::Permanent(format!("bad media URL: {e}")))?;
            let reply = super::execute_limited(
                self.client.request(Method::GET, url)?,
                super::MAX_MEDIA_BYTES,
            )
            .await?;
            if !reply.status.is_success() {
                return Err(evolution_error(&reply));
            }
            return Ok(super::meta::media_from(reply, media.mime_type.clone()));
        }
        Err(ProviderError::Permanent(
            "the media has no inline data, id or URL".into(),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Webhooks

fn parse_webhook(body: &[u8]) -> Result<Vec<Event>, ProviderError> {
    let envelope: Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::BadPayload(format!("not JSON: {e}")))?;
    let event = envelope
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::BadPayload("not an Evolution webhook: no `event`".into()))?;
    let route = envelope
        .get("instance")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            ProviderError::BadPayload("not an Evolution webhook: no `instance`".into())
        })?;
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
        "messages.upsert" => items()
            .into_iter()
            .map(|d| upsert_event(route, d))
            .collect(),
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
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn upsert_event(route: &str, data: &Value) -> Event {
    let (Some(remote_jid), Some(id)) = (str_at(data, "/key/remoteJid"), str_at(data, "/key/id"))
    else {
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
    let outer = data.get("message").unwrap_or(&Value::Null);
    let mut message = outer;
    let mut type_name = data
        .get("messageType")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| detect_type(outer));
    // Disappearing, view-once and captioned-document messages wrap the real one.
    while let Some(wrapper) = type_name.as_deref().filter(|t| WRAPPERS.contains(t)) {
        let Some(inner) = message.get(wrapper).and_then(|w| w.get("message")) else {
            break;
        };
        message = inner;
        type_name = detect_type(inner);
    }
    let type_name = type_name.unwrap_or_default();
    let Some((kind, text, mut details)) = content(&type_name, message, outer, id) else {
        let what = if type_name.is_empty() {
            "empty"
        } else {
            &type_name
        };
        return ignored(route, &format!("{what} message"));
    };
    details.context_message_id = str_at(data, "/contextInfo/stanzaId")
        .or_else(|| {
            message
                .get(&type_name)
                .and_then(|inner| str_at(inner, "/contextInfo/stanzaId"))
        })
        .map(str::to_owned);
    let inbound = Inbound {
        provider_message_id: id.to_owned(),
        from: from.to_owned(),
        reply_to: reply_to.map(str::to_owned),
        user_id: None,
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
        let high = value
            .and_then(|v| v.get("high"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if let Some(at) = DateTime::from_timestamp((high << 32) | (low & 0xffff_ffff), 0) {
            return at;
        }
    }
    timestamp_or_now(value)
}

/// Message types that only wrap another message under `.message`.
const WRAPPERS: &[&str] = &[
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
];

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
fn content(
    type_name: &str,
    message: &Value,
    outer: &Value,
    id: &str,
) -> Option<(MessageKind, Option<String>, MessageDetails)> {
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
        "imageMessage" | "videoMessage" | "audioMessage" | "documentMessage" | "stickerMessage"
        | "ptvMessage" => {
            let kind = match type_name {
                "imageMessage" => MessageKind::Image,
                "videoMessage" | "ptvMessage" => MessageKind::Video,
                "audioMessage" => MessageKind::Audio,
                "documentMessage" => MessageKind::Document,
                _ => MessageKind::Sticker,
            };
            let media = media_ref(inner, outer, id);
            let caption = media.caption.clone();
            details.media = Some(media);
            return Some((kind, caption, details));
        }
        "locationMessage" | "liveLocationMessage" => {
            let coordinate = |key: &str| inner.get(key).and_then(Value::as_f64);
            if let (Some(latitude), Some(longitude)) = (
                coordinate("degreesLatitude"),
                coordinate("degreesLongitude"),
            ) {
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
                "buttonsResponseMessage" => (
                    text_at("/selectedButtonId"),
                    text_at("/selectedDisplayText"),
                ),
                "templateButtonReplyMessage" => {
                    (text_at("/selectedId"), text_at("/selectedDisplayText"))
                }
                _ => (
                    text_at("/singleSelectReply/selectedRowId"),
                    text_at("/title"),
                ),
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
        "protocolMessage" | "senderKeyDistributionMessage" | "messageContextInfo" | "" => {
            return None
        }
        _ => {}
    }
    details.original_type = Some(if type_name.is_empty() {
        "unknown".into()
    } else {
        type_name.into()
    });
    Some((MessageKind::Unsupported, None, details))
}

/// The most inline base64 kept with a stored message (about a minute of voice note); media sent
/// inline beyond it is fetched by message id when it is needed.
const MAX_KEPT_INLINE_BASE64: usize = 256 * 1024;

/// The webhook body Evolution may send: instances whose webhook was configured elsewhere may
/// still carry media inline, and WhatsApp media reach 16 MB (about 21 MB as base64).
pub const MAX_WEBHOOK_BYTES: usize = 32 * 1024 * 1024;

/// `outer` is the webhook's message object, where Evolution adds `base64` and `mediaUrl`.
fn media_ref(inner: &Value, outer: &Value, id: &str) -> MediaRef {
    let text = |key: &str| {
        inner
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    MediaRef {
        // Evolution downloads media by the message's key.
        id: Some(id.to_owned()),
        // `url` in the message is the encrypted CDN file; only an S3 copy is directly usable.
        url: str_at(outer, "/mediaUrl").map(str::to_owned),
        mime_type: text("mimetype"),
        sha256: text("fileSha256"),
        filename: text("fileName"),
        caption: text("caption"),
        voice: inner.get("ptt").and_then(Value::as_bool).unwrap_or(false),
        seconds: inner
            .get("seconds")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok()),
        // Small inline media is kept (no second download); larger media is fetched by id when
        // needed rather than stored with the message.
        inline_base64: str_at(outer, "/base64")
            .filter(|b| b.len() <= MAX_KEPT_INLINE_BASE64)
            .map(str::to_owned),
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
            reference: None,
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
        // Evolution refuses the connection only when the QR code limit is reached.
        (ChannelState::Broken, Some(code)) => {
            Some(format!("{state_name}: QR code limit reached ({code})"))
        }
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
    if let Some(qr) = data.get("qrcode").and_then(pairing_qr) {
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::providers::test_support::{
        at, channel, check_webhook_snapshots, fixture, fixture_json, fixture_names, ignored,
    };

    const ROUTE: &str = "support-bot";
    const CUSTOMER: &str = "5511988887777";
    const API_KEY: &str = "instance-api-key";
    const SECRET: &str = "webhook-secret-value";

    fn credentials(server: &str) -> Credentials {
        Credentials::from_pairs([
            ("server_url", server),
            ("api_key", API_KEY),
            ("webhook_secret", SECRET),
        ])
    }

    fn evolution() -> EvolutionProvider {
        EvolutionProvider::new(GuardedClient::allowing_private())
    }

    #[test]
    fn every_webhook_fixture_matches_its_snapshot() {
        let names = fixture_names("evolution");
        let webhooks = names
            .iter()
            .map(String::as_str)
            .filter(|n| n.starts_with("webhook."));
        check_webhook_snapshots(&evolution(), "evolution", webhooks, |_, b| b);
    }

    #[test]
    fn rest_bodies_are_not_webhooks() {
        for name in fixture_names("evolution") {
            if !name.starts_with("webhook.") {
                let parsed = evolution().parse(&fixture("evolution", &name));
                assert!(
                    matches!(parsed, Err(ProviderError::BadPayload(_))),
                    "{name}: {parsed:?}"
                );
            }
        }
    }

    fn envelope(event: &str, data: Value) -> Vec<u8> {
        json!({"event": event, "instance": ROUTE, "data": data, "date_time": "2025-06-08T18:39:43.512Z"})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn other_shapes_evolution_emits() {
        let upsert = |remote_jid: &str, message: Value, message_type: Option<&str>| {
            let mut data = json!({
                "key": {"remoteJid": remote_jid, "fromMe": false, "id": "ID1"},
                "pushName": "Ana",
                "message": message,
                "messageTimestamp": {"low": 1749408000, "high": 0, "unsigned": true},
            });
            if let Some(t) = message_type {
                data["messageType"] = json!(t);
            }
            let events = evolution()
                .parse(&envelope("MESSAGES_UPSERT", data))
                .unwrap();
            assert_eq!(events.len(), 1);
            events.into_iter().next().unwrap()
        };
        let person = "351912345678@s.whatsapp.net";
        let only = |event: Event| match event {
            Event::Message { message, .. } => message,
            other => panic!("{other:?}"),
        };

        assert_eq!(
            upsert("1203630@g.us", json!({"conversation": "hi"}), None),
            ignored(Some(ROUTE), "group")
        );
        assert_eq!(
            upsert("status@broadcast", json!({"conversation": "hi"}), None),
            ignored(Some(ROUTE), "status broadcast")
        );
        assert_eq!(
            upsert(
                person,
                json!({"protocolMessage": {"type": "REVOKE"}}),
                Some("protocolMessage")
            ),
            ignored(Some(ROUTE), "protocolMessage message")
        );

        let text = only(upsert(
            "351912345678:3@s.whatsapp.net",
            json!({"conversation": "olá"}),
            None,
        ));
        assert_eq!(
            (text.from.as_str(), text.text.as_deref(), text.timestamp),
            ("351912345678", Some("olá"), at(1749408000))
        );

        let lid_only = only(upsert(
            "99887766@lid",
            json!({"conversation": "x"}),
            Some("conversation"),
        ));
        assert_eq!(
            (lid_only.from.as_str(), lid_only.reply_to.as_deref()),
            ("99887766", Some("99887766@lid"))
        );

        let location = only(upsert(
            person,
            json!({"locationMessage": {"degreesLatitude": 38.7, "degreesLongitude": -9.1, "name": "Loja"}}),
            Some("locationMessage"),
        ));
        assert_eq!(location.kind, MessageKind::Location);
        assert_eq!(
            location.details.location.map(|l| (l.latitude, l.longitude)),
            Some((38.7, -9.1))
        );

        let reaction = only(upsert(
            person,
            json!({"reactionMessage": {"key": {"id": "3EB0SENT1"}, "text": ""}}),
            Some("reactionMessage"),
        ));
        assert_eq!(
            reaction.details.reaction,
            Some(Reaction {
                message_id: "3EB0SENT1".into(),
                emoji: None
            })
        );

        let list = only(upsert(
            person,
            json!({"listResponseMessage": {"title": "Billing", "singleSelectReply": {"selectedRowId": "topic_billing"}}}),
            Some("listResponseMessage"),
        ));
        assert_eq!(
            (list.kind, list.text.as_deref()),
            (MessageKind::Interactive, Some("Billing"))
        );
        assert_eq!(
            list.details.interactive.map(|i| i.id),
            Some("topic_billing".into())
        );

        let document = only(upsert(
            person,
            json!({"documentWithCaptionMessage": {"message": {"documentMessage": {
                "fileName": "nota.pdf", "mimetype": "application/pdf", "caption": "segue"}}},
                "mediaUrl": "https://s3.example.com/nota.pdf"}),
            Some("documentWithCaptionMessage"),
        ));
        assert_eq!(
            (document.kind, document.text.as_deref()),
            (MessageKind::Document, Some("segue"))
        );
        let media = document.details.media.unwrap();
        assert_eq!(media.filename.as_deref(), Some("nota.pdf"));
        assert_eq!(
            media.url.as_deref(),
            Some("https://s3.example.com/nota.pdf")
        );

        let ephemeral = only(upsert(
            person,
            json!({"ephemeralMessage": {"message": {"extendedTextMessage": {
                "text": "sumiu", "contextInfo": {"stanzaId": "Q1", "expiration": 604800}}}}}),
            Some("ephemeralMessage"),
        ));
        assert_eq!(
            (
                ephemeral.kind,
                ephemeral.text.as_deref(),
                ephemeral.details.context_message_id.as_deref()
            ),
            (MessageKind::Text, Some("sumiu"), Some("Q1"))
        );

        let poll = only(upsert(
            person,
            json!({"pollCreationMessageV3": {"name": "?"}}),
            Some("pollCreationMessageV3"),
        ));
        assert_eq!(
            (poll.kind, poll.details.original_type.as_deref()),
            (MessageKind::Unsupported, Some("pollCreationMessageV3"))
        );

        // Numeric Baileys statuses, customer-message acks and untracked statuses.
        let update = |data: Value| {
            evolution()
                .parse(&envelope("messages.update", data))
                .unwrap()
                .remove(0)
        };
        let Event::Status {
            update: delivered, ..
        } = update(json!({"keyId": "A", "fromMe": true, "status": 3}))
        else {
            panic!()
        };
        assert_eq!(delivered.status, DeliveryStatus::Delivered);
        let Event::Status { update: failed, .. } =
            update(json!({"key": {"id": "A", "fromMe": true}, "status": "ERROR"}))
        else {
            panic!()
        };
        assert_eq!(failed.status, DeliveryStatus::Failed);
        assert!(failed.error.is_some());
        assert_eq!(
            update(json!({"keyId": "A", "fromMe": false, "status": "READ"})),
            ignored(Some(ROUTE), "status of a customer message")
        );
        assert_eq!(
            update(json!({"keyId": "A", "fromMe": true, "status": "PENDING"})),
            ignored(Some(ROUTE), "status `PENDING` is not tracked")
        );

        assert_eq!(
            evolution()
                .parse(&envelope("contacts.update", json!([])))
                .unwrap(),
            vec![ignored(Some(ROUTE), "evolution event contacts.update")]
        );
        for bad in [
            &b"{}"[..],
            b"[1]",
            b"nope",
            br#"{"event":"messages.upsert"}"#,
        ] {
            assert!(matches!(
                evolution().parse(bad),
                Err(ProviderError::BadPayload(_))
            ));
        }
    }

    #[test]
    fn truncated_bodies_never_panic() {
        let evolution = evolution();
        for file in fixture_names("evolution") {
            let body = fixture("evolution", &file);
            for end in (0..body.len()).step_by(5) {
                let _ = evolution.parse(&body[..end]);
            }
        }
    }

    #[test]
    fn webhook_token_is_checked_in_either_header() {
        let body = fixture(
            "evolution",
            "webhook.messages.upsert.text_conversation.json",
        );
        let credentials = credentials("http://unused");
        let with = |name: &str, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
            headers
        };
        let accepted = [
            with(WEBHOOK_TOKEN_HEADER, SECRET),
            with("X-Palaver-Webhook-Token", SECRET),
            with("authorization", &format!("Bearer {SECRET}")),
        ];
        for headers in accepted {
            assert!(
                evolution().verify(&credentials, &headers, &body).is_ok(),
                "{headers:?}"
            );
        }
        let refused = [
            HeaderMap::new(),
            with(WEBHOOK_TOKEN_HEADER, "wrong"),
            with(WEBHOOK_TOKEN_HEADER, &format!("{SECRET}x")),
            with(WEBHOOK_TOKEN_HEADER, ""),
            with("authorization", SECRET),
            with("authorization", "Bearer wrong"),
            with("apikey", SECRET),
        ];
        for headers in refused {
            assert!(
                matches!(
                    evolution().verify(&credentials, &headers, &body),
                    Err(ProviderError::BadSignature(_))
                ),
                "{headers:?}"
            );
        }
        let meta = Credentials::from_pairs([
            ("access_token", "t"),
            ("app_secret", SECRET),
            ("verify_token", SECRET),
        ]);
        assert!(evolution()
            .verify(&meta, &with(WEBHOOK_TOKEN_HEADER, SECRET), &body)
            .is_err());
    }

    /// The fixtures register `authorization: Bearer change-me`; Palaver registers its own
    /// token header, and no inline media (fetched by id when needed).
    fn with_palaver_webhook(mut webhook: Value) -> Value {
        webhook["headers"] = json!({ WEBHOOK_TOKEN_HEADER: SECRET });
        webhook["base64"] = json!(false);
        webhook
    }

    fn settings() -> InstanceSettings {
        InstanceSettings {
            reject_call: true,
            msg_call: Some("Não atendemos ligações por aqui, envie uma mensagem.".into()),
            groups_ignore: true,
            always_online: false,
            read_messages: false,
            read_status: false,
            sync_full_history: false,
        }
    }

    #[tokio::test]
    async fn creates_an_instance_with_webhook_and_settings() {
        let server = MockServer::start().await;
        let mut request = fixture_json("evolution", "rest.instance.create.request.json");
        request["webhook"] = with_palaver_webhook(request["webhook"].clone());
        Mock::given(method("POST"))
            .and(path("/instance/create"))
            .and(header("apikey", "global-key"))
            .and(body_json(request))
            .respond_with(ResponseTemplate::new(201).set_body_raw(
                fixture("evolution", "rest.instance.create.response.json"),
                "application/json",
            ))
            .expect(1)
            .mount(&server)
            .await;
        let created = evolution()
            .create_instance(
                &format!("{}/", server.uri()),
                &SecretString::from("global-key"),
                ROUTE,
                "https://bot.example.com/webhooks/evolution",
                &SecretString::from(SECRET),
                &settings(),
            )
            .await
            .unwrap();
        assert_eq!(
            created.token.expose_secret(),
            "4C1E9A7B-2D3F-4E5A-8B6C-0D1E2F3A4B5C"
        );
        assert_eq!(
            created.instance_id.as_deref(),
            Some("0d6c2f9a-3b1e-4c55-9a0e-7f3e2b1c4d5e")
        );
        let qr = created.qr.unwrap();
        assert!(qr.image.unwrap().starts_with("data:image/png;base64,"));
        assert!(qr.code.unwrap().starts_with("2@TEST"));
        assert_eq!(qr.pairing_code, None);
    }

    #[tokio::test]
    async fn lifecycle_calls_use_the_instance_routes() {
        let server = MockServer::start().await;
        let channel = channel(ROUTE, credentials(&server.uri()));
        let respond = |status: u16, file: &str| {
            ResponseTemplate::new(status)
                .set_body_raw(fixture("evolution", file), "application/json")
        };
        Mock::given(method("GET"))
            .and(path("/instance/connectionState/support-bot"))
            .and(header("apikey", API_KEY))
            .respond_with(respond(200, "rest.instance.connectionState.response.json"))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/instance/logout/support-bot"))
            .and(header("apikey", API_KEY))
            .respond_with(respond(200, "rest.instance.logout.response.json"))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/instance/delete/support-bot"))
            .and(header("apikey", API_KEY))
            .respond_with(respond(200, "rest.instance.delete.response.json"))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/settings/set/support-bot"))
            .and(header("apikey", API_KEY))
            .and(body_json(fixture_json(
                "evolution",
                "rest.settings.set.request.json",
            )))
            .respond_with(respond(201, "rest.settings.set.response.json"))
            .expect(1)
            .mount(&server)
            .await;
        let mut webhook = fixture_json("evolution", "rest.webhook.set.request.json");
        webhook["webhook"] = with_palaver_webhook(webhook["webhook"].clone());
        Mock::given(method("POST"))
            .and(path("/webhook/set/support-bot"))
            .and(header("apikey", API_KEY))
            .and(body_json(webhook))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"webhook": {}})))
            .expect(1)
            .mount(&server)
            .await;

        let evolution = evolution();
        assert_eq!(
            evolution.connection_state(&channel).await.unwrap(),
            ChannelState::Connected
        );
        evolution.logout(&channel).await.unwrap();
        evolution.delete(&channel).await.unwrap();
        evolution.set_settings(&channel, &settings()).await.unwrap();
        evolution
            .set_webhook(
                &channel,
                "https://bot.example.com/webhooks/evolution",
                &SecretString::from(SECRET),
                &WEBHOOK_EVENTS,
            )
            .await
            .unwrap();

        let cleared = InstanceSettings {
            msg_call: None,
            ..settings()
        };
        assert_eq!(cleared.to_json()["msgCall"], json!(""));
        assert!(InstanceSettings::from(&ChannelConfig::default()).reject_call);
    }

    #[tokio::test]
    async fn connect_reads_every_answer_shape() {
        let cases = [
            (
                fixture_json(
                    "evolution",
                    "rest.instance.connect.response.connecting.json",
                ),
                "qr",
            ),
            (
                fixture_json("evolution", "rest.instance.connect.response.open.json"),
                "open",
            ),
            (json!({"count": 0}), "pending"),
            (
                json!({"pairingCode": "WZYEH1YY", "code": "2@x", "base64": null, "count": 1}),
                "pairing",
            ),
        ];
        for (answer, expected) in cases {
            let server = MockServer::start().await;
            let mut mock = Mock::given(method("GET"))
                .and(path("/instance/connect/support-bot"))
                .and(header("apikey", API_KEY));
            if expected == "pairing" {
                mock = mock.and(query_param("number", CUSTOMER));
            }
            mock.respond_with(ResponseTemplate::new(200).set_body_json(answer))
                .expect(1)
                .mount(&server)
                .await;
            let number = (expected == "pairing").then_some(CUSTOMER);
            let outcome = evolution()
                .connect(&channel(ROUTE, credentials(&server.uri())), number)
                .await
                .unwrap();
            let got = match &outcome {
                ConnectOutcome::Qr(qr) if qr.pairing_code.is_some() => "pairing",
                ConnectOutcome::Qr(qr) if qr.image.is_some() => "qr",
                ConnectOutcome::Qr(_) => "code only",
                ConnectOutcome::AlreadyOpen => "open",
                ConnectOutcome::Pending => "pending",
            };
            assert_eq!(got, expected, "{outcome:?}");
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

    #[tokio::test]
    async fn sends_text_with_quote_and_typing_delay() {
        let server = MockServer::start().await;
        // Evolution looks the quoted message up by its key, so the quote's text is not sent.
        let mut request = fixture_json("evolution", "rest.message.sendText.request.json");
        request["quoted"] = json!({"key": {"id": "3EB0A1B2C3D4E5F60718"}});
        Mock::given(method("POST"))
            .and(path("/message/sendText/support-bot"))
            .and(header("apikey", API_KEY))
            .and(body_json(request))
            .respond_with(ResponseTemplate::new(201).set_body_raw(
                fixture("evolution", "rest.message.sendText.response.json"),
                "application/json",
            ))
            .expect(1)
            .mount(&server)
            .await;
        let sent = evolution()
            .with_typing_delay(Duration::from_millis(1200))
            .send(
                &channel(ROUTE, credentials(&server.uri())),
                &outbound(
                    OutboundBody::text("Nosso horário é de 9h às 18h."),
                    Some("3EB0A1B2C3D4E5F60718"),
                ),
            )
            .await
            .unwrap();
        assert_eq!(sent.provider_message_id, "3EB0SENT000000000001");
    }

    #[tokio::test]
    async fn sends_reactions_and_media_and_refuses_what_it_cannot() {
        let server = MockServer::start().await;
        let channel = channel(ROUTE, credentials(&server.uri()));
        let answer = ResponseTemplate::new(201)
            .set_body_json(json!({"key": {"id": "3EB0OUT2", "fromMe": true}}));
        Mock::given(method("POST"))
            .and(path("/message/sendReaction/support-bot"))
            .and(body_json(json!({
                "key": {"remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "id": "3EB0A1B2C3D4E5F60718"},
                "reaction": "👍"
            })))
            .respond_with(answer.clone())
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/message/sendMedia/support-bot"))
            .and(body_json(json!({
                "number": CUSTOMER, "mediatype": "document", "media": "https://example.com/a.pdf",
                "caption": "Segue", "fileName": "a.pdf"
            })))
            .respond_with(answer.clone())
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/message/sendWhatsAppAudio/support-bot"))
            .and(body_json(
                json!({"number": CUSTOMER, "audio": "https://example.com/a.ogg"}),
            ))
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
        let evolution = evolution();
        let reaction = OutboundBody::Reaction {
            message_id: "3EB0A1B2C3D4E5F60718".into(),
            emoji: "👍".into(),
        };
        let document = OutboundBody::Media {
            kind: "document".into(),
            link: "https://example.com/a.pdf".into(),
            caption: Some("Segue".into()),
            filename: Some("a.pdf".into()),
        };
        let voice = OutboundBody::Media {
            kind: "voice".into(),
            link: "https://example.com/a.ogg".into(),
            caption: None,
            filename: None,
        };
        for body in [reaction, document, voice] {
            let sent = evolution
                .send(&channel, &outbound(body, None))
                .await
                .unwrap();
            assert_eq!(sent.provider_message_id, "3EB0OUT2");
        }
        let unsupported = [
            OutboundBody::Template {
                name: "t".into(),
                language: "pt_BR".into(),
                parameters: vec![],
            },
            OutboundBody::Buttons {
                text: "t".into(),
                buttons: vec![("a".into(), "A".into())],
            },
            OutboundBody::List {
                text: "t".into(),
                button: "b".into(),
                rows: vec![("a".into(), "A".into(), None)],
            },
        ];
        for body in unsupported {
            let error = evolution
                .send(&channel, &outbound(body, None))
                .await
                .unwrap_err();
            assert!(matches!(error, ProviderError::Unsupported(_)), "{error:?}");
        }
    }

    #[tokio::test]
    async fn errors_are_read_from_the_envelope() {
        let cases = [
            (401, fixture("evolution", "rest.error.401.json"), "auth", "HTTP 401: Unauthorized"),
            (
                404,
                fixture("evolution", "rest.error.404_instance.json"),
                "permanent",
                "HTTP 404: The \"support-bot\" instance does not exist",
            ),
            (
                400,
                json!({"status": 400, "error": "Bad Request", "response": {"message": [
                    {"jid": "5511988887777@s.whatsapp.net", "exists": false, "number": "5511988887777"}
                ]}})
                .to_string()
                .into_bytes(),
                "permanent",
                "HTTP 400: {\"jid\":\"5511988887777@s.whatsapp.net\",\"exists\":false,\"number\":\"5511988887777\"}",
            ),
            (
                500,
                json!({"status": 500, "error": "Internal Server Error", "response": {"message": "Connection Closed"}})
                    .to_string()
                    .into_bytes(),
                "transient",
                "HTTP 500: Connection Closed",
            ),
        ];
        for (status, body, kind, message) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
                .mount(&server)
                .await;
            let error = evolution()
                .send(
                    &channel(ROUTE, credentials(&server.uri())),
                    &outbound(OutboundBody::text("oi"), None),
                )
                .await
                .unwrap_err();
            let (got, text) = match &error {
                ProviderError::Auth(m) | ProviderError::Permanent(m) => (
                    if matches!(error, ProviderError::Auth(_)) {
                        "auth"
                    } else {
                        "permanent"
                    },
                    m.as_str(),
                ),
                ProviderError::Transient { message, .. } => ("transient", message.as_str()),
                other => panic!("{other:?}"),
            };
            assert_eq!((got, text), (kind, message));
            assert!(!format!("{error:?}").contains(API_KEY));
        }
    }

    #[tokio::test]
    async fn fetches_inline_media_without_a_request_and_asks_evolution_otherwise() {
        let server = MockServer::start().await;
        let channel = channel(ROUTE, credentials(&server.uri()));
        let inline = MediaRef {
            id: Some("3EB0F00D1234ABCD5678".into()),
            mime_type: Some("audio/ogg; codecs=opus".into()),
            inline_base64: Some("T2dnUwACAAAAAAAAAAA=".into()),
            ..MediaRef::default()
        };
        let media = evolution().fetch_media(&channel, &inline).await.unwrap();
        assert_eq!(media.bytes, b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(media.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));

        Mock::given(method("POST"))
            .and(path("/chat/getBase64FromMediaMessage/support-bot"))
            .and(header("apikey", API_KEY))
            .and(body_json(
                json!({"message": {"key": {"id": "3EB0BEEF0000CAFE1111"}}, "convertToMp4": false}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "mediaType": "imageMessage", "fileName": "3EB0BEEF0000CAFE1111.jpeg",
                "size": {"fileLength": "84213"}, "mimetype": "image/jpeg", "base64": "/9j/4AAQ"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let by_key = MediaRef {
            id: Some("3EB0BEEF0000CAFE1111".into()),
            ..MediaRef::default()
        };
        let media = evolution().fetch_media(&channel, &by_key).await.unwrap();
        assert_eq!(media.bytes, [0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]);
        assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));

        let broken = MediaRef {
            inline_base64: Some("not base64!".into()),
            ..MediaRef::default()
        };
        assert!(matches!(
            evolution().fetch_media(&channel, &broken).await,
            Err(ProviderError::Permanent(_))
        ));
        assert_eq!(
            decode_base64("data:image/png;base64,AAEC").unwrap(),
            [0, 1, 2]
        );
    }
}
