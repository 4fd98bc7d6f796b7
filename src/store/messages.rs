//! [`MessageStore`] on SQL: customer messages recorded exactly once, the outbox and delivery
//! statuses, edits and deletions, transcripts, and turns recorded whole. Every multi-row change
//! is one transaction, so an inbound message and its handling job, or a reply and the messages
//! it answers, are stored together or not at all.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::rows::{
    db_err, get, message_from_row, now_ms, parse_id, placeholders, to_json, MESSAGE_COLUMNS,
};
use super::sql::SqlStore;
use super::writes::ContactIds;
use super::{
    InboundPolicy, NewEscalation, NewInbound, NewOutbound, NewTurn, RecordedInbound, RecordedTurn,
    StoreError,
};
use crate::domain::{
    to_millis, Channel, ChannelId, Conversation, ConversationId, DeliveryError, DeliveryStatus,
    Direction, EventKind, Message, MessageChange, MessageDetails, MessageId, Role,
};

/// Messages: in and out, their delivery and the turns that answer them.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Records a customer message exactly once (unique per channel and provider id) and, in the
    /// same transaction, schedules the conversation's handling job (debounced).
    async fn record_inbound(
        &self,
        channel: &Channel,
        inbound: NewInbound,
        policy: InboundPolicy,
    ) -> Result<RecordedInbound, StoreError>;
    /// Records a message the business sent from its own phone or account, returning its
    /// conversation; `None` if the message was already known (Palaver's own messages echoed back).
    async fn record_own_message(
        &self,
        channel: &Channel,
        inbound: NewInbound,
    ) -> Result<Option<Conversation>, StoreError>;
    /// A page of a conversation's messages, oldest first, before message `before`.
    async fn messages(
        &self,
        conversation: ConversationId,
        limit: u32,
        before: Option<MessageId>,
    ) -> Result<Vec<Message>, StoreError>;
    /// A message by id.
    async fn message(&self, id: MessageId) -> Result<Option<Message>, StoreError>;
    /// Customer messages not yet handled, oldest first.
    async fn unhandled_inbound(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<Message>, StoreError>;
    /// The conversation's messages since its context started, newest `limit`, oldest first,
    /// excluding `exclude`.
    async fn history(
        &self,
        conversation: ConversationId,
        limit: u32,
        exclude: &[MessageId],
    ) -> Result<Vec<Message>, StoreError>;
    /// Marks customer messages handled without a reply (e.g. the bot stayed silent).
    async fn mark_handled(&self, ids: &[MessageId]) -> Result<(), StoreError>;
    /// Applies its sender's edit or deletion to the message `provider_message_id` of `channel`
    /// (the earlier text kept); `None` when no such message from a customer is stored (ours
    /// are never changed this way). Repeating a change changes nothing.
    async fn apply_change(
        &self,
        channel: ChannelId,
        provider_message_id: &str,
        change: &crate::domain::MessageChange,
        at: DateTime<Utc>,
    ) -> Result<Option<Message>, StoreError>;
    /// Records an outbound message (and its send job), exactly once per idempotency key;
    /// returns the message and whether it was created now.
    async fn record_outbound(&self, message: NewOutbound) -> Result<(Message, bool), StoreError>;
    /// Stores a voice note's transcript on its message.
    async fn set_transcript(
        &self,
        id: MessageId,
        transcript: &str,
        details: &MessageDetails,
    ) -> Result<(), StoreError>;
    /// The provider accepted our message: record its id and any status that came first.
    async fn mark_sent(&self, id: MessageId, provider_message_id: &str) -> Result<(), StoreError>;
    /// Sending failed for good. With `escalation`, the conversation goes to a person in the
    /// same transaction: nobody reads one without the other (an escalated conversation whose
    /// failed reply still shows as queued).
    async fn mark_failed(
        &self,
        id: MessageId,
        error: &DeliveryError,
        escalation: Option<(ConversationId, NewEscalation)>,
    ) -> Result<(), StoreError>;
    /// Applies a provider status to our message; statuses never move backwards. `reference`
    /// is our message id when the provider echoes it: it ties the provider's id to a message
    /// whose send was never confirmed. Returns the message when it is known.
    async fn apply_status(
        &self,
        channel: ChannelId,
        provider_message_id: &str,
        status: DeliveryStatus,
        error: Option<&DeliveryError>,
        at: DateTime<Utc>,
        reference: Option<MessageId>,
    ) -> Result<Option<MessageId>, StoreError>;
    /// Records a turn's outcome in one transaction: the escalation it opens, its replies, the
    /// support note (when the escalation opens now) and the customer messages it covered.
    /// Replies are exactly-once by idempotency key, so a retried turn records nothing twice.
    async fn record_turn(&self, turn: NewTurn) -> Result<RecordedTurn, StoreError>;
}

