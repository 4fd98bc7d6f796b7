//! FAQ entries from the inbox: a person's reply to a customer, proposed in one click as an
//! entry (the customer's words as the question, the reply as the answer), edited and approved
//! by an author. An agent's approved entries are one document of its knowledge,
//! [`APPROVED_SOURCE`], written as Markdown (a heading per question) and ingested as any
//! uploaded document is: the next customer who asks finds it. Each is also an eval case
//! ([`crate::eval::from_faq`]).

use chrono::Utc;

use super::loaders::Format;
use super::{IngestOutcome, Knowledge, KnowledgeError};
use crate::domain::{
    Agent, AgentId, Direction, FaqProposal, FaqProposalId, FaqStatus, FieldError, MessageId, Role,
    UserId, WorkspaceId,
};
use crate::store::{FaqFilter, NewFaqProposal, StoreError};

/// The source name of an agent's approved entries in its knowledge.
pub const APPROVED_SOURCE: &str = "approved-answers.md";

/// The document's title.
pub const APPROVED_TITLE: &str = "Approved answers";

/// The longest question, in characters.
pub const MAX_QUESTION: usize = 500;

/// The longest answer, in characters.
pub const MAX_ANSWER: usize = 4000;

/// Why an FAQ action was refused.
#[derive(Debug, thiserror::Error)]
pub enum FaqError {
    /// Bad fields.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    /// No such proposal, message or agent in the workspace.
    #[error("not found: {0}")]
    NotFound(String),
    /// Ingesting the approved entries failed.
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FaqError {
    fn invalid(field: &str, message: &str) -> Self {
        FaqError::Invalid(vec![FieldError::new(field, message)])
    }
}

/// Who acts.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The person (none for an API key).
    pub user: Option<UserId>,
    /// Their name (an API key's label).
    pub name: &'a str,
}

/// Changes an author makes to a proposal; what is `None` stays.
#[derive(Debug, Clone, Default)]
pub struct FaqEdit {
    /// The question.
    pub question: Option<String>,
    /// The answer.
    pub answer: Option<String>,
    /// The agent whose knowledge it joins.
    pub agent: Option<AgentId>,
}

/// A question or answer checked: trimmed, not empty, not too long, no control characters but
/// line breaks and tabs. The question is one line.
pub fn check_text(field: &str, text: &str, max: usize) -> Result<String, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(FieldError::new(field, "must not hold control characters"));
    }
    Ok(text.replace("\r\n", "\n"))
}

/// The question and answer of an entry, checked together.
fn check_entry(question: &str, answer: &str) -> Result<(String, String), FaqError> {
    let question = check_text("question", question, MAX_QUESTION)
        .map(|q| q.split_whitespace().collect::<Vec<_>>().join(" "));
    let answer = check_text("answer", answer, MAX_ANSWER);
    match (question, answer) {
        (Ok(q), Ok(a)) => Ok((q, a)),
        (q, a) => Err(FaqError::Invalid(
            [q.err(), a.err()].into_iter().flatten().collect(),
        )),
    }
}

/// An agent's approved entries as the Markdown document ingested into its knowledge: a heading
/// per question, the answer below it.
pub fn approved_document(entries: &[FaqProposal]) -> String {
    let mut doc = format!("# {APPROVED_TITLE}\n");
    for e in entries {
        let question = e.question.split_whitespace().collect::<Vec<_>>().join(" ");
        doc.push_str(&format!("\n## {}\n\n", escape_line(&question)));
        for line in e.answer.lines() {
            doc.push_str(&escape_line(line.trim_end()));
            doc.push('\n');
        }
    }
    doc
}

/// A line that Markdown would read as a heading, a rule or a quote is kept as text.
fn escape_line(line: &str) -> String {
    let trimmed = line.trim_start();
    match trimmed.chars().next() {
        Some('#' | '>' | '=' | '-' | '*' | '_' | '|') => format!("\\{trimmed}"),
        _ => line.to_string(),
    }
}

