//! The Graph API version each channel calls, for providers whose API has versions
//! ([`GraphVersions`]): checked when an owner chooses one, shown with the channel, and reported
//! on the channel's state once Meta has retired it (or soon will), before a send fails for it.

use chrono::{NaiveDate, Utc};

use super::{ChannelError, Channels};
use crate::domain::{Channel, FieldError, ProviderKind};
use crate::providers::GraphVersions;

/// The versions an owner may choose for a new channel of a provider, as forms offer them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionChoice {
    /// The version of channels that choose none.
    pub default: String,
    /// Every version that may be chosen today, oldest first.
    pub choosable: Vec<&'static str>,
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

impl Channels {
    fn graph_versions_of(&self, kind: ProviderKind) -> Option<&dyn GraphVersions> {
        self.providers.get(kind)?.graph_versions()
    }

    /// `given` as a channel of `kind` stores it, or why it cannot be chosen: a version the
    /// provider publishes and has not retired, or an error on the `graph_version` field.
    pub fn accept_graph_version(
        &self,
        kind: ProviderKind,
        given: &str,
    ) -> Result<String, FieldError> {
        let Some(versions) = self.graph_versions_of(kind) else {
            return Err(FieldError::new(
                "graph_version",
                format!("{} channels have no Graph API version", kind.as_str()),
            ));
        };
        versions
            .accept_version(given, today())
            .map_err(|message| FieldError::new("graph_version", message))
    }

    /// The version `current` calls once `given` is chosen for it: the one it calls already,
    /// kept as it is (even one Meta has retired since it was chosen), or a new one its provider
    /// accepts ([`Self::accept_graph_version`]).
    pub fn choose_graph_version(
        &self,
        current: &Channel,
        given: &str,
    ) -> Result<String, FieldError> {
        match current.graph_version.as_deref() {
            Some(kept) if kept == given.trim() => Ok(kept.to_string()),
            _ => self.accept_graph_version(current.provider, given),
        }
    }

    /// The versions an owner may choose for a channel of `kind`, if its provider has versions.
    pub fn graph_version_choice(&self, kind: ProviderKind) -> Option<VersionChoice> {
        let versions = self.graph_versions_of(kind)?;
        Some(VersionChoice {
            default: versions.default_version().to_string(),
            choosable: versions.choosable(today()),
        })
    }

    /// The Graph API version `channel` calls: its own, or its provider's default; `None` for
    /// providers without versions.
    pub fn graph_version(&self, channel: &Channel) -> Option<String> {
        let versions = self.graph_versions_of(channel.provider)?;
        Some(
            channel
                .graph_version
                .clone()
                .unwrap_or_else(|| versions.default_version().to_string()),
        )
    }

    /// What the owner of `channel` should know about its health that its connection state does
    /// not say: a Graph API version Meta has retired, or soon will.
    pub fn warnings(&self, channel: &Channel) -> Vec<String> {
        let (Some(versions), Some(version)) = (
            self.graph_versions_of(channel.provider),
            self.graph_version(channel),
        ) else {
            return Vec::new();
        };
        versions
            .version_warning(&version, today())
            .into_iter()
            .collect()
    }

    /// Logs every channel whose Graph API version is retired or soon will be, so an operator
    /// hears of it at start as well as on the channel.
    pub async fn report_graph_versions(&self) -> Result<(), ChannelError> {
        for channel in self.store.list_channels(None, None).await? {
            for warning in self.warnings(&channel) {
                tracing::warn!(channel = %channel.id, name = %channel.name, "{warning}");
            }
        }
        Ok(())
    }
}
