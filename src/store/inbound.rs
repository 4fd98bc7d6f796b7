//! Recording customer messages: a group commit's worth at once (or a single one), in a fixed
//! number of statements whatever their number.
//!
//! Recorded one by one, a message costs eight or nine statements (is it known, who is the
//! contact, the contact, the conversation, the message, its job, the event counter, its
//! events), and each statement is a round trip (to the connection's thread on SQLite, to the
//! server on Postgres). Here
//! each of those steps is one statement for the whole batch, with the result of recording the
//! messages one after another in the order given: a message already stored (or given twice)
//! is a duplicate, a contact takes the last name given, a conversation counts all its new
//! messages and gets one handling job, and the events come in order.
//!
//! A statement's rows travel as one JSON array parameter, read back as a table, so each
//! statement's text is the same whatever the batch's size and is prepared once per connection.
//!
//! Rows are written in one order across transactions (contacts by channel and number, first
//! of all), and the workspace's event counter is taken last, so concurrent transactions (other
//! committers, other replicas, the pipeline's replies) never wait for each other in a cycle.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::AssertSqlSafe;

use super::rows::{
    contact_from_row, conversation_from_parts, db_err, get, is_postgres, now_ms, parse_id, to_json,
    Tx, CONTACT_UPSERT, CONVERSATION_RETURNING,
};
use super::{InboundPolicy, NewInbound, RecordedInbound, StoreError};
use crate::domain::{
    from_millis, to_millis, Channel, ChannelId, Contact, ContactId, Conversation, ConversationId,
    DeliveryStatus, Direction, EventKind, JobId, Message, MessageId, ProviderKind, Role, Task,
};

/// One customer message to record.
pub(super) struct Inbound<'a> {
    pub channel: &'a Channel,
    pub message: &'a NewInbound,
    pub policy: &'a InboundPolicy,
}

/// A contact: its channel and the number it is known by.
type ContactKey = (ChannelId, String);

/// The new messages of one conversation in a batch.
struct Thread<'a> {
    channel: &'a Channel,
    contact: Contact,
    /// Positions in the batch, in order.
    messages: Vec<usize>,
    /// When the customer sent the latest of them.
    sent_at: i64,
    /// The policy of its last message (one channel's messages share one).
    policy: &'a InboundPolicy,
}

/// Runs `sql`, in which `{rows}` stands for the table of the JSON array `rows` (each row's
/// object is `e.value`, its fields read with `->>`) and `$2`, `$3`... for `more`.
async fn run(
    tx: &mut Tx,
    sql: &str,
    rows: &[Value],
    more: &[i64],
) -> Result<Vec<AnyRow>, StoreError> {
    let table = if is_postgres(tx) {
        "json_array_elements($1::json) AS e"
    } else {
        "json_each($1) AS e"
    };
    let sql = sql.replace("{rows}", table);
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(Value::from(rows).to_string());
    for value in more {
        query = query.bind(*value);
    }
    query.fetch_all(&mut **tx).await.map_err(db_err)
}

