//! A provider for tests (feature `test-utils`): it records every send, read receipt and typing
//! indicator and answers sends from a script (success, a [`ProviderError`] a test wants to see
//! handled, a send whose answer is lost, a panic), standing in for any kind, so delivery and
//! pipeline behaviour can be tested without a provider's server.
//!
//! Its webhooks are a small JSON format of its own, authenticated by the channel credential
//! `token` in the `x-test-token` header:
//!
//! ```json
//! {"route": "rec-1",
//!  "messages": [{"id": "m1", "from": "5215550001", "name": "Ana", "text": "hola"}],
//!  "statuses": [{"id": "rec.1", "status": "delivered", "reference": "<our message id>"}]}
//! ```

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use http::HeaderMap;

use chrono::Utc;
use serde::Deserialize;

use super::{
    ChannelContext, Credentials, Event, Field, Inbound, Media, Outbound, Pairing, Provider,
    ProviderError, Sent, ServiceWindow, StatusUpdate, WebhookScope,
};
use crate::domain::{
    DeliveryStatus, FieldError, MediaRef, MessageDetails, MessageKind, ProviderKind,
};

/// How the provider answers one send.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Accepted.
    Accept,
    /// Refused with this error; nothing sent.
    Refuse(ProviderError),
    /// Sent to the customer, but the answer never reached Palaver (a timeout after the request
    /// was written): Palaver sees [`ProviderError::Unconfirmed`].
    LoseAnswer,
    /// The send panics (a bug in a provider's code).
    Panic,
}

/// Records sends; answers from a script, then with success.
pub struct RecordingProvider {
    kind: ProviderKind,
    script: Mutex<VecDeque<Answer>>,
    sent: Mutex<Vec<Outbound>>,
    attempts: Mutex<Vec<Outbound>>,
    reads: Mutex<Vec<(String, bool)>>,
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
            reads: Mutex::new(Vec::new()),
            window: false,
            deduplicates: false,
        }
    }

    /// Answers the next sends with these results, in turn (then success).
    pub fn script(self, results: impl IntoIterator<Item = Result<(), ProviderError>>) -> Self {
        self.answers(results.into_iter().map(|r| match r {
            Ok(()) => Answer::Accept,
            Err(e) => Answer::Refuse(e),
        }))
    }

    /// Answers the next sends so, in turn (then [`Answer::Accept`]).
    pub fn answers(self, answers: impl IntoIterator<Item = Answer>) -> Self {
        self.script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(answers);
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

    /// Read receipts asked for, in order: the customer message's provider id, and whether a
    /// typing indicator came with it.
    pub fn reads(&self) -> Vec<(String, bool)> {
        self.reads.lock().unwrap_or_else(|p| p.into_inner()).clone()
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

#[derive(Deserialize)]
struct TestWebhook {
    route: String,
    #[serde(default)]
    messages: Vec<TestMessage>,
    #[serde(default)]
    statuses: Vec<TestStatus>,
}

#[derive(Deserialize)]
struct TestMessage {
    id: String,
    from: String,
    #[serde(default)]
    name: Option<String>,
    text: String,
    /// A tapped button or list row (`{"id", "title"}`): the message is an interactive reply
    /// whose text is the title.
    #[serde(default)]
    reply: Option<crate::domain::InteractiveReply>,
}

#[derive(Deserialize)]
struct TestStatus {
    id: String,
    status: DeliveryStatus,
    #[serde(default)]
    reference: Option<String>,
}

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

    fn parse(&self, body: &[u8]) -> Result<Vec<Event>, ProviderError> {
        let hook: TestWebhook =
            serde_json::from_slice(body).map_err(|e| ProviderError::BadPayload(e.to_string()))?;
        let messages = hook.messages.into_iter().map(|m| Event::Message {
            route: hook.route.clone(),
            message: Inbound {
                provider_message_id: m.id,
                from: m.from,
                reply_to: None,
                user_id: None,
                contact_name: m.name,
                timestamp: Utc::now(),
                kind: match m.reply {
                    Some(_) => MessageKind::Interactive,
                    None => MessageKind::Text,
                },
                text: Some(m.text),
                details: MessageDetails {
                    interactive: m.reply,
                    ..Default::default()
                },
            },
        });
        let statuses = hook.statuses.into_iter().map(|s| Event::Status {
            route: hook.route.clone(),
            update: StatusUpdate {
                provider_message_id: s.id,
                status: s.status,
                timestamp: Utc::now(),
                error: None,
                reference: s.reference,
            },
        });
        Ok(messages.chain(statuses).collect())
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
            .pop_front()
            .unwrap_or(Answer::Accept);
        let accept = || {
            let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
            // Kapso-like providers answer a repeated key with the first send's id.
            if self.deduplicates && message.idempotency_key.is_some() {
                if let Some(i) = sent
                    .iter()
                    .position(|m| m.idempotency_key == message.idempotency_key)
                {
                    return format!("rec.{}", i + 1);
                }
            }
            sent.push(message.clone());
            format!("rec.{}", sent.len())
        };
        match next {
            Answer::Accept => Ok(Sent {
                provider_message_id: accept(),
            }),
            Answer::Refuse(e) => Err(e),
            Answer::LoseAnswer => {
                accept();
                Err(ProviderError::Unconfirmed("operation timed out".into()))
            }
            Answer::Panic => panic!("the recording provider was told to panic"),
        }
    }

    async fn mark_read(
        &self,
        _channel: &ChannelContext,
        provider_message_id: &str,
        typing: bool,
    ) -> Result<(), ProviderError> {
        self.reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((provider_message_id.to_string(), typing));
        Ok(())
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
