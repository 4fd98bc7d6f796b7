//! The inbox: what people do with conversations (reply, assign, resolve, hand back). The JSON
//! API and the console both call these, so each rule lives once: a person who replies takes the
//! conversation over from the bot (and gets it, if nobody had it); replies and closings record
//! who did them by id; only a member who answers the inbox can be given a conversation.
//! Team work around the conversations lives beside: [`labels`], [`canned`] responses,
//! [`snooze`], private [`notes`] with mentions, [`teams`] (who gets each channel's
//! escalations) and the customers' [`contacts`]; and how the inbox did: [`reports`], with the
//! satisfaction survey ([`csat`]) sent when a person resolves a conversation.

pub mod canned;
pub mod contacts;
pub mod csat;
pub mod labels;
pub mod notes;
pub mod reports;
pub mod snooze;
pub mod teams;

use crate::accounts::Caller;
use crate::channels::delivery::HumanFile;
use crate::channels::{ChannelError, Channels, ReadReceipts};
use crate::domain::{
    AssignmentRule, Conversation, ConversationStatus, Direction, Escalation, FieldError,
    MemberRole, Message, MessageId, Resolution, UserId, Workspace,
};
use crate::pipeline::rules::Trigger;
use crate::store::{NewEscalation, Store, StoreError};

/// Why an inbox action was refused.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// Bad fields.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    /// The channel layer refused (the text, an idempotency key reused for another message).
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the console shows a conversation: the link a support note carries. Opening it asks the
/// person to sign in first.
pub fn conversation_link(public_url: &str, conversation: &Conversation) -> String {
    format!(
        "{}/inbox/{}",
        public_url.trim_end_matches('/'),
        conversation.id
    )
}

/// A person's reply to a customer, queued for sending. The bot steps back (the conversation is
/// escalated as a human takeover, if it was not already), the replying person gets the
/// conversation if nobody had it, and the unread count clears. With an idempotency key, the
/// same request made twice records and sends one message (`false` the second time).
pub async fn reply(
    store: &dyn Store,
    channels: &Channels,
    caller: &Caller,
    conversation: &Conversation,
    text: &str,
    quoting: Option<MessageId>,
    idempotency_key: Option<&str>,
) -> Result<(Message, bool), InboxError> {
    crate::channels::delivery::check_human_text(text)?;
    window_open(channels, conversation, "text").await?;
    let quoted = match quoting {
        Some(id) => Some(provider_id_of(store, conversation, id, "reply_to").await?),
        None => None,
    };
    take_over(store, caller, conversation).await?;
    let sent = channels
        .send_human_reply(
            conversation,
            text,
            quoted,
            caller.actor.user(),
            idempotency_key,
        )
        .await?;
    read_by_person(store, channels, conversation).await?;
    Ok(sent)
}

/// A person who answers has read what the customer wrote: the unread count clears, and the
/// customer's latest message is marked read on WhatsApp (the bot, which marks read only what
/// it answers, stays silent in a conversation a person has taken over, even when the person
/// replied while the bot was still waiting for more messages).
async fn read_by_person(
    store: &dyn Store,
    channels: &Channels,
    conversation: &Conversation,
) -> Result<(), InboxError> {
    store.mark_read(conversation.id).await?;
    if conversation.sandbox {
        return Ok(());
    }
    let latest = store
        .messages(conversation.id, READ_WINDOW, None)
        .await?
        .into_iter()
        .rev()
        .find(|m| m.direction == Direction::Inbound && m.provider_message_id.is_some());
    if let Some(id) = latest.and_then(|m| m.provider_message_id) {
        channels.mark_read(conversation, &id).await;
    }
    Ok(())
}

/// Refuses a free-form message (as `field`) once the conversation's customer-service window
/// has closed: WhatsApp takes only an approved template then.
async fn window_open(
    channels: &Channels,
    conversation: &Conversation,
    field: &str,
) -> Result<(), InboxError> {
    match channels
        .service_window(conversation, chrono::Utc::now())
        .await?
    {
        Some(window) if !window.is_open() => Err(InboxError::Invalid(vec![FieldError::new(
            field,
            "the 24-hour customer-service window is closed (the customer has not written in \
             the last 24 hours): only an approved template can be sent until they write again",
        )])),
        _ => Ok(()),
    }
}

