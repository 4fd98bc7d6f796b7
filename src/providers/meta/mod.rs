//! Meta's WhatsApp Cloud API: the subscription handshake, `X-Hub-Signature-256` checks, parsing
//! of `messages` webhooks (customer messages and delivery statuses), sending through the Graph
//! API, marking messages read and downloading media. Every Graph call of a channel goes to the
//! Graph API version it chose ([`versions`]), or the installation's default. The Cloud API's
//! message shapes are also used by Kapso, which reuses the parser, body builder and error
//! mapping from here.

use async_trait::async_trait;
use http::{HeaderMap, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    endpoint, execute, retry_after, status_error, timestamp_or_now, token_matches,
    verify_hmac_sha256, ChannelContext, Credentials, Event, Field, FileToSend, GraphVersions,
    Inbound, Media, Outbound, OutboundBody, Provider, ProviderError, Reply, Sent, ServiceWindow,
    StatusUpdate, Subscription, Uploaded, WebhookScope, MAX_MEDIA_BYTES,
};
use crate::domain::{
    DeliveryError, DeliveryStatus, FieldError, InteractiveReply, Location, MediaRef, MessageChange,
    MessageDetails, MessageKind, ProviderKind, Reaction,
};
use crate::net::GuardedClient;

mod errors;
mod send;
pub mod versions;
pub(super) mod webhook;

pub(crate) use errors::*;
pub(crate) use send::*;
pub(crate) use webhook::*;

/// Graph API address used unless settings say otherwise; the version each call names follows
/// it in the path.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com";

pub use versions::DEFAULT_GRAPH_VERSION;

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
    // The WhatsApp Business Account of the number, whose templates are listed.
    Field::optional("business_account_id"),
];

/// The WhatsApp Business Account id in `credentials`, or why templates cannot be listed.
pub(crate) fn business_account(credentials: &Credentials) -> Result<String, ProviderError> {
    credentials
        .get("business_account_id")
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ProviderError::Unsupported(
                "the channel has no business_account_id: add it to its credentials to list templates".into(),
            )
        })
}

/// Pages of templates read at most (250 templates a page).
const MAX_TEMPLATE_PAGES: usize = 20;

/// Every template listed from `first` on, following `paging.next`; `call` makes the request.
pub(crate) async fn list_templates_from<F, Fut>(
    first: reqwest::Url,
    call: F,
) -> Result<Vec<super::templates::Template>, ProviderError>
where
    F: Fn(reqwest::Url) -> Fut,
    Fut: std::future::Future<Output = Result<Value, ProviderError>>,
{
    let mut url = first;
    url.query_pairs_mut()
        .append_pair(
            "fields",
            "name,language,status,category,components,parameter_format",
        )
        .append_pair("limit", "250");
    let mut templates = Vec::new();
    for _ in 0..MAX_TEMPLATE_PAGES {
        let page = call(url.clone()).await?;
        templates.extend(
            page.get("data")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(super::templates::Template::from_graph),
        );
        // The next page's cursor, asked of the same endpoint.
        let Some(after) = page
            .pointer("/paging/cursors/after")
            .and_then(Value::as_str)
            .filter(|_| page.pointer("/paging/next").is_some())
        else {
            return Ok(templates);
        };
        let mut next = first_without_query(&url);
        next.query_pairs_mut()
            .append_pair(
                "fields",
                "name,language,status,category,components,parameter_format",
            )
            .append_pair("limit", "250")
            .append_pair("after", after);
        url = next;
    }
    Ok(templates)
}

fn first_without_query(url: &reqwest::Url) -> reqwest::Url {
    let mut url = url.clone();
    url.set_query(None);
    url
}

#[async_trait]
impl super::Templates for MetaProvider {
    async fn list_templates(
        &self,
        channel: &ChannelContext,
    ) -> Result<Vec<super::templates::Template>, ProviderError> {
        let token = Self::token(&channel.credentials)?;
        let account = business_account(&channel.credentials)?;
        let url = self.graph_endpoint(channel, &[&account, "message_templates"])?;
        list_templates_from(url, |url| {
            let request = self.client.get(url).bearer_auth(token.expose_secret());
            async move {
                let reply = execute(request).await?;
                if !reply.status.is_success() {
                    return Err(graph_error(reply.status, &reply.headers, &reply.body));
                }
                reply.json("templates")
            }
        })
        .await
    }
}