impl Knowledge {
    /// Proposes an FAQ entry from the person's reply `reply`: the customer's messages just
    /// before it (after any earlier reply) are the question, the reply is the answer, for the
    /// conversation's agent. A reply proposed before gives that proposal back (`false`).
    pub async fn propose_from_reply(
        &self,
        ws: WorkspaceId,
        reply: MessageId,
        by: Actor<'_>,
    ) -> Result<(FaqProposal, bool), FaqError> {
        let not_found = || FaqError::NotFound(format!("no message {reply}"));
        let message = self.store.message(reply).await?.ok_or_else(not_found)?;
        let conversation = self
            .store
            .conversation(message.conversation_id)
            .await?
            .filter(|c| c.workspace_id == ws)
            .ok_or_else(not_found)?;
        if let Some(existing) = self.store.faq_proposal_for_reply(ws, reply).await? {
            return Ok((existing, false));
        }
        let answer = message
            .text
            .as_deref()
            .filter(|t| !t.trim().is_empty() && message.details.deleted_at.is_none());
        let answer = match (message.direction, message.role, answer) {
            (Direction::Outbound, Role::Agent, Some(text)) => text.to_string(),
            _ => {
                return Err(FaqError::invalid(
                    "message_id",
                    "is not a person's text reply to a customer",
                ))
            }
        };
        let before = self
            .store
            .messages(conversation.id, 200, Some(reply))
            .await?;
        // Back from the reply: past the bot's and the system's messages (an escalation's
        // notice), then the customer's messages that came together.
        let mut question: Vec<(MessageId, &str)> = Vec::new();
        for m in before.iter().rev() {
            let customer = m.direction == Direction::Inbound && m.role == Role::Customer;
            if customer {
                if let Some(said) = m.said() {
                    question.push((m.id, said));
                }
            } else if !question.is_empty() || m.role == Role::Agent {
                break;
            }
        }
        question.reverse();
        let Some(&(last_id, _)) = question.last() else {
            return Err(FaqError::invalid(
                "message_id",
                "no customer question comes before this reply",
            ));
        };
        let words: Vec<&str> = question.iter().map(|(_, t)| *t).collect();
        let question_text: String = words
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(MAX_QUESTION)
            .collect();
        let answer: String = answer.chars().take(MAX_ANSWER).collect();
        let (question_text, answer) = check_entry(&question_text, &answer)?;
        let new = NewFaqProposal {
            agent_id: conversation.agent_id,
            conversation_id: Some(conversation.id),
            question_message_id: Some(last_id),
            answer_message_id: Some(reply),
            question: &question_text,
            answer: &answer,
            proposed_by: by.user,
            proposed_by_name: by.name,
        };
        match self.store.add_faq_proposal(ws, new).await {
            Ok(p) => Ok((p, true)),
            // Proposed at the same moment by someone else.
            Err(StoreError::Conflict(_)) => self
                .store
                .faq_proposal_for_reply(ws, reply)
                .await?
                .map(|p| (p, false))
                .ok_or_else(|| FaqError::NotFound(format!("no message {reply}"))),
            Err(e) => Err(e.into()),
        }
    }

    /// Proposes an entry written by hand (for a gap no person has answered yet).
    pub async fn propose_entry(
        &self,
        ws: WorkspaceId,
        question: &str,
        answer: &str,
        agent: Option<AgentId>,
        by: Actor<'_>,
    ) -> Result<FaqProposal, FaqError> {
        let (question, answer) = check_entry(question, answer)?;
        let new = NewFaqProposal {
            agent_id: agent,
            conversation_id: None,
            question_message_id: None,
            answer_message_id: None,
            question: &question,
            answer: &answer,
            proposed_by: by.user,
            proposed_by_name: by.name,
        };
        match self.store.add_faq_proposal(ws, new).await {
            Err(StoreError::NotFound(m)) => Err(FaqError::invalid("agent", &m)),
            other => Ok(other?),
        }
    }

    async fn proposal(&self, ws: WorkspaceId, id: FaqProposalId) -> Result<FaqProposal, FaqError> {
        self.store
            .faq_proposal(ws, id)
            .await?
            .ok_or_else(|| FaqError::NotFound(format!("no FAQ proposal {id}")))
    }

    /// Changes a proposal's question, answer or agent. An approved entry's agent's knowledge
    /// follows (both agents' when it moves).
    pub async fn edit_proposal(
        &self,
        ws: WorkspaceId,
        id: FaqProposalId,
        edit: FaqEdit,
    ) -> Result<FaqProposal, FaqError> {
        let before = self.proposal(ws, id).await?;
        let next = edited(&before, edit)?;
        let saved = self.save(ws, &next).await?;
        if saved.status == FaqStatus::Approved {
            self.publish_for(ws, before.agent_id).await?;
            if saved.agent_id != before.agent_id {
                self.publish_for(ws, saved.agent_id).await?;
            }
        }
        Ok(saved)
    }

    /// Approves a proposal (with the author's last edits): it joins its agent's knowledge,
    /// ingested again with the agent's other approved entries, and its eval suite.
    pub async fn approve_proposal(
        &self,
        ws: WorkspaceId,
        id: FaqProposalId,
        edit: FaqEdit,
        by: Actor<'_>,
    ) -> Result<FaqProposal, FaqError> {
        let before = self.proposal(ws, id).await?;
        let mut next = edited(&before, edit)?;
        if next.agent_id.is_none() {
            return Err(FaqError::invalid(
                "agent",
                "choose the agent whose knowledge it joins",
            ));
        }
        next.status = FaqStatus::Approved;
        next.decided_by = by.user;
        next.decided_at = Some(Utc::now());
        let saved = self.save(ws, &next).await?;
        if let Err(e) = self.publish_for(ws, saved.agent_id).await {
            // Not in the knowledge, so not approved: as it was.
            self.store.save_faq_proposal(ws, &before).await?;
            return Err(e);
        }
        if before.status == FaqStatus::Approved && before.agent_id != saved.agent_id {
            self.publish_for(ws, before.agent_id).await?;
        }
        tracing::info!(proposal = %id, agent = ?saved.agent_id, "FAQ entry approved");
        Ok(saved)
    }

