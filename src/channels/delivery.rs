//! The outbox out. Each attempt to deliver a message is decided from facts by two pure
//! functions, table-tested without a server: [`plan`] (before sending: is there anything to
//! send, and what, given the provider's service window and WhatsApp's length limit) and
//! [`after_send`] (what the provider's answer means: sent, retry, switch to the re-engagement
//! template, or fail for good). [`Channels::deliver`] performs what they decide.
//!
//! Exactly once: a message leaves only while it is `queued`; a send whose answer never came
//! back ([`ProviderError::Unconfirmed`]) is repeated at once only where the provider
//! deduplicates by our idempotency key (Kapso). Elsewhere the next attempt waits
//! `channels.unconfirmed_grace_secs` for the message's status webhook (Meta echoes our message
//! id in `biz_opaque_callback_data`), and sends again only if none came: the window in which a
//! customer can still get a reply twice is a send that reached Meta or Evolution, whose answer
//! was lost, and whose status did not arrive within the grace period.
//!
//! Failing for good marks the message failed and hands the conversation to a person, so a
//! reply a customer never gets is never silent.

use std::time::Duration;

use chrono::Utc;

use super::{ChannelError, Channels};
use crate::domain::{
    ChannelState, Conversation, DeliveryError, DeliveryStatus, EscalationReason, FieldError,
    Message, MessageDetails, MessageId, MessageKind, Role, UserId,
};
use crate::providers::{FileToSend, Outbound, OutboundBody, ProviderError, Sent, Uploaded};
use crate::store::{Delivery, NewEscalation, NewOutbound};

/// How many of a conversation's newest messages are searched for a person's reply that
/// supersedes a queued bot message.
const ANSWERED_WINDOW: u32 = 50;

/// WhatsApp's limit on a text message, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// WhatsApp's limit on the body of a message with buttons or a list, in characters.
pub const MAX_INTERACTIVE_CHARS: usize = 1024;

/// What a delivery attempt came to, for the job runner.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// Delivered, or nothing left to do (already sent, or failed for good and handed to a
    /// person).
    Done,
    /// Failed; worth another attempt after `after` (the runner's backoff when `None`).
    Retry {
        /// Why.
        why: String,
        /// The delay the cause asks for.
        after: Option<Duration>,
    },
    /// Not an attempt: the channel's send rate is used up for this long.
    Wait(Duration),
}

/// A delivery given up for good.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What the message is marked with.
    pub error: DeliveryError,
    /// Who should now reach the customer: the conversation is escalated for this reason.
    pub escalate: EscalationReason,
    /// The provider refused the channel's credentials: the channel needs attention.
    pub channel_broken: bool,
}

impl Failure {
    fn new(title: impl Into<String>, escalate: EscalationReason) -> Self {
        Self {
            error: DeliveryError {
                code: None,
                title: title.into(),
                detail: None,
            },
            escalate,
            channel_broken: false,
        }
    }
}

/// What is known before an attempt.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The message's delivery status.
    pub status: DeliveryStatus,
    /// The message is a template (allowed outside the service window).
    pub is_template: bool,
    /// Characters of its text.
    pub text_chars: usize,
    /// The provider's service window, if it enforces one.
    pub window: Option<Duration>,
    /// Time since the customer last wrote, if ever.
    pub since_customer: Option<Duration>,
    /// The agent has a re-engagement template.
    pub has_template: bool,
    /// What a message is marked with when the window closed it out.
    pub window_error: DeliveryError,
}

/// What to do before sending.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing: the message already left (or failed).
    Skip,
    /// Send it; `template`: send the agent's re-engagement template in its place.
    Send {
        /// Replace it with the re-engagement template.
        template: bool,
    },
    /// It cannot be sent.
    Fail(Failure),
}

/// Decides what an attempt should send.
pub fn plan(f: &Facts) -> Plan {
    if f.status != DeliveryStatus::Queued {
        return Plan::Skip;
    }
    if !f.is_template && f.text_chars > MAX_TEXT_CHARS {
        return Plan::Fail(Failure::new(
            format!(
                "the text has {} characters; WhatsApp takes at most {MAX_TEXT_CHARS}",
                f.text_chars
            ),
            EscalationReason::DeliveryFailed,
        ));
    }
    if let Some(window) = f.window {
        let open = f.since_customer.is_some_and(|d| d < window);
        if !open && !f.is_template {
            if f.has_template {
                return Plan::Send { template: true };
            }
            return Plan::Fail(Failure {
                error: f.window_error.clone(),
                escalate: EscalationReason::WindowClosed,
                channel_broken: false,
            });
        }
    }
    Plan::Send { template: false }
}

