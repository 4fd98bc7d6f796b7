//! [`FaqStore`] on SQL: the customer questions a knowledge-gap report reads (those that
//! escalated, or that a person answered), and FAQ entries proposed from them, with their
//! review.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::rows::{db_err, get, now_ms, opt_id, opt_time, parse_id, parse_text, time};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{
    AgentId, ConversationId, FaqProposal, FaqProposalId, FaqStatus, MessageId, UserId, WorkspaceId,
};

/// A customer's message that a person had to deal with: it escalated (for another reason than
/// asking for a person), or the next reply after it was a person's.
#[derive(Debug, Clone, PartialEq)]
pub struct GapQuestion {
    /// The customer's message.
    pub message_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// The agent answering the conversation.
    pub agent_id: Option<AgentId>,
    /// What the customer said (the transcript of a voice note).
    pub text: String,
    /// When.
    pub asked_at: DateTime<Utc>,
    /// Whether it escalated.
    pub escalated: bool,
    /// The person's reply to it, if one came before the customer's next message.
    pub reply: Option<GapReply>,
}

/// A person's reply to a [`GapQuestion`].
#[derive(Debug, Clone, PartialEq)]
pub struct GapReply {
    /// The reply.
    pub message_id: MessageId,
    /// Its text.
    pub text: String,
    /// Who sent it from the inbox, when known.
    pub sent_by: Option<UserId>,
}

/// A proposal to write.
#[derive(Debug, Clone)]
pub struct NewFaqProposal<'a> {
    /// The agent it is for.
    pub agent_id: Option<AgentId>,
    /// Where it came from: the conversation, the customer's message and the person's reply.
    pub conversation_id: Option<ConversationId>,
    /// The customer's message.
    pub question_message_id: Option<MessageId>,
    /// The person's reply (one proposal per reply).
    pub answer_message_id: Option<MessageId>,
    /// The question, checked.
    pub question: &'a str,
    /// The answer, checked.
    pub answer: &'a str,
    /// Who proposes it.
    pub proposed_by: Option<UserId>,
    /// Their name.
    pub proposed_by_name: &'a str,
}

/// Which proposals to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaqFilter {
    /// Only those in this state.
    pub status: Option<FaqStatus>,
    /// Only those for this agent.
    pub agent: Option<AgentId>,
    /// Only those from this conversation.
    pub conversation: Option<ConversationId>,
}

/// Knowledge gaps and the FAQ entries proposed to fill them.
#[async_trait]
pub trait FaqStore: Send + Sync {
    /// The workspace's customer messages since `since` (real conversations, not the
    /// sandbox's) that escalated or that a person answered, oldest first, at most `limit`
    /// (the newest kept).
    async fn gap_questions(
        &self,
        ws: WorkspaceId,
        since: DateTime<Utc>,
        agent: Option<AgentId>,
        limit: u32,
    ) -> Result<Vec<GapQuestion>, StoreError>;
    /// Writes a proposal; [`StoreError::Conflict`] when its reply was proposed already, and
    /// [`StoreError::NotFound`] when its conversation or agent is not the workspace's.
    async fn add_faq_proposal(
        &self,
        ws: WorkspaceId,
        new: NewFaqProposal<'_>,
    ) -> Result<FaqProposal, StoreError>;
    /// One proposal of the workspace.
    async fn faq_proposal(
        &self,
        ws: WorkspaceId,
        id: FaqProposalId,
    ) -> Result<Option<FaqProposal>, StoreError>;
    /// The proposal made from the person's reply `message`, if any.
    async fn faq_proposal_for_reply(
        &self,
        ws: WorkspaceId,
        message: MessageId,
    ) -> Result<Option<FaqProposal>, StoreError>;
    /// The workspace's proposals, newest first (the approved ones of an agent oldest first:
    /// the order of its document).
    async fn faq_proposals(
        &self,
        ws: WorkspaceId,
        filter: FaqFilter,
    ) -> Result<Vec<FaqProposal>, StoreError>;
    /// Saves a proposal's question, answer, agent and state as `proposal` holds them;
    /// [`StoreError::NotFound`] when it (or its agent) is not the workspace's.
    async fn save_faq_proposal(
        &self,
        ws: WorkspaceId,
        proposal: &FaqProposal,
    ) -> Result<FaqProposal, StoreError>;
    /// Deletes a proposal; whether there was one.
    async fn delete_faq_proposal(
        &self,
        ws: WorkspaceId,
        id: FaqProposalId,
    ) -> Result<bool, StoreError>;
}

