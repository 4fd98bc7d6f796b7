//! A channel's life: created with credentials (and a Graph API version) its provider accepts,
//! updated, linked by QR code and logged out (providers with the
//! [`Pairing`](crate::providers::Pairing) capability), deleted. Provider-side set-up (an
//! Evolution instance's webhook and settings) follows every change.

use super::credentials::GivenCredentials;
use super::{ChannelError, Channels};
use crate::domain::{
    AgentId, Channel, ChannelConfig, ChannelState, FieldError, ProviderKind, WorkspaceId,
};
use crate::net::UrlGuard;
use crate::providers::{ConnectOutcome, Credentials, PairingQr, Provider};
use crate::store::NewChannel;

/// Where linking a number stands once it was asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Linking {
    /// Scan this QR code (or type its pairing code) on the phone, as [`Channels::qr_view`]
    /// shows it.
    Scan(serde_json::Value),
    /// The number is already linked.
    Linked,
    /// Connecting, but no QR code yet; it will arrive in a webhook.
    Waiting,
}

/// What the caller provides to create a channel.
#[derive(Debug, Clone)]
pub struct ChannelInput {
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// A label.
    pub name: String,
    /// Which provider serves it.
    pub provider: ProviderKind,
    /// Phone number id (Meta, Kapso) or instance name (Evolution).
    pub route_key: String,
    /// The agent answering on it.
    pub agent_id: Option<AgentId>,
    /// Settings.
    pub settings: ChannelConfig,
    /// The Graph API version it calls (Meta), if not the installation's default.
    pub graph_version: Option<String>,
    /// Credentials, as given (the provider checks them).
    pub credentials: GivenCredentials,
    /// Providers with instances: create the instance on the server (else it exists and is only
    /// configured).
    pub create_instance: bool,
}

