//! [`ReportStore`] on SQL: the aggregates the Reports page draws, each one statement over an
//! index made for it (`migrations/*/…_reports.sql`): customer days and the bot's share from
//! `conversation_activity`, escalations with their first reply by a person from
//! `escalations_opened` and `messages_people`, survey scores from `csat_surveys_sent`. Every
//! query is bounded by the workspace's channels and a time range.
//!
//! `conversation_activity` counts each conversation's messages by who wrote them per quarter of
//! an hour, in the transaction that stores the message: a report reads one row per conversation
//! and quarter instead of every message. Every time zone in use is offset from UTC by whole
//! quarters of an hour, so days cut in the viewer's zone are exact.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use super::activity::QUARTER_MS;
use super::rows::{db_err, get, opt_time, placeholders, time};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{ChannelId, EscalationReason, Resolution, UserId};

/// What a report covers: channels of one workspace (never empty), the conversations of one
/// person (those now assigned to them, and surveys about their work), a time range, and where
/// days begin.
#[derive(Debug, Clone)]
pub struct ReportScope {
    /// The channels counted.
    pub channels: Vec<ChannelId>,
    /// Only this person's conversations.
    pub person: Option<UserId>,
    /// From this instant.
    pub from: DateTime<Utc>,
    /// Until this instant (excluded).
    pub to: DateTime<Utc>,
    /// Milliseconds added to UTC times before cutting them into days (the viewer's zone).
    pub day_offset_ms: i64,
}

impl ReportScope {
    /// The day (counted from 1970-01-01 in the scope's zone) an instant falls on.
    pub fn day_of(&self, at: DateTime<Utc>) -> i64 {
        (at.timestamp_millis() + self.day_offset_ms).div_euclid(DAY_MS)
    }
}

const DAY_MS: i64 = 86_400_000;

/// One day's conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayActivity {
    /// Days since 1970-01-01 in the scope's zone.
    pub day: i64,
    /// Conversations in which the customer wrote that day.
    pub conversations: i64,
    /// Of those, the ones the bot answered that day with no person writing and no
    /// escalation opening.
    pub bot_only: i64,
}

/// An escalation opened in the range, with what the times are measured from.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationTimes {
    /// Why it opened.
    pub reason: EscalationReason,
    /// When.
    pub opened_at: DateTime<Utc>,
    /// A person's first message in the conversation from then on (while it was open).
    pub first_person_at: Option<DateTime<Utc>>,
    /// When it was closed, if it was.
    pub closed_at: Option<DateTime<Utc>>,
    /// How.
    pub resolution: Option<Resolution>,
}

/// The surveys sent in the range and their scores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SurveyCounts {
    /// Surveys sent.
    pub sent: i64,
    /// Answers with each score, 1 to 5.
    pub scores: [i64; 5],
}

/// The aggregates behind reports.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Conversations per day, and how many the bot answered alone, over the scope's range.
    async fn activity_by_day(&self, scope: &ReportScope) -> Result<Vec<DayActivity>, StoreError>;
    /// The escalations opened in the scope's range, oldest first.
    async fn escalation_times(
        &self,
        scope: &ReportScope,
    ) -> Result<Vec<EscalationTimes>, StoreError>;
    /// The satisfaction surveys sent in the scope's range.
    async fn survey_counts(&self, scope: &ReportScope) -> Result<SurveyCounts, StoreError>;
}

/// `$first…` placeholders for the scope's channels, bound after `first - 1` other values.
fn channel_list(scope: &ReportScope, first: usize) -> String {
    placeholders(first, scope.channels.len())
}

/// The statement `sql` with `leading` bound first, then the scope's person (or NULL), then its
/// channels (see [`channel_list`]).
fn scoped(
    sql: String,
    leading: &[i64],
    scope: &ReportScope,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for value in leading {
        query = query.bind(*value);
    }
    query = query.bind(scope.person.map(|p| p.to_string()));
    for channel in &scope.channels {
        query = query.bind(channel.to_string());
    }
    query
}