#[async_trait]
impl MessageStore for SqlStore {
    async fn record_inbound(
        &self,
        channel: &Channel,
        inbound: NewInbound,
        policy: InboundPolicy,
    ) -> Result<RecordedInbound, StoreError> {
        self.intake.record(channel, inbound, policy).await
    }

    async fn record_own_message(
        &self,
        channel: &Channel,
        inbound: NewInbound,
    ) -> Result<Option<Conversation>, StoreError> {
        let now = now_ms();
        let channel_id = channel.id.to_string();
        let mut tx = self.begin_write().await?;
        if Self::known_provider_message(&mut tx, &channel_id, &inbound.provider_message_id).await? {
            return Ok(None);
        }
        let (conversation, _) = Self::contact_and_conversation(
            &mut tx,
            channel,
            ContactIds {
                wa_id: &inbound.from,
                reply_to: inbound.reply_to.as_deref(),
                user_id: inbound.user_id.as_deref(),
            },
            None,
            now,
        )
        .await?;
        let message_id = match Self::insert_message(
            &mut tx,
            &conversation,
            &channel_id,
            Direction::Outbound,
            Role::Agent,
            &inbound,
            DeliveryStatus::Sent,
            true,
            now,
        )
        .await
        {
            Ok(message) => message.id.to_string(),
            Err(StoreError::Conflict(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        sqlx::query(
            "UPDATE conversations SET last_activity_at = $2, updated_at = $2 WHERE id = $1",
        )
        .bind(&conversation)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let ws = Self::message_event_in(&mut tx, &message_id, EventKind::MessageSent, now).await?;
        let conversation = Self::conversation_in(&mut tx, &conversation).await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([ws]);
        Ok(Some(conversation))
    }

    async fn messages(
        &self,
        conversation: ConversationId,
        limit: u32,
        before: Option<MessageId>,
    ) -> Result<Vec<Message>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1
               AND ($2 = '' OR seq < (SELECT seq FROM messages WHERE id = $2))
             ORDER BY seq DESC LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(conversation.to_string())
            .bind(before.map(|b| b.to_string()).unwrap_or_default())
            .bind(limit.clamp(1, 1000) as i64)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(message_from_row).transpose()
    }

    async fn unhandled_inbound(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<Message>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE conversation_id = $1 AND direction = 'inbound' AND handled = 0 ORDER BY seq"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(conversation.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(message_from_row).collect()
    }

    async fn history(
        &self,
        conversation: ConversationId,
        limit: u32,
        exclude: &[MessageId],
    ) -> Result<Vec<Message>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1
               AND created_at >= (SELECT context_started_at FROM conversations WHERE id = $1)
             ORDER BY seq DESC LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(conversation.to_string())
            .bind((limit as usize + exclude.len()) as i64)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        let mut messages = Vec::with_capacity(limit as usize);
        for row in &rows {
            let m = message_from_row(row)?;
            if !exclude.contains(&m.id) && messages.len() < limit as usize {
                messages.push(m);
            }
        }
        messages.reverse();
        Ok(messages)
    }

    async fn mark_handled(&self, ids: &[MessageId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE messages SET handled = 1 WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.to_string());
        }
        query.execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    async fn apply_change(
        &self,
        channel: ChannelId,
        provider_message_id: &str,
        change: &MessageChange,
        at: DateTime<Utc>,
    ) -> Result<Option<Message>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT id FROM messages WHERE channel_id = $1 AND provider_message_id = $2",
        )
        .bind(channel.to_string())
        .bind(provider_message_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: String = get(&row, "id")?;
        let mut message = Self::message_in(&mut tx, &id).await?;
        // A customer changes only what they sent: an edit or a deletion naming one of our
        // messages (its id is on the customer's phone) changes nothing.
        if message.direction != crate::domain::Direction::Inbound {
            return Ok(None);
        }
        let kind = match change {
            MessageChange::Edited { text } => {
                if message.text.as_deref() == Some(text.as_str())
                    || message.details.deleted_at.is_some()
                {
                    return Ok(Some(message));
                }
                message.details.edits.push(crate::domain::Edit {
                    text: message.text.take(),
                    replaced_at: at,
                });
                message.text = Some(text.clone());
                EventKind::MessageEdited
            }
            MessageChange::Deleted => {
                if message.details.deleted_at.is_some() {
                    return Ok(Some(message));
                }
                message.details.deleted_at = Some(at);
                EventKind::MessageDeleted
            }
        };
        sqlx::query("UPDATE messages SET body = $2, details = $3, updated_at = $4 WHERE id = $1")
            .bind(&id)
            .bind(message.text.as_deref())
            .bind(to_json(&message.details)?)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let ws = Self::message_event_in(&mut tx, &id, kind, now).await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([ws]);
        Ok(Some(message))
    }

