//! What the SQL store's files share: reading columns into the domain's types (ids, times,
//! text enums, JSON), the row mappings of channels, contacts, conversations, messages and
//! escalations, the transaction type and its dialect test, and the errors sqlx gives mapped to
//! [`StoreError`]. It imports nothing else of the store but its public types, so every other
//! file (the dialects included) can use it.

use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::{Backend, StoreError};
use crate::domain::{
    from_millis, Channel, ChannelConfig, ChannelState, Contact, Conversation, Escalation, Message,
    MessageDetails, WorkspaceId,
};

/// A transaction on either engine.
pub(super) type Tx = Transaction<'static, Any>;

/// Whether `tx` is on Postgres (for the few statements whose SQL differs).
pub(super) fn is_postgres(tx: &Tx) -> bool {
    tx.backend_name() == "PostgreSQL"
}

/// Starts a write transaction on `pool` (`BEGIN IMMEDIATE` on SQLite).
pub(super) async fn begin_write_on(
    backend: Backend,
    pool: &AnyPool,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err),
        Backend::Postgres => pool.begin().await.map_err(db_err),
    }
}

pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Maps sqlx errors to [`StoreError`], keeping unique violations apart.
pub(super) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(d.message().to_string())
        }
        // Postgres: deadlock_detected, serialization_failure.
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40P01" | "40001")) => {
            StoreError::Aborted(d.message().to_string())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Backend(Box::new(e)),
    }
}

pub(super) fn parse_id<T: FromStr>(row: &AnyRow, column: &str) -> Result<T, StoreError> {
    let raw: String = row.try_get(column).map_err(db_err)?;
    raw.parse()
        .map_err(|_| StoreError::Corrupt(format!("column {column}: bad id `{raw}`")))
}

/// A nullable id column.
pub(super) fn opt_id<T: FromStr>(row: &AnyRow, column: &str) -> Result<Option<T>, StoreError> {
    let raw: Option<String> = row.try_get(column).map_err(db_err)?;
    raw.map(|raw| {
        raw.parse()
            .map_err(|_| StoreError::Corrupt(format!("column {column}: bad id `{raw}`")))
    })
    .transpose()
}

/// A text column read as one of the domain's text enums.
pub(super) fn parse_text<T: std::str::FromStr<Err = String>>(
    row: &AnyRow,
    column: &str,
) -> Result<T, StoreError> {
    let raw: String = get(row, column)?;
    raw.parse().map_err(StoreError::Corrupt)
}

pub(super) fn opt_time(
    row: &AnyRow,
    column: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
    let v: Option<i64> = row.try_get(column).map_err(db_err)?;
    Ok(v.map(from_millis))
}

pub(super) fn time(
    row: &AnyRow,
    column: &str,
) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    let v: i64 = row.try_get(column).map_err(db_err)?;
    Ok(from_millis(v))
}

pub(super) fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column).map_err(db_err)
}

/// Little-endian f32s, the stored form of an embedding.
pub(super) fn vector_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn vector_from_bytes(b: &[u8]) -> Result<Vec<f32>, StoreError> {
    if b.len() % 4 != 0 {
        return Err(StoreError::Corrupt(format!(
            "embedding of {} bytes",
            b.len()
        )));
    }
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// `$from, $from+1, ...`: a placeholder list for `IN (...)`.
pub(super) fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn json_column<T: serde::de::DeserializeOwned>(
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

pub(super) const CHANNEL_COLUMNS: &str =
    "id, workspace_id, name, provider, route_key, agent_id, settings, graph_version, state, state_detail, created_at, updated_at";

pub(super) fn channel_from_row(row: &AnyRow) -> Result<Channel, StoreError> {
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
        graph_version: get(row, "graph_version")?,
        state: parse_text::<ChannelState>(row, "state")?,
        state_detail: get(row, "state_detail")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub(super) const CONVERSATION_SELECT: &str = "SELECT cv.id, cv.channel_id, ch.workspace_id, cv.agent_id, cv.sandbox, cv.status, cv.status_reason,
        cv.last_inbound_at, cv.last_activity_at, cv.context_started_at, cv.unread_count, cv.created_at, cv.assignee_id, cv.snoozed_until,
        ct.id AS contact_id, ct.wa_id, ct.reply_to, ct.user_id, ct.name AS contact_name
    FROM conversations cv JOIN contacts ct ON ct.id = cv.contact_id JOIN channels ch ON ch.id = cv.channel_id";

pub(super) fn conversation_from_row(row: &AnyRow) -> Result<Conversation, StoreError> {
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
        snoozed_until: opt_time(row, "snoozed_until")?,
        created_at: time(row, "created_at")?,
    })
}

/// The conversations table's own columns of a [`Conversation`], for `RETURNING`.
pub(super) const CONVERSATION_RETURNING: &str =
    "id, channel_id, agent_id, sandbox, status, status_reason,
    last_inbound_at, last_activity_at, context_started_at, unread_count, created_at, assignee_id,
    snoozed_until";

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

pub(super) fn escalation_from_row(row: &AnyRow) -> Result<Escalation, StoreError> {
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
