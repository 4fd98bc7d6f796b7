//! Writes that several of the store's verbs share, each inside the caller's transaction: a
//! contact and its conversation found or created, messages inserted, outbound messages with
//! their send jobs, customer messages marked handled, escalations opened, closed and assigned,
//! and the events these changes emit.

use sqlx::AssertSqlSafe;

use super::event_log::{emit, NewEvent};
use super::rows::{
    contact_from_row, conversation_from_row, db_err, escalation_from_row, get, is_postgres,
    message_from_row, placeholders, to_json, Tx, CONTACT_UPSERT, CONVERSATION_SELECT,
    MESSAGE_COLUMNS,
};
use super::sql::SqlStore;
use super::{Closing, Delivery, JobLimits, NewEscalation, NewInbound, NewOutbound, StoreError};
use crate::domain::{
    AssignmentRule, Channel, ChannelAssignment, Contact, ContactId, Conversation, ConversationId,
    ConversationStatus, DeliveryStatus, Direction, Escalation, EscalationId, EventKind, JobId,
    Message, MessageId, ProviderKind, Resolution, Role, Task, WorkspaceId,
};

/// The ids a message names its customer by.
#[derive(Debug, Clone, Copy)]
pub(super) struct ContactIds<'a> {
    pub wa_id: &'a str,
    pub reply_to: Option<&'a str>,
    pub user_id: Option<&'a str>,
}

impl<'a> ContactIds<'a> {
    pub(super) fn phone(wa_id: &'a str) -> Self {
        Self {
            wa_id,
            reply_to: None,
            user_id: None,
        }
    }
}

impl SqlStore {
    pub(super) async fn conversation_in(tx: &mut Tx, id: &str) -> Result<Conversation, StoreError> {
        let sql = format!("{CONVERSATION_SELECT} WHERE cv.id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&mut **tx)
            .await
            .map_err(db_err)?;
        conversation_from_row(&row)
    }

    pub(super) async fn message_in(tx: &mut Tx, id: &str) -> Result<Message, StoreError> {
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
    pub(super) async fn message_event_in(
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
        emit(
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
    pub(super) async fn conversation_event_in(
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
        emit(
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
    pub(super) async fn insert_outbound(
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
        Self::count_activity(tx, &conversation, &channel, m.role, now).await?;
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
            emit(
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
    pub(super) async fn mark_handled_in(tx: &mut Tx, ids: &[MessageId]) -> Result<(), StoreError> {
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
    pub(super) async fn close_escalation_in(
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

    pub(super) async fn open_escalation_in(
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

    /// Gives a conversation just escalated to the person its channel's [`ChannelAssignment`]
    /// picks, or, when the channel follows the workspace, its workspace's [`AssignmentRule`];
    /// unless someone has it already (or it is a sandbox conversation). Round-robin takes the
    /// member with the `agent` role who was assigned one longest ago; a team's turn, the
    /// team's member (owner or agent) whose last turn is oldest.
    pub(super) async fn assign_escalated_in(
        tx: &mut Tx,
        conversation: ConversationId,
        now: i64,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT cv.assignee_id, cv.sandbox, ch.workspace_id, w.assignment,
                ch.assignment_mode, ch.assignment_user_id, ch.assignment_team_id
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
        let rule = match super::teams::channel_rule(&row)? {
            ChannelAssignment::Workspace => rule,
            ChannelAssignment::Manual => AssignmentRule::Manual,
            ChannelAssignment::Default { user } => AssignmentRule::Default { user },
            ChannelAssignment::Team { team } => {
                let picked = Self::next_in_team(tx, &workspace, &team.to_string()).await?;
                return Self::give(tx, conversation, picked).await;
            }
        };
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
            AssignmentRule::RoundRobin => {
                // Picks in one workspace take turns: on Postgres a transaction lock per
                // workspace makes each wait for the one before and see the turn it gave (SQLite
                // has one writer). A turn is stamped after every earlier one, even within the
                // same millisecond, so the longest waiting is always the next.
                if is_postgres(tx) {
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                        .bind(format!("round-robin:{workspace}"))
                        .execute(&mut **tx)
                        .await
                        .map_err(db_err)?;
                }
                sqlx::query(
                    "UPDATE memberships SET last_assigned_at = (
                         SELECT CASE WHEN MAX(last_assigned_at) IS NULL OR MAX(last_assigned_at) < $2
                                THEN $2 ELSE MAX(last_assigned_at) + 1 END
                         FROM memberships WHERE workspace_id = $1)
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
                .transpose()?
            }
        };
        Self::give(tx, conversation, picked).await
    }

    /// Assigns the conversation to the person picked, if any; whether one was.
    async fn give(
        tx: &mut Tx,
        conversation: ConversationId,
        picked: Option<String>,
    ) -> Result<bool, StoreError> {
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
    pub(super) async fn contact_and_conversation(
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
    pub(super) async fn upsert_contact(
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
    pub(super) async fn insert_conversation(
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
    pub(super) async fn insert_message(
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
        Self::count_activity(tx, conversation, channel, role, now).await?;
        message_from_row(&row)
    }

    /// Counts a message of `role` in its conversation's quarter of an hour
    /// (`conversation_activity`, what reports count conversation-days from).
    pub(super) async fn count_activity(
        tx: &mut Tx,
        conversation: &str,
        channel: &str,
        role: Role,
        at: i64,
    ) -> Result<(), StoreError> {
        let (customer, bot, person): (i64, i64, i64) = match role {
            Role::Customer => (1, 0, 0),
            Role::Bot => (0, 1, 0),
            Role::Agent => (0, 0, 1),
            Role::System => return Ok(()),
        };
        sqlx::query(super::activity::COUNT_ACTIVITY)
            .bind(conversation)
            .bind(at.div_euclid(super::activity::QUARTER_MS))
            .bind(channel)
            .bind(customer)
            .bind(bot)
            .bind(person)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    pub(super) async fn known_provider_message(
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