#[async_trait]
impl ReportStore for SqlStore {
    async fn activity_by_day(&self, scope: &ReportScope) -> Result<Vec<DayActivity>, StoreError> {
        if scope.channels.is_empty() {
            return Ok(Vec::new());
        }
        // $1 offset, $2 first quarter, $3 quarter after the last, $4 person (or NULL), channels
        // from $5. The inner query reads the covering index only: one row per conversation and
        // day, with its counts by role; a day the bot answered alone also saw no escalation
        // open.
        let person = match scope.person {
            Some(_) => {
                "AND a.conversation_id IN (SELECT id FROM conversations WHERE assignee_id = $4)"
            }
            None => "AND $4 IS NULL",
        };
        let sql = format!(
            "SELECT d.day AS day, COUNT(*) AS conversations,
                SUM(CASE WHEN d.bot > 0 AND d.person = 0 AND NOT EXISTS (
                        SELECT 1 FROM escalations e WHERE e.conversation_id = d.conversation_id
                        AND e.opened_at >= d.day * {DAY_MS} - $1
                        AND e.opened_at < (d.day + 1) * {DAY_MS} - $1)
                    THEN 1 ELSE 0 END) AS bot_only
             FROM (
                SELECT (a.quarter * {QUARTER_MS} + $1) / {DAY_MS} AS day,
                    a.conversation_id AS conversation_id,
                    SUM(a.customer) AS customer, SUM(a.bot) AS bot, SUM(a.person) AS person
                FROM conversation_activity a
                WHERE a.channel_id IN ({channels}) AND a.quarter >= $2 AND a.quarter < $3
                    {person}
                GROUP BY (a.quarter * {QUARTER_MS} + $1) / {DAY_MS}, a.conversation_id
             ) d
             WHERE d.customer > 0
             GROUP BY d.day ORDER BY d.day",
            channels = channel_list(scope, 5),
        );
        // A range cut into days in a zone starts and ends on whole quarters (one that does not
        // counts the quarters it touches).
        let quarters = [
            scope.from.timestamp_millis().div_euclid(QUARTER_MS),
            (scope.to.timestamp_millis() + QUARTER_MS - 1).div_euclid(QUARTER_MS),
        ];
        let rows = scoped(sql, &[scope.day_offset_ms, quarters[0], quarters[1]], scope)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(DayActivity {
                    day: get(row, "day")?,
                    conversations: get(row, "conversations")?,
                    bot_only: get(row, "bot_only")?,
                })
            })
            .collect()
    }

    async fn escalation_times(
        &self,
        scope: &ReportScope,
    ) -> Result<Vec<EscalationTimes>, StoreError> {
        if scope.channels.is_empty() {
            return Ok(Vec::new());
        }
        let person = match scope.person {
            Some(_) => "AND c.assignee_id = $3",
            None => "AND $3 IS NULL",
        };
        let sql = format!(
            "SELECT e.reason, e.opened_at, e.closed_at, e.resolution,
                (SELECT MIN(m.created_at) FROM messages m
                 WHERE m.conversation_id = e.conversation_id AND m.role = 'agent'
                   AND m.created_at >= e.opened_at
                   AND (e.closed_at IS NULL OR m.created_at <= e.closed_at)) AS first_person_at
             FROM escalations e JOIN conversations c ON c.id = e.conversation_id
             WHERE e.opened_at >= $1 AND e.opened_at < $2 AND c.channel_id IN ({channels})
                {person}
             ORDER BY e.opened_at",
            channels = channel_list(scope, 4),
        );
        let range = [scope.from.timestamp_millis(), scope.to.timestamp_millis()];
        let query = scoped(sql, &range, scope);
        let rows = query.fetch_all(&self.read).await.map_err(db_err)?;
        rows.iter()
            .map(|row| {
                let reason: String = get(row, "reason")?;
                let resolution: Option<String> = get(row, "resolution")?;
                Ok(EscalationTimes {
                    reason: reason.parse().map_err(StoreError::Corrupt)?,
                    opened_at: time(row, "opened_at")?,
                    first_person_at: opt_time(row, "first_person_at")?,
                    closed_at: opt_time(row, "closed_at")?,
                    resolution: resolution
                        .map(|r| r.parse().map_err(StoreError::Corrupt))
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn survey_counts(&self, scope: &ReportScope) -> Result<SurveyCounts, StoreError> {
        if scope.channels.is_empty() {
            return Ok(SurveyCounts::default());
        }
        let person = match scope.person {
            Some(_) => "AND person_id = $3",
            None => "AND $3 IS NULL",
        };
        let sql = format!(
            "SELECT score, COUNT(*) AS n FROM csat_surveys
             WHERE sent_at >= $1 AND sent_at < $2 AND channel_id IN ({channels}) {person}
             GROUP BY score",
            channels = channel_list(scope, 4),
        );
        let range = [scope.from.timestamp_millis(), scope.to.timestamp_millis()];
        let query = scoped(sql, &range, scope);
        let mut counts = SurveyCounts::default();
        for row in query.fetch_all(&self.read).await.map_err(db_err)? {
            let score: Option<i64> = get(&row, "score")?;
            let n: i64 = get(&row, "n")?;
            counts.sent += n;
            if let Some(score) = score {
                let slot = usize::try_from(score - 1)
                    .ok()
                    .and_then(|i| counts.scores.get_mut(i))
                    .ok_or_else(|| StoreError::Corrupt(format!("survey score {score}")))?;
                *slot += n;
            }
        }
        Ok(counts)
    }
}
