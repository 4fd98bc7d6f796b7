//! Eval cases from approved FAQ entries ([`crate::knowledge::faq`]): each entry's question,
//! asked of its agent as stored (with its knowledge), must be answered, not escalated, with the
//! entry's key facts, from the approved answers. An author runs the suite inline or keeps it in
//! the eval directory to catch a change that loses an answer a person once had to give.

use std::fmt::Write;

use serde_json::{json, Value};

use crate::domain::{Agent, FaqProposal};
use crate::knowledge::faq::APPROVED_SOURCE;

/// The most facts one case asserts.
const MAX_FACTS: usize = 3;

/// What an answer must hold to be this one: its figures (prices, times, amounts, codes), then
/// the names it writes with a capital inside a sentence; failing both, its two longest words.
pub fn key_facts(answer: &str) -> Vec<String> {
    let mut facts: Vec<String> = Vec::new();
    let push = |facts: &mut Vec<String>, fact: &str| {
        let fact = fact.trim_matches(|c: char| !c.is_alphanumeric());
        if !fact.is_empty()
            && facts.len() < MAX_FACTS
            && !facts.iter().any(|f| f.eq_ignore_ascii_case(fact))
        {
            facts.push(fact.to_string());
        }
    };
    for word in answer.split_whitespace() {
        if word.chars().any(|c| c.is_ascii_digit()) {
            push(&mut facts, word);
        }
    }
    let mut sentence_start = true;
    for word in answer.split_whitespace() {
        let bare = word.trim_matches(|c: char| !c.is_alphanumeric());
        let capital = bare.chars().next().is_some_and(char::is_uppercase);
        if capital && !sentence_start && bare.chars().count() > 1 {
            push(&mut facts, bare);
        }
        sentence_start = word.ends_with(['.', '!', '?', ':']);
    }
    if facts.is_empty() {
        let mut words: Vec<&str> = answer
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
            .filter(|w| w.chars().count() >= 5)
            .collect();
        // The longest first; the first written among equals.
        words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
        for w in words.into_iter().take(2) {
            push(&mut facts, w);
        }
    }
    facts
}

/// The case of one approved entry.
pub fn case_for(entry: &FaqProposal) -> Value {
    let mut expect: Vec<Value> = key_facts(&entry.answer)
        .into_iter()
        .map(|fact| json!({"contains": {"text": fact, "ignore_case": true}}))
        .collect();
    expect.push(json!({"escalates": false}));
    expect.push(json!({"cites": APPROVED_SOURCE}));
    json!({
        "id": format!("faq-{}", &entry.id.to_string()[24..]),
        "description": format!("Approved FAQ entry: {}", entry.question),
        "tags": ["approved-faq"],
        "say": entry.question,
        "expect": expect,
    })
}

/// A suite's YAML text with a case per approved entry of `agent`, run against the agent as
/// stored; `None` when it has none.
pub fn suite_from_faq(agent: &Agent, entries: &[FaqProposal]) -> Option<String> {
    if entries.is_empty() {
        return None;
    }
    let suite = json!({
        "name": format!("approved-faq-{}", agent.name),
        "description": format!("The FAQ entries approved for {}: each question answered from them", agent.name),
        "agent": {"from": agent.name},
        "cases": entries.iter().map(case_for).collect::<Vec<_>>(),
    });
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# The FAQ entries approved for {} on the Knowledge gaps page. Each case asks the\n\
         # entry's question and expects its key facts; edit them, or add paraphrases as cases.",
        agent.name
    );
    text.push_str(&serde_norway::to_string(&suite).unwrap_or_default());
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_first_then_names_then_long_words() {
        assert_eq!(
            key_facts("Yes: on Sundays we deliver from 9:00 to 13:00, for 2.50 EUR."),
            ["9:00", "13:00", "2.50"]
        );
        assert_eq!(
            key_facts("We take cards and MB WAY at the counter."),
            ["MB", "WAY"]
        );
        assert_eq!(
            key_facts("Dogs are welcome on the terrace."),
            ["welcome", "terrace"]
        );
        assert!(key_facts("").is_empty());
    }

    #[test]
    fn a_suite_parses_with_a_case_per_entry() {
        let agent = Agent {
            id: Default::default(),
            workspace_id: crate::domain::WorkspaceId::DEFAULT,
            name: "demo".into(),
            active: true,
            config: Default::default(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let now = chrono::Utc::now();
        let entry = FaqProposal {
            id: Default::default(),
            agent_id: Some(agent.id),
            conversation_id: None,
            question_message_id: None,
            answer_message_id: None,
            question: "Do you deliver on Sundays?".into(),
            answer: "Yes, from 9:00 to 13:00.".into(),
            status: crate::domain::FaqStatus::Approved,
            proposed_by: None,
            proposed_by_name: "Ana".into(),
            decided_by: None,
            decided_at: None,
            created_at: now,
            updated_at: now,
        };
        assert!(suite_from_faq(&agent, &[]).is_none());
        let text = suite_from_faq(&agent, &[entry]).unwrap();
        let suite =
            crate::eval::suite::parse(&text, "faq.yaml", std::path::Path::new(".")).unwrap();
        assert_eq!(suite.cases.len(), 1);
        assert!(text.contains("9:00"), "{text}");
        assert!(text.contains(APPROVED_SOURCE), "{text}");
    }
}
