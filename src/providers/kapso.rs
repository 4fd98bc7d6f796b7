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
    endpoint, execute, execute_limited, retry_after, secret_header, verify_hmac_sha256,
    ChannelContext, Credentials, Event, Field, Media, Outbound, Provider, ProviderError, Reply,
    Sent, ServiceWindow, WebhookScope, MAX_MEDIA_BYTES,
};
use crate::domain::{FieldError, MediaRef, ProviderKind};
use crate::net::GuardedClient;

/// Kapso API base URL used unless settings say otherwise.
pub const DEFAULT_KAPSO_BASE_URL: &str = "https://api.kapso.ai";

/// Path of Kapso's Meta-compatible proxy under the base URL.
const PROXY: [&str; 3] = ["meta", "whatsapp", "v24.0"];

/// How long to wait after Kapso's 409 when it does not say: its lock lasts one send.
const IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

const API_KEY_HEADER: &str = "x-api-key";

/// Kapso sends a message once per idempotency key, so a send that timed out can be repeated.
const IDEMPOTENCY_HEADER: &str = "x-idempotency-key";

/// A Kapso channel's secrets.
#[derive(serde::Deserialize)]
struct KapsoCredentials {
    /// `X-API-Key` for Kapso's API.
    api_key: SecretString,
    /// Key of `X-Webhook-Signature`.
    webhook_secret: SecretString,
}

/// The fields of [`KapsoCredentials`].
const FIELDS: &[Field] = &[
    Field::required("api_key"),
    Field::required("webhook_secret"),
];

/// Kapso relays Meta's customer-service window.
struct KapsoWindow;
impl ServiceWindow for KapsoWindow {}

/// Kapso, for numbers connected through it.
#[derive(Debug, Clone)]
pub struct KapsoProvider {
    client: reqwest::Client,
    external: GuardedClient,
    base_url: String,
}

impl KapsoProvider {
    /// A provider calling `kapso_base_url` (e.g. [`DEFAULT_KAPSO_BASE_URL`]) with `client`, and
    /// media links a webhook carries with `external`; the caller sets their timeouts.
    pub fn new(
        client: reqwest::Client,
        external: GuardedClient,
        kapso_base_url: impl Into<String>,
    ) -> Self {
        let base_url = kapso_base_url.into().trim_end_matches('/').to_owned();
        Self {
            client,
            external,
            base_url,
        }
    }

    fn api_key(credentials: &Credentials) -> Result<SecretString, ProviderError> {
        let key = credentials.read::<KapsoCredentials>()?.api_key;
        super::non_empty(&key, "API key")?;
        Ok(key)
    }

    fn proxy_url(&self, segments: &[&str]) -> Result<reqwest::Url, ProviderError> {
        let all: Vec<&str> = PROXY.iter().chain(segments).copied().collect();
        endpoint(&self.base_url, &all)
    }