/// Records `batch` inside `tx` as recording its messages one after another would, and
/// answers what became of each, in order. A message stored by a concurrent transaction
/// meanwhile fails the batch with [`StoreError::Conflict`] (on Postgres the transaction
/// is then unusable, so the caller decides what a conflict means).
pub(super) async fn record_batch(
    tx: &mut Tx,
    batch: &[Inbound<'_>],
) -> Result<Vec<RecordedInbound>, StoreError> {
    let now = now_ms();
    let mut recorded = vec![RecordedInbound::Duplicate; batch.len()];
    let fresh = fresh_inbound(tx, batch).await?;
    if fresh.is_empty() {
        return Ok(recorded);
    }
    let keys = contact_keys(tx, batch, &fresh).await?;
    let contacts = upsert_contacts(tx, batch, &fresh, &keys, now).await?;
    let mut threads: Vec<Thread> = Vec::new();
    let mut thread_of: HashMap<ContactId, usize> = HashMap::new();
    for (&i, key) in fresh.iter().zip(&keys) {
        let item = &batch[i];
        let contact = contacts
            .get(key)
            .ok_or_else(|| StoreError::Corrupt(format!("contact {} was not stored", key.1)))?;
        let t = *thread_of.entry(contact.id).or_insert_with(|| {
            threads.push(Thread {
                channel: item.channel,
                contact: contact.clone(),
                messages: Vec::new(),
                sent_at: i64::MIN,
                policy: item.policy,
            });
            threads.len() - 1
        });
        let thread = &mut threads[t];
        thread.messages.push(i);
        // The customer-service window opens when the customer writes; never trust a
        // future timestamp.
        thread.sent_at = thread.sent_at.max(to_millis(item.message.sent_at).min(now));
        thread.channel = item.channel;
        thread.policy = item.policy;
    }
    let (conversations, created) = upsert_conversations(tx, &threads, now).await?;
    let mut placed: Vec<(usize, &Conversation)> = Vec::new();
    for thread in &threads {
        let conversation = &conversations[&thread.contact.id];
        placed.extend(thread.messages.iter().map(|&i| (i, conversation)));
    }
    // Back in the batch's order: messages are numbered as they are inserted.
    placed.sort_by_key(|(i, _)| *i);
    let messages = insert_inbound(tx, batch, &placed, now).await?;
    schedule_handling(tx, &threads, &conversations, now).await?;

    let mut events = Vec::new();
    let mut announced = HashSet::new();
    for ((i, conversation), message) in placed.iter().zip(messages) {
        if created.contains(&conversation.contact.id) && announced.insert(conversation.id) {
            events.push((
                EventKind::ConversationCreated,
                *conversation,
                json!({"conversation": conversation}),
            ));
        }
        events.push((
            EventKind::MessageReceived,
            *conversation,
            json!({"message": message, "sandbox": conversation.sandbox}),
        ));
        recorded[*i] = RecordedInbound::New {
            message: Box::new(message),
            conversation: Box::new((*conversation).clone()),
        };
    }
    append_events(tx, &events, now).await?;
    Ok(recorded)
}

/// The positions of the messages not stored yet, each message's first only.
async fn fresh_inbound(tx: &mut Tx, batch: &[Inbound<'_>]) -> Result<Vec<usize>, StoreError> {
    let rows: Vec<Value> = batch
        .iter()
        .map(|b| json!({"c": b.channel.id, "p": b.message.provider_message_id}))
        .collect();
    // On Postgres each row probes the index by itself (LATERAL ... LIMIT 1): the planner
    // costs the JSON rows at 100, and a join was planned as a hash of them against a scan
    // of every message until the table held some tens of thousands.
    let sql = if is_postgres(tx) {
        "SELECT x.channel_id, x.provider_message_id FROM {rows}
         CROSS JOIN LATERAL (SELECT m.channel_id, m.provider_message_id FROM messages m
            WHERE m.channel_id = e.value->>'c' AND m.provider_message_id = e.value->>'p'
            LIMIT 1) AS x"
    } else {
        "SELECT m.channel_id, m.provider_message_id FROM {rows}
         JOIN messages m ON m.channel_id = e.value->>'c' AND m.provider_message_id = e.value->>'p'"
    };
    let known = run(tx, sql, &rows, &[]).await?;
    let mut seen = HashSet::new();
    for row in known {
        seen.insert((
            get::<String>(&row, "channel_id")?,
            get::<String>(&row, "provider_message_id")?,
        ));
    }
    Ok((0..batch.len())
        .filter(|&i| {
            let b = &batch[i];
            seen.insert((
                b.channel.id.to_string(),
                b.message.provider_message_id.clone(),
            ))
        })
        .collect())
}

/// The contact each fresh message is from. A contact whose business-scoped user id the
/// message carries is that customer, whatever number the message came with (a phone
/// number, or the user id alone); the oldest such contact when there are several.
async fn contact_keys(
    tx: &mut Tx,
    batch: &[Inbound<'_>],
    fresh: &[usize],
) -> Result<Vec<ContactKey>, StoreError> {
    let mut by_user: HashMap<(ChannelId, String), String> = HashMap::new();
    let asked: Vec<Value> = fresh
        .iter()
        .map(|&i| &batch[i])
        .filter_map(|b| {
            let user = b.message.user_id.as_deref()?;
            Some(json!({"c": b.channel.id, "u": user}))
        })
        .collect();
    if !asked.is_empty() {
        // The oldest contact of each user id (on Postgres an index probe per row, as above).
        let sql = if is_postgres(tx) {
            "SELECT x.channel_id, x.user_id, x.wa_id FROM {rows}
             CROSS JOIN LATERAL (SELECT c.channel_id, c.user_id, c.wa_id FROM contacts c
                WHERE c.channel_id = e.value->>'c' AND c.user_id = e.value->>'u'
                ORDER BY c.created_at, c.id LIMIT 1) AS x"
        } else {
            "SELECT DISTINCT c.channel_id, c.user_id, c.wa_id, c.created_at, c.id FROM {rows}
             JOIN contacts c ON c.channel_id = e.value->>'c' AND c.user_id = e.value->>'u'
             ORDER BY c.created_at, c.id"
        };
        let rows = run(tx, sql, &asked, &[]).await?;
        for row in rows {
            by_user
                .entry((parse_id(&row, "channel_id")?, get(&row, "user_id")?))
                .or_insert(get(&row, "wa_id")?);
        }
    }
    Ok(fresh
        .iter()
        .map(|&i| {
            let b = &batch[i];
            let wa_id = match &b.message.user_id {
                // The first message of a new user id makes its contact under its number.
                Some(user) => by_user
                    .entry((b.channel.id, user.clone()))
                    .or_insert_with(|| b.message.from.clone())
                    .clone(),
                None => b.message.from.clone(),
            };
            (b.channel.id, wa_id)
        })
        .collect())
}

/// Makes or brings up to date the contacts of the fresh messages: each keeps the last
/// name, reply address and user id its messages gave, and what it had where they gave none.
async fn upsert_contacts(
    tx: &mut Tx,
    batch: &[Inbound<'_>],
    fresh: &[usize],
    keys: &[ContactKey],
    now: i64,
) -> Result<HashMap<ContactKey, Contact>, StoreError> {
    let mut merged: HashMap<&ContactKey, [Option<&str>; 3]> = HashMap::new();
    for (&i, key) in fresh.iter().zip(keys) {
        let m = batch[i].message;
        let given = [
            m.contact_name.as_deref(),
            m.reply_to.as_deref(),
            m.user_id.as_deref(),
        ];
        let fields = merged.entry(key).or_default();
        for (field, given) in fields.iter_mut().zip(given) {
            *field = given.or(*field);
        }
    }
    let mut merged: Vec<(&ContactKey, [Option<&str>; 3])> = merged.into_iter().collect();
    merged.sort_by(|a, b| a.0.cmp(b.0));
    let rows: Vec<Value> = merged
        .iter()
        .map(|((channel, wa_id), [name, reply_to, user_id])| {
            json!({"id": ContactId::new(), "c": channel, "w": wa_id, "n": name,
                   "r": reply_to, "u": user_id})
        })
        .collect();
    let sql = format!(
        "INSERT INTO contacts (id, channel_id, wa_id, name, reply_to, user_id, created_at, updated_at)
         SELECT e.value->>'id', e.value->>'c', e.value->>'w', e.value->>'n', e.value->>'r',
            e.value->>'u', $2, $2
         FROM {{rows}} WHERE true
         {CONTACT_UPSERT}"
    );
    run(tx, &sql, &rows, &[now])
        .await?
        .iter()
        .map(|row| {
            let contact = contact_from_row(row)?;
            Ok(((contact.channel_id, contact.wa_id.clone()), contact))
        })
        .collect()
}

/// Makes or brings up to date the threads' conversations, one upsert for them all: a new
/// conversation starts active with its messages unread; a known one is reopened when
/// resolved, woken when snoozed, gets a fresh context after a long silence, has its window opened and its new
/// messages counted unread. Each conversation as it now is, by contact, and the contacts
/// whose conversation was made.
///
/// The conflict on (channel, contact) is an index probe per row whatever the plan, where
/// an `UPDATE ... FROM` the rows could be planned as a scan of every conversation.
async fn upsert_conversations(
    tx: &mut Tx,
    threads: &[Thread<'_>],
    now: i64,
) -> Result<(HashMap<ContactId, Conversation>, HashSet<ContactId>), StoreError> {
    let mut sorted: Vec<(ConversationId, &Thread)> =
        threads.iter().map(|t| (ConversationId::new(), t)).collect();
    sorted.sort_by_key(|(_, t)| (t.channel.id, t.contact.id));
    // The silence after which a context starts afresh is the statement's own: one
    // statement per policy (one in practice).
    let idle = |t: &Thread| now - t.policy.idle_reset.as_millis() as i64;
    let mut idles: Vec<i64> = sorted.iter().map(|(_, t)| idle(t)).collect();
    idles.sort_unstable();
    idles.dedup();
    let sql = format!(
        "INSERT INTO conversations (id, channel_id, contact_id, agent_id, sandbox, status,
            last_inbound_at, last_activity_at, context_started_at, unread_count, created_at, updated_at)
         SELECT e.value->>'id', e.value->>'c', e.value->>'k', e.value->>'a',
            CAST(e.value->>'s' AS BIGINT), 'active', CAST(e.value->>'sent' AS BIGINT), $2, $2,
            CAST(e.value->>'n' AS BIGINT), $2, $2
         FROM {{rows}} WHERE true
         ON CONFLICT (channel_id, contact_id) DO UPDATE SET
            status = CASE WHEN conversations.status = 'resolved' THEN 'active' ELSE conversations.status END,
            status_reason = CASE WHEN conversations.status = 'resolved' THEN NULL ELSE conversations.status_reason END,
            context_started_at = CASE WHEN conversations.last_activity_at < $3 OR conversations.status = 'resolved'
                THEN excluded.context_started_at ELSE conversations.context_started_at END,
            last_inbound_at = CASE WHEN conversations.last_inbound_at IS NULL
                    OR conversations.last_inbound_at < excluded.last_inbound_at
                THEN excluded.last_inbound_at ELSE conversations.last_inbound_at END,
            last_activity_at = excluded.last_activity_at,
            unread_count = conversations.unread_count + excluded.unread_count,
            snoozed_until = NULL,
            agent_id = excluded.agent_id, updated_at = excluded.updated_at
         RETURNING {CONVERSATION_RETURNING}, contact_id"
    );
    let mut conversations = HashMap::new();
    let mut created = HashSet::new();
    for idle_before in idles {
        let mine: Vec<&(ConversationId, &Thread)> = sorted
            .iter()
            .filter(|(_, t)| idle(t) == idle_before)
            .collect();
        let rows: Vec<Value> = mine
            .iter()
            .map(|(id, t)| {
                json!({"id": id, "c": t.channel.id, "k": t.contact.id, "a": t.channel.agent_id,
                       "s": (t.channel.provider == ProviderKind::Sandbox) as i64,
                       "sent": t.sent_at, "n": t.messages.len()})
            })
            .collect();
        let proposed: HashMap<ContactId, (ConversationId, &Thread)> = mine
            .iter()
            .map(|(id, t)| (t.contact.id, (*id, *t)))
            .collect();
        for row in run(tx, &sql, &rows, &[now, idle_before]).await? {
            let contact: ContactId = parse_id(&row, "contact_id")?;
            let (id, thread) = proposed.get(&contact).ok_or_else(|| {
                StoreError::Corrupt(format!("conversation of an unknown contact {contact}"))
            })?;
            let conversation =
                conversation_from_parts(&row, thread.channel.workspace_id, thread.contact.clone())?;
            // A row this statement made carries the id it proposed.
            if conversation.id == *id {
                created.insert(contact);
            }
            conversations.insert(contact, conversation);
        }
    }
    if conversations.len() != threads.len() {
        return Err(StoreError::Corrupt(
            "a conversation vanished while its message was recorded".into(),
        ));
    }
    Ok((conversations, created))
}

/// Inserts the fresh messages, in the batch's order, each into its conversation.
async fn insert_inbound(
    tx: &mut Tx,
    batch: &[Inbound<'_>],
    placed: &[(usize, &Conversation)],
    now: i64,
) -> Result<Vec<Message>, StoreError> {
    let at = from_millis(now);
    let messages: Vec<Message> = placed
        .iter()
        .map(|(i, conversation)| {
            let m = batch[*i].message;
            Message {
                id: MessageId::new(),
                conversation_id: conversation.id,
                direction: Direction::Inbound,
                role: Role::Customer,
                kind: m.kind,
                text: m.text.clone(),
                transcript: None,
                details: m.details.clone(),
                provider_message_id: Some(m.provider_message_id.clone()),
                status: DeliveryStatus::Received,
                error: None,
                generation: None,
                sent_by: None,
                created_at: at,
                updated_at: at,
            }
        })
        .collect();
    let mut rows = Vec::with_capacity(messages.len());
    for (m, (_, conversation)) in messages.iter().zip(placed) {
        rows.push(
            json!({"id": m.id, "v": m.conversation_id, "c": conversation.channel_id,
            "k": m.kind.as_str(), "b": m.text, "d": to_json(&m.details)?,
            "p": m.provider_message_id}),
        );
    }
    let status = DeliveryStatus::Received;
    run(
        tx,
        "INSERT INTO messages (id, conversation_id, channel_id, direction, role, kind, body,
            details, provider_message_id, status, status_rank, handled, created_at, updated_at)
         SELECT e.value->>'id', e.value->>'v', e.value->>'c', 'inbound', 'customer',
            e.value->>'k', e.value->>'b', e.value->>'d', e.value->>'p', 'received', $3, 0, $2, $2
         FROM {rows} WHERE true",
        &rows,
        &[now, status.rank()],
    )
    .await?;
    // Each conversation's customer messages counted in this quarter of an hour, in one
    // statement, conversations in order (so concurrent batches lock their rows alike).
    let mut counts: std::collections::BTreeMap<(String, String), i64> = Default::default();
    for (m, (_, conversation)) in messages.iter().zip(placed) {
        let key = (
            m.conversation_id.to_string(),
            conversation.channel_id.to_string(),
        );
        *counts.entry(key).or_default() += 1;
    }
    let counted: Vec<Value> = counts
        .into_iter()
        .map(|((v, c), n)| json!({"v": v, "c": c, "n": n}))
        .collect();
    run(
        tx,
        super::activity::COUNT_CUSTOMER_ACTIVITY,
        &counted,
        &[now.div_euclid(super::activity::QUARTER_MS)],
    )
    .await?;
    Ok(messages)
}

/// Schedules each thread's conversation to be handled once its burst is over: a pending
/// job waits `debounce` after the latest message, never longer than `max_delay` after
/// it was first scheduled.
async fn schedule_handling(
    tx: &mut Tx,
    threads: &[Thread<'_>],
    conversations: &HashMap<ContactId, Conversation>,
    now: i64,
) -> Result<(), StoreError> {
    let mut scheduled: Vec<(String, &Thread, &Conversation)> = threads
        .iter()
        .filter(|t| t.policy.schedule)
        .map(|t| {
            let c = &conversations[&t.contact.id];
            (format!("handle:{}", c.id), t, c)
        })
        .collect();
    scheduled.sort_by(|a, b| a.0.cmp(&b.0));
    // The cap is the statement's own: one statement per cap (one in practice).
    let cap = |t: &Thread| t.policy.max_delay.as_millis() as i64;
    let mut caps: Vec<i64> = scheduled.iter().map(|(_, t, _)| cap(t)).collect();
    caps.sort_unstable();
    caps.dedup();
    for max_delay in caps {
        let rows: Vec<Value> = scheduled
            .iter()
            .filter(|(_, t, _)| cap(t) == max_delay)
            .map(|(dedupe, t, conversation)| {
                let task = Task::Handle {
                    conversation_id: conversation.id,
                };
                let limits = &t.policy.limits;
                json!({"id": JobId::new(), "w": conversation.workspace_id, "k": task.kind(),
                    "q": conversation.id, "p": task.payload().to_string(),
                    "m": limits.max_abandoned,
                    "r": now + t.policy.debounce.as_millis() as i64, "d": dedupe,
                    "x": now.saturating_add(limits.retry_for.as_millis() as i64)})
            })
            .collect();
        run(
            tx,
            "INSERT INTO jobs (id, workspace_id, kind, queue_key, payload, status, attempts,
                max_attempts, run_at, dedupe_key, created_at, updated_at, expires_at)
             SELECT e.value->>'id', e.value->>'w', e.value->>'k', e.value->>'q', e.value->>'p',
                'pending', 0, CAST(e.value->>'m' AS BIGINT), CAST(e.value->>'r' AS BIGINT),
                e.value->>'d', $2, $2, CAST(e.value->>'x' AS BIGINT)
             FROM {rows} WHERE true
             ON CONFLICT (dedupe_key) DO UPDATE SET
                run_at = CASE WHEN excluded.run_at < jobs.created_at + $3 THEN excluded.run_at ELSE jobs.created_at + $3 END,
                updated_at = excluded.updated_at",
            &rows,
            &[now, max_delay],
        )
        .await?;
    }
    Ok(())
}

/// Appends `events` (kind, conversation, data) in order to their workspaces' logs, taking
/// each workspace's next numbers: the counter moves once per workspace, which stays locked
/// until commit, so this comes last.
async fn append_events(
    tx: &mut Tx,
    events: &[(EventKind, &Conversation, Value)],
    now: i64,
) -> Result<(), StoreError> {
    let mut workspaces: Vec<_> = events.iter().map(|(_, c, _)| c.workspace_id).collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    for ws in workspaces {
        let mine: Vec<_> = events
            .iter()
            .filter(|(_, c, _)| c.workspace_id == ws)
            .collect();
        let counter = sqlx::query(
            "UPDATE workspaces SET event_seq = event_seq + $2 WHERE id = $1 RETURNING event_seq",
        )
        .bind(ws.to_string())
        .bind(mine.len() as i64)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
        let last: i64 = match counter {
            Some(row) => get(&row, "event_seq")?,
            None => {
                return Err(StoreError::Corrupt(format!(
                    "no workspace {ws} for an event"
                )))
            }
        };
        let first = last - mine.len() as i64 + 1;
        let rows: Vec<Value> = mine
            .into_iter()
            .enumerate()
            .map(|(n, (kind, conversation, data))| {
                json!({"w": ws, "s": first + n as i64, "k": kind.as_str(),
                    "v": conversation.id, "c": conversation.channel_id,
                    "b": data.to_string()})
            })
            .collect();
        // On SQLite a trigger also moves the counter to each event's number: to the same end.
        run(
            tx,
            "INSERT INTO events (workspace_id, seq, kind, conversation_id, channel_id, body, created_at)
             SELECT e.value->>'w', CAST(e.value->>'s' AS BIGINT), e.value->>'k', e.value->>'v',
                e.value->>'c', e.value->>'b', $2
             FROM {rows} WHERE true",
            &rows,
            &[now],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::domain::{ChannelConfig, ChannelState, MessageDetails, MessageKind, WorkspaceId};
    use crate::store::{
        ChannelStore, ConversationStore, EventStore, JobStore, MessageStore, NewChannel, SqlStore,
        Store,
    };

    fn message(id: &str, from: &str, user: Option<&str>, name: Option<&str>) -> NewInbound {
        NewInbound {
            provider_message_id: id.into(),
            from: from.into(),
            reply_to: None,
            user_id: user.map(Into::into),
            contact_name: name.map(Into::into),
            kind: MessageKind::Text,
            text: Some(format!("text of {id}")),
            details: MessageDetails::default(),
            sent_at: Utc::now(),
        }
    }

    /// One batch: a customer by number and by user id alone, a provider retry inside the
    /// batch, a second customer, and a later name. It ends as recording the messages one by
    /// one in this order would: one contact per customer with the last name, unread counts,
    /// one job per conversation, and the events in order with no gap.
    #[tokio::test]
    async fn a_batch_records_what_one_message_at_a_time_would() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = SqlStore::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let channel = store
            .create_channel(NewChannel {
                workspace_id: WorkspaceId::DEFAULT,
                name: "shop".into(),
                provider: ProviderKind::Meta,
                route_key: "100".into(),
                agent_id: None,
                settings: ChannelConfig::default(),
                graph_version: None,
                sealed_credentials: vec![1],
                state: ChannelState::Created,
            })
            .await
            .unwrap();
        let policy = InboundPolicy {
            debounce: Duration::from_secs(2),
            max_delay: Duration::from_secs(6),
            idle_reset: Duration::from_secs(3600),
            limits: Default::default(),
            schedule: true,
        };
        let messages = [
            message("m1", "5511", Some("BR.1"), Some("Ana")),
            message("m2", "BR.1", Some("BR.1"), None),
            message("m1", "5511", Some("BR.1"), Some("Ana")),
            message("m3", "5522", None, Some("Bia")),
            message("m4", "5511", None, Some("Ana Maria")),
        ];
        let batch: Vec<Inbound> = messages
            .iter()
            .map(|m| Inbound {
                channel: &channel,
                message: m,
                policy: &policy,
            })
            .collect();
        let record = || async {
            let mut tx = store.begin_write().await.unwrap();
            let recorded = record_batch(&mut tx, &batch).await.unwrap();
            tx.commit().await.unwrap();
            recorded
        };
        let outcome: Vec<_> = record()
            .await
            .into_iter()
            .map(|r| match r {
                RecordedInbound::New {
                    message,
                    conversation,
                } => Some((
                    message.provider_message_id.unwrap(),
                    conversation.contact.wa_id,
                    conversation.contact.name.unwrap(),
                    conversation.unread_count,
                )),
                RecordedInbound::Duplicate => None,
            })
            .collect();
        let new = |id: &str, wa: &str, name: &str, unread| {
            Some((id.to_string(), wa.to_string(), name.to_string(), unread))
        };
        assert_eq!(
            outcome,
            [
                new("m1", "5511", "Ana Maria", 3),
                new("m2", "5511", "Ana Maria", 3),
                None,
                new("m3", "5522", "Bia", 1),
                new("m4", "5511", "Ana Maria", 3),
            ]
        );
        let ws = WorkspaceId::DEFAULT;
        assert_eq!(store.list_jobs(ws, "pending", 10).await.unwrap().len(), 2);
        let events = store.events_after(ws, 0, 100).await.unwrap();
        let log: Vec<_> = events
            .iter()
            .map(|e| (e.id, e.kind.as_str().to_string()))
            .collect();
        let created = "conversation.created".to_string();
        let received = "message.received".to_string();
        assert_eq!(
            log,
            [
                (1, created.clone()),
                (2, received.clone()),
                (3, received.clone()),
                (4, created),
                (5, received.clone()),
                (6, received),
            ]
        );
        assert!(
            record()
                .await
                .iter()
                .all(|r| matches!(r, RecordedInbound::Duplicate)),
            "a second delivery stores nothing"
        );
        let conversation = store
            .list_conversations(ws, &Default::default())
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.conversation.contact.wa_id == "5511")
            .unwrap()
            .conversation;
        assert_eq!(conversation.contact.user_id.as_deref(), Some("BR.1"));
        let texts: Vec<_> = store
            .unhandled_inbound(conversation.id)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| m.text)
            .collect();
        assert_eq!(texts, ["text of m1", "text of m2", "text of m4"]);
    }
}
