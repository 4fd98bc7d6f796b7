//! Channels: the WhatsApp numbers Palaver answers on. This module owns their credentials
//! (sealed at rest, never returned), their lifecycle with the provider (Evolution instances),
//! webhook intake — verify over the raw bytes, parse, and record what arrived durably and exactly
//! once — and delivery of the outbox through the provider, within each channel's send rate and
//! WhatsApp's 24-hour customer-service window.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::config::Settings;
use crate::crypto::{generate_api_key, Sealer};
use crate::domain::{
    Channel, ChannelConfig, ChannelId, ChannelState, Conversation, DeliveryError, DeliveryStatus,
    MediaRef, MessageDetails, MessageKind, ProviderKind, Role, TemplateRef,
};
use crate::pipeline::rules::Trigger;
use crate::pipeline::voice::{MediaError, MediaSource};
use crate::providers::evolution::{
    ConnectOutcome, EvolutionProvider, InstanceSettings, PairingQr, WEBHOOK_EVENTS,
};
use crate::providers::kapso::KapsoProvider;
use crate::providers::meta::{verify_subscription, MetaProvider};
use crate::providers::{
    ChannelContext, Credentials, Event, Inbound, Outbound, OutboundBody, Provider, ProviderError,
};
use crate::store::{
    InboundPolicy, NewChannel, NewInbound, NewOutbound, RecordedInbound, Store, StoreError,
};

/// The customer-service window: outside it, only templates may be sent (Meta, Kapso).
pub const SERVICE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A channel operation failure.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Bad webhook signature or token: nothing is stored.
    #[error("{0}")]
    Unauthorized(String),
    /// Malformed webhook or request.
    #[error("{0}")]
    BadRequest(String),
    /// No such channel.
    #[error("{0}")]
    NotFound(String),
    /// The operation does not apply to this channel.
    #[error("{0}")]
    Unsupported(String),
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Credentials could not be unsealed (the encryption key changed?).
    #[error("channel credentials cannot be decrypted with the configured key")]
    Sealed,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a webhook delivery did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Receipt {
    /// Customer messages stored.
    pub recorded: usize,
    /// Customer messages already stored before (provider retries).
    pub duplicates: usize,
    /// Delivery statuses applied.
    pub statuses: usize,
    /// Events understood and not acted on.
    pub ignored: usize,
    /// Events for numbers no channel serves.
    pub unrouted: usize,
}

/// What the caller provides to create a channel.
#[derive(Debug, Clone)]
pub struct ChannelInput {
    /// A label.
    pub name: String,
    /// Phone number id (Meta, Kapso) or instance name (Evolution).
    pub route_key: String,
    /// The agent answering on it.
    pub agent_id: Option<crate::domain::AgentId>,
    /// Settings.
    pub settings: ChannelConfig,
    /// Credentials.
    pub credentials: Credentials,
    /// Evolution: create the instance on the server (else it exists and is only configured).
    pub create_instance: bool,
}

/// A failed delivery: retry later, or give up.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryFailure {
    /// Worth another attempt after the delay (if given).
    #[error("{message}")]
    Retry {
        /// Why.
        message: String,
        /// Provider-requested delay.
        after: Option<Duration>,
    },
    /// Given up; the message is marked failed.
    #[error("{0}")]
    Failed(String),
}

impl From<StoreError> for DeliveryFailure {
    fn from(e: StoreError) -> Self {
        DeliveryFailure::Retry {
            message: e.to_string(),
            after: None,
        }
    }
}

