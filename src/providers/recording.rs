//! A provider for tests (feature `test-utils`): it records every send and answers from a
//! script (success, or a [`ProviderError`] a test wants to see handled), standing in for any
//! kind, so delivery and pipeline behaviour can be tested without a provider's server.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use http::HeaderMap;

use super::{
    ChannelContext, Credentials, Event, Field, Media, Outbound, Pairing, Provider, ProviderError,
    Sent, ServiceWindow, WebhookScope,
};
use crate::domain::{FieldError, MediaRef, ProviderKind};

/// Records sends; answers from a script, then with success.
pub struct RecordingProvider {
    kind: ProviderKind,
    script: Mutex<VecDeque<Result<(), ProviderError>>>,
    sent: Mutex<Vec<Outbound>>,
    attempts: Mutex<Vec<Outbound>>,
    window: bool,
    deduplicates: bool,
}

impl RecordingProvider {
    /// A provider of `kind` that accepts every send.
    pub fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            script: Mutex::new(VecDeque::new()),
            sent: Mutex::new(Vec::new()),
            attempts: Mutex::new(Vec::new()),
            window: false,
            deduplicates: false,
        }
    }

    /// Answers the next sends with these results, in turn (then success).
    pub fn script(self, results: impl IntoIterator<Item = Result<(), ProviderError>>) -> Self {
        self.script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(results);
        self
    }

    /// Enforces the 24-hour customer-service window, as Meta does.
    pub fn with_service_window(mut self) -> Self {
        self.window = true;
        self
    }

    /// Deduplicates sends by idempotency key, as Kapso does.
    pub fn deduplicating(mut self) -> Self {
        self.deduplicates = true;
        self
    }

    /// Messages accepted, in order.
    pub fn sent(&self) -> Vec<Outbound> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every send attempted, accepted or not, in order.
    pub fn attempts(&self) -> Vec<Outbound> {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

struct Window;
impl ServiceWindow for Window {}

#[async_trait]
impl Provider for RecordingProvider {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    fn accept_credentials(
        &self,
        given: Credentials,
        previous: Option<&Credentials>,
    ) -> Result<Credentials, Vec<FieldError>> {
        Credentials::accept(given, previous, &[Field::generated("token")], "recording")
    }

    fn webhooks(&self) -> Option<WebhookScope> {
        Some(WebhookScope::Channel)
    }

    fn verify(
        &self,
        credentials: &Credentials,
        headers: &HeaderMap,
        _body: &[u8],
    ) -> Result<(), ProviderError> {
        let given = headers.get("x-test-token").and_then(|v| v.to_str().ok());
        match (given, credentials.get("token")) {
            (Some(g), Some(t)) if !t.is_empty() && g == t => Ok(()),
            _ => Err(ProviderError::BadSignature("bad test token".into())),
        }
    }

    fn parse(&self, _body: &[u8]) -> Result<Vec<Event>, ProviderError> {
        Ok(Vec::new())
    }

    async fn send(
        &self,
        _channel: &ChannelContext,
        message: &Outbound,
    ) -> Result<Sent, ProviderError> {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message.clone());
        let next = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        if let Some(Err(e)) = next {
            return Err(e);
        }
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.push(message.clone());
        Ok(Sent {
            provider_message_id: format!("rec.{}", sent.len()),
        })
    }

    fn deduplicates_sends(&self) -> bool {
        self.deduplicates
    }

    async fn fetch_media(
        &self,
        _channel: &ChannelContext,
        _media: &MediaRef,
    ) -> Result<Media, ProviderError> {
        Err(ProviderError::Permanent("no media here".into()))
    }

    fn pairing(&self) -> Option<&dyn Pairing> {
        None
    }

    fn service_window(&self) -> Option<&dyn ServiceWindow> {
        self.window.then_some(&Window as &dyn ServiceWindow)
    }
}
