//! The satisfaction survey (CSAT): when a person resolves a conversation whose agent asks for
//! it, the customer is sent a question and the scores 1 to 5 as a WhatsApp list. Their answer
//! (the row they tap, or the number they type) is stored against the conversation and counted
//! in the reports; it is not a new question for the bot, and the conversation it reopened is
//! resolved again. An answer that arrives twice counts once.
//!
//! Sending never undoes a resolve: the survey goes through the outbox (a provider's 5xx is
//! retried there, and a survey that cannot be delivered is marked failed without escalating),
//! and a failure to queue it is logged, not returned.

use chrono::{DateTime, Duration, Utc};

use crate::channels::Channels;
use crate::domain::{
    csat_score, Conversation, ConversationStatus, Direction, Escalation, Message, Role, UserId,
};
use crate::store::{Store, StoreError, Survey};

/// How long after it was sent a survey may be answered.
pub const ANSWER_WITHIN: Duration = Duration::hours(24);
/// A survey needs WhatsApp's customer-service window open: the customer wrote within this.
const WINDOW: Duration = Duration::hours(23);

/// Whether a conversation just resolved gets a survey: its agent asks for one, it is a real
/// customer's (not the sandbox's), and the customer wrote recently enough for WhatsApp to let
/// a free-form message through.
pub fn wanted(conversation: &Conversation, enabled: bool, now: DateTime<Utc>) -> bool {
    enabled
        && !conversation.sandbox
        && conversation
            .last_inbound_at
            .is_some_and(|at| now - at <= WINDOW)
}

/// Sends the survey after `conversation` was resolved (closing `closed`, if an escalation was
/// open) when its agent asks for one. The person rated is the conversation's assignee, or else
/// who resolved it. Returns the survey queued, if any; failures are logged only.
pub async fn after_resolve(
    store: &dyn Store,
    channels: &Channels,
    conversation: &Conversation,
    closed: Option<&Escalation>,
    resolved_by: Option<UserId>,
    now: DateTime<Utc>,
) -> Option<Survey> {
    let sent = async {
        let Some(agent_id) = conversation.agent_id else {
            return Ok(None);
        };
        let Some(agent) = store.agent(agent_id).await? else {
            return Ok(None);
        };
        if !wanted(conversation, agent.config.csat.enabled, now) {
            return Ok(None);
        }
        // One survey per escalation resolved; without one, per resolve.
        let key = match closed {
            Some(e) => e.id.to_string(),
            None => now.timestamp_millis().to_string(),
        };
        let person = conversation.assignee_id.or(resolved_by);
        let (survey, _) = channels
            .send_survey(
                conversation,
                &agent.config.csat,
                closed.map(|e| e.id),
                person,
                &key,
            )
            .await?;
        Ok::<_, crate::channels::ChannelError>(Some(survey))
    };
    match sent.await {
        Ok(survey) => survey,
        Err(e) => {
            tracing::warn!(conversation = %conversation.id, error = %e, "satisfaction survey not queued; the conversation stays resolved");
            None
        }
    }
}

/// What a customer's message did to a survey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// It was the survey's answer, with this score, counted now.
    Counted(u8),
    /// It answered a survey already answered: the first answer stands.
    Repeated,
}