    async fn post_messages(
        &self,
        channel: &ChannelContext,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Reply, ProviderError> {
        let key = secret_header(&Self::api_key(&channel.credentials)?)?;
        let url = self.proxy_url(&[&channel.route_key, "messages"])?;
        let mut request = self.client.post(url).header(API_KEY_HEADER, key).json(body);
        if let Some(idempotency_key) = idempotency_key {
            request = request.header(IDEMPOTENCY_HEADER, idempotency_key);
        }
        let reply = execute(request).await?;
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

    fn accept_credentials(
        &self,
        given: Credentials,
        previous: Option<&Credentials>,
    ) -> Result<Credentials, Vec<FieldError>> {
        Credentials::accept(given, previous, FIELDS, "kapso")
    }

    fn webhooks(&self) -> Option<WebhookScope> {
        Some(WebhookScope::Channel)
    }

    fn service_window(&self) -> Option<&dyn ServiceWindow> {
        Some(&KapsoWindow)
    }

    fn deduplicates_sends(&self) -> bool {
        true
    }

    fn verify(
        &self,
        credentials: &Credentials,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), ProviderError> {
        let webhook_secret = credentials
            .read::<KapsoCredentials>()
            .map_err(|_| {
                ProviderError::BadSignature("the channel does not have Kapso credentials".into())
            })?
            .webhook_secret;
        super::non_empty(&webhook_secret, "webhook secret")
            .map_err(|e| ProviderError::BadSignature(e.to_string()))?;
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

    async fn send(
        &self,
        channel: &ChannelContext,
        message: &Outbound,
    ) -> Result<Sent, ProviderError> {
        let body = meta::message_body(message)?;
        let reply = self
            .post_messages(channel, &body, message.idempotency_key.as_deref())
            .await?;
        meta::sent_from(&reply)
    }

    async fn fetch_media(
        &self,
        channel: &ChannelContext,
        media: &MediaRef,
    ) -> Result<Media, ProviderError> {
        let key = secret_header(&Self::api_key(&channel.credentials)?)?;
        let (url, mime_type, from_webhook) = match (&media.id, &media.url) {
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
                (info.download_url.unwrap_or(info.url), info.mime_type, false)
            }
            (None, Some(url)) => (url.clone(), None, true),
            (None, None) => {
                return Err(ProviderError::Permanent(
                    "the media has neither an id nor a URL".into(),
                ))
            }
        };
        let url = reqwest::Url::parse(&url)
            .map_err(|e| ProviderError::Permanent(format!("bad media URL: {e}")))?;
        let is_kapso = self.is_kapso_host(&url);
        // A link from the webhook itself goes through the URL guard.
        let mut request = if from_webhook {
            self.external.request(reqwest::Method::GET, url)?
        } else {
            self.client.get(url)
        };
        if is_kapso {
            request = request.header(API_KEY_HEADER, key);
        }
        let reply = execute_limited(request, MAX_MEDIA_BYTES).await?;
        if !reply.status.is_success() {
            return Err(kapso_error(&reply));
        }
        Ok(meta::media_from(
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
        self.post_messages(channel, &meta::read_body(provider_message_id, typing), None)
            .await?;
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
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::BadPayload(format!("not JSON: {e}")))?;
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
        _ => Err(ProviderError::BadPayload(
            "a Kapso webhook is a JSON object or array".into(),
        )),
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
        let direction = kapso
            .and_then(|k| k.get("direction"))
            .and_then(Value::as_str);
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
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn route_of(item: &Value) -> Option<String> {
    str_at(item, "/phone_number_id")
        .or_else(|| str_at(item, "/conversation/phone_number_id"))
        .or_else(|| str_at(item, "/message/kapso/phone_number_id"))
        .map(str::to_owned)
}

fn parse_item(item: &Value, hint: Option<&str>) -> Result<Event, ProviderError> {
    if !item.is_object() {
        return Err(ProviderError::BadPayload(
            "a Kapso event is a JSON object".into(),
        ));
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
    let user_id = message
        .from_user_id
        .clone()
        .or_else(|| str_at(item, "/conversation/business_scoped_user_id").map(str::to_owned))
        .filter(|id| !id.is_empty());
    let from = message
        .from
        .clone()
        .filter(|f| !f.is_empty())
        .or_else(|| str_at(item, "/conversation/phone_number").map(digits))
        .or_else(|| user_id.clone());
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
    inbound.user_id = user_id;
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
            biz_opaque_callback_data: None,
            id: None,
            status: None,
            timestamp: None,
            errors: Vec::new(),
        });
    let entry = WaStatus {
        biz_opaque_callback_data: None,
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    use super::*;

    use crate::providers::test_support::{
        channel, check_webhook_snapshots, fixture, fixture_json, fixture_names, ignored,
    };
    use crate::providers::OutboundBody;

    const ROUTE: &str = "109876543210987";
    const API_KEY: &str = "kapso-api-key";

    fn credentials(webhook_secret: &str) -> Credentials {
        Credentials::from_pairs([("api_key", API_KEY), ("webhook_secret", webhook_secret)])
    }

    fn kapso(base: &str) -> KapsoProvider {
        KapsoProvider::new(
            reqwest::Client::new(),
            GuardedClient::allowing_private(),
            base,
        )
    }

    /// A fragment's message object inside the `whatsapp.message.received` envelope; fragments
    /// that leave out `id` and `timestamp` get the envelope's.
    fn wrapped(fragment: &str) -> Vec<u8> {
        let mut envelope = fixture_json("kapso", "whatsapp.message.received.text.json");
        let base = envelope["message"].as_object().unwrap().clone();
        let mut message = serde_json::Map::new();
        for key in ["id", "timestamp", "kapso"] {
            message.insert(key.into(), base[key].clone());
        }
        for (key, value) in fixture_json("kapso", fragment)["message"]
            .as_object()
            .unwrap()
        {
            message.insert(key.clone(), value.clone());
        }
        envelope["message"] = Value::Object(message);
        envelope.to_string().into_bytes()
    }

    #[test]
    fn every_webhook_fixture_matches_its_snapshot() {
        let names = fixture_names("kapso");
        let webhooks = names.iter().map(String::as_str).filter(|n| {
            ["whatsapp.", "project.", "fragment."]
                .iter()
                .any(|p| n.starts_with(p))
        });
        check_webhook_snapshots(&kapso("http://unused"), "kapso", webhooks, |name, body| {
            if name.starts_with("fragment.") {
                wrapped(name)
            } else {
                body
            }
        });
    }

    #[test]
    fn rest_bodies_are_not_webhooks_and_every_fixture_is_covered() {
        let kapso = kapso("http://unused");
        let rest = [
            "request.create_phone_number_webhook.json",
            "request.update_conversation_status.json",
            "response.list_conversations.json",
        ];
        for file in rest {
            let parsed = kapso.parse(&fixture("kapso", file));
            assert!(
                matches!(parsed, Err(ProviderError::BadPayload(_))),
                "{file}: {parsed:?}"
            );
        }
        for name in fixture_names("kapso") {
            let snapshot = ["whatsapp.", "project.", "fragment."]
                .iter()
                .any(|p| name.starts_with(p));
            assert!(
                snapshot || rest.contains(&name.as_str()) || name == "signature_vectors.json",
                "{name} is not covered"
            );
        }
    }

    #[test]
    fn batches_forwarded_meta_payloads_and_bad_bodies() {
        let kapso = kapso("http://unused");
        let one = fixture_json("kapso", "whatsapp.message.received.text.json");
        let mut two = one.clone();
        two["message"]["id"] = json!("wamid.KPS.IN.0002");
        two["message"]["text"]["body"] = json!("And on holidays?");
        let batch = json!({"type": "whatsapp.message.received", "batch": true, "data": [one, two]});
        let events = kapso.parse(batch.to_string().as_bytes()).unwrap();
        let ids: Vec<_> = events
            .iter()
            .map(|e| match e {
                Event::Message { message, .. } => message.provider_message_id.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["wamid.KPS.IN.0001", "wamid.KPS.IN.0002"]);
        let bare = json!([
            batch["data"][0],
            fixture_json("kapso", "whatsapp.message.sent.json")
        ]);
        assert_eq!(kapso.parse(bare.to_string().as_bytes()).unwrap().len(), 2);

        // "Meta webhooks" mode forwards Meta's own payload.
        let meta_body = fixture(
            "meta",
            "webhook.inbound.batched_multi_message_and_status.json",
        );
        assert_eq!(
            kapso.parse(&meta_body).unwrap(),
            meta::parse_notification(&meta_body).unwrap()
        );

        // A received message with no sender or id cannot be answered.
        let mut anonymous = fixture_json("kapso", "whatsapp.message.received.text.json");
        anonymous["conversation"]["phone_number"] = Value::Null;
        assert_eq!(
            kapso.parse(anonymous.to_string().as_bytes()).unwrap(),
            vec![ignored(Some(ROUTE), "message without a sender id")]
        );
        anonymous["conversation"]["business_scoped_user_id"] = json!("BR.123");
        let Event::Message { message, .. } = kapso
            .parse(anonymous.to_string().as_bytes())
            .unwrap()
            .remove(0)
        else {
            panic!()
        };
        assert_eq!(message.from, "BR.123");

        for bad in [
            &b"nope"[..],
            b"42",
            b"{}",
            b"[1]",
            br#"{"object":"page","entry":[]}"#,
        ] {
            assert!(
                matches!(kapso.parse(bad), Err(ProviderError::BadPayload(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for file in fixture_names("kapso") {
            let body = fixture("kapso", &file);
            for end in (0..body.len()).step_by(5) {
                let _ = kapso.parse(&body[..end]);
            }
        }
    }

    #[test]
    fn every_signature_vector_verifies_and_tampering_is_caught() {
        let vectors = fixture_json("kapso", "signature_vectors.json");
        let secret = vectors["webhook_secret"].as_str().unwrap();
        let kapso = kapso("http://unused");
        let entries = vectors["vectors"].as_object().unwrap();
        assert_eq!(entries.len(), 18);
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-webhook-signature", value.parse().unwrap());
            headers
        };
        for (file, signature) in entries {
            let signature = signature.as_str().unwrap();
            let body = fixture("kapso", file);
            assert!(
                kapso
                    .verify(&credentials(secret), &with(signature), &body)
                    .is_ok(),
                "{file}"
            );
            let mut tampered = body.clone();
            tampered[body.len() / 2] ^= 1;
            let refused = [
                (credentials(secret), with(signature), tampered),
                (credentials("another secret"), with(signature), body.clone()),
                (
                    credentials(secret),
                    with(&format!("sha256={signature}")),
                    body.clone(),
                ),
                (credentials(secret), HeaderMap::new(), body.clone()),
            ];
            for (credentials, headers, body) in refused {
                assert!(
                    matches!(
                        kapso.verify(&credentials, &headers, &body),
                        Err(ProviderError::BadSignature(_))
                    ),
                    "{file} {headers:?}"
                );
            }
        }
    }

    fn text(body: &str) -> Outbound {
        Outbound {
            idempotency_key: None,
            to: "16505551234".into(),
            reply_to_message: None,
            body: OutboundBody::text(body),
        }
    }

    #[tokio::test]
    async fn sends_meta_bodies_through_the_proxy() {
        let server = MockServer::start().await;
        let messages = format!("/meta/whatsapp/v24.0/{ROUTE}/messages");
        Mock::given(method("POST"))
            .and(path(messages.as_str()))
            .and(header("x-api-key", API_KEY))
            .and(body_json(fixture_json("meta", "send.text.request.json")))
            .respond_with(ResponseTemplate::new(200).set_body_raw(
                fixture("meta", "send.text.response.json"),
                "application/json",
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(messages.as_str()))
            .and(header("x-api-key", API_KEY))
            .and(body_json(fixture_json(
                "meta",
                "send.mark_read_typing.request.json",
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
            .expect(1)
            .mount(&server)
            .await;
        let kapso = kapso(&format!("{}/", server.uri()));
        let channel = channel(ROUTE, credentials("s"));
        let sent = kapso
            .send(
                &channel,
                &text("Yes, we ship to Lisbon. Delivery takes 3-5 business days."),
            )
            .await
            .unwrap();
        assert_eq!(sent.provider_message_id, "wamid.TEST.outbound.text.0102");
        kapso
            .mark_read(&channel, "wamid.TEST.inbound.text.0001", true)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_message_in_flight_is_retried_shortly_and_other_errors_are_graphs() {
        let cases = [
            (ResponseTemplate::new(409).set_body_json(json!({"error": "Another message in-flight for this conversation. Retry shortly."})), "transient 1s"),
            (ResponseTemplate::new(409).insert_header("retry-after", "3").set_body_json(json!({"error": "busy"})), "transient 3s"),
            (ResponseTemplate::new(400).set_body_raw(fixture("meta", "send.error.response.json"), "application/json"), "permanent"),
            (ResponseTemplate::new(400).set_body_json(json!({"error": {"code": 131047, "message": "Re-engagement message"}})), "needs_template"),
            (ResponseTemplate::new(401).set_body_json(json!({"error": "Invalid API key"})), "auth"),
            (ResponseTemplate::new(502), "transient"),
        ];
        for (response, expected) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(response)
                .mount(&server)
                .await;
            let error = kapso(&server.uri())
                .send(&channel(ROUTE, credentials("s")), &text("hi"))
                .await
                .unwrap_err();
            let got = match &error {
                ProviderError::Transient {
                    retry_after: Some(d),
                    ..
                } => format!("transient {}s", d.as_secs()),
                ProviderError::Transient { .. } => "transient".into(),
                ProviderError::Permanent(_) => "permanent".into(),
                ProviderError::NeedsTemplate(_) => "needs_template".into(),
                ProviderError::Auth(_) => "auth".into(),
                other => format!("{other:?}"),
            };
            assert_eq!(got, expected, "{error:?}");
            assert!(!format!("{error:?}").contains(API_KEY));
        }
    }

    #[tokio::test]
    async fn fetches_media_and_keeps_the_api_key_on_kapso_hosts() {
        let kapso_server = MockServer::start().await;
        let cdn = MockServer::start().await;
        let no_api_key = |request: &Request| !request.headers.contains_key("x-api-key");
        for (media_id, url) in [
            (
                "media_fx_0456",
                format!("{}/media/voice.ogg", kapso_server.uri()),
            ),
            (
                "media_id_123",
                format!("{}/v/photo.jpg?oh=signed", cdn.uri()),
            ),
        ] {
            Mock::given(method("GET"))
                .and(path(format!("/meta/whatsapp/v24.0/{media_id}")))
                .and(query_param("phone_number_id", ROUTE))
                .and(header("x-api-key", API_KEY))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "messaging_product": "whatsapp", "url": url, "mime_type": "audio/ogg", "id": media_id
                })))
                .expect(1)
                .mount(&kapso_server)
                .await;
        }
        Mock::given(method("GET"))
            .and(path("/media/voice.ogg"))
            .and(header("x-api-key", API_KEY))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(b"OggS-kapso".to_vec(), "audio/ogg"),
            )
            .expect(1)
            .mount(&kapso_server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v/photo.jpg"))
            .and(no_api_key)
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(b"jpeg-bytes".to_vec(), "image/jpeg"),
            )
            .expect(1)
            .mount(&cdn)
            .await;
        let kapso = kapso(&kapso_server.uri());
        let channel = channel(ROUTE, credentials("s"));
        let media_ref = |id: &str| MediaRef {
            id: Some(id.into()),
            ..MediaRef::default()
        };
        let voice = kapso
            .fetch_media(&channel, &media_ref("media_fx_0456"))
            .await
            .unwrap();
        assert_eq!(
            (voice.bytes.as_slice(), voice.mime_type.as_deref()),
            (&b"OggS-kapso"[..], Some("audio/ogg"))
        );
        let photo = kapso
            .fetch_media(&channel, &media_ref("media_id_123"))
            .await
            .unwrap();
        assert_eq!(photo.bytes, b"jpeg-bytes");
    }
}
