//! The providers an installation can use, one per [`ProviderKind`], built once from the
//! settings. Tests replace one with a double ([`Registry::with`]); adding a vendor is one line in
//! [`Registry::from_settings`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{evolution, kapso, meta, sandbox, Provider, ProviderError};
use crate::config::Settings;
use crate::domain::ProviderKind;
use crate::net::{GuardedClient, UrlGuard};

/// One provider per kind.
#[derive(Clone, Default)]
pub struct Registry {
    providers: HashMap<ProviderKind, Arc<dyn Provider>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<&str> = self.providers.keys().map(|k| k.as_str()).collect();
        kinds.sort_unstable();
        f.debug_struct("Registry")
            .field("providers", &kinds)
            .finish()
    }
}

impl Registry {
    /// Every built-in provider, with HTTP clients that time out as the settings say.
    pub fn from_settings(settings: &Settings) -> Result<Self, ProviderError> {
        let channels = &settings.channels;
        let timeout = Duration::from_secs(channels.timeout_secs);
        let connect_timeout = Duration::from_secs(10);
        let http_error = |e: reqwest::Error| ProviderError::Permanent(format!("HTTP client: {e}"));
        // The instance's own provider URLs (settings) use a plain client; URLs from channels and
        // webhooks (an Evolution server, a media link) go through the guard.
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .build()
            .map_err(http_error)?;
        let guarded = GuardedClient::new(
            UrlGuard::new(channels.allow_private_urls),
            timeout,
            connect_timeout,
        )
        .map_err(http_error)?;
        Ok(Self::default()
            .with(Arc::new(meta::MetaProvider::new(
                client.clone(),
                guarded.clone(),
                channels.meta_graph_url.clone(),
            )))
            .with(Arc::new(evolution::EvolutionProvider::new(guarded.clone())))
            .with(Arc::new(kapso::KapsoProvider::new(
                client,
                guarded,
                channels.kapso_url.clone(),
            )))
            .with(Arc::new(sandbox::SandboxProvider::default())))
    }

    /// This registry with `provider` serving its kind (replacing any other).
    pub fn with(mut self, provider: Arc<dyn Provider>) -> Self {
        self.providers.insert(provider.kind(), provider);
        self
    }

    /// Every provider.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.providers.values()
    }

    /// The provider of `kind`, if this installation has one.
    pub fn get(&self, kind: ProviderKind) -> Option<&Arc<dyn Provider>> {
        self.providers.get(&kind)
    }
}