/// Starts a conversation with the customer at number `to` on `channel` (or goes on with the
/// one there is) by sending the approved template `send`: the number is checked as contacts'
/// numbers are, the template as [`send_template`] checks it (every problem with both is
/// reported at once), and the person takes the conversation as they would by replying.
/// Returns the conversation, the template message and whether it was recorded now.
pub async fn start_conversation(
    store: &dyn Store,
    channels: &Channels,
    caller: &Caller,
    channel: &crate::domain::Channel,
    to: &str,
    send: &crate::channels::templates::TemplateSend,
    idempotency_key: Option<&str>,
) -> Result<(Conversation, Message, bool), InboxError> {
    let mut errors = Vec::new();
    let number = contacts::check_number(to)
        .map_err(|message| errors.push(FieldError::new("to", message)))
        .ok();
    match channels.checked_template(channel, send).await {
        Ok(_) => {}
        Err(ChannelError::Invalid(found)) => errors.extend(found),
        Err(e) => return Err(e.into()),
    }
    let Some((wa_id, _)) = number.filter(|_| errors.is_empty()) else {
        return Err(InboxError::Invalid(errors));
    };
    let conversation = store.open_conversation(channel, &wa_id, None).await?;
    let (message, created) = send_template(
        store,
        channels,
        caller,
        &conversation,
        send,
        idempotency_key,
    )
    .await?;
    let conversation = store
        .conversation(conversation.id)
        .await?
        .unwrap_or(conversation);
    if created {
        tracing::info!(conversation = %conversation.id, channel = %channel.id, "conversation started with a template");
    }
    Ok((conversation, message, created))
}

/// How many of a conversation's newest messages are searched for the customer's latest.
const READ_WINDOW: u32 = 50;

/// The provider's id of message `id` of `conversation`, which a quote or a reaction names;
/// a message of another conversation, or one the provider never had, is refused as `field`.
async fn provider_id_of(
    store: &dyn Store,
    conversation: &Conversation,
    id: MessageId,
    field: &str,
) -> Result<String, InboxError> {
    store
        .message(id)
        .await?
        .filter(|m| m.conversation_id == conversation.id)
        .and_then(|m| m.provider_message_id)
        .ok_or_else(|| {
            InboxError::Invalid(vec![FieldError::new(
                field,
                "must be a message of this conversation that reached WhatsApp",
            )])
        })
}

/// A person's reaction (an emoji; empty removes it) to a message of the conversation, sent
/// through the outbox. A reaction does not take the conversation over.
pub async fn react(
    store: &dyn Store,
    channels: &Channels,
    caller: &Caller,
    conversation: &Conversation,
    message: MessageId,
    emoji: &str,
    idempotency_key: Option<&str>,
) -> Result<(Message, bool), InboxError> {
    let emoji = emoji.trim();
    if emoji.chars().count() > 8 || emoji.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Err(InboxError::Invalid(vec![FieldError::new(
            "emoji",
            "must be one emoji, or empty to remove the reaction",
        )]));
    }
    let target = provider_id_of(store, conversation, message, "message").await?;
    Ok(channels
        .send_human_reaction(
            conversation,
            &target,
            emoji,
            caller.actor.user(),
            idempotency_key,
        )
        .await?)
}

/// A person's file (a document, an image...) with an optional caption, queued for sending as
/// [`reply`] queues text, with the same taking over.
pub async fn reply_with_file(
    store: &dyn Store,
    channels: &Channels,
    caller: &Caller,
    conversation: &Conversation,
    file: HumanFile,
    caption: Option<&str>,
    idempotency_key: Option<&str>,
) -> Result<(Message, bool), InboxError> {
    crate::channels::delivery::check_human_file(&file, caption)?;
    window_open(channels, conversation, "file").await?;
    take_over(store, caller, conversation).await?;
    let sent = channels
        .send_human_file(
            conversation,
            file,
            caption,
            caller.actor.user(),
            idempotency_key,
        )
        .await?;
    read_by_person(store, channels, conversation).await?;
    Ok(sent)
}

/// A person's approved template to the customer (the way to re-open a conversation outside
/// WhatsApp's 24-hour window), checked against the channel's template and queued like
/// [`reply`], with the same taking over.
pub async fn send_template(
    store: &dyn Store,
    channels: &Channels,
    caller: &Caller,
    conversation: &Conversation,
    send: &crate::channels::templates::TemplateSend,
    idempotency_key: Option<&str>,
) -> Result<(Message, bool), InboxError> {
    let sent = channels
        .send_template(conversation, send, caller.actor.user(), idempotency_key)
        .await?;
    take_over(store, caller, conversation).await?;
    store.mark_read(conversation.id).await?;
    Ok(sent)
}