impl GraphVersions for MetaProvider {
    fn default_version(&self) -> &str {
        &self.default_version
    }

    fn choosable(&self, today: chrono::NaiveDate) -> Vec<&'static str> {
        versions::choosable(today)
    }

    fn accept_version(&self, given: &str, today: chrono::NaiveDate) -> Result<String, String> {
        versions::accept(given, today).map(str::to_owned)
    }

    fn version_warning(&self, version: &str, today: chrono::NaiveDate) -> Option<String> {
        versions::warning(version, today)
    }
}

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

pub(crate) use crate::domain::is_business_scoped_user_id;

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
    /// The Graph API's address, without a version.
    base_url: String,
    /// The version of channels that chose none.
    default_version: String,
}

impl MetaProvider {
    /// A provider calling the Graph API at `graph_base_url` (e.g. [`DEFAULT_GRAPH_BASE_URL`])
    /// with `client`, and media links a webhook carries with `external`; the caller sets their
    /// timeouts. A version the URL ends with (`https://graph.facebook.com/v22.0`, as earlier
    /// releases were configured) is taken off and called for channels that chose none, in
    /// place of [`DEFAULT_GRAPH_VERSION`].
    pub fn new(
        client: reqwest::Client,
        external: GuardedClient,
        graph_base_url: impl Into<String>,
    ) -> Self {
        let (base_url, version) = versions::split_graph_url(&graph_base_url.into());
        Self {
            client,
            external,
            base_url,
            default_version: version.unwrap_or_else(|| DEFAULT_GRAPH_VERSION.to_string()),
        }
    }

    /// The Graph API version `channel` calls.
    fn version_of<'a>(&'a self, channel: &'a ChannelContext) -> Result<&'a str, ProviderError> {
        let version = channel
            .graph_version
            .as_deref()
            .unwrap_or(&self.default_version);
        if versions::is_version_shaped(version) {
            Ok(version)
        } else {
            Err(ProviderError::Permanent(format!(
                "the channel's Graph API version `{version}` is not written like {DEFAULT_GRAPH_VERSION}"
            )))
        }
    }

    /// `segments` under the Graph API version `channel` calls.
    fn graph_endpoint(
        &self,
        channel: &ChannelContext,
        segments: &[&str],
    ) -> Result<reqwest::Url, ProviderError> {
        let version = self.version_of(channel)?;
        let path: Vec<&str> = std::iter::once(version)
            .chain(segments.iter().copied())
            .collect();
        endpoint(&self.base_url, &path)
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
        let url = self.graph_endpoint(channel, &[&channel.route_key, "messages"])?;
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

/// The Cloud API's media upload (Kapso's proxy takes the same): `POST {base}/{phone}/media`,
/// multipart with `messaging_product`, `type` and `file`; answers the media id.
pub(crate) async fn upload_to(
    request: reqwest::RequestBuilder,
    file: FileToSend<'_>,
    refused: impl Fn(&Reply) -> ProviderError,
) -> Result<Uploaded, ProviderError> {
    let part = reqwest::multipart::Part::bytes(file.bytes.to_vec())
        .file_name(file.filename.to_string())
        .mime_str(file.mime_type)
        .map_err(|e| ProviderError::Permanent(format!("bad media type: {e}")))?;
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", file.mime_type.to_string())
        .part("file", part);
    let reply = execute(request.multipart(form)).await?;
    if !reply.status.is_success() {
        return Err(refused(&reply));
    }
    #[derive(Deserialize)]
    struct UploadedId {
        id: String,
    }
    let uploaded: UploadedId = reply.json("media upload")?;
    Ok(Uploaded::Id(uploaded.id))
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

    fn templates(&self) -> Option<&dyn super::Templates> {
        Some(self)
    }

    fn graph_versions(&self) -> Option<&dyn GraphVersions> {
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

    async fn upload_media(
        &self,
        channel: &ChannelContext,
        file: FileToSend<'_>,
    ) -> Result<Uploaded, ProviderError> {
        let token = Self::token(&channel.credentials)?;
        let url = self.graph_endpoint(channel, &[&channel.route_key, "media"])?;
        upload_to(
            self.client.post(url).bearer_auth(token.expose_secret()),
            file,
            |r| graph_error(r.status, &r.headers, &r.body),
        )
        .await
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
                let meta_url = self.graph_endpoint(channel, &[id])?;
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

#[cfg(test)]
mod tests;