    async fn record_outbound(&self, m: NewOutbound) -> Result<(Message, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut woke = Vec::new();
        let recorded = Self::insert_outbound(&mut tx, &m, now_ms(), &mut woke).await?;
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok(recorded)
    }

    async fn set_transcript(
        &self,
        id: MessageId,
        transcript: &str,
        details: &MessageDetails,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE messages SET transcript = $2, details = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(transcript)
        .bind(to_json(details)?)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let ws =
            Self::message_event_in(&mut tx, &id.to_string(), EventKind::MessageTranscribed, now)
                .await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([ws]);
        Ok(())
    }

    async fn mark_sent(&self, id: MessageId, provider_message_id: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // The provider took the message: it is sent, whatever else happens here. An id the
        // provider already gave another stored message (a provider reusing ids, an echo of
        // this send stored first) is not kept twice; failing here would make the job retry
        // and the customer receive the message again.
        sqlx::query(
            "UPDATE messages SET updated_at = $3,
                provider_message_id = CASE WHEN EXISTS (
                    SELECT 1 FROM messages other
                    WHERE other.channel_id = messages.channel_id AND other.provider_message_id = $2
                      AND other.id <> messages.id
                ) THEN provider_message_id ELSE $2 END,
                status = CASE WHEN status_rank < 1 THEN 'sent' ELSE status END,
                status_rank = CASE WHEN status_rank < 1 THEN 1 ELSE status_rank END
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(provider_message_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // Statuses that arrived before we knew the provider's id.
        sqlx::query(
            "UPDATE messages SET status = s.status, status_rank = s.status_rank, error = s.error
             FROM (SELECT status, status_rank, error FROM message_statuses
                   WHERE channel_id = (SELECT channel_id FROM messages WHERE id = $1) AND provider_message_id = $2
                   ORDER BY status_rank DESC LIMIT 1) AS s
             WHERE messages.id = $1 AND s.status_rank > messages.status_rank",
        )
        .bind(id.to_string())
        .bind(provider_message_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let ws =
            Self::message_event_in(&mut tx, &id.to_string(), EventKind::MessageStatus, now).await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([ws]);
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: MessageId,
        error: &DeliveryError,
        escalation: Option<(ConversationId, NewEscalation)>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let mut woke = Vec::new();
        if let Some((conversation, escalation)) = &escalation {
            Self::open_escalation_in(&mut tx, *conversation, escalation, now, &mut woke).await?;
        }
        sqlx::query("UPDATE messages SET status = 'failed', status_rank = $2, error = $3, updated_at = $4 WHERE id = $1")
            .bind(id.to_string())
            .bind(DeliveryStatus::Failed.rank())
            .bind(to_json(error)?)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let ws =
            Self::message_event_in(&mut tx, &id.to_string(), EventKind::MessageStatus, now).await?;
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        self.woke([ws]);
        Ok(())
    }

    async fn apply_status(
        &self,
        channel: ChannelId,
        provider_message_id: &str,
        status: DeliveryStatus,
        error: Option<&DeliveryError>,
        at: DateTime<Utc>,
        reference: Option<MessageId>,
    ) -> Result<Option<MessageId>, StoreError> {
        let now = now_ms();
        let error = error.map(to_json).transpose()?;
        let mut tx = self.begin_write().await?;
        if let Some(reference) = reference {
            // Our message whose send was never confirmed: the provider's id is learnt here.
            sqlx::query(
                "UPDATE messages SET provider_message_id = $3, updated_at = $4
                 WHERE id = $1 AND channel_id = $2 AND direction = 'outbound' AND provider_message_id IS NULL
                   AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.channel_id = $2 AND o.provider_message_id = $3)",
            )
            .bind(reference.to_string())
            .bind(channel.to_string())
            .bind(provider_message_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        sqlx::query(
            "INSERT INTO message_statuses (channel_id, provider_message_id, status, status_rank, error, reported_at, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(channel.to_string())
        .bind(provider_message_id)
        .bind(status.as_str())
        .bind(status.rank())
        .bind(error.as_deref())
        .bind(to_millis(at))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let moved = sqlx::query(
            "UPDATE messages SET status = $3, status_rank = $4, error = COALESCE($5, error), updated_at = $6
             WHERE channel_id = $1 AND provider_message_id = $2 AND direction = 'outbound' AND status_rank < $4",
        )
        .bind(channel.to_string())
        .bind(provider_message_id)
        .bind(status.as_str())
        .bind(status.rank())
        .bind(error.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0;
        let row = sqlx::query(
            "SELECT id FROM messages WHERE channel_id = $1 AND provider_message_id = $2",
        )
        .bind(channel.to_string())
        .bind(provider_message_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut woke = Vec::new();
        if let (true, Some(row)) = (moved, &row) {
            let id: String = get(row, "id")?;
            woke.push(Self::message_event_in(&mut tx, &id, EventKind::MessageStatus, now).await?);
        }
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        row.map(|r| parse_id(&r, "id")).transpose()
    }

    async fn record_turn(&self, turn: NewTurn) -> Result<RecordedTurn, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let mut woke = Vec::new();
        let mut closed = None;
        if let Some(closing) = &turn.close {
            closed =
                Self::close_escalation_in(&mut tx, turn.conversation_id, closing, now, &mut woke)
                    .await?;
            if closed.is_none() {
                Self::mark_handled_in(&mut tx, &turn.handled).await?;
                tx.commit().await.map_err(db_err)?;
                self.woke(woke);
                return Ok(RecordedTurn {
                    replies: Vec::new(),
                    escalation: None,
                    support_note: None,
                    closed: None,
                });
            }
        }
        let escalation = match &turn.escalation {
            Some(e) => Some(
                Self::open_escalation_in(&mut tx, turn.conversation_id, e, now, &mut woke).await?,
            ),
            None => None,
        };
        let mut replies = Vec::with_capacity(turn.replies.len());
        for reply in &turn.replies {
            replies.push(Self::insert_outbound(&mut tx, reply, now, &mut woke).await?);
        }
        let mut support_note = None;
        if let (Some(note), Some((_, true))) = (&turn.support_note, &escalation) {
            let (support, _) = Self::contact_and_conversation(
                &mut tx,
                &note.channel,
                ContactIds::phone(&note.wa_id),
                Some("Support"),
                now,
            )
            .await?;
            let message = NewOutbound {
                conversation_id: support
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("bad conversation id {support}")))?,
                ..note.message.clone()
            };
            support_note = Some(
                Self::insert_outbound(&mut tx, &message, now, &mut woke)
                    .await?
                    .0,
            );
        }
        Self::mark_handled_in(&mut tx, &turn.handled).await?;
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok(RecordedTurn {
            replies,
            escalation,
            support_note,
            closed,
        })
    }
}
