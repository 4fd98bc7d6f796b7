//! [`ConversationStore`] on SQL: channels, contacts, conversations, messages (with the outbox
//! and delivery statuses) and escalations. Every multi-row change is one transaction, so an
//! inbound message and its handling job, or a reply and the messages it answers, are stored
//! together or not at all.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::events::NewEvent;
use super::sql::{
    db_err, get, now_ms, opt_id, opt_time, parse_id, parse_text, placeholders, time, SqlStore,
};
use super::{
    Closing, ConversationFilter, ConversationStore, ConversationSummary, Delivery, InboundPolicy,
    JobLimits, NewChannel, NewEscalation, NewInbound, NewOutbound, NewTurn, OpenEscalation,
    RecordedInbound, RecordedTurn, StoreError,
};
use crate::domain::{
    to_millis, AssignmentRule, Channel, ChannelConfig, ChannelId, ChannelState, Contact, ContactId,
    Conversation, ConversationId, ConversationStatus, DeliveryError, DeliveryStatus, Direction,
    Escalation, EscalationId, EventKind, JobId, Message, MessageChange, MessageDetails, MessageId,
    ProviderKind, Resolution, Role, Task, UserId, WorkspaceId,
};

fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> Result<Option<T>, StoreError> {
    let raw: Option<String> = get(row, column)?;
    raw.map(|r| serde_json::from_str(&r).map_err(|e| StoreError::Corrupt(format!("{column}: {e}"))))
        .transpose()
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

const CHANNEL_COLUMNS: &str =
    "id, workspace_id, name, provider, route_key, agent_id, settings, state, state_detail, created_at, updated_at";

fn channel_from_row(row: &AnyRow) -> Result<Channel, StoreError> {
    let agent: Option<String> = get(row, "agent_id")?;
    Ok(Channel {
        id: parse_id(row, "id")?,
        workspace_id: parse_id(row, "workspace_id")?,
        name: get(row, "name")?,
        provider: parse_text(row, "provider")?,
        route_key: get(row, "route_key")?,
        agent_id: agent
            .map(|a| {
                a.parse()
                    .map_err(|_| StoreError::Corrupt(format!("bad agent id {a}")))
            })
            .transpose()?,
        settings: json_column::<ChannelConfig>(row, "settings")?.unwrap_or_default(),
        state: parse_text::<ChannelState>(row, "state")?,
        state_detail: get(row, "state_detail")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// The ids a message names its customer by.
#[derive(Debug, Clone, Copy)]
struct ContactIds<'a> {
    wa_id: &'a str,
    reply_to: Option<&'a str>,
    user_id: Option<&'a str>,
}

impl<'a> ContactIds<'a> {
    fn phone(wa_id: &'a str) -> Self {
        Self {
            wa_id,
            reply_to: None,
            user_id: None,
        }
    }
}

const CONVERSATION_SELECT: &str = "SELECT cv.id, cv.channel_id, ch.workspace_id, cv.agent_id, cv.sandbox, cv.status, cv.status_reason,
        cv.last_inbound_at, cv.last_activity_at, cv.context_started_at, cv.unread_count, cv.created_at, cv.assignee_id,
        ct.id AS contact_id, ct.wa_id, ct.reply_to, ct.user_id, ct.name AS contact_name
    FROM conversations cv JOIN contacts ct ON ct.id = cv.contact_id JOIN channels ch ON ch.id = cv.channel_id";

fn conversation_from_row(row: &AnyRow) -> Result<Conversation, StoreError> {
    let contact = Contact {
        id: parse_id(row, "contact_id")?,
        channel_id: parse_id(row, "channel_id")?,
        wa_id: get(row, "wa_id")?,
        reply_to: get(row, "reply_to")?,
        user_id: get(row, "user_id")?,
        name: get(row, "contact_name")?,
    };
    conversation_from_parts(row, parse_id(row, "workspace_id")?, contact)
}

/// The conversations columns of [`CONVERSATION_RETURNING`] with what the joins would add.
pub(super) fn conversation_from_parts(
    row: &AnyRow,
    workspace_id: WorkspaceId,
    contact: Contact,
) -> Result<Conversation, StoreError> {
    let agent: Option<String> = get(row, "agent_id")?;
    Ok(Conversation {
        id: parse_id(row, "id")?,
        workspace_id,
        channel_id: parse_id(row, "channel_id")?,
        contact,
        agent_id: agent
            .map(|a| {
                a.parse()
                    .map_err(|_| StoreError::Corrupt(format!("bad agent id {a}")))
            })
            .transpose()?,
        sandbox: get::<i64>(row, "sandbox")? != 0,
        status: parse_text(row, "status")?,
        status_reason: get(row, "status_reason")?,
        last_inbound_at: opt_time(row, "last_inbound_at")?,
        last_activity_at: time(row, "last_activity_at")?,
        context_started_at: time(row, "context_started_at")?,
        unread_count: get(row, "unread_count")?,
        assignee_id: opt_id(row, "assignee_id")?,
        created_at: time(row, "created_at")?,
    })
}

/// The conversations table's own columns of a [`Conversation`], for `RETURNING`.
pub(super) const CONVERSATION_RETURNING: &str =
    "id, channel_id, agent_id, sandbox, status, status_reason,
    last_inbound_at, last_activity_at, context_started_at, unread_count, created_at, assignee_id";

/// The end of an `INSERT INTO contacts`: a contact already known keeps what the new row leaves
/// out (name, reply address, user id), and comes back as it now is, for [`contact_from_row`].
pub(super) const CONTACT_UPSERT: &str = "ON CONFLICT (channel_id, wa_id) DO UPDATE SET
        name = COALESCE(excluded.name, contacts.name),
        reply_to = COALESCE(excluded.reply_to, contacts.reply_to),
        user_id = COALESCE(excluded.user_id, contacts.user_id),
        updated_at = excluded.updated_at
    RETURNING id, channel_id, wa_id, reply_to, user_id, name";

pub(super) fn contact_from_row(row: &AnyRow) -> Result<Contact, StoreError> {
    Ok(Contact {
        id: parse_id(row, "id")?,
        channel_id: parse_id(row, "channel_id")?,
        wa_id: get(row, "wa_id")?,
        reply_to: get(row, "reply_to")?,
        user_id: get(row, "user_id")?,
        name: get(row, "name")?,
    })
}

pub(super) const MESSAGE_COLUMNS: &str =
    "id, conversation_id, direction, role, kind, body, transcript, details,
    provider_message_id, status, error, generation, sent_by, created_at, updated_at";

pub(super) fn message_from_row(row: &AnyRow) -> Result<Message, StoreError> {
    Ok(Message {
        id: parse_id(row, "id")?,
        conversation_id: parse_id(row, "conversation_id")?,
        direction: parse_text(row, "direction")?,
        role: parse_text(row, "role")?,
        kind: parse_text(row, "kind")?,
        text: get(row, "body")?,
        transcript: get(row, "transcript")?,
        details: json_column::<MessageDetails>(row, "details")?.unwrap_or_default(),
        provider_message_id: get(row, "provider_message_id")?,
        status: parse_text(row, "status")?,
        error: json_column(row, "error")?,
        generation: json_column(row, "generation")?,
        sent_by: opt_id(row, "sent_by")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn escalation_from_row(row: &AnyRow) -> Result<Escalation, StoreError> {
    let message: Option<String> = get(row, "message_id")?;
    Ok(Escalation {
        id: parse_id(row, "id")?,
        conversation_id: parse_id(row, "conversation_id")?,
        reason: parse_text(row, "reason")?,
        detail: get(row, "detail")?,
        message_id: message
            .map(|m| {
                m.parse()
                    .map_err(|_| StoreError::Corrupt(format!("bad message id {m}")))
            })
            .transpose()?,
        opened_at: time(row, "opened_at")?,
        closed_at: opt_time(row, "closed_at")?,
        resolution: get::<Option<String>>(row, "resolution")?
            .map(|r| r.parse().map_err(StoreError::Corrupt))
            .transpose()?,
        closed_by: get(row, "closed_by")?,
        closed_by_user: opt_id(row, "closed_by_user")?,
    })
}

pub(super) type Tx = Transaction<'static, Any>;

/// Whether `tx` is on Postgres (for the few statements whose SQL differs).
pub(super) fn is_postgres(tx: &Tx) -> bool {
    tx.backend_name() == "PostgreSQL"
}

impl SqlStore {
    async fn conversation_in(tx: &mut Tx, id: &str) -> Result<Conversation, StoreError> {
        let sql = format!("{CONVERSATION_SELECT} WHERE cv.id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&mut **tx)
            .await
            .map_err(db_err)?;
        conversation_from_row(&row)
    }

    async fn message_in(tx: &mut Tx, id: &str) -> Result<Message, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&mut **tx)
            .await
            .map_err(db_err)?;
        message_from_row(&row)
    }

    /// Appends a `kind` event about message `id` inside `tx`: the message as it is now, and
    /// whether its conversation is a sandbox one.
    async fn message_event_in(
        tx: &mut Tx,
        id: &str,
        kind: EventKind,
        now: i64,
    ) -> Result<WorkspaceId, StoreError> {
        let row = sqlx::query(
            "SELECT ch.workspace_id, cv.sandbox, m.conversation_id, m.channel_id FROM messages m
             JOIN conversations cv ON cv.id = m.conversation_id JOIN channels ch ON ch.id = m.channel_id
             WHERE m.id = $1",
        )
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
        let workspace: String = get(&row, "workspace_id")?;
        let conversation: String = get(&row, "conversation_id")?;
        let channel: String = get(&row, "channel_id")?;
        let sandbox = get::<i64>(&row, "sandbox")? != 0;
        let message = Self::message_in(tx, id).await?;
        Self::emit_in(
            tx,
            &workspace,
            NewEvent {
                kind,
                conversation: Some(&conversation),
                channel: Some(&channel),
                data: serde_json::json!({"message": message, "sandbox": sandbox}),
            },
            now,
        )
        .await
    }

    /// Appends a `kind` event about conversation `id` inside `tx`: the conversation as it is
    /// now, with `extra` fields.
    async fn conversation_event_in(
        tx: &mut Tx,
        id: &str,
        kind: EventKind,
        extra: serde_json::Value,
        now: i64,
    ) -> Result<WorkspaceId, StoreError> {
        let conversation = Self::conversation_in(tx, id).await?;
        let mut data = serde_json::json!({"conversation": conversation});
        if let (Some(data), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        Self::emit_in(
            tx,
            &conversation.workspace_id.to_string(),
            NewEvent {
                kind,
                conversation: Some(id),
                channel: Some(&conversation.channel_id.to_string()),
                data,
            },
            now,
        )
        .await
    }

    /// Records an outbound message and its send job inside `tx`, exactly once per idempotency
    /// key; returns the message and whether it was created now.
    async fn insert_outbound(
        tx: &mut Tx,
        m: &NewOutbound,
        now: i64,
        woke: &mut Vec<WorkspaceId>,
    ) -> Result<(Message, bool), StoreError> {
        if let Some(key) = &m.idempotency_key {
            let row = sqlx::query("SELECT id FROM messages WHERE idempotency_key = $1")
                .bind(key)
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_err)?;
            if let Some(row) = row {
                let id: String = get(&row, "id")?;
                let existing = Self::message_in(tx, &id).await?;
                return Ok((existing, false));
            }
        }
        let conversation = m.conversation_id.to_string();
        let channel_row = sqlx::query(
            "SELECT cv.channel_id, cv.sandbox, ch.workspace_id FROM conversations cv
             JOIN channels ch ON ch.id = cv.channel_id WHERE cv.id = $1",
        )
        .bind(&conversation)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("conversation {conversation}")))?;
        let channel: String = get(&channel_row, "channel_id")?;
        let workspace: String = get(&channel_row, "workspace_id")?;
        let id = MessageId::new().to_string();
        let status = match m.delivery {
            Delivery::Outbox(_) | Delivery::At(..) => DeliveryStatus::Queued,
            Delivery::RecordOnly => DeliveryStatus::Sent,
        };
        let generation = m.generation.as_ref().map(to_json).transpose()?;
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, channel_id, direction, role, kind, body, details,
                idempotency_key, status, status_rank, handled, generation, sent_by, created_at, updated_at)
             VALUES ($1, $2, $3, 'outbound', $4, $5, $6, $7, $8, $9, $10, 1, $11, $12, $13, $13)",
        )
        .bind(&id)
        .bind(&conversation)
        .bind(&channel)
        .bind(m.role.as_str())
        .bind(m.kind.as_str())
        .bind(m.text.as_deref())
        .bind(to_json(&m.details)?)
        .bind(m.idempotency_key.as_deref())
        .bind(status.as_str())
        .bind(status.rank())
        .bind(generation)
        .bind(m.sent_by.map(|u| u.to_string()))
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        Self::mark_handled_in(tx, &m.handled).await?;
        sqlx::query(
            "UPDATE conversations SET last_activity_at = $2, updated_at = $2 WHERE id = $1",
        )
        .bind(&conversation)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        // A message held for later has its own queue, so it does not hold up the others.
        let send = match m.delivery {
            Delivery::Outbox(limits) => Some((limits, now, "send")),
            Delivery::At(limits, at) => Some((limits, at.timestamp_millis().max(now), "later")),
            Delivery::RecordOnly => None,
        };
        if let Some((limits, run_at, queue)) = send {
            let task = Task::Send {
                message_id: id
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("bad message id {id}")))?,
            };
            let queue = format!("{queue}:{conversation}");
            Self::insert_job(tx, &workspace, &task, &queue, limits, run_at, now).await?;
        }
        let message = Self::message_in(tx, &id).await?;
        let sandbox = get::<i64>(&channel_row, "sandbox")? != 0;
        woke.push(
            Self::emit_in(
                tx,
                &workspace,
                NewEvent {
                    kind: EventKind::MessageSent,
                    conversation: Some(&conversation),
                    channel: Some(&channel),
                    data: serde_json::json!({"message": message, "sandbox": sandbox}),
                },
                now,
            )
            .await?,
        );
        Ok((message, true))
    }

    /// Enqueues `task` inside `tx`, due at `run_at` (retried for its limits from then).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn insert_job(
        tx: &mut Tx,
        workspace: &str,
        task: &Task,
        queue_key: &str,
        limits: JobLimits,
        run_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO jobs (id, workspace_id, kind, queue_key, payload, status, attempts, max_attempts, expires_at, run_at, created_at, updated_at)
             VALUES ($1, $8, $2, $3, $4, 'pending', 0, $5, $6, $9, $7, $7)",
        )
        .bind(JobId::new().to_string())
        .bind(task.kind())
        .bind(queue_key)
        .bind(task.payload().to_string())
        .bind(limits.max_abandoned as i64)
        .bind(run_at.saturating_add(limits.retry_for.as_millis() as i64))
        .bind(now)
        .bind(workspace)
        .bind(run_at)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Marks customer messages handled inside `tx`.
    async fn mark_handled_in(tx: &mut Tx, ids: &[MessageId]) -> Result<(), StoreError> {
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
        query.execute(&mut **tx).await.map_err(db_err)?;
        Ok(())
    }

    /// Opens an escalation inside `tx`, or returns the one already open (with `false`).
    /// Closes the conversation's open escalation inside `tx` (see [`Closing`]); `None` when
    /// none was open, or a person wrote after `quiet_since`.
    async fn close_escalation_in(
        tx: &mut Tx,
        conversation: ConversationId,
        closing: &Closing,
        now: i64,
        woke: &mut Vec<WorkspaceId>,
    ) -> Result<Option<Escalation>, StoreError> {
        let status = match closing.resolution {
            Resolution::HandedBack => ConversationStatus::Active,
            Resolution::Resolved => ConversationStatus::Resolved,
        };
        let quiet = match closing.quiet_since {
            Some(_) => {
                " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = $1
                    AND m.direction = 'outbound' AND m.role = 'agent' AND m.created_at > $6)"
            }
            None => " AND $6 IS NULL",
        };
        let sql = format!(
            "UPDATE escalations SET closed_at = $2, resolution = $3, closed_by = $4, closed_by_user = $5
             WHERE conversation_id = $1 AND closed_at IS NULL{quiet} RETURNING *"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(conversation.to_string())
            .bind(now)
            .bind(closing.resolution.as_str())
            .bind(&closing.by)
            .bind(closing.user.map(|u| u.to_string()))
            .bind(closing.quiet_since.map(|t| t.timestamp_millis()))
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query("UPDATE conversations SET status = $2, status_reason = NULL, unread_count = 0, updated_at = $3 WHERE id = $1")
            .bind(conversation.to_string())
            .bind(status.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        let escalation = escalation_from_row(&row)?;
        let kind = match closing.resolution {
            Resolution::Resolved => EventKind::ConversationResolved,
            Resolution::HandedBack => EventKind::ConversationHandedBack,
        };
        woke.push(
            Self::conversation_event_in(
                tx,
                &conversation.to_string(),
                kind,
                serde_json::json!({"escalation": escalation}),
                now,
            )
            .await?,
        );
        Ok(Some(escalation))
    }

    async fn open_escalation_in(
        tx: &mut Tx,
        conversation: ConversationId,
        escalation: &NewEscalation,
        now: i64,
        woke: &mut Vec<WorkspaceId>,
    ) -> Result<(Escalation, bool), StoreError> {
        let open = sqlx::query(
            "SELECT * FROM escalations WHERE conversation_id = $1 AND closed_at IS NULL",
        )
        .bind(conversation.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
        if let Some(row) = open {
            return Ok((escalation_from_row(&row)?, false));
        }
        let row = sqlx::query(
            "INSERT INTO escalations (id, conversation_id, reason, detail, message_id, opened_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(EscalationId::new().to_string())
        .bind(conversation.to_string())
        .bind(escalation.reason.as_str())
        .bind(escalation.detail.as_deref())
        .bind(escalation.message_id.map(|m| m.to_string()))
        .bind(now)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
        let result = sqlx::query("UPDATE conversations SET status = 'escalated', status_reason = $2, updated_at = $3 WHERE id = $1")
            .bind(conversation.to_string())
            .bind(escalation.reason.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("conversation {conversation}")));
        }
        let assigned = Self::assign_escalated_in(tx, conversation, now).await?;
        let escalation = escalation_from_row(&row)?;
        let id = conversation.to_string();
        woke.push(
            Self::conversation_event_in(
                tx,
                &id,
                EventKind::ConversationEscalated,
                serde_json::json!({"escalation": escalation}),
                now,
            )
            .await?,
        );
        if assigned {
            woke.push(
                Self::conversation_event_in(
                    tx,
                    &id,
                    EventKind::ConversationAssigned,
                    serde_json::json!({}),
                    now,
                )
                .await?,
            );
        }
        Ok((escalation, true))
    }

    /// Gives a conversation just escalated to the person its workspace's [`AssignmentRule`]
    /// picks, unless someone has it already (or it is a sandbox conversation). Round-robin
    /// takes the member with the `agent` role who was assigned one longest ago.
    async fn assign_escalated_in(
        tx: &mut Tx,
        conversation: ConversationId,
        now: i64,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT cv.assignee_id, cv.sandbox, ch.workspace_id, w.assignment
             FROM conversations cv JOIN channels ch ON ch.id = cv.channel_id
             JOIN workspaces w ON w.id = ch.workspace_id WHERE cv.id = $1",
        )
        .bind(conversation.to_string())
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
        if get::<Option<String>>(&row, "assignee_id")?.is_some()
            || get::<i64>(&row, "sandbox")? != 0
        {
            return Ok(false);
        }
        let workspace: String = get(&row, "workspace_id")?;
        let rule: String = get(&row, "assignment")?;
        let rule: AssignmentRule = serde_json::from_str(&rule)
            .map_err(|e| StoreError::Corrupt(format!("workspace assignment: {e}")))?;
        let picked: Option<String> = match rule {
            AssignmentRule::Manual => None,
            AssignmentRule::Default { user } => sqlx::query(
                "SELECT user_id FROM memberships
                 WHERE workspace_id = $1 AND user_id = $2 AND role IN ('owner', 'agent')",
            )
            .bind(&workspace)
            .bind(user.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?
            .map(|r| get(&r, "user_id"))
            .transpose()?,
            AssignmentRule::RoundRobin => sqlx::query(
                "UPDATE memberships SET last_assigned_at = $2
                 WHERE workspace_id = $1 AND user_id = (
                     SELECT user_id FROM memberships WHERE workspace_id = $1 AND role = 'agent'
                     ORDER BY last_assigned_at ASC NULLS FIRST, created_at, user_id LIMIT 1)
                 RETURNING user_id",
            )
            .bind(&workspace)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?
            .map(|r| get(&r, "user_id"))
            .transpose()?,
        };
        let Some(user) = picked else {
            return Ok(false);
        };
        sqlx::query("UPDATE conversations SET assignee_id = $2 WHERE id = $1")
            .bind(conversation.to_string())
            .bind(user)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        Ok(true)
    }

    /// The contact (created or refreshed) and its conversation id (created if needed). A
    /// contact whose business-scoped user id is `ids.user_id` is that customer, whatever
    /// `wa_id` the message came with (a phone number, or the user id alone).
    async fn contact_and_conversation(
        tx: &mut Tx,
        channel: &Channel,
        ids: ContactIds<'_>,
        name: Option<&str>,
        now: i64,
    ) -> Result<(String, bool), StoreError> {
        let contact = Self::upsert_contact(tx, channel, ids, name, now).await?;
        if let Some(id) = Self::insert_conversation(tx, channel, &contact, now).await? {
            return Ok((id, true));
        }
        let row =
            sqlx::query("SELECT id FROM conversations WHERE channel_id = $1 AND contact_id = $2")
                .bind(channel.id.to_string())
                .bind(contact.id.to_string())
                .fetch_one(&mut **tx)
                .await
                .map_err(db_err)?;
        Ok((get(&row, "id")?, false))
    }

    /// The contact `ids` name on `channel`, made or brought up to date.
    async fn upsert_contact(
        tx: &mut Tx,
        channel: &Channel,
        ids: ContactIds<'_>,
        name: Option<&str>,
        now: i64,
    ) -> Result<Contact, StoreError> {
        let mut wa_id = ids.wa_id.to_owned();
        if let Some(user_id) = ids.user_id {
            let known = sqlx::query(
                "SELECT wa_id FROM contacts WHERE channel_id = $1 AND user_id = $2
                 ORDER BY created_at LIMIT 1",
            )
            .bind(channel.id.to_string())
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
            if let Some(row) = known {
                wa_id = get(&row, "wa_id")?;
            }
        }
        let sql = format!(
            "INSERT INTO contacts (id, channel_id, wa_id, reply_to, user_id, name, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             {CONTACT_UPSERT}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(ContactId::new().to_string())
            .bind(channel.id.to_string())
            .bind(&wa_id)
            .bind(ids.reply_to)
            .bind(ids.user_id)
            .bind(name)
            .bind(now)
            .fetch_one(&mut **tx)
            .await
            .map_err(db_err)?;
        contact_from_row(&row)
    }

    /// Makes `contact`'s conversation on `channel` unless it exists; its id when it was made.
    async fn insert_conversation(
        tx: &mut Tx,
        channel: &Channel,
        contact: &Contact,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        // A row comes back only when this statement made the conversation.
        let created = sqlx::query(
            "INSERT INTO conversations (id, channel_id, contact_id, agent_id, sandbox, status, last_activity_at,
                context_started_at, unread_count, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'active', $6, $6, 0, $6, $6)
             ON CONFLICT (channel_id, contact_id) DO NOTHING
             RETURNING id",
        )
        .bind(ConversationId::new().to_string())
        .bind(channel.id.to_string())
        .bind(contact.id.to_string())
        .bind(channel.agent_id.map(|a| a.to_string()))
        .bind((channel.provider == ProviderKind::Sandbox) as i64)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
        created.map(|row| get(&row, "id")).transpose()
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_message(
        tx: &mut Tx,
        conversation: &str,
        channel: &str,
        direction: Direction,
        role: Role,
        inbound: &NewInbound,
        status: DeliveryStatus,
        handled: bool,
        now: i64,
    ) -> Result<Message, StoreError> {
        let id = MessageId::new().to_string();
        let sql = format!(
            "INSERT INTO messages (id, conversation_id, channel_id, direction, role, kind, body, details,
                provider_message_id, status, status_rank, handled, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
             RETURNING {MESSAGE_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&id)
            .bind(conversation)
            .bind(channel)
            .bind(direction.as_str())
            .bind(role.as_str())
            .bind(inbound.kind.as_str())
            .bind(inbound.text.as_deref())
            .bind(to_json(&inbound.details)?)
            .bind(&inbound.provider_message_id)
            .bind(status.as_str())
            .bind(status.rank())
            .bind(handled as i64)
            .bind(now)
            .fetch_one(&mut **tx)
            .await
            .map_err(db_err)?;
        message_from_row(&row)
    }

    async fn known_provider_message(
        tx: &mut Tx,
        channel: &str,
        provider_id: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT id FROM messages WHERE channel_id = $1 AND provider_message_id = $2",
        )
        .bind(channel)
        .bind(provider_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
        Ok(row.is_some())
    }
}

#[async_trait]
impl ConversationStore for SqlStore {
    async fn create_channel(&self, c: NewChannel) -> Result<Channel, StoreError> {
        let id = ChannelId::new();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO channels (id, workspace_id, name, provider, route_key, agent_id, credentials, settings, state, created_at, updated_at)
             VALUES ($1, $10, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(id.to_string())
        .bind(&c.name)
        .bind(c.provider.as_str())
        .bind(&c.route_key)
        .bind(c.agent_id.map(|a| a.to_string()))
        .bind(c.sealed_credentials)
        .bind(to_json(&c.settings)?)
        .bind(c.state.as_str())
        .bind(now)
        .bind(c.workspace_id.to_string())
        .execute(&self.write)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "a {} channel for `{}` already exists",
                c.provider.as_str(),
                c.route_key
            )),
            other => other,
        })?;
        self.channel(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("channel {id}")))
    }

    async fn channel(&self, id: ChannelId) -> Result<Option<Channel>, StoreError> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(channel_from_row).transpose()
    }

    async fn channel_by_route(
        &self,
        provider: ProviderKind,
        route_key: &str,
    ) -> Result<Option<Channel>, StoreError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels WHERE provider = $1 AND route_key = $2"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(provider.as_str())
            .bind(route_key)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(channel_from_row).transpose()
    }

    async fn list_channels(
        &self,
        ws: Option<WorkspaceId>,
        provider: Option<ProviderKind>,
    ) -> Result<Vec<Channel>, StoreError> {
        let sql = format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels WHERE provider <> 'sandbox' AND ($1 = '' OR provider = $1)
               AND ($2 = '' OR workspace_id = $2) ORDER BY name, id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(provider.map(|p| p.as_str()).unwrap_or(""))
            .bind(ws.map(|w| w.to_string()).unwrap_or_default())
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(channel_from_row).collect()
    }

    async fn channel_credentials(&self, id: ChannelId) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT credentials FROM channels WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.map(|r| get::<Vec<u8>>(&r, "credentials")).transpose()
    }

    async fn update_channel(
        &self,
        c: &Channel,
        sealed: Option<Vec<u8>>,
    ) -> Result<Channel, StoreError> {
        let result = sqlx::query(
            "UPDATE channels SET name = $2, agent_id = $3, settings = $4,
                credentials = COALESCE($5, credentials), updated_at = $6 WHERE id = $1",
        )
        .bind(c.id.to_string())
        .bind(&c.name)
        .bind(c.agent_id.map(|a| a.to_string()))
        .bind(to_json(&c.settings)?)
        .bind(sealed)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("channel {}", c.id)));
        }
        // Conversations follow the channel's agent.
        sqlx::query("UPDATE conversations SET agent_id = $2 WHERE channel_id = $1")
            .bind(c.id.to_string())
            .bind(c.agent_id.map(|a| a.to_string()))
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        self.channel(c.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("channel {}", c.id)))
    }

    async fn set_channel_state(
        &self,
        id: ChannelId,
        state: ChannelState,
        detail: Option<&str>,
        qr: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE channels SET state = $2, state_detail = $3, updated_at = $4 WHERE id = $1
             RETURNING workspace_id",
        )
        .bind(id.to_string())
        .bind(state.as_str())
        .bind(detail)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(());
        };
        let workspace: String = get(&row, "workspace_id")?;
        let mut data = serde_json::json!({"state": state.as_str(), "detail": detail});
        if let (Some(qr), Some(data)) = (qr, data.as_object_mut()) {
            data.insert("qr".into(), qr);
        }
        let channel = id.to_string();
        let ws = Self::emit_in(
            &mut tx,
            &workspace,
            NewEvent {
                kind: EventKind::ChannelState,
                conversation: None,
                channel: Some(&channel),
                data,
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([ws]);
        Ok(())
    }

    async fn delete_channel(&self, id: ChannelId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM channels WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected() > 0)
    }

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

    async fn open_conversation(
        &self,
        channel: &Channel,
        wa_id: &str,
        name: Option<&str>,
    ) -> Result<Conversation, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (id, created) =
            Self::contact_and_conversation(&mut tx, channel, ContactIds::phone(wa_id), name, now)
                .await?;
        let conversation = Self::conversation_in(&mut tx, &id).await?;
        let mut woke = Vec::new();
        if created {
            woke.push(
                Self::conversation_event_in(
                    &mut tx,
                    &id,
                    EventKind::ConversationCreated,
                    serde_json::json!({}),
                    now,
                )
                .await?,
            );
        }
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok(conversation)
    }

    async fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
        let sql = format!("{CONVERSATION_SELECT} WHERE cv.id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    async fn list_conversations(
        &self,
        ws: WorkspaceId,
        f: &ConversationFilter,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let mut conditions = vec![
            "cv.sandbox = $1".to_string(),
            "ch.workspace_id = $2".to_string(),
        ];
        let mut args: Vec<String> = vec![ws.to_string()];
        if let Some(status) = f.status {
            args.push(status.as_str().to_string());
            conditions.push(format!("cv.status = ${}", args.len() + 1));
        }
        if let Some(channel) = f.channel_id {
            args.push(channel.to_string());
            conditions.push(format!("cv.channel_id = ${}", args.len() + 1));
        }
        match f.assignee {
            Some(Some(user)) => {
                args.push(user.to_string());
                conditions.push(format!("cv.assignee_id = ${}", args.len() + 1));
            }
            Some(None) => conditions.push("cv.assignee_id IS NULL".into()),
            None => {}
        }
        conditions.extend(super::contacts::contact_conditions(
            "cv.contact_id",
            f.label.as_ref(),
            f.attribute.as_ref(),
            &mut args,
            1,
        ));
        if f.unread {
            conditions.push("cv.unread_count > 0".into());
        }
        if let Some(search) = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let plan = self.search_plan(search).await?;
            conditions.push(search_condition(self.backend, search, plan, &mut args));
        }
        // The page is chosen first, in the activity index's order (activity times can tie: the
        // conversation with the later message comes first then); its rows are then completed
        // with contact, channel and latest message, a lookup each.
        let sql = format!(
            "SELECT cv.id, cv.channel_id, ch.workspace_id, cv.agent_id, cv.sandbox, cv.status, cv.status_reason,
                    cv.last_inbound_at, cv.last_activity_at, cv.context_started_at, cv.unread_count, cv.created_at, cv.assignee_id,
                    ct.id AS contact_id, ct.wa_id, ct.reply_to, ct.user_id, ct.name AS contact_name, ch.name AS channel_name,
                    (SELECT COALESCE(m.body, m.transcript, m.kind) FROM messages m WHERE m.conversation_id = cv.id
                     ORDER BY m.seq DESC LIMIT 1) AS last_message
             FROM (SELECT cv.* FROM conversations cv JOIN channels ch ON ch.id = cv.channel_id
                   WHERE {}
                   ORDER BY cv.last_activity_at DESC, cv.last_message_seq DESC, cv.id
                   LIMIT {} OFFSET {}) cv
             JOIN contacts ct ON ct.id = cv.contact_id JOIN channels ch ON ch.id = cv.channel_id
             ORDER BY cv.last_activity_at DESC, cv.last_message_seq DESC, cv.id",
            conditions.join(" AND "),
            f.limit.clamp(1, 500),
            f.offset
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(f.sandbox as i64);
        for arg in args {
            query = query.bind(arg);
        }
        let rows = query.fetch_all(&self.read).await.map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let last: Option<String> = get(row, "last_message")?;
                Ok(ConversationSummary {
                    conversation: conversation_from_row(row)?,
                    channel_name: get(row, "channel_name")?,
                    last_message: last.map(|t| shorten(&t, 120)),
                })
            })
            .collect()
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

    async fn record_outbound(&self, m: NewOutbound) -> Result<(Message, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut woke = Vec::new();
        let recorded = Self::insert_outbound(&mut tx, &m, now_ms(), &mut woke).await?;
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok(recorded)
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

    async fn mark_failed(&self, id: MessageId, error: &DeliveryError) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
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

    async fn take_send_slot(
        &self,
        channel: ChannelId,
        per_minute: u32,
        burst: u32,
    ) -> Result<Option<std::time::Duration>, StoreError> {
        // GCRA: one row per channel holds the theoretical arrival time of the next message.
        let interval = 60_000 / i64::from(per_minute.max(1));
        let tolerance = interval * i64::from(burst.max(1) - 1);
        let now = now_ms();
        let lock = match self.backend {
            super::Backend::Postgres => " FOR UPDATE",
            super::Backend::Sqlite => "",
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO channel_send_rate (channel_id, tat) VALUES ($1, 0) ON CONFLICT (channel_id) DO NOTHING",
        )
        .bind(channel.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT tat FROM channel_send_rate WHERE channel_id = $1{lock}"
        )))
        .bind(channel.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let tat = get::<i64>(&row, "tat")?.max(now);
        if tat - now > tolerance {
            tx.rollback().await.map_err(db_err)?;
            let wait = (tat - now - tolerance).max(1) as u64;
            return Ok(Some(std::time::Duration::from_millis(wait)));
        }
        sqlx::query("UPDATE channel_send_rate SET tat = $2 WHERE channel_id = $1")
            .bind(channel.to_string())
            .bind(tat + interval)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(None)
    }

    async fn set_conversation_status(
        &self,
        id: ConversationId,
        status: ConversationStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let before = sqlx::query("SELECT status FROM conversations WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| StoreError::NotFound(format!("conversation {id}")))?;
        let before: ConversationStatus = parse_text(&before, "status")?;
        sqlx::query("UPDATE conversations SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1")
            .bind(id.to_string())
            .bind(status.as_str())
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let kind = match (before, status) {
            (a, b) if a == b => None,
            (_, ConversationStatus::Resolved) => Some(EventKind::ConversationResolved),
            (ConversationStatus::Escalated, ConversationStatus::Active) => {
                Some(EventKind::ConversationHandedBack)
            }
            (_, ConversationStatus::Escalated) => Some(EventKind::ConversationEscalated),
            _ => None,
        };
        let mut woke = Vec::new();
        if let Some(kind) = kind {
            woke.push(
                Self::conversation_event_in(
                    &mut tx,
                    &id.to_string(),
                    kind,
                    serde_json::json!({}),
                    now,
                )
                .await?,
            );
        }
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok(())
    }

    async fn reset_context(&self, id: ConversationId) -> Result<(), StoreError> {
        // One millisecond ahead so a message stored in the same millisecond is not history.
        sqlx::query(
            "UPDATE conversations SET context_started_at = $2, updated_at = $2 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(now_ms() + 1)
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn mark_read(&self, id: ConversationId) -> Result<(), StoreError> {
        sqlx::query("UPDATE conversations SET unread_count = 0 WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn open_escalation(
        &self,
        conversation: ConversationId,
        escalation: NewEscalation,
    ) -> Result<(Escalation, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut woke = Vec::new();
        let opened =
            Self::open_escalation_in(&mut tx, conversation, &escalation, now_ms(), &mut woke)
                .await?;
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok(opened)
    }

    async fn close_escalation(
        &self,
        conversation: ConversationId,
        resolution: Resolution,
        by: &str,
        user: Option<UserId>,
    ) -> Result<Option<Escalation>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let mut woke = Vec::new();
        let closing = Closing {
            resolution,
            by: by.to_string(),
            user,
            quiet_since: None,
        };
        let closed =
            Self::close_escalation_in(&mut tx, conversation, &closing, now, &mut woke).await?;
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok(closed)
    }

    async fn assign_conversation(
        &self,
        id: ConversationId,
        assignee: Option<UserId>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let result =
            sqlx::query("UPDATE conversations SET assignee_id = $2, updated_at = $3 WHERE id = $1")
                .bind(id.to_string())
                .bind(assignee.map(|u| u.to_string()))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("conversation {id}")));
        }
        let ws = Self::conversation_event_in(
            &mut tx,
            &id.to_string(),
            EventKind::ConversationAssigned,
            serde_json::json!({}),
            now,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.woke([ws]);
        Ok(())
    }

    async fn open_escalations(&self, limit: u32) -> Result<Vec<OpenEscalation>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.*, c.agent_id AS agent_id,
                (SELECT MAX(m.created_at) FROM messages m WHERE m.conversation_id = e.conversation_id
                   AND m.direction = 'outbound' AND m.role = 'agent') AS last_person_at
             FROM escalations e JOIN conversations c ON c.id = e.conversation_id
             WHERE e.closed_at IS NULL AND c.sandbox = 0
             ORDER BY e.opened_at LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(OpenEscalation {
                    escalation: escalation_from_row(row)?,
                    agent_id: opt_id(row, "agent_id")?,
                    last_person_at: opt_time(row, "last_person_at")?,
                })
            })
            .collect()
    }

    async fn escalations(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<Escalation>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM escalations WHERE conversation_id = $1 ORDER BY opened_at, id",
        )
        .bind(conversation.to_string())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(escalation_from_row).collect()
    }
}