/// A person answers: the bot steps back (a human takeover, unless already escalated) and the
/// person gets the conversation if nobody had it.
async fn take_over(
    store: &dyn Store,
    caller: &Caller,
    conversation: &Conversation,
) -> Result<(), InboxError> {
    let user = caller.actor.user();
    if let (None, Some(user)) = (conversation.assignee_id, user) {
        store
            .assign_conversation(conversation.id, Some(user))
            .await?;
    }
    if conversation.status != ConversationStatus::Escalated {
        // Named as people know them; an API key by its label.
        let who = match user {
            Some(id) => store.user(id).await?.map(|u| u.name),
            None => None,
        }
        .unwrap_or_else(|| caller.actor.label());
        let trigger = Trigger::HumanTakeover(format!("{who} replied from the inbox"));
        store
            .open_escalation(
                conversation.id,
                NewEscalation {
                    reason: trigger.reason(),
                    detail: Some(trigger.detail().to_string()),
                    message_id: None,
                },
            )
            .await?;
    }
    Ok(())
}

/// Ends a person's handling: `Resolved` closes the conversation, `HandedBack` gives it back to
/// the bot. The open escalation, if any, records how and by whom; without one the status is
/// set directly. Resolving sends the satisfaction survey when the conversation's agent asks for
/// one ([`csat`]); the resolve stands whatever becomes of the survey. Returns the escalation
/// closed.
pub async fn close(
    store: &dyn Store,
    channels: &Channels,
    caller: &Caller,
    conversation: &Conversation,
    resolution: Resolution,
) -> Result<Option<Escalation>, InboxError> {
    let closed = store
        .close_escalation(
            conversation.id,
            resolution,
            &caller.actor.label(),
            caller.actor.user(),
        )
        .await?;
    if closed.is_none() {
        let status = match resolution {
            Resolution::HandedBack => ConversationStatus::Active,
            Resolution::Resolved => ConversationStatus::Resolved,
        };
        if conversation.status != status {
            store
                .set_conversation_status(conversation.id, status, None)
                .await?;
        }
    }
    if resolution == Resolution::Resolved
        && (closed.is_some() || conversation.status != ConversationStatus::Resolved)
    {
        csat::after_resolve(
            store,
            channels,
            conversation,
            closed.as_ref(),
            caller.actor.user(),
            chrono::Utc::now(),
        )
        .await;
    }
    Ok(closed)
}

/// Gives the conversation to `assignee` (a member of its workspace who answers the inbox: an
/// owner or an agent), or to nobody.
pub async fn assign(
    store: &dyn Store,
    conversation: &Conversation,
    assignee: Option<UserId>,
) -> Result<(), InboxError> {
    if let Some(user) = assignee {
        answers_the_inbox(store, conversation.workspace_id, user, "user").await?;
    }
    store.assign_conversation(conversation.id, assignee).await?;
    Ok(())
}

/// Sets who gets the workspace's escalated conversations; a default assignee must answer the
/// inbox there. Recorded in the audit log.
pub async fn set_assignment_rule(
    store: &dyn Store,
    caller: &Caller,
    rule: AssignmentRule,
) -> Result<Workspace, InboxError> {
    if let AssignmentRule::Default { user } = rule {
        answers_the_inbox(store, caller.workspace, user, "user").await?;
    }
    let workspace = store
        .set_assignment_rule(caller.workspace, rule)
        .await?
        .ok_or_else(|| StoreError::NotFound("the workspace no longer exists".into()))?;
    crate::accounts::audit(
        store,
        caller,
        "workspace.assignment",
        Some(caller.workspace.to_string()),
        serde_json::to_value(rule).unwrap_or_default(),
    )
    .await;
    Ok(workspace)
}

/// Refuses `user` unless they are an owner or agent of the workspace.
pub async fn answers_the_inbox(
    store: &dyn Store,
    workspace: crate::domain::WorkspaceId,
    user: UserId,
    field: &str,
) -> Result<(), InboxError> {
    match store.membership(user, workspace).await? {
        Some(MemberRole::Owner | MemberRole::Agent) => Ok(()),
        Some(MemberRole::Author) => Err(InboxError::Invalid(vec![FieldError::new(
            field,
            "is an author here; only owners and agents answer conversations",
        )])),
        None => Err(InboxError::Invalid(vec![FieldError::new(
            field,
            "is not a member of this workspace",
        )])),
    }
}