impl Channels {
    fn pairing_of<'a>(
        provider: &'a dyn Provider,
        what: &str,
    ) -> Result<&'a dyn crate::providers::Pairing, ChannelError> {
        provider.pairing().ok_or_else(|| {
            ChannelError::Unsupported(format!("{} channels {what}", provider.kind().as_str()))
        })
    }

    /// Every URL in the credentials must pass the instance's URL guard (resolved now; the HTTP
    /// client checks again on every connection).
    async fn check_urls(
        &self,
        provider: &dyn Provider,
        credentials: &Credentials,
    ) -> Result<(), ChannelError> {
        let guard = UrlGuard::new(self.settings.channels.allow_private_urls);
        let mut errors = Vec::new();
        for (field, url) in provider.urls(credentials) {
            if let Err(e) = guard.check(&url).await {
                errors.push(FieldError::new(
                    format!("credentials.{field}"),
                    e.to_string(),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ChannelError::Invalid(errors))
        }
    }

    /// Creates a channel. Providers with instances get theirs created (when asked) and
    /// configured: webhook with its secret, call rejection, groups.
    pub async fn create(&self, input: ChannelInput) -> Result<Channel, ChannelError> {
        if input.provider == ProviderKind::Sandbox {
            return Err(ChannelError::Invalid(vec![FieldError::new(
                "provider",
                "sandbox channels are created by the sandbox",
            )]));
        }
        let provider = self.provider(input.provider)?.clone();
        let graph_version = input
            .graph_version
            .as_deref()
            .map(|given| self.accept_graph_version(input.provider, given))
            .transpose()
            .map_err(|e| ChannelError::Invalid(vec![e]))?;
        let mut credentials = provider
            .accept_credentials(input.credentials.0, None)
            .map_err(ChannelError::Invalid)?;
        self.check_urls(provider.as_ref(), &credentials).await?;
        let mut state = ChannelState::Created;
        if let (Some(pairing), true) = (provider.pairing(), input.create_instance) {
            // The webhook URL names the channel, which has no id yet: the instance is configured
            // again, with the real URL, once the channel is stored.
            credentials = pairing
                .create_instance(&input.route_key, &credentials, "", &input.settings)
                .await?;
            state = ChannelState::Connecting;
        }
        let channel = self
            .store
            .create_channel(NewChannel {
                workspace_id: input.workspace_id,
                name: input.name,
                provider: input.provider,
                route_key: input.route_key,
                agent_id: input.agent_id,
                settings: input.settings,
                graph_version,
                sealed_credentials: self.seal(&credentials),
                state,
            })
            .await?;
        if provider.pairing().is_some() {
            if let Err(e) = self.configure(&channel).await {
                tracing::warn!(channel = %channel.id, error = %e, "instance not configured");
                self.store
                    .set_channel_state(channel.id, ChannelState::Broken, Some(&e.to_string()), None)
                    .await?;
            }
        }
        self.signers.forget();
        tracing::info!(channel = %channel.id, provider = input.provider.as_str(), "channel created");
        Ok(self.store.channel(channel.id).await?.unwrap_or(channel))
    }

    /// Points a paired instance's webhook at this channel and applies its settings.
    async fn configure(&self, channel: &Channel) -> Result<(), ChannelError> {
        let provider = self.provider(channel.provider)?;
        let Some(pairing) = provider.pairing() else {
            return Ok(());
        };
        let ctx = self.context(channel).await?;
        let url = self.webhook_url(channel).unwrap_or_default();
        pairing.configure(&ctx, &url, &channel.settings).await?;
        Ok(())
    }

    /// Saves a channel's name, agent, settings and Graph API version, and credentials when
    /// given: fields left out keep their stored value, and the provider checks the result. A
    /// version is checked when it changes (one Meta has retired since it was chosen is kept
    /// through other changes).
    pub async fn update(
        &self,
        channel: &Channel,
        credentials: Option<GivenCredentials>,
    ) -> Result<Channel, ChannelError> {
        let provider = self.provider(channel.provider)?;
        let mut channel = channel.clone();
        if let Some(given) = channel.graph_version.take() {
            let chosen = match self.store.channel(channel.id).await? {
                Some(stored) => self.choose_graph_version(&stored, &given),
                None => self.accept_graph_version(channel.provider, &given),
            };
            channel.graph_version = Some(chosen.map_err(|e| ChannelError::Invalid(vec![e]))?);
        }
        let sealed = match credentials {
            Some(given) => {
                let stored = self.credentials(&channel).await?;
                let accepted = provider
                    .accept_credentials(given.0, Some(&stored))
                    .map_err(ChannelError::Invalid)?;
                self.check_urls(provider.as_ref(), &accepted).await?;
                Some(self.seal(&accepted))
            }
            None => None,
        };
        let saved = self.store.update_channel(&channel, sealed).await?;
        self.signers.forget();
        self.configure(&saved).await?;
        Ok(saved)
    }

    /// Deletes a channel (logging out and deleting its instance first, best effort).
    pub async fn delete(
        &self,
        channel: &Channel,
        delete_instance: bool,
    ) -> Result<(), ChannelError> {
        if let (Some(pairing), true) = (self.provider(channel.provider)?.pairing(), delete_instance)
        {
            let ctx = self.context(channel).await?;
            if let Err(e) = pairing.delete(&ctx).await {
                tracing::warn!(channel = %channel.id, error = %e, "instance not deleted");
            }
        }
        self.store.delete_channel(channel.id).await?;
        self.signers.forget();
        Ok(())
    }

    /// Asks the provider for a QR code (or a pairing code) to link the number.
    pub async fn connect(
        &self,
        channel: &Channel,
        pairing_number: Option<&str>,
    ) -> Result<Linking, ChannelError> {
        let provider = self.provider(channel.provider)?;
        let pairing = Self::pairing_of(provider.as_ref(), "are not linked by QR code")?;
        let ctx = self.context(channel).await?;
        let outcome = pairing.connect(&ctx, pairing_number).await?;
        let (state, linking) = match &outcome {
            ConnectOutcome::AlreadyOpen => (ChannelState::Connected, Linking::Linked),
            ConnectOutcome::Qr(qr) => (ChannelState::Connecting, Linking::Scan(Self::qr_view(qr))),
            ConnectOutcome::Pending => (ChannelState::Connecting, Linking::Waiting),
        };
        let qr = match &linking {
            Linking::Scan(view) => Some(view.clone()),
            _ => None,
        };
        self.store
            .set_channel_state(channel.id, state, None, qr)
            .await?;
        Ok(linking)
    }

    /// Reads the connection state from the provider (when it has one) and stores it.
    pub async fn refresh_state(&self, channel: &Channel) -> Result<ChannelState, ChannelError> {
        let provider = self.provider(channel.provider)?;
        let Some(pairing) = provider.pairing() else {
            return Ok(channel.state);
        };
        let ctx = self.context(channel).await?;
        let state = pairing.connection_state(&ctx).await?;
        if state != channel.state {
            self.store
                .set_channel_state(channel.id, state, None, None)
                .await?;
        }
        Ok(state)
    }

    /// Logs a linked number out.
    pub async fn logout(&self, channel: &Channel) -> Result<(), ChannelError> {
        let provider = self.provider(channel.provider)?;
        let pairing = Self::pairing_of(provider.as_ref(), "cannot be logged out")?;
        let ctx = self.context(channel).await?;
        pairing.logout(&ctx).await?;
        self.store
            .set_channel_state(
                channel.id,
                ChannelState::Disconnected,
                Some("logged out"),
                None,
            )
            .await?;
        Ok(())
    }

    /// A QR code as the API shows it.
    pub fn qr_view(qr: &PairingQr) -> serde_json::Value {
        serde_json::json!({ "image": qr.image, "code": qr.code, "pairing_code": qr.pairing_code })
    }

    /// A credential's value, for tests that must sign webhooks as the provider would.
    #[cfg(any(test, feature = "test-utils"))]
    pub async fn credential(&self, channel: &Channel, field: &str) -> Option<String> {
        let credentials = self.credentials(channel).await.ok()?;
        credentials.get(field).map(str::to_owned)
    }
}
