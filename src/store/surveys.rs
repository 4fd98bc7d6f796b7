//! [`SurveyStore`] on SQL: the satisfaction surveys sent after a conversation is resolved and
//! their answers. A survey and its message (with the message's send job) are recorded in one
//! transaction; an answer is kept only for a survey not yet answered, so an answer that arrives
//! twice counts once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{db_err, get, now_ms, opt_id, opt_time, parse_id, time};
use super::sql::SqlStore;
use super::{NewOutbound, StoreError};
use crate::domain::{
    Conversation, ConversationId, EscalationId, EventKind, Message, MessageId, SurveyId, UserId,
};

/// A satisfaction survey sent to a customer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Survey {
    /// Its id.
    pub id: SurveyId,
    /// The conversation it asks about.
    pub conversation_id: ConversationId,
    /// The escalation whose resolving sent it, if one was open.
    pub escalation_id: Option<EscalationId>,
    /// The message that asks.
    pub message_id: MessageId,
    /// The person whose work it rates (the conversation's assignee, or who resolved it).
    pub person_id: Option<UserId>,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// The customer's score, 1 to 5, once answered.
    pub score: Option<u8>,
    /// When they answered.
    pub answered_at: Option<DateTime<Utc>>,
}

/// Satisfaction surveys.
#[async_trait]
pub trait SurveyStore: Send + Sync {
    /// Records `message` (the survey, queued in the outbox) and the survey in one transaction.
    /// With the message's idempotency key already used, nothing new is recorded and the first
    /// survey is returned with `false`.
    async fn send_survey(
        &self,
        conversation: &Conversation,
        escalation: Option<EscalationId>,
        person: Option<UserId>,
        message: NewOutbound,
    ) -> Result<(Survey, Message, bool), StoreError>;
    /// The conversation's latest survey, answered or not.
    async fn latest_survey(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<Survey>, StoreError>;
    /// Records `score` from the customer's message `answer` for a survey not yet answered, and
    /// marks the message handled either way. With `reclose`, the conversation the answer
    /// reopened is resolved again (a second answer's too). False when the survey was already
    /// answered (the earlier answer stands).
    async fn answer_survey(
        &self,
        survey: &Survey,
        score: u8,
        answer: MessageId,
        reclose: bool,
    ) -> Result<bool, StoreError>;
}

const COLUMNS: &str =
    "id, conversation_id, escalation_id, message_id, person_id, sent_at, score, answered_at";

fn survey_from_row(row: &sqlx::any::AnyRow) -> Result<Survey, StoreError> {
    let score: Option<i64> = get(row, "score")?;
    Ok(Survey {
        id: parse_id(row, "id")?,
        conversation_id: parse_id(row, "conversation_id")?,
        escalation_id: opt_id(row, "escalation_id")?,
        message_id: parse_id(row, "message_id")?,
        person_id: opt_id(row, "person_id")?,
        sent_at: time(row, "sent_at")?,
        score: score
            .map(|s| u8::try_from(s).map_err(|_| StoreError::Corrupt(format!("score {s}"))))
            .transpose()?,
        answered_at: opt_time(row, "answered_at")?,
    })
}

#[async_trait]
impl SurveyStore for SqlStore {
    async fn send_survey(
        &self,
        conversation: &Conversation,
        escalation: Option<EscalationId>,
        person: Option<UserId>,
        message: NewOutbound,
    ) -> Result<(Survey, Message, bool), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let mut woke = Vec::new();
        let (message, created) = Self::insert_outbound(&mut tx, &message, now, &mut woke).await?;
        if created {
            sqlx::query(
                "INSERT INTO csat_surveys (id, conversation_id, channel_id, escalation_id,
                    message_id, person_id, sent_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(SurveyId::new().to_string())
            .bind(conversation.id.to_string())
            .bind(conversation.channel_id.to_string())
            .bind(escalation.map(|e| e.to_string()))
            .bind(message.id.to_string())
            .bind(person.map(|p| p.to_string()))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM csat_surveys WHERE message_id = $1"
        )))
        .bind(message.id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("the survey of message {}", message.id)))?;
        let survey = survey_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok((survey, message, created))
    }

    async fn latest_survey(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<Survey>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM csat_surveys WHERE conversation_id = $1
             ORDER BY sent_at DESC, id DESC LIMIT 1"
        )))
        .bind(conversation.to_string())
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref().map(survey_from_row).transpose()
    }

    async fn answer_survey(
        &self,
        survey: &Survey,
        score: u8,
        answer: MessageId,
        reclose: bool,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let conversation = survey.conversation_id.to_string();
        let mut tx = self.begin_write().await?;
        let counted = sqlx::query(
            "UPDATE csat_surveys SET score = $2, answered_at = $3, answer_message_id = $4
             WHERE id = $1 AND score IS NULL",
        )
        .bind(survey.id.to_string())
        .bind(i64::from(score))
        .bind(now)
        .bind(answer.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        Self::mark_handled_in(&mut tx, &[answer]).await?;
        if reclose {
            sqlx::query(
                "UPDATE conversations SET status = 'resolved', status_reason = NULL,
                    unread_count = 0, updated_at = $2
                 WHERE id = $1 AND status = 'active'",
            )
            .bind(&conversation)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let mut woke = Vec::new();
        if counted {
            woke.push(
                Self::conversation_event_in(
                    &mut tx,
                    &conversation,
                    EventKind::ConversationRated,
                    serde_json::json!({"score": score}),
                    now,
                )
                .await?,
            );
        }
        tx.commit().await.map_err(db_err)?;
        self.woke(woke);
        Ok(counted)
    }
}