/// At most `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// How the inbox finds the messages that contain a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SearchPlan {
    /// The conversations of the (few) messages the trigram index finds.
    Index,
    /// Conversations in activity order, each checked for a message containing the search,
    /// until the page is full: the search is common (or too short for trigrams), so matches
    /// come soon.
    Walk,
}

/// Messages the trigram index may find for a search before walking conversations is cheaper.
const INDEX_PLAN_LIMIT: i64 = 5000;

impl SqlStore {
    /// Chooses how to search message text for `search`, by how many messages the trigram
    /// index finds: counted (up to [`INDEX_PLAN_LIMIT`]) on SQLite, where FTS5 counts fast;
    /// on Postgres, the planner's own estimate from pg_trgm's statistics (counting there may
    /// read much of the table for a common word).
    async fn search_plan(&self, search: &str) -> Result<SearchPlan, StoreError> {
        let lowered = search.to_lowercase();
        if lowered.chars().count() < 3 {
            return Ok(SearchPlan::Walk);
        }
        let found = match self.backend {
            super::Backend::Sqlite => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM (SELECT 1 FROM messages_text WHERE messages_text MATCH $1 LIMIT $2) x",
            )
            .bind(fts_phrase(&lowered))
            .bind(INDEX_PLAN_LIMIT)
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?,
            super::Backend::Postgres => {
                let plan: Vec<String> = sqlx::query_scalar(
                    "EXPLAIN SELECT 1 FROM messages WHERE LOWER(COALESCE(body, '')) LIKE $1 ESCAPE '\\'",
                )
                .bind(format!("%{}%", like_escaped(&lowered)))
                .fetch_all(&self.read)
                .await
                .map_err(db_err)?;
                estimated_rows(plan.first().map(String::as_str).unwrap_or_default())
            }
        };
        Ok(if found < INDEX_PLAN_LIMIT {
            SearchPlan::Index
        } else {
            SearchPlan::Walk
        })
    }
}

