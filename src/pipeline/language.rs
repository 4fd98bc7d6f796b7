//! Speaking the customer's language: the bot's own messages (handing over, out of hours, voice
//! notes it cannot hear...) come in the language the customer writes in, and the answerer is
//! told to reply in it.

use super::{Pipeline, PipelineError};
use crate::domain::{AgentConfig, ConversationId, Direction, Message, MessageId};
use crate::prompts::Prompts;

/// Earlier messages looked at to remember the language a customer writes in.
pub(super) const REMEMBERED_MESSAGES: usize = 10;

impl Pipeline {
    /// The language the customer writes in (ISO 639-1): this turn's `text`'s when it tells,
    /// else the one [`remembered`] from the stored conversation. `None` when nothing tells.
    pub(super) async fn customer_language(
        &self,
        conversation: ConversationId,
        text: &str,
        exclude: &[MessageId],
    ) -> Result<Option<&'static str>, PipelineError> {
        if let Some(language) = crate::language::detect(text) {
            return Ok(Some(language));
        }
        let earlier = self
            .store
            .history(conversation, REMEMBERED_MESSAGES as u32, exclude)
            .await?;
        Ok(remembered(&earlier))
    }
}

/// The language of the customer's latest message in `earlier` (a conversation's messages,
/// oldest first; the newest [`REMEMBERED_MESSAGES`] are looked at) that tells one ("ok",
/// "obrigado!" or a thumbs-up say nothing on their own).
pub(super) fn remembered(earlier: &[Message]) -> Option<&'static str> {
    super::latest(earlier, REMEMBERED_MESSAGES)
        .iter()
        .rev()
        .filter(|m| m.direction == Direction::Inbound)
        .filter_map(|m| m.said())
        .find_map(crate::language::detect)
}

/// The language an agent speaks when nothing says otherwise.
fn agent_language(config: &AgentConfig) -> &str {
    config.language.as_deref().unwrap_or("en")
}

/// Message `key` in `language`: the agent's own translation, else the shipped one.
fn message(config: &AgentConfig, prompts: &Prompts, language: &str, key: &str) -> Option<String> {
    config
        .messages
        .get(language)
        .and_then(|set| set.get(key))
        .or_else(|| prompts.message(language, key))
        .map(str::to_string)
}

/// The agent's configuration for a customer writing in `customer` (ISO 639-1, when detected).
/// In the agent's own language nothing changes; in another, each of the agent's messages is
/// replaced by its translation (the agent's, else the shipped one) where there is one, and the
/// reply language becomes the customer's.
pub(super) fn for_customer(
    mut config: AgentConfig,
    prompts: &Prompts,
    customer: Option<&str>,
) -> AgentConfig {
    let Some(language) = customer.filter(|l| *l != agent_language(&config)) else {
        return config;
    };
    let [escalation, handback, closed, voice, after_hours] = [
        "escalation",
        "handback",
        "closed",
        "voice_unavailable",
        "after_hours",
    ]
    .map(|key| message(&config, prompts, language, key));
    for (field, text) in [
        (&mut config.escalation.customer_message, escalation),
        (&mut config.escalation.handback_message, handback),
        (&mut config.escalation.closed_message, closed),
        (&mut config.voice.default_reply, voice),
    ] {
        if let Some(text) = text {
            *field = text;
        }
    }
    if let (Some(hours), Some(text)) = (config.hours.as_mut(), after_hours) {
        hours.closed_message = text;
    }
    config.language = Some(language.to_string());
    config
}

/// What to say before a reply quoted from `source` when that is written in another language than
/// the customer's (`customer`, when detected): the agent's translation of `other_language` in the
/// customer's language, else the shipped one. `None` when the languages match or either is
/// unclear.
pub(super) fn other_language_note(
    config: &AgentConfig,
    prompts: &Prompts,
    customer: Option<&str>,
    source: &str,
) -> Option<String> {
    let customer = customer?;
    let written = crate::language::detect(source)?;
    if written == customer {
        return None;
    }
    message(config, prompts, customer, "other_language")
}

/// What to say before the names of the things the documents price differently, when the
/// customer (writing in `customer`, when detected) asked the price of one without saying which.
pub(super) fn which_one(config: &AgentConfig, prompts: &Prompts, customer: Option<&str>) -> String {
    let language = customer.unwrap_or_else(|| agent_language(config));
    message(config, prompts, language, "which_one")
        .or_else(|| message(config, prompts, agent_language(config), "which_one"))
        .or_else(|| prompts.message("en", "which_one").map(str::to_string))
        .unwrap_or_else(|| "Which of these do you mean?".into())
}