/// What is known about the send just made.
#[derive(Debug, Clone)]
pub struct Sending {
    /// It was the re-engagement template (or a template message).
    pub template: bool,
    /// The agent has a re-engagement template.
    pub has_template: bool,
    /// The provider deduplicates by idempotency key.
    pub deduplicates: bool,
    /// How long to wait for a status webhook before repeating an unconfirmed send.
    pub grace: Duration,
    /// What a message is marked with when the window closed it out.
    pub window_error: DeliveryError,
}

/// What to do after the provider answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Accepted, with the provider's id.
    Sent(String),
    /// Try again.
    Retry {
        /// Why.
        why: String,
        /// After this long (the runner's backoff when `None`).
        after: Option<Duration>,
    },
    /// The window closed: send the re-engagement template now.
    SwitchToTemplate,
    /// Give up.
    Fail(Failure),
}

/// Decides what the provider's answer means.
pub fn after_send(result: Result<Sent, ProviderError>, s: &Sending) -> Next {
    match result {
        Ok(sent) => Next::Sent(sent.provider_message_id),
        Err(ProviderError::Transient {
            message,
            retry_after,
        }) => Next::Retry {
            why: message,
            after: retry_after,
        },
        Err(ProviderError::Unconfirmed(why)) => Next::Retry {
            why: format!("unconfirmed: {why}"),
            after: (!s.deduplicates).then_some(s.grace),
        },
        Err(ProviderError::NeedsTemplate(_)) if !s.template && s.has_template => {
            Next::SwitchToTemplate
        }
        Err(ProviderError::NeedsTemplate(_)) => Next::Fail(Failure {
            error: s.window_error.clone(),
            escalate: EscalationReason::WindowClosed,
            channel_broken: false,
        }),
        Err(ProviderError::Auth(m)) => Next::Fail(Failure {
            channel_broken: true,
            ..Failure::new(
                format!("credentials refused: {m}"),
                EscalationReason::DeliveryFailed,
            )
        }),
        Err(
            e @ (ProviderError::Permanent(_)
            | ProviderError::Unsupported(_)
            | ProviderError::BadPayload(_)
            | ProviderError::BadSignature(_)),
        ) => Next::Fail(Failure::new(
            e.to_string(),
            EscalationReason::DeliveryFailed,
        )),
    }
}

/// The answer to an idempotency key used again for a different message.
pub(crate) fn key_reused() -> ChannelError {
    ChannelError::Conflict("this Idempotency-Key was used for a different message".into())
}

/// A message with options: reply buttons up to three, a list beyond.
fn choices_body(text: String, choices: &crate::domain::Choices) -> OutboundBody {
    match &choices.button {
        None => OutboundBody::Buttons {
            text,
            buttons: choices
                .options
                .iter()
                .map(|c| (c.id.clone(), c.title.clone()))
                .collect(),
        },
        Some(button) => OutboundBody::List {
            text,
            button: button.clone(),
            rows: choices
                .options
                .iter()
                .map(|c| (c.id.clone(), c.title.clone(), None))
                .collect(),
        },
    }
}

/// Splits a reply into WhatsApp-sized parts, at paragraph, line, sentence or word boundaries
/// where it can; never loses a character but whitespace at the cuts.
pub fn split_text(text: &str, max_chars: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > max_chars {
        let limit = rest
            .char_indices()
            .nth(max_chars)
            .map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let cut = ["\n\n", "\n", ". ", "? ", "! ", " "]
            .iter()
            .filter_map(|sep| window.rfind(sep).map(|i| i + sep.len()))
            .find(|&i| i > limit / 2)
            .unwrap_or(limit);
        parts.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        parts.push(rest.to_string());
    }
    parts
}

fn since(at: chrono::DateTime<Utc>) -> Duration {
    Utc::now()
        .signed_duration_since(at)
        .to_std()
        .unwrap_or_default()
}