/// The row estimate of a Postgres plan line (`... (cost=0.00..1.00 rows=42 width=4)`); 0
/// when there is none.
fn estimated_rows(line: &str) -> i64 {
    line.split("rows=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A search as an FTS5 string: one phrase, which the trigram tokenizer matches anywhere in the
/// text.
fn fts_phrase(lowered: &str) -> String {
    format!("\"{}\"", lowered.replace('"', "\"\""))
}

/// `text` with LIKE's wildcards and escape character taken literally (escape `\`).
fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The inbox search as a condition on `cv` (a conversation), its values bound as the next of
/// `args`: the contact's name or number, or any message's text or transcript, containing
/// `search`, case-insensitively.
fn search_condition(
    backend: super::Backend,
    search: &str,
    plan: SearchPlan,
    args: &mut Vec<String>,
) -> String {
    let lowered = search.to_lowercase();
    args.push(format!("%{}%", like_escaped(&lowered)));
    let like = args.len() + 1;
    let contacts = format!(
        "cv.contact_id IN (SELECT ct.id FROM contacts ct
           WHERE LOWER(COALESCE(ct.name, '')) LIKE ${like} ESCAPE '\\' OR ct.wa_id LIKE ${like} ESCAPE '\\')"
    );
    let text = format!(
        "(LOWER(COALESCE(m.body, '')) LIKE ${like} ESCAPE '\\'
          OR LOWER(COALESCE(m.transcript, '')) LIKE ${like} ESCAPE '\\')"
    );
    let messages = match (plan, backend) {
        (SearchPlan::Index, super::Backend::Sqlite) => {
            args.push(fts_phrase(&lowered));
            let phrase = args.len() + 1;
            format!(
                "cv.id IN (SELECT m.conversation_id FROM messages m WHERE m.seq IN
                   (SELECT rowid FROM messages_text WHERE messages_text MATCH ${phrase}))"
            )
        }
        // pg_trgm's indexes serve the LIKE itself.
        (SearchPlan::Index, super::Backend::Postgres) => {
            format!("cv.id IN (SELECT m.conversation_id FROM messages m WHERE {text})")
        }
        (SearchPlan::Walk, super::Backend::Sqlite) => {
            format!("EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = cv.id AND {text})")
        }
        // `OFFSET 0` keeps Postgres from turning the check into one set of every matching
        // message (a hashed subplan): the walk stops at the page.
        (SearchPlan::Walk, super::Backend::Postgres) => format!(
            "EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = cv.id AND {text} OFFSET 0)"
        ),
    };
    format!("({contacts} OR {messages})")
}

#[cfg(test)]
mod tests {
    use super::estimated_rows;

    #[test]
    fn a_plans_row_estimate_is_read_from_its_first_line() {
        assert_eq!(
            estimated_rows(
                "Bitmap Heap Scan on messages  (cost=584.49..8224.44 rows=6061 width=37)"
            ),
            6061
        );
        assert_eq!(
            estimated_rows("Result  (cost=0.00..0.01 rows=1 width=4)"),
            1
        );
        assert_eq!(estimated_rows(""), 0);
    }
}