/// What the bot says to a message it has nothing to answer, in the agent's (possibly the
/// customer's, see [`for_customer`]) language: the agent's translation, the operator's
/// `unsupported_message.txt` for English, else the shipped translation.
pub(super) fn unsupported(config: &AgentConfig, prompts: &Prompts) -> String {
    message(config, prompts, agent_language(config), "unsupported")
        .unwrap_or_else(|| prompts.unsupported_message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MessageSet;

    fn prompts() -> Prompts {
        Prompts::load(None).unwrap()
    }

    #[test]
    fn a_customer_in_the_agents_language_gets_the_agents_messages() {
        let mut config = AgentConfig::default();
        config.escalation.customer_message = "Our own words.".into();
        let same = for_customer(config.clone(), &prompts(), Some("en"));
        assert_eq!(same, config);
        assert_eq!(for_customer(config.clone(), &prompts(), None), config);
    }

    #[test]
    fn another_language_gets_translations_and_the_reply_language() {
        let mut config = AgentConfig {
            hours: Some(Default::default()),
            ..Default::default()
        };
        config.messages.insert(
            "pt".into(),
            MessageSet {
                escalation: Some("Um colega da Ribeira responde já.".into()),
                ..Default::default()
            },
        );
        let pt = for_customer(config.clone(), &prompts(), Some("pt"));
        assert_eq!(pt.language.as_deref(), Some("pt"));
        // The agent's own translation first, then the shipped ones.
        assert_eq!(
            pt.escalation.customer_message,
            "Um colega da Ribeira responde já."
        );
        assert!(pt.voice.default_reply.contains("mensagens de voz"));
        assert!(pt
            .escalation
            .handback_message
            .contains("falar com uma pessoa"));
        assert!(pt.hours.unwrap().closed_message.contains("{opens}"));
        assert!(unsupported(
            &for_customer(config.clone(), &prompts(), Some("de")),
            &prompts()
        )
        .contains("Textnachrichten"));

        // No translation at all: the agent's messages, and still the customer's language for
        // the answerer.
        let hi = for_customer(config.clone(), &prompts(), Some("hi"));
        assert_eq!(hi.language.as_deref(), Some("hi"));
        assert_eq!(
            hi.escalation.customer_message,
            config.escalation.customer_message
        );
        assert_eq!(
            unsupported(&hi, &prompts()),
            prompts().unsupported_message()
        );
    }

    #[test]
    fn a_quote_in_another_language_is_announced_in_the_customers() {
        let p = prompts();
        let config = AgentConfig::default();
        let english = "The minimum order for delivery is 15 EUR, before the delivery fee.";
        let note = other_language_note(&config, &p, Some("es"), english).unwrap();
        assert_eq!(
            Some(note.as_str()),
            p.messages("es").unwrap().other_language.as_deref()
        );
        // The same language, or a language nobody can tell, needs no note.
        assert_eq!(other_language_note(&config, &p, Some("en"), english), None);
        assert_eq!(other_language_note(&config, &p, None, english), None);
        assert_eq!(other_language_note(&config, &p, Some("es"), "CK-223"), None);
        // The agent's own wording wins.
        let mut config = AgentConfig::default();
        config.messages.insert(
            "es".into(),
            MessageSet {
                other_language: Some("Te copio nuestra información, que está en inglés:".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            other_language_note(&config, &p, Some("es"), english).as_deref(),
            Some("Te copio nuestra información, que está en inglés:")
        );
    }

    #[test]
    fn every_shipped_language_has_every_message() {
        let p = prompts();
        for language in ["en", "pt", "es", "fr", "de"] {
            let set = p.messages(language).unwrap_or_else(|| panic!("{language}"));
            for (key, text) in set.entries() {
                assert!(text.is_some(), "{language}.{key}");
            }
            let after_hours = set.after_hours.as_deref().unwrap();
            assert!(after_hours.contains("{opens}"), "{language}");
        }
        // English is the agent's default: its shipped messages are the defaults.
        let en = p.messages("en").unwrap();
        let d = AgentConfig::default();
        assert_eq!(
            en.escalation.as_deref(),
            Some(d.escalation.customer_message.as_str())
        );
        assert_eq!(
            en.voice_unavailable.as_deref(),
            Some(d.voice.default_reply.as_str())
        );
        assert_eq!(en.unsupported.as_deref(), Some(p.unsupported_message()));
    }
}