/// Takes `message` as the answer to the conversation's latest survey when it is one: a tap on
/// one of the survey's rows, or a typed score as the customer's first message since the
/// survey, within [`ANSWER_WITHIN`]. The answer is recorded and the message marked handled; a
/// conversation the answer reopened is resolved again. `None`: the message is not an answer
/// and goes to the bot as usual.
pub async fn take_answer(
    store: &dyn Store,
    conversation: &Conversation,
    message: &Message,
) -> Result<Option<Answered>, StoreError> {
    if conversation.sandbox
        || message.direction != Direction::Inbound
        || message.role != Role::Customer
    {
        return Ok(None);
    }
    let Some(score) = csat_score(message.kind, message.text.as_deref(), &message.details) else {
        return Ok(None);
    };
    let Some(survey) = store.latest_survey(conversation.id).await? else {
        return Ok(None);
    };
    if message.created_at < survey.sent_at || message.created_at - survey.sent_at > ANSWER_WITHIN {
        return Ok(None);
    }
    // Only customer messages after the survey: was this one the first?
    let since: Vec<Message> = store
        .messages(conversation.id, 50, None)
        .await?
        .into_iter()
        .filter(|m| m.role == Role::Customer && m.created_at >= survey.sent_at)
        .collect();
    let first = since
        .iter()
        .all(|m| m.id == message.id || m.created_at > message.created_at);
    let tapped = message.details.interactive.is_some();
    if !tapped && (!first || survey.score.is_some()) {
        return Ok(None);
    }
    // Resolved again only when nothing but answers reopened it.
    let only_answers = since
        .iter()
        .all(|m| m.id == message.id || csat_score(m.kind, m.text.as_deref(), &m.details).is_some());
    let reclose = conversation.status == ConversationStatus::Active && only_answers;
    let counted = store
        .answer_survey(&survey, score, message.id, reclose)
        .await?;
    if counted {
        tracing::info!(conversation = %conversation.id, survey = %survey.id, score, "satisfaction survey answered");
        Ok(Some(Answered::Counted(score)))
    } else {
        Ok(Some(Answered::Repeated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{InteractiveReply, MessageDetails, MessageKind};

    #[test]
    fn a_score_is_a_tapped_row_or_a_typed_number_from_1_to_5() {
        let tap = |id: &str| MessageDetails {
            interactive: Some(InteractiveReply {
                id: id.into(),
                title: "4 - Very good".into(),
                description: None,
            }),
            ..Default::default()
        };
        let none = MessageDetails::default();
        let cases: &[(MessageKind, Option<&str>, &MessageDetails, Option<u8>)] = &[
            (MessageKind::Interactive, None, &tap("csat:4"), Some(4)),
            (MessageKind::Interactive, None, &tap("csat:1"), Some(1)),
            (MessageKind::Interactive, None, &tap("csat:6"), None),
            (MessageKind::Interactive, None, &tap("csat:0"), None),
            (MessageKind::Interactive, None, &tap("palaver:person"), None),
            (MessageKind::Interactive, None, &none, None),
            (MessageKind::Text, Some("5"), &none, Some(5)),
            (MessageKind::Text, Some(" 3. "), &none, Some(3)),
            (MessageKind::Text, Some("(2)"), &none, Some(2)),
            (MessageKind::Text, Some("6"), &none, None),
            (MessageKind::Text, Some("0"), &none, None),
            (MessageKind::Text, Some("15"), &none, None),
            (MessageKind::Text, Some("5 stars"), &none, None),
            (MessageKind::Text, Some("what about 5?"), &none, None),
            (MessageKind::Text, None, &none, None),
            (MessageKind::Audio, Some("5"), &none, None),
        ];
        for (kind, text, details, want) in cases {
            assert_eq!(
                csat_score(*kind, *text, details),
                *want,
                "{kind:?} {text:?}"
            );
        }
    }

    #[test]
    fn a_survey_needs_the_setting_a_real_customer_and_an_open_window() {
        let now = "2026-11-26T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let json = serde_json::json!({
            "id": "019ab000-0000-7000-8000-000000000001",
            "workspace_id": "00000000-0000-0000-0000-000000000001",
            "channel_id": "019ab000-0000-7000-8000-000000000002",
            "contact": {"id": "019ab000-0000-7000-8000-000000000003", "channel_id": "019ab000-0000-7000-8000-000000000002", "wa_id": "351910000000",
                        "name": null, "user_id": null, "reply_to": null},
            "agent_id": null, "sandbox": false, "status": "resolved", "status_reason": null,
            "last_inbound_at": "2026-11-26T11:00:00Z", "last_activity_at": "2026-11-26T11:00:00Z",
            "context_started_at": "2026-11-26T11:00:00Z", "unread_count": 0,
            "assignee_id": null, "snoozed_until": null, "created_at": "2026-11-26T10:00:00Z",
            "updated_at": "2026-11-26T11:00:00Z"
        });
        let recent: Conversation = serde_json::from_value(json.clone()).unwrap();
        assert!(wanted(&recent, true, now));
        assert!(!wanted(&recent, false, now), "off unless asked for");
        let mut sandbox = recent.clone();
        sandbox.sandbox = true;
        assert!(!wanted(&sandbox, true, now));
        let mut quiet = recent.clone();
        quiet.last_inbound_at = Some(now - Duration::hours(30));
        assert!(!wanted(&quiet, true, now), "WhatsApp's window has closed");
        quiet.last_inbound_at = None;
        assert!(!wanted(&quiet, true, now));
    }
}