fn proposal_from_row(row: &AnyRow) -> Result<FaqProposal, StoreError> {
    Ok(FaqProposal {
        id: parse_id(row, "id")?,
        agent_id: opt_id(row, "agent_id")?,
        conversation_id: opt_id(row, "conversation_id")?,
        question_message_id: opt_id(row, "question_message_id")?,
        answer_message_id: opt_id(row, "answer_message_id")?,
        question: get(row, "question")?,
        answer: get(row, "answer")?,
        status: parse_text(row, "status")?,
        proposed_by: opt_id(row, "proposed_by")?,
        proposed_by_name: get(row, "proposed_by_name")?,
        decided_by: opt_id(row, "decided_by")?,
        decided_at: opt_time(row, "decided_at")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn gap_from_row(row: &AnyRow) -> Result<GapQuestion, StoreError> {
    let reply = match opt_id::<MessageId>(row, "reply_id")? {
        Some(message_id) => Some(GapReply {
            message_id,
            text: get::<Option<String>>(row, "reply_text")?.unwrap_or_default(),
            sent_by: opt_id(row, "reply_by")?,
        }),
        None => None,
    };
    Ok(GapQuestion {
        message_id: parse_id(row, "id")?,
        conversation_id: parse_id(row, "conversation_id")?,
        agent_id: opt_id(row, "agent_id")?,
        text: get(row, "text")?,
        asked_at: time(row, "created_at")?,
        escalated: get::<i64>(row, "escalated")? != 0,
        reply,
    })
}

impl SqlStore {
    /// Whether `agent` is an agent of workspace `ws`.
    async fn agent_of(&self, ws: WorkspaceId, agent: AgentId) -> Result<bool, StoreError> {
        let found = sqlx::query("SELECT id FROM agents WHERE id = $1 AND workspace_id = $2")
            .bind(agent.to_string())
            .bind(ws.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        Ok(found.is_some())
    }
}

#[async_trait]
impl FaqStore for SqlStore {
    async fn gap_questions(
        &self,
        ws: WorkspaceId,
        since: DateTime<Utc>,
        agent: Option<AgentId>,
        limit: u32,
    ) -> Result<Vec<GapQuestion>, StoreError> {
        // A customer's message, the escalation it raised (asking for a person is no gap in the
        // knowledge), and the first reply after it that came before the customer wrote again,
        // when a person sent it.
        let rows = sqlx::query(
            "SELECT * FROM (
                SELECT q.*, r.body AS reply_text, r.sent_by AS reply_by FROM (
                    SELECT m.id, m.conversation_id, cv.agent_id, m.created_at, m.seq,
                        COALESCE(NULLIF(m.transcript, ''), m.body) AS text,
                        CAST(CASE WHEN EXISTS (
                            SELECT 1 FROM escalations e WHERE e.message_id = m.id
                              AND e.reason NOT IN ('human_request', 'keyword', 'human_takeover')
                        ) THEN 1 ELSE 0 END AS BIGINT) AS escalated,
                        (SELECT h.id FROM messages h
                          WHERE h.conversation_id = m.conversation_id AND h.seq > m.seq
                            AND h.direction = 'outbound' AND h.role = 'agent'
                            AND NOT EXISTS (
                              SELECT 1 FROM messages n
                               WHERE n.conversation_id = m.conversation_id
                                 AND n.role = 'customer' AND n.seq > m.seq AND n.seq < h.seq)
                          ORDER BY h.seq LIMIT 1) AS reply_id
                    FROM messages m
                    JOIN conversations cv ON cv.id = m.conversation_id
                    JOIN channels ch ON ch.id = cv.channel_id
                    WHERE ch.workspace_id = $1 AND cv.sandbox = 0
                      AND m.role = 'customer' AND m.direction = 'inbound'
                      AND m.created_at >= $2
                      AND ($3 = '' OR cv.agent_id = $3)
                      AND COALESCE(NULLIF(m.transcript, ''), m.body) IS NOT NULL
                ) q
                LEFT JOIN messages r ON r.id = q.reply_id
                WHERE q.escalated = 1 OR q.reply_id IS NOT NULL
                ORDER BY q.created_at DESC, q.seq DESC
                LIMIT $4
             ) newest ORDER BY created_at, seq",
        )
        .bind(ws.to_string())
        .bind(since.timestamp_millis())
        .bind(agent.map(|a| a.to_string()).unwrap_or_default())
        .bind(i64::from(limit.clamp(1, 100_000)))
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(gap_from_row).collect()
    }

    async fn add_faq_proposal(
        &self,
        ws: WorkspaceId,
        new: NewFaqProposal<'_>,
    ) -> Result<FaqProposal, StoreError> {
        if let Some(agent) = new.agent_id {
            if !self.agent_of(ws, agent).await? {
                return Err(StoreError::NotFound(format!("no agent {agent}")));
            }
        }
        let id = FaqProposalId::new();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if let Some(conversation) = new.conversation_id {
            let found = Self::conversation_in(&mut tx, &conversation.to_string()).await;
            if !found.is_ok_and(|c| c.workspace_id == ws) {
                return Err(StoreError::NotFound(format!(
                    "no conversation {conversation}"
                )));
            }
        }
        sqlx::query(
            "INSERT INTO faq_proposals
                (id, workspace_id, agent_id, conversation_id, question_message_id,
                 answer_message_id, question, answer, status, proposed_by, proposed_by_name,
                 created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'proposed', $9, $10, $11, $11)",
        )
        .bind(id.to_string())
        .bind(ws.to_string())
        .bind(new.agent_id.map(|a| a.to_string()))
        .bind(new.conversation_id.map(|c| c.to_string()))
        .bind(new.question_message_id.map(|m| m.to_string()))
        .bind(new.answer_message_id.map(|m| m.to_string()))
        .bind(new.question)
        .bind(new.answer)
        .bind(new.proposed_by.map(|u| u.to_string()))
        .bind(new.proposed_by_name)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let row = sqlx::query("SELECT * FROM faq_proposals WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let proposal = proposal_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(proposal)
    }

    async fn faq_proposal(
        &self,
        ws: WorkspaceId,
        id: FaqProposalId,
    ) -> Result<Option<FaqProposal>, StoreError> {
        let row = sqlx::query("SELECT * FROM faq_proposals WHERE id = $1 AND workspace_id = $2")
            .bind(id.to_string())
            .bind(ws.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(proposal_from_row).transpose()
    }

    async fn faq_proposal_for_reply(
        &self,
        ws: WorkspaceId,
        message: MessageId,
    ) -> Result<Option<FaqProposal>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM faq_proposals WHERE answer_message_id = $1 AND workspace_id = $2",
        )
        .bind(message.to_string())
        .bind(ws.to_string())
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref().map(proposal_from_row).transpose()
    }

    async fn faq_proposals(
        &self,
        ws: WorkspaceId,
        filter: FaqFilter,
    ) -> Result<Vec<FaqProposal>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM faq_proposals
             WHERE workspace_id = $1 AND ($2 = '' OR status = $2)
               AND ($3 = '' OR agent_id = $3) AND ($4 = '' OR conversation_id = $4)
             ORDER BY created_at DESC, id DESC LIMIT 2000",
        )
        .bind(ws.to_string())
        .bind(filter.status.map(|s| s.as_str()).unwrap_or_default())
        .bind(filter.agent.map(|a| a.to_string()).unwrap_or_default())
        .bind(
            filter
                .conversation
                .map(|c| c.to_string())
                .unwrap_or_default(),
        )
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let mut found: Vec<FaqProposal> = rows
            .iter()
            .map(proposal_from_row)
            .collect::<Result<_, _>>()?;
        if filter.agent.is_some() && filter.status == Some(FaqStatus::Approved) {
            found.reverse();
        }
        Ok(found)
    }

    async fn save_faq_proposal(
        &self,
        ws: WorkspaceId,
        p: &FaqProposal,
    ) -> Result<FaqProposal, StoreError> {
        if let Some(agent) = p.agent_id {
            if !self.agent_of(ws, agent).await? {
                return Err(StoreError::NotFound(format!("no agent {agent}")));
            }
        }
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE faq_proposals SET agent_id = $1, question = $2, answer = $3, status = $4,
                decided_by = $5, decided_at = $6, updated_at = $7
             WHERE id = $8 AND workspace_id = $9",
        )
        .bind(p.agent_id.map(|a| a.to_string()))
        .bind(&p.question)
        .bind(&p.answer)
        .bind(p.status.as_str())
        .bind(p.decided_by.map(|u| u.to_string()))
        .bind(p.decided_at.map(|t| t.timestamp_millis()))
        .bind(now_ms())
        .bind(p.id.to_string())
        .bind(ws.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no FAQ proposal {}", p.id)));
        }
        let row = sqlx::query("SELECT * FROM faq_proposals WHERE id = $1")
            .bind(p.id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let saved = proposal_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        Ok(saved)
    }

    async fn delete_faq_proposal(
        &self,
        ws: WorkspaceId,
        id: FaqProposalId,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM faq_proposals WHERE id = $1 AND workspace_id = $2")
            .bind(id.to_string())
            .bind(ws.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }
}