/// Channels and their providers.
pub struct Channels {
    store: Arc<dyn Store>,
    sealer: Sealer,
    meta: MetaProvider,
    evolution: EvolutionProvider,
    kapso: KapsoProvider,
    settings: Arc<Settings>,
    limiters: Mutex<HashMap<ChannelId, Arc<DefaultDirectRateLimiter>>>,
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl Channels {
    /// Channels over `store`, sealing credentials with `sealer`.
    pub fn new(
        store: Arc<dyn Store>,
        sealer: Sealer,
        settings: Arc<Settings>,
    ) -> Result<Self, ChannelError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.channels.timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                ChannelError::Provider(ProviderError::Permanent(format!("HTTP client: {e}")))
            })?;
        Ok(Self {
            meta: MetaProvider::new(client.clone(), settings.channels.meta_graph_url.clone()),
            evolution: EvolutionProvider::new(client.clone()),
            kapso: KapsoProvider::new(client, settings.channels.kapso_url.clone()),
            store,
            sealer,
            settings,
            limiters: Mutex::new(HashMap::new()),
        })
    }

    fn provider(&self, kind: ProviderKind) -> Option<&dyn Provider> {
        match kind {
            ProviderKind::Meta => Some(&self.meta),
            ProviderKind::Evolution => Some(&self.evolution),
            ProviderKind::Kapso => Some(&self.kapso),
            ProviderKind::Sandbox => None,
        }
    }

    /// The URL the provider must call for this channel.
    pub fn webhook_url(&self, channel: &Channel) -> Option<String> {
        let base = self.settings.server.public_url.trim_end_matches('/');
        match channel.provider {
            ProviderKind::Meta => Some(format!("{base}/webhooks/meta")),
            ProviderKind::Evolution => Some(format!("{base}/webhooks/evolution/{}", channel.id)),
            ProviderKind::Kapso => Some(format!("{base}/webhooks/kapso/{}", channel.id)),
            ProviderKind::Sandbox => None,
        }
    }

    fn seal(&self, credentials: &Credentials) -> Result<Vec<u8>, ChannelError> {
        let json = serde_json::to_vec(credentials)
            .map_err(|e| ChannelError::BadRequest(format!("credentials: {e}")))?;
        Ok(self.sealer.seal(&json))
    }

    /// The decrypted context a provider needs for `channel`.
    pub async fn context(&self, channel: &Channel) -> Result<ChannelContext, ChannelError> {
        let sealed = self
            .store
            .channel_credentials(channel.id)
            .await?
            .ok_or_else(|| ChannelError::NotFound(format!("no channel {}", channel.id)))?;
        let credentials = if channel.provider == ProviderKind::Sandbox {
            Credentials::Sandbox
        } else {
            let plain = self
                .sealer
                .open(&sealed)
                .map_err(|_| ChannelError::Sealed)?;
            serde_json::from_slice(&plain).map_err(|_| ChannelError::Sealed)?
        };
        Ok(ChannelContext {
            route_key: channel.route_key.clone(),
            credentials,
        })
    }

    /// Creates a channel. Evolution instances are created (when asked) and configured on the
    /// server: call rejection, groups, and Palaver's webhook with its secret.
    pub async fn create(&self, input: ChannelInput) -> Result<Channel, ChannelError> {
        let provider = input.credentials.kind();
        if provider == ProviderKind::Sandbox {
            return Err(ChannelError::BadRequest(
                "sandbox channels are created by the sandbox".into(),
            ));
        }
        let mut credentials = input.credentials.clone();
        let mut state = ChannelState::Created;
        if let Credentials::Evolution {
            server_url,
            api_key,
            webhook_secret,
        } = &mut credentials
        {
            if webhook_secret.expose_secret().is_empty() {
                *webhook_secret = SecretString::from(generate_api_key());
            }
            if input.create_instance {
                // The instance token replaces the global key: least privilege from here on.
                let created = self
                    .evolution
                    .create_instance(
                        server_url,
                        api_key,
                        &input.route_key,
                        "",
                        webhook_secret,
                        &InstanceSettings::from(&input.settings),
                    )
                    .await?;
                *api_key = created.token;
                state = ChannelState::Connecting;
            }
        }
        let channel = self
            .store
            .create_channel(NewChannel {
                name: input.name,
                provider,
                route_key: input.route_key,
                agent_id: input.agent_id,
                settings: input.settings,
                sealed_credentials: self.seal(&credentials)?,
                state,
            })
            .await?;
        if provider == ProviderKind::Evolution {
            if let Err(e) = self.configure_evolution(&channel).await {
                tracing::warn!(channel = %channel.id, error = %e, "Evolution instance not configured");
                self.store
                    .set_channel_state(channel.id, ChannelState::Broken, Some(&e.to_string()))
                    .await?;
            }
        }
        tracing::info!(channel = %channel.id, provider = provider.as_str(), "channel created");
        Ok(self.store.channel(channel.id).await?.unwrap_or(channel))
    }

    async fn configure_evolution(&self, channel: &Channel) -> Result<(), ChannelError> {
        let ctx = self.context(channel).await?;
        let Credentials::Evolution { webhook_secret, .. } = &ctx.credentials else {
            return Err(ChannelError::Unsupported("not an Evolution channel".into()));
        };
        let url = self.webhook_url(channel).unwrap_or_default();
        self.evolution
            .set_webhook(&ctx, &url, webhook_secret, &WEBHOOK_EVENTS)
            .await?;
        self.evolution
            .set_settings(&ctx, &InstanceSettings::from(&channel.settings))
            .await?;
        Ok(())
    }

    /// Saves a channel's name, agent and settings, and new credentials when given (pushing
    /// settings to Evolution).
    pub async fn update(
        &self,
        channel: &Channel,
        credentials: Option<Credentials>,
    ) -> Result<Channel, ChannelError> {
        if let Some(c) = &credentials {
            if c.kind() != channel.provider {
                return Err(ChannelError::BadRequest(format!(
                    "credentials are for {}, the channel is {}",
                    c.kind().as_str(),
                    channel.provider.as_str()
                )));
            }
        }
        let sealed = credentials.as_ref().map(|c| self.seal(c)).transpose()?;
        let saved = self.store.update_channel(channel, sealed).await?;
        if saved.provider == ProviderKind::Evolution {
            self.configure_evolution(&saved).await?;
        }
        Ok(saved)
    }

    /// Deletes a channel (logging out and deleting an Evolution instance first, best effort).
    pub async fn delete(
        &self,
        channel: &Channel,
        delete_instance: bool,
    ) -> Result<(), ChannelError> {
        if channel.provider == ProviderKind::Evolution && delete_instance {
            let ctx = self.context(channel).await?;
            if let Err(e) = self.evolution.delete(&ctx).await {
                tracing::warn!(channel = %channel.id, error = %e, "Evolution instance not deleted");
            }
        }
        self.store.delete_channel(channel.id).await?;
        Ok(())
    }

    /// Asks Evolution for a QR code to link the number.
    pub async fn connect(
        &self,
        channel: &Channel,
        pairing_number: Option<&str>,
    ) -> Result<ConnectOutcome, ChannelError> {
        if channel.provider != ProviderKind::Evolution {
            return Err(ChannelError::Unsupported(
                "only Evolution channels are linked by QR code".into(),
            ));
        }
        let ctx = self.context(channel).await?;
        let outcome = self.evolution.connect(&ctx, pairing_number).await?;
        let state = match outcome {
            ConnectOutcome::AlreadyOpen => ChannelState::Connected,
            ConnectOutcome::Qr(_) | ConnectOutcome::Pending => ChannelState::Connecting,
        };
        self.store
            .set_channel_state(channel.id, state, None)
            .await?;
        Ok(outcome)
    }

    /// Reads the connection state from Evolution and stores it.
    pub async fn refresh_state(&self, channel: &Channel) -> Result<ChannelState, ChannelError> {
        if channel.provider != ProviderKind::Evolution {
            return Ok(channel.state);
        }
        let ctx = self.context(channel).await?;
        let state = self.evolution.connection_state(&ctx).await?;
        self.store
            .set_channel_state(channel.id, state, None)
            .await?;
        Ok(state)
    }

    /// Logs an Evolution number out.
    pub async fn logout(&self, channel: &Channel) -> Result<(), ChannelError> {
        if channel.provider != ProviderKind::Evolution {
            return Err(ChannelError::Unsupported(
                "only Evolution channels can be logged out".into(),
            ));
        }
        let ctx = self.context(channel).await?;
        self.evolution.logout(&ctx).await?;
        self.store
            .set_channel_state(channel.id, ChannelState::Disconnected, Some("logged out"))
            .await?;
        Ok(())
    }

    /// Meta's subscription handshake: the challenge to echo when some Meta channel has this
    /// verify token.
    pub async fn verify_meta_subscription(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&str>,
    ) -> Result<String, ChannelError> {
        for channel in self.store.list_channels(Some(ProviderKind::Meta)).await? {
            let Ok(ctx) = self.context(&channel).await else {
                continue;
            };
            if let Credentials::Meta { verify_token, .. } = &ctx.credentials {
                if let Ok(echo) = verify_subscription(mode, token, challenge, verify_token) {
                    return Ok(echo);
                }
            }
        }
        Err(ChannelError::Unauthorized("verification failed".into()))
    }

    /// Verifies, parses and records one webhook delivery. `channel` is given for providers
    /// whose webhook URL names the channel (Evolution, Kapso); Meta deliveries are checked
    /// against every Meta channel's app secret and routed by phone number id.
    pub async fn receive(
        &self,
        kind: ProviderKind,
        channel: Option<ChannelId>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Receipt, ChannelError> {
        let provider = self
            .provider(kind)
            .ok_or_else(|| ChannelError::NotFound("no webhook for this provider".into()))?;
        let candidates = match channel {
            Some(id) => match self.store.channel(id).await? {
                Some(c) if c.provider == kind => vec![c],
                // An unknown channel is refused like a bad signature: nothing tells a caller
                // which channel ids exist.
                _ => {
                    return Err(ChannelError::Unauthorized(
                        "unknown channel or bad signature".into(),
                    ))
                }
            },
            None => self.store.list_channels(Some(kind)).await?,
        };
        let mut verified = Vec::new();
        for c in candidates {
            let ctx = match self.context(&c).await {
                Ok(ctx) => ctx,
                Err(e) => {
                    tracing::error!(channel = %c.id, error = %e, "cannot read channel credentials");
                    continue;
                }
            };
            if provider.verify(&ctx.credentials, headers, body).is_ok() {
                verified.push(c);
            }
        }
        if verified.is_empty() {
            metrics::counter!("palaver_webhooks_total", "provider" => kind.as_str(), "result" => "unauthorized").increment(1);
            return Err(ChannelError::Unauthorized(
                "missing or invalid webhook signature".into(),
            ));
        }
        let events = provider
            .parse(body)
            .map_err(|e| ChannelError::BadRequest(e.to_string()))?;
        let mut receipt = Receipt::default();
        for event in events {
            self.apply(kind, &verified, event, &mut receipt).await?;
        }
        metrics::counter!("palaver_webhooks_total", "provider" => kind.as_str(), "result" => "accepted").increment(1);
        if let Some(key) = header_value(headers, "x-idempotency-key") {
            tracing::debug!(idempotency_key = %key, "webhook delivery");
        }
        Ok(receipt)
    }

    fn route<'a>(verified: &'a [Channel], route: &str) -> Option<&'a Channel> {
        verified.iter().find(|c| c.route_key == route)
    }

    fn policy(&self) -> InboundPolicy {
        let debounce = Duration::from_millis(self.settings.pipeline.debounce_ms);
        InboundPolicy {
            debounce,
            max_delay: debounce * 3,
            idle_reset: Duration::from_secs(self.settings.pipeline.idle_reset_hours * 3600),
            max_attempts: self.settings.workers.max_attempts,
            schedule: true,
        }
    }

    async fn apply(
        &self,
        kind: ProviderKind,
        verified: &[Channel],
        event: Event,
        receipt: &mut Receipt,
    ) -> Result<(), ChannelError> {
        match event {
            Event::Message { route, message } => {
                let Some(channel) = Self::route(verified, &route) else {
                    tracing::warn!(provider = kind.as_str(), %route, "message for a number no channel serves; acknowledged");
                    receipt.unrouted += 1;
                    return Ok(());
                };
                match self
                    .store
                    .record_inbound(channel, new_inbound(message), self.policy())
                    .await?
                {
                    RecordedInbound::New { message, .. } => {
                        tracing::info!(channel = %channel.id, message = %message.id, kind = message.kind.as_str(), "message received");
                        receipt.recorded += 1;
                    }
                    RecordedInbound::Duplicate => receipt.duplicates += 1,
                }
            }
            Event::OwnMessage { route, message } => {
                let Some(channel) = Self::route(verified, &route) else {
                    receipt.unrouted += 1;
                    return Ok(());
                };
                // Typed on the business's phone: a person took over this conversation.
                if let Some(conversation) = self
                    .store
                    .record_own_message(channel, new_inbound(message))
                    .await?
                {
                    let trigger =
                        Trigger::HumanTakeover("message sent from the business phone".into());
                    self.store
                        .open_escalation(
                            conversation.id,
                            trigger.reason(),
                            Some(trigger.detail()),
                            None,
                        )
                        .await?;
                    tracing::info!(conversation = %conversation.id, "human took over from the phone");
                } else {
                    receipt.ignored += 1;
                }
            }
            Event::Status { route, update } => {
                let Some(channel) = Self::route(verified, &route) else {
                    receipt.unrouted += 1;
                    return Ok(());
                };
                self.store
                    .apply_status(
                        channel.id,
                        &update.provider_message_id,
                        update.status,
                        update.error.as_ref(),
                        update.timestamp,
                    )
                    .await?;
                if update.status == DeliveryStatus::Failed {
                    tracing::warn!(channel = %channel.id, error = ?update.error, "provider reports a message failed");
                }
                receipt.statuses += 1;
            }
            Event::Connection {
                route,
                state,
                detail,
            } => {
                if let Some(channel) = Self::route(verified, &route) {
                    self.store
                        .set_channel_state(channel.id, state, detail.as_deref())
                        .await?;
                    tracing::info!(channel = %channel.id, state = state.as_str(), "channel connection changed");
                }
                receipt.ignored += 1;
            }
            Event::QrCode { route, .. } => {
                if let Some(channel) = Self::route(verified, &route) {
                    self.store
                        .set_channel_state(channel.id, ChannelState::Connecting, None)
                        .await?;
                }
                receipt.ignored += 1;
            }
            Event::Call {
                route,
                from,
                status,
                ..
            } => {
                // Evolution rejects calls itself with the channel's message (set at creation).
                tracing::info!(%route, caller = %from, %status, "incoming call");
                metrics::counter!("palaver_calls_total", "status" => status).increment(1);
                receipt.ignored += 1;
            }
            Event::Ignored { reason, .. } => {
                tracing::debug!(%reason, "webhook event ignored");
                receipt.ignored += 1;
            }
        }
        Ok(())
    }

    fn limiter(&self, channel: &Channel) -> Arc<DefaultDirectRateLimiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        limiters
            .entry(channel.id)
            .or_insert_with(|| {
                let per_minute = channel
                    .settings
                    .rate_per_minute
                    .unwrap_or(self.settings.channels.rate_per_minute);
                let rate = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
                let burst =
                    NonZeroU32::new(self.settings.channels.burst.max(1)).unwrap_or(NonZeroU32::MIN);
                Arc::new(RateLimiter::direct(
                    Quota::per_minute(rate).allow_burst(burst),
                ))
            })
            .clone()
    }

    /// Forgets cached per-channel state after a channel changed.
    pub fn forget(&self, channel: ChannelId) {
        self.limiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&channel);
    }

    /// Delivers one outbox message through its channel's provider. Already-sent messages are
    /// left alone, so a retried job never sends twice.
    #[tracing::instrument(skip(self))]
    pub async fn deliver(
        &self,
        message_id: crate::domain::MessageId,
    ) -> Result<(), DeliveryFailure> {
        let Some(message) = self.store.message(message_id).await? else {
            return Err(DeliveryFailure::Failed(format!(
                "message {message_id} no longer exists"
            )));
        };
        if message.status != DeliveryStatus::Queued {
            return Ok(());
        }
        let conversation = self
            .store
            .conversation(message.conversation_id)
            .await?
            .ok_or_else(|| DeliveryFailure::Failed("conversation no longer exists".into()))?;
        let channel = self
            .store
            .channel(conversation.channel_id)
            .await?
            .ok_or_else(|| DeliveryFailure::Failed("channel no longer exists".into()))?;
        let Some(provider) = self.provider(channel.provider) else {
            self.store
                .mark_sent(message.id, &format!("sandbox.{}", message.id))
                .await?;
            return Ok(());
        };
        let ctx = match self.context(&channel).await {
            Ok(ctx) => ctx,
            Err(e) => return Err(self.fail(&message, None, &e.to_string()).await),
        };
        let mut body = match (&message.kind, &message.details.template) {
            (MessageKind::Template, Some(t)) => OutboundBody::Template {
                name: t.name.clone(),
                language: t.language.clone(),
                parameters: Vec::new(),
            },
            _ => OutboundBody::text(message.text.clone().unwrap_or_default()),
        };
        // Outside the customer-service window only a template may go out (Cloud API rules).
        let window_open = conversation.last_inbound_at.is_some_and(|t| {
            Utc::now()
                .signed_duration_since(t)
                .to_std()
                .unwrap_or_default()
                < SERVICE_WINDOW
        });
        let windowed = matches!(channel.provider, ProviderKind::Meta | ProviderKind::Kapso);
        if windowed && !window_open && !matches!(body, OutboundBody::Template { .. }) {
            match self.reengagement(&conversation).await? {
                Some(template) => body = template,
                None => return Err(self.window_closed(&message, &conversation).await),
            }
        }
        let limiter = self.limiter(&channel);
        if let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return Err(DeliveryFailure::Retry {
                message: format!(
                    "channel send rate reached; next slot in {} ms",
                    wait.as_millis()
                ),
                after: Some(wait),
            });
        }
        let outbound = Outbound {
            to: conversation.contact.address().to_string(),
            reply_to_message: None,
            body: body.clone(),
        };
        match provider.send(&ctx, &outbound).await {
            Ok(sent) => {
                self.store
                    .mark_sent(message.id, &sent.provider_message_id)
                    .await?;
                metrics::counter!("palaver_messages_sent_total", "provider" => channel.provider.as_str()).increment(1);
                Ok(())
            }
            Err(ProviderError::Transient {
                message: m,
                retry_after,
            }) => Err(DeliveryFailure::Retry {
                message: m,
                after: retry_after,
            }),
            Err(ProviderError::NeedsTemplate(m)) => {
                tracing::warn!(conversation = %conversation.id, "provider says the 24-hour window is closed: {m}");
                match self.reengagement(&conversation).await? {
                    Some(template) if !matches!(body, OutboundBody::Template { .. }) => {
                        let outbound = Outbound {
                            body: template,
                            ..outbound
                        };
                        match provider.send(&ctx, &outbound).await {
                            Ok(sent) => {
                                self.store
                                    .mark_sent(message.id, &sent.provider_message_id)
                                    .await?;
                                Ok(())
                            }
                            Err(e) => Err(self.fail(&message, None, &e.to_string()).await),
                        }
                    }
                    _ => Err(self.window_closed(&message, &conversation).await),
                }
            }
            Err(ProviderError::Auth(m)) => {
                self.store
                    .set_channel_state(
                        channel.id,
                        ChannelState::Broken,
                        Some(&format!("credentials refused: {m}")),
                    )
                    .await?;
                tracing::error!(channel = %channel.id, "provider refused the channel's credentials");
                Err(self
                    .fail(&message, None, &format!("credentials refused: {m}"))
                    .await)
            }
            Err(
                e @ (ProviderError::Permanent(_)
                | ProviderError::Unsupported(_)
                | ProviderError::BadPayload(_)
                | ProviderError::BadSignature(_)),
            ) => Err(self.fail(&message, None, &e.to_string()).await),
        }
    }

    /// The agent's re-engagement template, as a body, if it has one.
    async fn reengagement(
        &self,
        conversation: &Conversation,
    ) -> Result<Option<OutboundBody>, DeliveryFailure> {
        let Some(agent_id) = conversation.agent_id else {
            return Ok(None);
        };
        let Some(agent) = self.store.agent(agent_id).await? else {
            return Ok(None);
        };
        Ok(agent
            .config
            .escalation
            .reengagement_template
            .map(|TemplateRef { name, language }| OutboundBody::Template {
                name,
                language,
                parameters: Vec::new(),
            }))
    }

    /// No template to send outside the window: the message fails and a person takes over.
    async fn window_closed(
        &self,
        message: &crate::domain::Message,
        conversation: &Conversation,
    ) -> DeliveryFailure {
        let trigger = Trigger::WindowClosed("no re-engagement template configured".into());
        if let Err(e) = self
            .store
            .open_escalation(
                conversation.id,
                trigger.reason(),
                Some(trigger.detail()),
                None,
            )
            .await
        {
            return e.into();
        }
        self.fail(
            message,
            Some(131047),
            "outside the 24-hour customer-service window",
        )
        .await
    }

    async fn fail(
        &self,
        message: &crate::domain::Message,
        code: Option<i64>,
        why: &str,
    ) -> DeliveryFailure {
        let error = DeliveryError {
            code,
            title: why.to_string(),
            detail: None,
        };
        match self.store.mark_failed(message.id, &error).await {
            Ok(()) => DeliveryFailure::Failed(why.to_string()),
            Err(e) => e.into(),
        }
    }

    /// Marks a customer message read and shows "typing…" while the reply is prepared. Failures
    /// are logged: they never hold up the reply.
    pub async fn mark_read(&self, conversation: &Conversation, provider_message_id: &str) {
        let Ok(Some(channel)) = self.store.channel(conversation.channel_id).await else {
            return;
        };
        let Some(provider) = self.provider(channel.provider) else {
            return;
        };
        let Ok(ctx) = self.context(&channel).await else {
            return;
        };
        if let Err(e) = provider.mark_read(&ctx, provider_message_id, true).await {
            tracing::debug!(error = %e, "mark-read failed");
        }
    }

    /// Records and queues a message from a person in the inbox.
    pub async fn send_human_reply(
        &self,
        conversation: &Conversation,
        text: &str,
        by: &str,
    ) -> Result<crate::domain::Message, ChannelError> {
        let (message, _) = self
            .store
            .record_outbound(NewOutbound {
                conversation_id: conversation.id,
                role: Role::Agent,
                kind: MessageKind::Text,
                text: Some(text.to_string()),
                details: MessageDetails::default(),
                generation: None,
                idempotency_key: None,
                handled: Vec::new(),
                delivery: if conversation.sandbox {
                    crate::store::Delivery::RecordOnly
                } else {
                    crate::store::Delivery::Outbox {
                        max_attempts: self.settings.workers.max_attempts,
                    }
                },
            })
            .await?;
        tracing::info!(conversation = %conversation.id, by, "human reply queued");
        Ok(message)
    }

    /// A QR code as the API shows it.
    pub fn qr_view(qr: &PairingQr) -> serde_json::Value {
        serde_json::json!({ "image": qr.image, "code": qr.code, "pairing_code": qr.pairing_code })
    }
}

