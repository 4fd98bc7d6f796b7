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
    Location, MediaRef, MessageChange, MessageDetails, MessageKind, ProviderKind, Reaction,
};
use crate::net::GuardedClient;

pub(super) mod webhook;

pub(crate) use webhook::*;

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
            // The file travels with the message, base64 (sendMedia takes a URL or the bytes).
            OutboundBody::Upload {
                kind,
                media,
                caption,
                filename,
            } => {
                let super::Uploaded::Inline { base64, mime_type } = media else {
                    return Err(ProviderError::Permanent("Evolution takes a file's bytes, not a media id".into()));
                };
                if !matches!(kind.as_str(), "image" | "video" | "document" | "audio") {
                    return Err(ProviderError::Unsupported(format!("Evolution cannot send `{kind}` media")));
                }
                let mut body = json!({
                    "number": message.to, "mediatype": kind, "mimetype": mime_type, "media": base64,
                });
                if let Some(caption) = caption {
                    body["caption"] = json!(caption);
                }
                if let Some(filename) = filename {
                    body["fileName"] = json!(filename);
                }
                ("message/sendMedia", self.with_common(body, message))
            }
            OutboundBody::Template { .. } => {
                return Err(ProviderError::Unsupported("templates exist only on the Cloud API".into()));
            }
            // WhatsApp Web numbers cannot send buttons or lists reliably: the options go as
            // numbered lines, and the customer answers with a number.
            OutboundBody::Buttons { text, buttons } => {
                let text = crate::domain::numbered_options(text, buttons.iter().map(|(_, t)| t.as_str()));
                ("message/sendText", self.with_common(json!({ "number": message.to, "text": text }), message))
            }
            OutboundBody::List { text, rows, .. } => {
                let text = crate::domain::numbered_options(text, rows.iter().map(|(_, t, _)| t.as_str()));
                ("message/sendText", self.with_common(json!({ "number": message.to, "text": text }), message))
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

#[cfg(test)]
mod tests;
