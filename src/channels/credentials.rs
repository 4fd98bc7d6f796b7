//! Channel credentials at rest: sealed with the installation's key (AES-GCM), opened only to
//! hand a provider the [`ChannelContext`] it acts with. What the fields are is the provider's
//! business ([`Provider::accept_credentials`](crate::providers::Provider::accept_credentials)).

use super::{ChannelError, Channels};
use crate::domain::Channel;
use crate::providers::{ChannelContext, Credentials};

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

    /// The decrypted context a provider needs for `channel`.
    pub async fn context(&self, channel: &Channel) -> Result<ChannelContext, ChannelError> {
        Ok(ChannelContext {
            route_key: channel.route_key.clone(),
            credentials: self.credentials(channel).await?,
        })
    }
}