fn new_inbound(m: Inbound) -> NewInbound {
    NewInbound {
        provider_message_id: m.provider_message_id,
        from: m.from,
        reply_to: m.reply_to,
        contact_name: m.contact_name,
        kind: m.kind,
        text: m.text,
        details: m.details,
        sent_at: m.timestamp,
    }
}

#[async_trait]
impl MediaSource for Channels {
    async fn fetch(
        &self,
        conversation: &Conversation,
        media: &MediaRef,
    ) -> Result<Vec<u8>, MediaError> {
        if let Some(inline) = &media.inline_base64 {
            return base64::engine::general_purpose::STANDARD
                .decode(inline.trim())
                .map_err(|e| MediaError::Gone(format!("inline media is not base64: {e}")));
        }
        let channel = self
            .store
            .channel(conversation.channel_id)
            .await
            .map_err(|e| MediaError::Unavailable(e.to_string()))?
            .ok_or_else(|| MediaError::Gone("the channel no longer exists".into()))?;
        let provider = self
            .provider(channel.provider)
            .ok_or_else(|| MediaError::Gone("the sandbox has no media to fetch".into()))?;
        let ctx = self
            .context(&channel)
            .await
            .map_err(|e| MediaError::Unavailable(e.to_string()))?;
        provider
            .fetch_media(&ctx, media)
            .await
            .map(|m| m.bytes)
            .map_err(|e| match e {
                ProviderError::Transient { .. } | ProviderError::Auth(_) => {
                    MediaError::Unavailable(e.to_string())
                }
                _ => MediaError::Gone(e.to_string()),
            })
    }
}