    /// Rejects a proposal; an approved one leaves its agent's knowledge.
    pub async fn reject_proposal(
        &self,
        ws: WorkspaceId,
        id: FaqProposalId,
        by: Actor<'_>,
    ) -> Result<FaqProposal, FaqError> {
        let before = self.proposal(ws, id).await?;
        let mut next = before.clone();
        next.status = FaqStatus::Rejected;
        next.decided_by = by.user;
        next.decided_at = Some(Utc::now());
        let saved = self.save(ws, &next).await?;
        if before.status == FaqStatus::Approved {
            self.publish_for(ws, before.agent_id).await?;
        }
        Ok(saved)
    }

    /// Deletes a proposal; an approved one leaves its agent's knowledge.
    pub async fn delete_proposal(
        &self,
        ws: WorkspaceId,
        id: FaqProposalId,
    ) -> Result<(), FaqError> {
        let before = self.proposal(ws, id).await?;
        self.store.delete_faq_proposal(ws, id).await?;
        if before.status == FaqStatus::Approved {
            self.publish_for(ws, before.agent_id).await?;
        }
        Ok(())
    }

    async fn save(&self, ws: WorkspaceId, p: &FaqProposal) -> Result<FaqProposal, FaqError> {
        match self.store.save_faq_proposal(ws, p).await {
            Err(StoreError::NotFound(m))
                if p.agent_id.is_some_and(|a| m.contains(&a.to_string())) =>
            {
                Err(FaqError::invalid("agent", &m))
            }
            Err(StoreError::NotFound(m)) => Err(FaqError::NotFound(m)),
            other => Ok(other?),
        }
    }

    async fn publish_for(&self, ws: WorkspaceId, agent: Option<AgentId>) -> Result<(), FaqError> {
        let Some(agent) = agent else {
            return Ok(());
        };
        match self.store.agent(agent).await? {
            Some(agent) if agent.workspace_id == ws => {
                self.publish_approved(&agent).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Writes `agent`'s approved entries into its knowledge as [`APPROVED_SOURCE`], through
    /// the same ingestion as an uploaded document (the document is removed when none is left).
    pub async fn publish_approved(&self, agent: &Agent) -> Result<Option<IngestOutcome>, FaqError> {
        let collection = agent.collection();
        let entries = self
            .store
            .faq_proposals(
                agent.workspace_id,
                FaqFilter {
                    status: Some(FaqStatus::Approved),
                    agent: Some(agent.id),
                    conversation: None,
                },
            )
            .await?;
        if entries.is_empty() {
            if let Some(doc) = self
                .store
                .document_by_source(&collection, APPROVED_SOURCE)
                .await?
            {
                self.delete_document(doc.id).await?;
            }
            return Ok(None);
        }
        let doc = approved_document(&entries);
        let outcome = self
            .ingest_bytes(
                &collection,
                APPROVED_SOURCE,
                doc.into_bytes(),
                Format::Markdown,
            )
            .await?;
        Ok(Some(outcome))
    }
}

/// `before` with `edit` applied and checked.
fn edited(before: &FaqProposal, edit: FaqEdit) -> Result<FaqProposal, FaqError> {
    let (question, answer) = check_entry(
        edit.question.as_deref().unwrap_or(&before.question),
        edit.answer.as_deref().unwrap_or(&before.answer),
    )?;
    Ok(FaqProposal {
        question,
        answer,
        agent_id: edit.agent.or(before.agent_id),
        ..before.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(question: &str, answer: &str) -> FaqProposal {
        let now = Utc::now();
        FaqProposal {
            id: FaqProposalId::new(),
            agent_id: None,
            conversation_id: None,
            question_message_id: None,
            answer_message_id: None,
            question: question.into(),
            answer: answer.into(),
            status: FaqStatus::Approved,
            proposed_by: None,
            proposed_by_name: "Ana".into(),
            decided_by: None,
            decided_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn the_document_has_a_heading_per_question_and_keeps_answers_as_text() {
        let doc = approved_document(&[
            entry(
                "Do you deliver on Sundays?",
                "Yes, from 9:00 to 13:00.\nOrders by Saturday.",
            ),
            entry("Is there   parking?", "# Not a heading\n- nor a list"),
        ]);
        assert_eq!(
            doc,
            "# Approved answers\n\n## Do you deliver on Sundays?\n\nYes, from 9:00 to 13:00.\n\
             Orders by Saturday.\n\n## Is there parking?\n\n\\# Not a heading\n\\- nor a list\n"
        );
    }

    #[test]
    fn entries_are_checked() {
        assert!(check_entry("Do you deliver?", "Yes.").is_ok());
        let Err(FaqError::Invalid(fields)) = check_entry("  ", &"x".repeat(MAX_ANSWER + 1)) else {
            panic!("both fields are wrong");
        };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["question", "answer"]);
        assert!(check_entry("a\u{0}b", "ok").is_err());
        // A question written over lines is one line.
        assert_eq!(
            check_entry("Do you\ndeliver?", "Yes.\nOn Sundays too.").unwrap(),
            ("Do you deliver?".into(), "Yes.\nOn Sundays too.".into())
        );
    }
}
