//! Eval cases from real conversations: a reply a customer got, turned into a regression case
//! (the customer's messages up to it become the case's turns; the reply they got must not come
//! back). The author then says what the right reply holds, runs it, and keeps it in a suite.

use std::fmt::Write;

use serde_json::{json, Value};

use crate::domain::{Agent, Direction, Message, MessageId, Role};

/// Why no case could be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CaseError {
    /// The message is not a bot reply of the conversation.
    #[error("message {0} is not one of the bot's replies in this conversation")]
    NotABotReply(MessageId),
    /// Nothing the customer said comes before the reply.
    #[error("no customer message comes before this reply")]
    NoTurns,
}

/// A suite's YAML text with one case made from `messages` (a conversation's, oldest first):
/// the customer's messages before the bot's reply `reply` are its turns (messages between two
/// replies make one turn), run against `agent` as stored (with its knowledge). The reply the
/// customer got must not come again; comments say what to add.
pub fn suite_from_conversation(
    agent: &Agent,
    messages: &[Message],
    reply: MessageId,
) -> Result<String, CaseError> {
    let at = messages
        .iter()
        .position(|m| m.id == reply && m.role == Role::Bot)
        .ok_or(CaseError::NotABotReply(reply))?;
    let got = &messages[at];
    let mut turns: Vec<String> = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for m in &messages[..at] {
        match (m.direction, m.role) {
            (Direction::Inbound, Role::Customer) => pending.extend(m.said()),
            // A reply closes the turn the customer's messages before it made.
            (Direction::Outbound, Role::Bot | Role::Agent) if !pending.is_empty() => {
                turns.push(pending.join("\n"));
                pending.clear();
            }
            _ => {}
        }
    }
    if !pending.is_empty() {
        turns.push(pending.join("\n"));
    }
    if turns.is_empty() {
        return Err(CaseError::NoTurns);
    }
    let reply_text = got.text.as_deref().unwrap_or_default().trim().to_string();
    let mut expect = Vec::new();
    if let Some(first) = first_sentence(&reply_text) {
        expect.push(json!({"not_contains": first}));
    }
    let case_turns: Vec<Value> = turns.iter().map(|t| json!({"say": t})).collect();
    let case = json!({
        "id": format!("inbox-{}", &got.id.to_string()[..8]),
        "description": format!(
            "From a conversation on {}: the reply the customer got must not come again",
            got.created_at.format("%Y-%m-%d")
        ),
        "tags": ["from-inbox"],
        // A regression: its failure fails the run, whatever the pass rate.
        "must_pass": true,
        "turns": case_turns,
        "expect": expect,
    });
    let suite = json!({
        "name": format!("from-inbox-{}", agent.name),
        "description": format!("Regression cases from {}'s conversations", agent.name),
        "agent": {"from": agent.name},
        "cases": [case],
    });
    let body = serde_norway::to_string(&suite).unwrap_or_default();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Made from a real conversation. The customer was told:"
    );
    for line in reply_text.lines() {
        let _ = writeln!(text, "#   {line}");
    }
    let _ = writeln!(
        text,
        "# Add what the right reply holds under `expect`, for example\n\
         #   - contains: \"the right fact\"\n\
         #   - escalates: true\n\
         # The agent answers from its own knowledge (no `knowledge:` here). Keep the case in\n\
         # a suite file of the eval directory to run it with the others."
    );
    text.push_str(&body);
    Ok(text)
}

/// The reply's first sentence (at most 120 characters): enough to recognise it again.
fn first_sentence(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let end = text
        .char_indices()
        .find(|&(i, c)| matches!(c, '.' | '!' | '?' | '\n') && i > 10)
        .map_or(text.len(), |(i, c)| i + c.len_utf8());
    let sentence: String = text[..end].trim().chars().take(120).collect();
    Some(sentence.trim_end_matches('\n').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        AgentConfig, AgentId, ConversationId, DeliveryStatus, MessageDetails, MessageKind,
        WorkspaceId,
    };
    use chrono::Utc;

    fn message(direction: Direction, role: Role, text: &str) -> Message {
        Message {
            id: MessageId::new(),
            conversation_id: ConversationId::new(),
            direction,
            role,
            kind: MessageKind::Text,
            text: Some(text.to_string()),
            transcript: None,
            details: MessageDetails::default(),
            provider_message_id: None,
            status: DeliveryStatus::Delivered,
            error: None,
            generation: None,
            sent_by: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn agent() -> Agent {
        Agent {
            id: AgentId::new(),
            workspace_id: WorkspaceId::DEFAULT,
            name: "bakery".into(),
            active: true,
            config: AgentConfig::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn the_turns_before_the_reply_become_the_case_and_the_reply_must_not_return() {
        let messages = vec![
            message(Direction::Inbound, Role::Customer, "Hi"),
            message(Direction::Inbound, Role::Customer, "Do you open on Sunday?"),
            message(Direction::Outbound, Role::Bot, "Hello! Ask me anything."),
            message(Direction::Inbound, Role::Customer, "And until when?"),
            message(
                Direction::Outbound,
                Role::Bot,
                "We close at 19:00 every day. Come by!",
            ),
            message(Direction::Inbound, Role::Customer, "That is wrong"),
        ];
        let reply = messages[4].id;
        let text = suite_from_conversation(&agent(), &messages, reply).unwrap();
        assert!(text.starts_with("# Made from a real conversation"));
        assert!(text.contains("#   We close at 19:00 every day. Come by!"));
        // The text is a suite the loader accepts, with the turns and the assertion.
        let suite = crate::eval::suite::parse(&text, "case", std::path::Path::new(".")).unwrap();
        assert_eq!(suite.agent.from.as_deref(), Some("bakery"));
        assert!(suite.knowledge.is_empty());
        let case = &suite.cases[0];
        let said: Vec<String> = case.turns.iter().map(|t| t.said.label()).collect();
        assert_eq!(said, ["Hi\nDo you open on Sunday?", "And until when?"]);
        assert!(case.must_pass);
        assert_eq!(case.expect.len(), 1);
        let yaml = serde_norway::to_string(&case.expect[0]).unwrap();
        assert!(yaml.contains("We close at 19:00 every day."), "{yaml}");
        assert!(!text.contains("That is wrong"));
    }

    #[test]
    fn only_a_bot_reply_with_customer_messages_before_it_makes_a_case() {
        let messages = vec![
            message(Direction::Outbound, Role::Bot, "Welcome!"),
            message(Direction::Inbound, Role::Customer, "Hi"),
        ];
        assert_eq!(
            suite_from_conversation(&agent(), &messages, messages[0].id),
            Err(CaseError::NoTurns)
        );
        assert_eq!(
            suite_from_conversation(&agent(), &messages, messages[1].id),
            Err(CaseError::NotABotReply(messages[1].id))
        );
    }
}
