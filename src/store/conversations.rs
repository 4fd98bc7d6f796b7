//! [`ConversationStore`] on SQL: conversations (opened, listed and searched for the inbox, their
//! status and context), and escalations opened, closed and assigned.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::rows::{
    conversation_from_row, db_err, escalation_from_row, get, now_ms, opt_id, opt_time, parse_text,
    CONVERSATION_SELECT,
};
use super::sql::SqlStore;
use super::writes::ContactIds;
use super::{
    Closing, ConversationFilter, ConversationSummary, JobLimits, LabelStore, NewEscalation,
    OpenEscalation, StoreError,
};
use crate::domain::{
    to_millis, Channel, Conversation, ConversationId, ConversationStatus, Escalation, EventKind,
    Resolution, Task, UserId, WorkspaceId,
};

/// Conversations and their escalations.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// The conversation with this contact on this channel, created if needed.
    async fn open_conversation(
        &self,
        channel: &Channel,
        wa_id: &str,
        name: Option<&str>,
    ) -> Result<Conversation, StoreError>;
    /// A conversation by id.
    async fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, StoreError>;
    /// Conversations for the inbox, most recently active first.
    async fn list_conversations(
        &self,
        ws: WorkspaceId,
        filter: &ConversationFilter,
    ) -> Result<Vec<ConversationSummary>, StoreError>;
    /// Sets a conversation's status and reason.
    async fn set_conversation_status(
        &self,
        id: ConversationId,
        status: ConversationStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Starts a fresh context: earlier messages are no longer history.
    async fn reset_context(&self, id: ConversationId) -> Result<(), StoreError>;
    /// Clears the unread count.
    async fn mark_read(&self, id: ConversationId) -> Result<(), StoreError>;
    /// Escalates: status `escalated` and an open escalation record, in one transaction. An
    /// already escalated conversation keeps its open escalation, which is returned.
    async fn open_escalation(
        &self,
        conversation: ConversationId,
        escalation: NewEscalation,
    ) -> Result<(Escalation, bool), StoreError>;
    /// Closes the open escalation: resolved (conversation resolved) or handed back
    /// (conversation active, the bot answers again). `None` when none was open.
    async fn close_escalation(
        &self,
        conversation: ConversationId,
        resolution: Resolution,
        by: &str,
        user: Option<UserId>,
    ) -> Result<Option<Escalation>, StoreError>;
    /// Assigns a conversation to a person, or to nobody. Whether the person may have it is
    /// the caller's to check.
    async fn assign_conversation(
        &self,
        id: ConversationId,
        assignee: Option<UserId>,
    ) -> Result<(), StoreError>;
    /// Open escalations of real (not sandbox) conversations, oldest first, at most `limit`,
    /// with their conversation's agent and when a person last wrote there.
    async fn open_escalations(&self, limit: u32) -> Result<Vec<OpenEscalation>, StoreError>;
    /// A conversation's escalations, oldest first.
    async fn escalations(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<Escalation>, StoreError>;
    /// Snoozes a conversation until `until`, queueing the job that wakes it then in the same
    /// transaction (any replica's workers run it), or wakes it at once (`None`). The
    /// conversation as it now is.
    async fn snooze_conversation(
        &self,
        id: ConversationId,
        until: Option<DateTime<Utc>>,
        limits: JobLimits,
    ) -> Result<Conversation, StoreError>;
    /// Wakes a conversation whose snooze ended by `now`; false when it is not snoozed (any
    /// more) or snoozed past `now` (snoozed again since the job was queued).
    async fn wake_conversation(
        &self,
        id: ConversationId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
impl ConversationStore for SqlStore {
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
        if let Some(label) = &f.conversation_label {
            args.push(label.clone());
            conditions.push(format!(
                "cv.id IN (SELECT cl.conversation_id FROM conversation_labels cl
                   JOIN labels l ON l.id = cl.label_id WHERE l.workspace_id = $2 AND l.name = ${})",
                args.len() + 1
            ));
        }
        if let Some(team) = f.team {
            // The team's conversations: those of its members, and those waiting for it on the
            // channels whose escalations go to it.
            args.push(team.to_string());
            let n = args.len() + 1;
            conditions.push(format!(
                "(cv.assignee_id IN (SELECT tm.user_id FROM team_members tm
                     JOIN teams t ON t.id = tm.team_id WHERE t.id = ${n} AND t.workspace_id = $2)
                  OR (cv.assignee_id IS NULL AND ch.assignment_mode = 'team'
                      AND ch.assignment_team_id = ${n}))"
            ));
        }
        match f.snoozed {
            Some(true) => conditions.push("cv.snoozed_until IS NOT NULL".into()),
            Some(false) => conditions.push("cv.snoozed_until IS NULL".into()),
            None => {}
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
                    cv.last_inbound_at, cv.last_activity_at, cv.context_started_at, cv.unread_count, cv.created_at, cv.assignee_id, cv.snoozed_until,
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
        let mut summaries = rows
            .iter()
            .map(|row| {
                let last: Option<String> = get(row, "last_message")?;
                Ok(ConversationSummary {
                    conversation: conversation_from_row(row)?,
                    channel_name: get(row, "channel_name")?,
                    last_message: last.map(|t| shorten(&t, 120)),
                    labels: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // The page's labels, in one query.
        let ids: Vec<ConversationId> = summaries.iter().map(|s| s.conversation.id).collect();
        let mut labels = self.labels_of(&ids).await?;
        for summary in &mut summaries {
            summary.labels = labels.remove(&summary.conversation.id).unwrap_or_default();
        }
        Ok(summaries)
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

    async fn snooze_conversation(
        &self,
        id: ConversationId,
        until: Option<DateTime<Utc>>,
        limits: JobLimits,
    ) -> Result<Conversation, StoreError> {
        let now = now_ms();
        let key = id.to_string();
        let mut tx = self.begin_write().await?;
        let before = Self::conversation_in(&mut tx, &key).await?;
        let until_ms = until.map(to_millis);
        sqlx::query("UPDATE conversations SET snoozed_until = $2, updated_at = $3 WHERE id = $1")
            .bind(&key)
            .bind(until_ms)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut woke = Vec::new();
        match (until, until_ms) {
            (Some(until), Some(run_at)) => {
                // One queue per snooze: a later snooze never waits behind an earlier one's job.
                Self::insert_job(
                    &mut tx,
                    &before.workspace_id.to_string(),
                    &Task::Wake {
                        conversation_id: id,
                    },
                    &format!("wake:{id}:{run_at}"),
                    limits,
                    run_at,
                    now,
                )
                .await?;
                woke.push(
                    Self::conversation_event_in(
                        &mut tx,
                        &key,
                        EventKind::ConversationSnoozed,
                        serde_json::json!({ "until": until }),
                        now,
                    )
                    .await?,
                );
            }
            _ if before.snoozed_until.is_some() => woke.push(
                Self::conversation_event_in(
                    &mut tx,
                    &key,
                    EventKind::ConversationUnsnoozed,
                    serde_json::json!({ "by": "person" }),
                    now,
                )
                .await?,
            ),
            _ => {}
        }
        let conversation = Self::conversation_in(&mut tx, &key).await?;
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok(conversation)
    }

    async fn wake_conversation(
        &self,
        id: ConversationId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let key = id.to_string();
        let at = now_ms();
        let mut tx = self.begin_write().await?;
        let woken = sqlx::query(
            "UPDATE conversations SET snoozed_until = NULL, updated_at = $3
             WHERE id = $1 AND snoozed_until IS NOT NULL AND snoozed_until <= $2",
        )
        .bind(&key)
        .bind(to_millis(now))
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0;
        let mut woke = Vec::new();
        if woken {
            woke.push(
                Self::conversation_event_in(
                    &mut tx,
                    &key,
                    EventKind::ConversationUnsnoozed,
                    serde_json::json!({ "by": "time" }),
                    at,
                )
                .await?,
            );
        }
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok(woken)
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