impl Channels {
    /// The agent's re-engagement template, as a body, if it has one.
    async fn reengagement(
        &self,
        conversation: &Conversation,
    ) -> Result<Option<OutboundBody>, ChannelError> {
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
            .map(|template| OutboundBody::Template {
                parameters: template.parameters_for(&conversation.contact),
                name: template.name,
                language: template.language,
            }))
    }

    /// Whether a person (from the inbox, or typing on the business's phone) wrote to the
    /// customer after `message` was queued.
    async fn answered_by_person_since(&self, message: &Message) -> Result<bool, ChannelError> {
        Ok(self
            .store
            .messages(message.conversation_id, ANSWERED_WINDOW, None)
            .await?
            .iter()
            .any(|m| m.role == Role::Agent && m.created_at > message.created_at))
    }

    /// Delivers one outbox message through its channel's provider, once.
    #[tracing::instrument(skip(self))]
    pub async fn deliver(&self, message_id: MessageId) -> Result<Attempt, ChannelError> {
        let Some(message) = self.store.message(message_id).await? else {
            tracing::warn!("message no longer exists; nothing to deliver");
            return Ok(Attempt::Done);
        };
        if message.status != DeliveryStatus::Queued {
            return Ok(Attempt::Done);
        }
        let Some(conversation) = self.store.conversation(message.conversation_id).await? else {
            return Ok(Attempt::Done);
        };
        let Some(channel) = self.store.channel(conversation.channel_id).await? else {
            return Ok(Attempt::Done);
        };
        if message.role == Role::Bot && self.answered_by_person_since(&message).await? {
            // The bot's reply waited (the provider was down, or the send rate was used up)
            // while a person answered: sent now, it would land after the person's message
            // and answer for them. It is withdrawn, and nobody needs alerting.
            let error = DeliveryError {
                code: None,
                title: "withdrawn: a person answered the customer before it could be sent".into(),
                detail: None,
            };
            self.store.mark_failed(message.id, &error, None).await?;
            tracing::info!(message = %message.id, conversation = %conversation.id, "bot reply withdrawn: a person answered first");
            metrics::counter!("palaver_messages_withdrawn_total").increment(1);
            return Ok(Attempt::Done);
        }
        let provider = match self.provider(channel.provider) {
            Ok(p) => p.clone(),
            Err(e) => {
                let failure = Failure::new(e.to_string(), EscalationReason::DeliveryFailed);
                self.fail(&message, &conversation, failure).await?;
                return Ok(Attempt::Done);
            }
        };
        let window = provider.service_window();
        let window_error = window.map(|w| w.closed_error()).unwrap_or(DeliveryError {
            code: None,
            title: "outside the customer-service window".into(),
            detail: None,
        });
        let template = self.reengagement(&conversation).await?;
        let is_template =
            message.kind == MessageKind::Template && message.details.template.is_some();
        let facts = Facts {
            status: message.status,
            is_template,
            text_chars: message.text.as_deref().map_or(0, |t| t.chars().count()),
            window: window.map(|w| w.length()),
            since_customer: conversation.last_inbound_at.map(since),
            has_template: template.is_some(),
            window_error: window_error.clone(),
        };
        let use_template = match plan(&facts) {
            Plan::Skip => return Ok(Attempt::Done),
            Plan::Fail(failure) => {
                self.fail(&message, &conversation, failure).await?;
                return Ok(Attempt::Done);
            }
            Plan::Send { template } => template,
        };
        if provider.rate_limited() {
            let per_minute = channel
                .settings
                .rate_per_minute
                .unwrap_or(self.settings.channels.rate_per_minute);
            if let Some(wait) = self
                .store
                .take_send_slot(channel.id, per_minute, self.settings.channels.burst)
                .await?
            {
                return Ok(Attempt::Wait(wait));
            }
        }
        let ctx = match self.context(&channel).await {
            Ok(ctx) => ctx,
            Err(e @ ChannelError::Sealed) => {
                let failure = Failure::new(e.to_string(), EscalationReason::DeliveryFailed);
                self.fail(&message, &conversation, failure).await?;
                return Ok(Attempt::Done);
            }
            Err(e) => return Err(e),
        };
        let mut sending = Sending {
            template: use_template || is_template,
            has_template: template.is_some(),
            deduplicates: provider.deduplicates_sends(),
            grace: Duration::from_secs(self.settings.channels.unconfirmed_grace_secs),
            window_error,
        };
        // A person's file is uploaded once (its media id is kept on the message), unless a
        // template goes instead; an upload that fails is judged below as a send would be.
        let upload = if use_template {
            None
        } else {
            self.uploaded(provider.as_ref(), &ctx, &message).await?
        };
        let (uploaded, mut failed_upload) = match upload {
            Some(Ok(uploaded)) => (Some(uploaded), None),
            // An upload repeated costs nothing but an unused file at the provider: no grace.
            Some(Err(ProviderError::Unconfirmed(why))) => (
                None,
                Some(ProviderError::Transient {
                    message: format!("upload unconfirmed: {why}"),
                    retry_after: None,
                }),
            ),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let body = match (&message.details.template, use_template, uploaded) {
            (_, true, _) => template.clone().unwrap_or_else(|| OutboundBody::text("")),
            (Some(t), false, _) if is_template => OutboundBody::Template {
                name: t.name.clone(),
                language: t.language.clone(),
                parameters: t.parameters.clone(),
            },
            (_, false, Some(media)) => {
                let about = message.details.media.clone().unwrap_or_default();
                OutboundBody::Upload {
                    kind: message.kind.as_str().to_string(),
                    media,
                    caption: message.text.clone().filter(|t| !t.is_empty()),
                    filename: about
                        .filename
                        .filter(|_| message.kind == MessageKind::Document),
                }
            }
            _ if message.kind == MessageKind::Reaction => match &message.details.reaction {
                Some(r) => OutboundBody::Reaction {
                    message_id: r.message_id.clone(),
                    emoji: r.emoji.clone().unwrap_or_default(),
                },
                None => OutboundBody::text(message.text.clone().unwrap_or_default()),
            },
            _ => match &message.details.choices {
                Some(choices) => choices_body(message.text.clone().unwrap_or_default(), choices),
                None => OutboundBody::text(message.text.clone().unwrap_or_default()),
            },
        };
        let mut outbound = Outbound {
            to: conversation.contact.address().to_string(),
            idempotency_key: Some(message.id.to_string()),
            // A person's reply that quotes one of the conversation's messages.
            reply_to_message: message.details.context_message_id.clone(),
            body,
        };
        loop {
            let result = match failed_upload.take() {
                Some(e) => Err(e),
                None => provider.send(&ctx, &outbound).await,
            };
            match after_send(result, &sending) {
                Next::Sent(provider_id) => {
                    self.store.mark_sent(message.id, &provider_id).await?;
                    metrics::counter!("palaver_messages_sent_total", "provider" => channel.provider.as_str()).increment(1);
                    return Ok(Attempt::Done);
                }
                Next::Retry { why, after } => return Ok(Attempt::Retry { why, after }),
                Next::SwitchToTemplate => {
                    tracing::warn!(conversation = %conversation.id, "the provider says the 24-hour window is closed; sending the re-engagement template");
                    outbound.body = template.clone().unwrap_or_else(|| OutboundBody::text(""));
                    sending.template = true;
                }
                Next::Fail(failure) => {
                    if failure.channel_broken {
                        self.store
                            .set_channel_state(
                                channel.id,
                                ChannelState::Broken,
                                Some(&failure.error.title),
                                None,
                            )
                            .await?;
                        tracing::error!(channel = %channel.id, "the provider refused the channel's credentials");
                    }
                    self.fail(&message, &conversation, failure).await?;
                    return Ok(Attempt::Done);
                }
            }
        }
    }

    /// The file of a person's message made sendable on `provider`: `None` for a message
    /// without one; its kept media id when it was uploaded before; else uploaded now (and the
    /// id kept). A file no longer kept fails for good.
    async fn uploaded(
        &self,
        provider: &dyn crate::providers::Provider,
        ctx: &crate::providers::ChannelContext,
        message: &Message,
    ) -> Result<Option<Result<Uploaded, ProviderError>>, ChannelError> {
        let Some(media) = &message.details.media else {
            return Ok(None);
        };
        let Some(file_id) = &media.file else {
            return Ok(None);
        };
        if let Some(id) = &media.id {
            return Ok(Some(Ok(Uploaded::Id(id.clone()))));
        }
        let Some(file) = self.store.file(file_id).await? else {
            return Ok(Some(Err(ProviderError::Permanent(
                "the file to send is no longer kept".into(),
            ))));
        };
        let uploaded = provider
            .upload_media(
                ctx,
                FileToSend {
                    bytes: &file.content,
                    mime_type: &file.mime_type,
                    filename: &file.filename,
                },
            )
            .await;
        if let Ok(Uploaded::Id(id)) = &uploaded {
            self.store.set_uploaded_media(message.id, id).await?;
        }
        Ok(Some(uploaded))
    }

    /// Gives up on a message the job runner could not deliver in time: it fails, and a person
    /// takes the conversation.
    pub async fn give_up(&self, message_id: MessageId, why: &str) -> Result<(), ChannelError> {
        let Some(message) = self.store.message(message_id).await? else {
            return Ok(());
        };
        if message.status != DeliveryStatus::Queued {
            return Ok(());
        }
        let Some(conversation) = self.store.conversation(message.conversation_id).await? else {
            return Ok(());
        };
        let failure = Failure::new(
            format!("not delivered: {why}"),
            EscalationReason::DeliveryFailed,
        );
        self.fail(&message, &conversation, failure).await
    }

    /// Marks a message failed and, unless it was a note to staff, escalates its conversation,
    /// in one transaction.
    async fn fail(
        &self,
        message: &Message,
        conversation: &Conversation,
        failure: Failure,
    ) -> Result<(), ChannelError> {
        let escalation = (message.role != Role::System).then(|| {
            (
                conversation.id,
                NewEscalation {
                    reason: failure.escalate,
                    detail: Some(failure.error.title.clone()),
                    message_id: Some(message.id),
                },
            )
        });
        self.store
            .mark_failed(message.id, &failure.error, escalation)
            .await?;
        tracing::warn!(message = %message.id, conversation = %conversation.id, reason = failure.escalate.as_str(), error = %failure.error.title, "message not delivered; conversation handed to a person");
        metrics::counter!("palaver_messages_failed_total", "reason" => failure.escalate.as_str())
            .increment(1);
        Ok(())
    }

    /// Records and queues a message from a person in the inbox. With an idempotency key, the
    /// same request made twice records one message (the second call returns it, with `false`).
    pub async fn send_human_reply(
        &self,
        conversation: &Conversation,
        text: &str,
        quoting: Option<String>,
        sent_by: Option<UserId>,
        idempotency_key: Option<&str>,
    ) -> Result<(Message, bool), ChannelError> {
        let text = check_human_text(text)?;
        let details = MessageDetails {
            context_message_id: quoting,
            ..Default::default()
        };
        let (message, created) = self
            .record_human(
                conversation,
                (MessageKind::Text, Some(text.to_string()), details),
                sent_by,
                "human",
                idempotency_key,
            )
            .await?;
        if created {
            tracing::info!(conversation = %conversation.id, user = ?sent_by, "human reply queued");
        } else if message.text.as_deref() != Some(text) {
            return Err(key_reused());
        }
        Ok((message, created))
    }

    /// Records a person's message to the customer (`kind`, text, details) in the outbox,
    /// once per idempotency key: the same key again returns the first message (`false`).
    pub(crate) async fn record_human(
        &self,
        conversation: &Conversation,
        (kind, text, details): (MessageKind, Option<String>, MessageDetails),
        sent_by: Option<UserId>,
        prefix: &str,
        idempotency_key: Option<&str>,
    ) -> Result<(Message, bool), crate::store::StoreError> {
        self.store
            .record_outbound(NewOutbound {
                conversation_id: conversation.id,
                role: Role::Agent,
                kind,
                text,
                details,
                generation: None,
                sent_by,
                idempotency_key: idempotency_key
                    .map(|k| format!("{prefix}:{}:{k}", conversation.id)),
                handled: Vec::new(),
                delivery: Delivery::Outbox(self.settings.workers.limits()),
            })
            .await
    }

    /// Records and queues the satisfaction survey `csat` asks, with the survey it opens, once
    /// per `key` (the same key again returns the first survey, with `false`). It is a notice
    /// from the business, not the bot's answer: a survey that cannot be delivered is marked
    /// failed without handing the conversation to a person.
    pub async fn send_survey(
        &self,
        conversation: &Conversation,
        csat: &crate::domain::CsatSettings,
        escalation: Option<crate::domain::EscalationId>,
        person: Option<UserId>,
        key: &str,
    ) -> Result<(crate::store::Survey, bool), ChannelError> {
        let details = MessageDetails {
            choices: Some(csat.choices()),
            ..Default::default()
        };
        let (survey, _, created) = self
            .store
            .send_survey(
                conversation,
                escalation,
                person,
                NewOutbound {
                    conversation_id: conversation.id,
                    role: Role::System,
                    kind: MessageKind::Text,
                    text: Some(csat.question.trim().to_string()),
                    details,
                    generation: None,
                    sent_by: None,
                    idempotency_key: Some(format!("csat:{}:{key}", conversation.id)),
                    handled: Vec::new(),
                    delivery: Delivery::Outbox(self.settings.workers.limits()),
                },
            )
            .await?;
        if created {
            tracing::info!(conversation = %conversation.id, survey = %survey.id, "satisfaction survey queued");
        }
        Ok((survey, created))
    }

    /// Queues a person's reaction to the message the provider knows as `target` (an emoji, or
    /// empty to remove it), once per idempotency key.
    pub async fn send_human_reaction(
        &self,
        conversation: &Conversation,
        target: &str,
        emoji: &str,
        sent_by: Option<UserId>,
        idempotency_key: Option<&str>,
    ) -> Result<(Message, bool), ChannelError> {
        let reaction = crate::domain::Reaction {
            message_id: target.to_string(),
            emoji: (!emoji.is_empty()).then(|| emoji.to_string()),
        };
        let details = MessageDetails {
            reaction: Some(reaction.clone()),
            ..Default::default()
        };
        let (message, created) = self
            .record_human(
                conversation,
                (MessageKind::Reaction, reaction.emoji.clone(), details),
                sent_by,
                "reaction",
                idempotency_key,
            )
            .await?;
        if !created && message.details.reaction.as_ref() != Some(&reaction) {
            return Err(key_reused());
        }
        Ok((message, created))
    }

    /// Queues a person's file (a document, an image...) with an optional caption, like
    /// [`Channels::send_human_reply`]: the file is kept with the conversation, uploaded to the
    /// provider once, and sent once per idempotency key.
    pub async fn send_human_file(
        &self,
        conversation: &Conversation,
        file: HumanFile,
        caption: Option<&str>,
        sent_by: Option<UserId>,
        idempotency_key: Option<&str>,
    ) -> Result<(Message, bool), ChannelError> {
        let (kind, filename, caption) = check_human_file(&file, caption)?;
        let mime_type = file.mime_type.clone();
        let file_id = self
            .store
            .store_file(crate::store::NewFile {
                conversation_id: conversation.id,
                filename: filename.clone(),
                mime_type: mime_type.clone(),
                content: file.content,
            })
            .await?;
        let details = MessageDetails {
            media: Some(crate::domain::MediaRef {
                file: Some(file_id.clone()),
                mime_type: Some(mime_type),
                filename: Some(filename),
                caption: caption.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let recorded = self
            .record_human(
                conversation,
                (kind, caption, details),
                sent_by,
                "human",
                idempotency_key,
            )
            .await;
        let (message, created) = match recorded {
            Ok(r) => r,
            Err(e) => {
                let _ = self.store.delete_file(&file_id).await;
                return Err(e.into());
            }
        };
        if created {
            tracing::info!(conversation = %conversation.id, user = ?sent_by, kind = kind.as_str(), "human file queued");
        } else {
            // The same request again: the first one's file is the one sent.
            self.store.delete_file(&file_id).await?;
            if message
                .details
                .media
                .as_ref()
                .and_then(|m| m.file.as_ref())
                .is_none()
            {
                return Err(key_reused());
            }
        }
        Ok((message, created))
    }
}

/// A file a person sends from the inbox.
#[derive(Debug, Clone)]
pub struct HumanFile {
    /// Its name as uploaded.
    pub filename: String,
    /// Its MIME type as uploaded.
    pub mime_type: String,
    /// The bytes.
    pub content: Vec<u8>,
}

/// The largest file a person may send (WhatsApp's limit on audio and video; images are
/// smaller).
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// WhatsApp's limit on images.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// WhatsApp's limit on a caption, in characters.
pub const MAX_CAPTION_CHARS: usize = 1024;

/// What WhatsApp makes of a file, from its MIME type: images (JPEG, PNG), videos (MP4, 3GPP)
/// and audio are shown as such; anything else is a document.
pub fn file_kind(mime_type: &str) -> MessageKind {
    match crate::domain::mime_essence(mime_type).as_str() {
        "image/jpeg" | "image/png" => MessageKind::Image,
        "video/mp4" | "video/3gpp" => MessageKind::Video,
        "audio/aac" | "audio/mp4" | "audio/mpeg" | "audio/amr" | "audio/ogg" => MessageKind::Audio,
        _ => MessageKind::Document,
    }
}

/// Checks a person's file and caption: the file not empty and within WhatsApp's size for its
/// kind, a plain file name, a caption within WhatsApp's length and only where one is shown.
/// Returns the kind, the file name to use and the caption.
pub fn check_human_file(
    file: &HumanFile,
    caption: Option<&str>,
) -> Result<(MessageKind, String, Option<String>), ChannelError> {
    let mut errors = Vec::new();
    let kind = file_kind(&file.mime_type);
    let limit = if kind == MessageKind::Image {
        MAX_IMAGE_BYTES
    } else {
        MAX_FILE_BYTES
    };
    if file.content.is_empty() {
        errors.push(FieldError::new("file", "is empty"));
    } else if file.content.len() > limit {
        errors.push(FieldError::new(
            "file",
            format!(
                "is {:.1} MB; WhatsApp takes {} MB at most for this kind of file",
                file.content.len() as f64 / (1024.0 * 1024.0),
                limit / (1024 * 1024)
            ),
        ));
    }
    // A name, never a path; control characters out.
    let name: String = file
        .filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let name = match name.trim() {
        "" => "file".to_string(),
        n => n.to_string(),
    };
    let caption = caption.map(str::trim).filter(|c| !c.is_empty());
    if let Some(c) = caption {
        if kind == MessageKind::Audio {
            errors.push(FieldError::new("text", "audio cannot carry a caption"));
        } else if c.chars().count() > MAX_CAPTION_CHARS {
            errors.push(FieldError::new(
                "text",
                format!("a caption is at most {MAX_CAPTION_CHARS} characters"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ChannelError::Invalid(errors));
    }
    Ok((kind, name, caption.map(str::to_string)))
}

/// A person's reply text, trimmed: not empty, and within WhatsApp's length.
pub fn check_human_text(text: &str) -> Result<&str, ChannelError> {
    let text = text.trim();
    let chars = text.chars().count();
    if chars == 0 {
        return Err(ChannelError::Invalid(vec![FieldError::new(
            "text",
            "must not be empty",
        )]));
    }
    if chars > MAX_TEXT_CHARS {
        return Err(ChannelError::Invalid(vec![FieldError::new(
            "text",
            format!("has {chars} characters; WhatsApp takes at most {MAX_TEXT_CHARS}"),
        )]));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed() -> DeliveryError {
        DeliveryError {
            code: Some(131047),
            title: "outside the 24-hour customer-service window".into(),
            detail: None,
        }
    }

    fn facts() -> Facts {
        Facts {
            status: DeliveryStatus::Queued,
            is_template: false,
            text_chars: 10,
            window: Some(Duration::from_secs(24 * 3600)),
            since_customer: Some(Duration::from_secs(60)),
            has_template: false,
            window_error: closed(),
        }
    }

    #[test]
    fn plans_from_status_window_and_length() {
        let hours = |h: u64| Some(Duration::from_secs(h * 3600));
        let cases: Vec<(&str, Facts, Plan)> = vec![
            (
                "queued, window open",
                facts(),
                Plan::Send { template: false },
            ),
            (
                "already sent",
                Facts {
                    status: DeliveryStatus::Sent,
                    ..facts()
                },
                Plan::Skip,
            ),
            (
                "failed before",
                Facts {
                    status: DeliveryStatus::Failed,
                    ..facts()
                },
                Plan::Skip,
            ),
            (
                "read (a status webhook confirmed an unconfirmed send)",
                Facts {
                    status: DeliveryStatus::Read,
                    ..facts()
                },
                Plan::Skip,
            ),
            (
                "window closed, template configured",
                Facts {
                    since_customer: hours(25),
                    has_template: true,
                    ..facts()
                },
                Plan::Send { template: true },
            ),
            (
                "window closed, no template",
                Facts {
                    since_customer: hours(25),
                    ..facts()
                },
                Plan::Fail(Failure {
                    error: closed(),
                    escalate: EscalationReason::WindowClosed,
                    channel_broken: false,
                }),
            ),
            (
                "customer never wrote, no template",
                Facts {
                    since_customer: None,
                    ..facts()
                },
                Plan::Fail(Failure {
                    error: closed(),
                    escalate: EscalationReason::WindowClosed,
                    channel_broken: false,
                }),
            ),
            (
                "window closed, the message is a template",
                Facts {
                    since_customer: hours(48),
                    is_template: true,
                    ..facts()
                },
                Plan::Send { template: false },
            ),
            (
                "no window (Evolution)",
                Facts {
                    window: None,
                    since_customer: hours(48),
                    ..facts()
                },
                Plan::Send { template: false },
            ),
            (
                "exactly at the limit",
                Facts {
                    text_chars: MAX_TEXT_CHARS,
                    ..facts()
                },
                Plan::Send { template: false },
            ),
        ];
        for (name, f, expected) in cases {
            assert_eq!(plan(&f), expected, "{name}");
        }
        let Plan::Fail(too_long) = plan(&Facts {
            text_chars: MAX_TEXT_CHARS + 1,
            ..facts()
        }) else {
            panic!("an over-long text must fail")
        };
        assert_eq!(too_long.escalate, EscalationReason::DeliveryFailed);
        assert!(too_long.error.title.contains("4096"), "{too_long:?}");
    }

    fn sending() -> Sending {
        Sending {
            template: false,
            has_template: false,
            deduplicates: false,
            grace: Duration::from_secs(30),
            window_error: closed(),
        }
    }

    #[test]
    fn provider_answers_become_outcomes() {
        let secs = |s: u64| Some(Duration::from_secs(s));
        let transient = |after| ProviderError::Transient {
            message: "HTTP 503".into(),
            retry_after: after,
        };
        let retry = |why: &str, after| Next::Retry {
            why: why.into(),
            after,
        };
        let failed = |title: &str, reason, broken| {
            Next::Fail(Failure {
                error: DeliveryError {
                    code: None,
                    title: title.into(),
                    detail: None,
                },
                escalate: reason,
                channel_broken: broken,
            })
        };
        let cases: Vec<(&str, Result<Sent, ProviderError>, Sending, Next)> = vec![
            (
                "accepted",
                Ok(Sent {
                    provider_message_id: "wamid.1".into(),
                }),
                sending(),
                Next::Sent("wamid.1".into()),
            ),
            (
                "5xx",
                Err(transient(None)),
                sending(),
                retry("HTTP 503", None),
            ),
            (
                "429 with Retry-After",
                Err(transient(secs(7))),
                sending(),
                retry("HTTP 503", secs(7)),
            ),
            (
                "timed out, provider without dedup: wait for a status first",
                Err(ProviderError::Unconfirmed("timed out".into())),
                sending(),
                retry("unconfirmed: timed out", secs(30)),
            ),
            (
                "timed out, provider deduplicates: repeat with the same key",
                Err(ProviderError::Unconfirmed("timed out".into())),
                Sending {
                    deduplicates: true,
                    ..sending()
                },
                retry("unconfirmed: timed out", None),
            ),
            (
                "window closed, template configured",
                Err(ProviderError::NeedsTemplate("131047".into())),
                Sending {
                    has_template: true,
                    ..sending()
                },
                Next::SwitchToTemplate,
            ),
            (
                "window closed even for the template",
                Err(ProviderError::NeedsTemplate("131047".into())),
                Sending {
                    has_template: true,
                    template: true,
                    ..sending()
                },
                Next::Fail(Failure {
                    error: closed(),
                    escalate: EscalationReason::WindowClosed,
                    channel_broken: false,
                }),
            ),
            (
                "window closed, no template",
                Err(ProviderError::NeedsTemplate("131047".into())),
                sending(),
                Next::Fail(Failure {
                    error: closed(),
                    escalate: EscalationReason::WindowClosed,
                    channel_broken: false,
                }),
            ),
            (
                "credentials refused",
                Err(ProviderError::Auth("HTTP 401".into())),
                sending(),
                failed(
                    "credentials refused: HTTP 401",
                    EscalationReason::DeliveryFailed,
                    true,
                ),
            ),
            (
                "bad number",
                Err(ProviderError::Permanent("HTTP 400: not on WhatsApp".into())),
                sending(),
                failed(
                    "refused: HTTP 400: not on WhatsApp",
                    EscalationReason::DeliveryFailed,
                    false,
                ),
            ),
            (
                "unsupported",
                Err(ProviderError::Unsupported("lists".into())),
                sending(),
                failed(
                    "not supported by this provider: lists",
                    EscalationReason::DeliveryFailed,
                    false,
                ),
            ),
        ];
        for (name, result, s, expected) in cases {
            assert_eq!(after_send(result, &s), expected, "{name}");
        }
    }

    #[test]
    fn long_replies_split_at_boundaries_and_lose_nothing() {
        let paragraph = "word ".repeat(300).trim().to_string();
        let text = format!("{paragraph}\n\n{paragraph}\n\n{paragraph}\n\n{paragraph}");
        let parts = split_text(&text, MAX_TEXT_CHARS);
        assert!(parts.len() >= 2, "{}", parts.len());
        for part in &parts {
            assert!(part.chars().count() <= MAX_TEXT_CHARS);
            assert!(!part.starts_with(' ') && !part.ends_with(' '));
        }
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(words(&parts.join(" ")), words(&text));
        // No boundary at all: cut at the limit, by characters (not bytes).
        let solid = "é".repeat(MAX_TEXT_CHARS * 2 + 5);
        let parts = split_text(&solid, MAX_TEXT_CHARS);
        assert_eq!(
            parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            vec![MAX_TEXT_CHARS, MAX_TEXT_CHARS, 5]
        );
        assert_eq!(split_text("short", MAX_TEXT_CHARS), vec!["short"]);
        assert!(split_text("  ", MAX_TEXT_CHARS).is_empty());
    }
}
