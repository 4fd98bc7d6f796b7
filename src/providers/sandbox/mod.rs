//! The sandbox, where prompt authors talk to an agent as a customer would: a provider like any
//! other, except that it receives no webhooks (messages come from the sandbox API) and sends
//! nothing. A "sent" message is kept here, in memory, for whoever wants to look.

use std::sync::Mutex;

use async_trait::async_trait;
use http::HeaderMap;

use super::{
    ChannelContext, Credentials, Event, Media, Outbound, Provider, ProviderError, Sent,
    WebhookScope,
};
use crate::domain::{FieldError, MediaRef, ProviderKind};

/// How many sent messages the sandbox keeps in memory.
const KEPT: usize = 1000;

/// Records what it is asked to send; never sends.
#[derive(Debug, Default)]
pub struct SandboxProvider {
    sent: Mutex<Vec<Outbound>>,
}

impl SandboxProvider {
    /// The last messages "sent", oldest first.
    pub fn sent(&self) -> Vec<Outbound> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Provider for SandboxProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Sandbox
    }

    fn accept_credentials(
        &self,
        given: Credentials,
        _previous: Option<&Credentials>,
    ) -> Result<Credentials, Vec<FieldError>> {
        // Sandbox channels are made by the sandbox itself, with nothing secret.
        Credentials::accept(given, None, &[], "sandbox")
    }

    fn webhooks(&self) -> Option<WebhookScope> {
        None
    }

    fn verify(&self, _: &Credentials, _: &HeaderMap, _: &[u8]) -> Result<(), ProviderError> {
        Err(ProviderError::BadSignature(
            "the sandbox receives no webhooks".into(),
        ))
    }

    fn parse(&self, _body: &[u8]) -> Result<Vec<Event>, ProviderError> {
        Err(ProviderError::Unsupported(
            "the sandbox receives no webhooks".into(),
        ))
    }

    async fn send(
        &self,
        _channel: &ChannelContext,
        message: &Outbound,
    ) -> Result<Sent, ProviderError> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if sent.len() == KEPT {
            sent.remove(0);
        }
        sent.push(message.clone());
        Ok(Sent {
            provider_message_id: format!("sandbox.{}", uuid::Uuid::new_v4().simple()),
        })
    }

    fn rate_limited(&self) -> bool {
        false
    }

    async fn fetch_media(
        &self,
        _channel: &ChannelContext,
        _media: &MediaRef,
    ) -> Result<Media, ProviderError> {
        // Sandbox voice notes are uploaded with their bytes inline.
        Err(ProviderError::Permanent(
            "the sandbox has no media to fetch".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::OutboundBody;

    #[tokio::test]
    async fn records_and_never_sends() {
        let sandbox = SandboxProvider::default();
        let ctx = ChannelContext {
            route_key: "agent".into(),
            credentials: Credentials::default(),
            graph_version: None,
        };
        let message = Outbound {
            to: "15550001".into(),
            idempotency_key: Some("m1".into()),
            reply_to_message: None,
            body: OutboundBody::text("hello"),
        };
        let sent = sandbox.send(&ctx, &message).await.unwrap();
        assert!(sent.provider_message_id.starts_with("sandbox."));
        assert_eq!(sandbox.sent(), vec![message]);
        assert!(sandbox.webhooks().is_none());
        assert!(!sandbox.rate_limited());
        assert!(sandbox
            .verify(&Credentials::default(), &HeaderMap::new(), b"{}")
            .is_err());
        assert!(sandbox
            .accept_credentials(Credentials::from_pairs([("api_key", "x")]), None)
            .is_err());
    }
}
