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

pub(super) mod webhook;

pub(crate) use webhook::*;

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
    Field::optional("business_account_id"),
];

#[async_trait]
impl super::Templates for KapsoProvider {
    async fn list_templates(
        &self,
        channel: &ChannelContext,
    ) -> Result<Vec<super::templates::Template>, ProviderError> {
        let key = secret_header(&Self::api_key(&channel.credentials)?)?;
        let account = meta::business_account(&channel.credentials)?;
        let url = self.proxy_url(&[&account, "message_templates"])?;
        meta::list_templates_from(url, |url| {
            let request = self.client.get(url).header(API_KEY_HEADER, key.clone());
            async move {
                let reply = execute(request).await?;
                if !reply.status.is_success() {
                    return Err(kapso_error(&reply));
                }
                reply.json("templates")
            }
        })
        .await
    }
}

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

    fn templates(&self) -> Option<&dyn super::Templates> {
        Some(self)
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

    async fn upload_media(
        &self,
        channel: &ChannelContext,
        file: super::FileToSend<'_>,
    ) -> Result<super::Uploaded, ProviderError> {
        let key = secret_header(&Self::api_key(&channel.credentials)?)?;
        let url = self.proxy_url(&[&channel.route_key, "media"])?;
        meta::upload_to(
            self.client.post(url).header(API_KEY_HEADER, key),
            file,
            kapso_error,
        )
        .await
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

#[cfg(test)]
mod tests;
