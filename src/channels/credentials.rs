//! Channel credentials at rest: sealed with the installation's key (AES-GCM), opened only to
//! hand a provider the [`ChannelContext`] it acts with. What the fields are is the provider's
//! business ([`Provider::accept_credentials`](crate::providers::Provider::accept_credentials)).

use super::{ChannelError, Channels};
use crate::domain::{Channel, FieldError, ProviderKind};
use crate::providers::{ChannelContext, Credentials};

/// Credentials as a caller gives them: an object whose fields the channel's provider defines
/// and checks when the channel is created or updated.
#[derive(Debug, Clone, Default)]
pub struct GivenCredentials(pub(super) Credentials);

impl GivenCredentials {
    /// Reads a JSON object of credential fields.
    pub fn from_json(value: serde_json::Value) -> Result<Self, Vec<FieldError>> {
        Credentials::from_json(value).map(GivenCredentials)
    }

    /// Credentials from field names and values.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        GivenCredentials(Credentials::from_pairs(pairs))
    }
}

impl Channels {
    /// Seals credentials for storage.
    pub(super) fn seal(&self, credentials: &Credentials) -> Vec<u8> {
        self.sealer.seal(&credentials.to_bytes())
    }

    /// Opens sealed credentials.
    pub(super) fn unseal(&self, sealed: &[u8]) -> Result<Credentials, ChannelError> {
        // Sandbox channels are made with nothing to keep secret.
        if sealed.is_empty() {
            return Ok(Credentials::default());
        }
        let plain = self.sealer.open(sealed).map_err(|_| ChannelError::Sealed)?;
        Credentials::from_bytes(&plain).ok_or(ChannelError::Sealed)
    }

    /// The stored credentials of `channel`.
    pub(super) async fn credentials(&self, channel: &Channel) -> Result<Credentials, ChannelError> {
        let sealed = self
            .store
            .channel_credentials(channel.id)
            .await?
            .ok_or_else(|| ChannelError::NotFound(format!("no channel {}", channel.id)))?;
        self.unseal(&sealed)
    }

    /// Checks that this process's key opens the credentials already in the database (replicas
    /// on one database need one key); a database without channels passes.
    pub async fn check_key(&self) -> Result<(), ChannelError> {
        match self.store.list_channels(None, None).await?.first() {
            Some(channel) => self.credentials(channel).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// Whether numbers of `kind` are linked as a device and named by their instance (Evolution),
    /// rather than by the provider's phone number id.
    pub fn linked_by_instance(&self, kind: ProviderKind) -> Result<bool, ChannelError> {
        Ok(self.provider(kind)?.pairing().is_some())
    }

    /// What the provider of `kind` finds wrong with `given` for a new channel.
    pub fn check_new_credentials(
        &self,
        kind: ProviderKind,
        given: &GivenCredentials,
    ) -> Result<Vec<FieldError>, ChannelError> {
        Ok(
            match self
                .provider(kind)?
                .accept_credentials(given.0.clone(), None)
            {
                Ok(_) => Vec::new(),
                Err(errors) => errors,
            },
        )
    }

    /// The decrypted context a provider needs for `channel`.
    pub async fn context(&self, channel: &Channel) -> Result<ChannelContext, ChannelError> {
        Ok(ChannelContext {
            route_key: channel.route_key.clone(),
            credentials: self.credentials(channel).await?,
            graph_version: channel.graph_version.clone(),
        })
    }
}
