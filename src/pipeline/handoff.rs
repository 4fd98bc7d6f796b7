//! The ends of a handoff, and the options around it: a customer waiting for a person who asks
//! for the bot again, an escalation no person answered in time (handed back or closed, per the
//! agent), what an escalation out of business hours tells the customer and whom it notifies,
//! and the options a customer picks by tapping or by number, or names after being asked which
//! of several things they mean.

use chrono::{DateTime, Utc};

use super::{follow_up, rules, Decision, Outcome, Pipeline, PipelineError};
use crate::domain::{
    AgentConfig, Conversation, Direction, IdleAction, Message, MessageKind, Resolution, Role,
    TALK_TO_PERSON,
};
use crate::hours::{describe_opening, Availability};
use crate::store::Closing;

/// What a customer picked from the options of the bot's last message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Picked {
    /// The option that hands the conversation to a person (its title).
    Person(String),
    /// A suggested question (its title), asked as the customer's question.
    Ask(String),
    /// One of the things the bot's last message asked the customer to choose between ("which of
    /// these do you mean?"), named by their words alone ("la 3", "zona 3" for "Zona 3 (resto de
    /// la península)"): asked as that thing, with the question it was asked about.
    Meant(String),
    /// A message that names one of those things and says more ("la de la península, cuánto
    /// tarda?"): asked as written, with the question it was asked about.
    Answering,
}

/// Longest text read as picking an option by number or title.
const PICK_MAX_CHARS: usize = 40;

/// What an escalation tells the customer and the support side, given the agent's hours.
pub(super) struct Handover {
    /// To the customer.
    pub customer_message: String,
    /// Who is told about it (digits): the support contact, or out of hours the on-call
    /// contact; nobody without either.
    pub note_to: Option<String>,
    /// When the note is sent, if not now (opening time).
    pub note_at: Option<DateTime<Utc>>,
}

fn digits(contact: &str) -> String {
    contact.trim_start_matches('+').to_string()
}

/// The language openings are said in: the agent's, or English.
fn language(config: &AgentConfig) -> &str {
    config.language.as_deref().unwrap_or("en")
}

/// What an escalation at `now` tells the customer, and when and to whom the note goes: within
/// hours (or with none set) the agent's escalation message and the support contact at once;
/// out of hours the closed message with the next opening, and the note to the on-call contact
/// at once or to the support contact at opening time.
pub(super) fn handover(config: &AgentConfig, now: DateTime<Utc>) -> Handover {
    let support = config.escalation.support_contact.as_deref().map(digits);
    let usual = Handover {
        customer_message: config.escalation.customer_message.clone(),
        note_to: support.clone(),
        note_at: None,
    };
    let Some(hours) = &config.hours else {
        return usual;
    };
    let Availability::Closed { opens } = hours.at(now) else {
        return usual;
    };
    let customer_message = match (hours.closed_message.trim(), opens) {
        ("", _) => config.escalation.customer_message.clone(),
        (message, Some(opens)) => {
            message.replace("{opens}", &describe_opening(opens, now, language(config)))
        }
        // Never opens again (no periods configured): no time to promise.
        (_, None) => config.escalation.customer_message.clone(),
    };
    let (note_to, note_at) = match hours.on_call_contact.as_deref() {
        Some(on_call) => (Some(digits(on_call)), None),
        None => (support, opens.map(|o| o.with_timezone(&Utc))),
    };
    Handover {
        customer_message,
        note_to,
        note_at,
    }
}

/// How many of the newest messages before a turn are looked at for our last one.
pub(super) const LAST_FROM_US_WITHIN: usize = 6;

/// The option of the bot's last message that `turn` picks: a tap on "Talk to a person", or a
/// short text that is an option's number or title (providers without buttons show numbered
/// options); else, when that message asked which of several things the customer means, the
/// one their words name ([`follow_up::meant_option`]). `earlier` is the conversation's
/// messages before the turn, oldest first.
pub(super) fn picked(turn: &[Message], text: &str, earlier: &[Message]) -> Option<Picked> {
    if let Some(tap) = turn
        .iter()
        .filter_map(|m| m.details.interactive.as_ref())
        .find(|i| i.id == TALK_TO_PERSON)
    {
        return Some(Picked::Person(tap.title.clone()));
    }
    let [message] = turn else {
        return None;
    };
    if message.kind != MessageKind::Text {
        return None;
    }
    let last = last_from_us(earlier)?;
    let tapped = last
        .details
        .choices
        .as_ref()
        .filter(|_| text.chars().count() <= PICK_MAX_CHARS)
        .and_then(|choices| choices.picked(text));
    if let Some(c) = tapped {
        return Some(match c.id.as_str() {
            TALK_TO_PERSON => Picked::Person(c.title.clone()),
            _ => Picked::Ask(c.title.clone()),
        });
    }
    let options = last
        .generation
        .as_ref()
        .map_or(&[][..], |g| g.options.as_slice());
    follow_up::meant_option(text, options).map(|(title, alone)| match alone {
        true => Picked::Meant(title.to_string()),
        false => Picked::Answering,
    })
}

/// Our last message (the bot's or a person's) among the newest [`LAST_FROM_US_WITHIN`] of
/// `earlier`, if any.
fn last_from_us(earlier: &[Message]) -> Option<&Message> {
    super::latest(earlier, LAST_FROM_US_WITHIN)
        .iter()
        .rev()
        .find(|m| m.direction == Direction::Outbound && m.role != Role::System)
}

impl Pipeline {
    /// A customer waiting for a person asked for the bot: the escalation is closed, handed
    /// back, and the customer told. `None` when the turn asks nothing of the kind.
    pub(super) async fn back_to_bot(
        &self,
        conversation: &Conversation,
        turn: &[Message],
    ) -> Result<Option<Outcome>, PipelineError> {
        let Some(agent_id) = conversation.agent_id else {
            return Ok(None);
        };
        let Some(agent) = self.store.agent(agent_id).await? else {
            return Ok(None);
        };
        let question = super::turn_text(turn);
        let Some(phrase) = rules::asks_for_bot(&question, &agent.config.escalation) else {
            return Ok(None);
        };
        tracing::info!(conversation = %conversation.id, "the customer asked for the bot back");
        let handled: Vec<_> = turn.iter().map(|m| m.id).collect();
        let speaks = self
            .customer_language(conversation.id, &question, &handled)
            .await?;
        let decision = Decision::TakeBack {
            closing: Closing {
                resolution: Resolution::HandedBack,
                by: format!("the customer (\"{phrase}\")"),
                user: None,
                quiet_since: None,
            },
            message: super::language::for_customer(agent.config.clone(), &self.prompts, speaks)
                .escalation
                .handback_message,
        };
        self.record(conversation, turn, decision, question, Vec::new())
            .await
            .map(Some)
    }

    /// Ends the escalations no person has written in for longer than their agent allows,
    /// as each agent says (handed back to the bot or closed), telling the customer. Safe to
    /// run on every replica at once: an escalation closes once, and not at all when a person
    /// wrote in the meantime. Returns how many ended.
    pub async fn end_idle_handoffs(&self, now: DateTime<Utc>) -> Result<usize, PipelineError> {
        let open = self.store.open_escalations(500).await?;
        let mut agents = std::collections::HashMap::new();
        let mut ended = 0;
        for open in open {
            let Some(agent_id) = open.agent_id else {
                continue;
            };
            let agent = match agents.entry(agent_id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(self.store.agent(agent_id).await?)
                }
            };
            let Some(agent) = agent else {
                continue;
            };
            let Some(minutes) = agent.config.escalation.idle_minutes else {
                continue;
            };
            let limit = chrono::Duration::minutes(i64::from(minutes));
            let opened = open.escalation.opened_at;
            let last = open.last_person_at.map_or(opened, |p| p.max(opened));
            if now - last < limit {
                continue;
            }
            let Some(conversation) = self
                .store
                .conversation(open.escalation.conversation_id)
                .await?
            else {
                continue;
            };
            // Told in the language the customer last wrote in.
            let speaks = self.customer_language(conversation.id, "", &[]).await?;
            let config = super::language::for_customer(agent.config.clone(), &self.prompts, speaks);
            let escalation = &config.escalation;
            let (resolution, message) = match escalation.on_idle {
                IdleAction::HandBack => (Resolution::HandedBack, &escalation.handback_message),
                IdleAction::Close => (Resolution::Resolved, &escalation.closed_message),
            };
            let decision = Decision::TakeBack {
                closing: Closing {
                    resolution,
                    by: format!("no reply from a person for {minutes} min"),
                    user: None,
                    quiet_since: Some(now - limit),
                },
                message: message.clone(),
            };
            let outcome = self
                .record_keyed(
                    &conversation,
                    &[],
                    decision,
                    String::new(),
                    Vec::new(),
                    &format!("idle:{}", open.escalation.id),
                )
                .await?;
            if outcome.reply_message_id.is_some() {
                ended += 1;
                tracing::info!(conversation = %conversation.id, ?resolution, "idle escalation ended");
                metrics::counter!("palaver_idle_handoffs_total").increment(1);
            }
        }
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hours::{BusinessHours, WeeklyHours};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn config(on_call: Option<&str>) -> AgentConfig {
        AgentConfig {
            hours: Some(BusinessHours {
                time_zone: "Europe/Lisbon".into(),
                weekly: WeeklyHours {
                    mon: vec!["09:00-18:00".into()],
                    tue: vec!["09:00-18:00".into()],
                    ..Default::default()
                },
                on_call_contact: on_call.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn message(direction: Direction, role: Role, text: &str, options: &[&str]) -> Message {
        Message {
            id: crate::domain::MessageId::new(),
            conversation_id: crate::domain::ConversationId::new(),
            direction,
            role,
            kind: MessageKind::Text,
            text: Some(text.into()),
            transcript: None,
            details: Default::default(),
            provider_message_id: None,
            status: crate::domain::DeliveryStatus::Received,
            error: None,
            generation: (!options.is_empty()).then(|| crate::domain::Generation {
                options: options.iter().map(|o| o.to_string()).collect(),
                ..Default::default()
            }),
            sent_by: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn an_option_is_picked_from_our_last_message_among_the_newest_six() {
        let asked = message(Direction::Inbound, Role::Customer, "envio a sevilla?", &[]);
        let which = message(
            Direction::Outbound,
            Role::Bot,
            "Which of these do you mean?",
            &["Zona 1 (Zaragoza)", "Zona 3 (resto de la península)"],
        );
        let note = message(Direction::Outbound, Role::System, "assigned to Ana", &[]);
        let turn = [message(Direction::Inbound, Role::Customer, "la 3", &[])];
        let meant = Some(Picked::Meant("Zona 3 (resto de la península)".into()));

        // A system note after our message is not ours.
        let earlier = [asked.clone(), which.clone(), note.clone()];
        assert_eq!(picked(&turn, "la 3", &earlier), meant);
        // Our last message further back than six messages is not looked at.
        let mut earlier = vec![asked, which];
        earlier.extend(std::iter::repeat_n(note, LAST_FROM_US_WITHIN));
        assert_eq!(picked(&turn, "la 3", &earlier), None);
        assert_eq!(
            picked(&turn, "la 3", &earlier[1..=LAST_FROM_US_WITHIN]),
            meant
        );
        // A person's reply since then is our last message, and it listed nothing.
        let person = message(Direction::Outbound, Role::Agent, "Hola!", &[]);
        let since = [earlier[0].clone(), earlier[1].clone(), person];
        assert_eq!(picked(&turn, "la 3", &since), None);
    }

    #[test]
    fn within_hours_the_usual_message_and_the_note_now() {
        let c = config(None);
        let h = handover(&c, utc("2026-11-23T10:00:00Z"));
        assert_eq!(h.customer_message, c.escalation.customer_message);
        assert_eq!((h.note_to, h.note_at), (None, None));
        let none = AgentConfig::default();
        let h = handover(&none, utc("2026-11-23T03:00:00Z"));
        assert_eq!(h.customer_message, none.escalation.customer_message);
    }

    #[test]
    fn out_of_hours_the_customer_hears_the_opening_and_the_note_waits() {
        let c = config(None);
        let h = handover(&c, utc("2026-11-23T19:00:00Z"));
        assert_eq!(
            h.customer_message,
            "Our team is away right now. A colleague will answer you here from tomorrow 09:00."
        );
        assert_eq!(h.note_to, None);
        assert_eq!(h.note_at, Some(utc("2026-11-24T09:00:00Z")));
        // Tuesday evening: next Monday.
        let h = handover(&c, utc("2026-11-24T20:00:00Z"));
        assert!(
            h.customer_message.ends_with("from Monday 09:00."),
            "{}",
            h.customer_message
        );
    }

    #[test]
    fn out_of_hours_an_on_call_contact_is_told_at_once() {
        let c = config(Some("+351912345678"));
        let h = handover(&c, utc("2026-11-23T19:00:00Z"));
        assert_eq!(h.note_to.as_deref(), Some("351912345678"));
        assert_eq!(h.note_at, None);
        // Within hours the on-call contact is not the one told.
        let h = handover(&c, utc("2026-11-23T10:00:00Z"));
        assert_eq!(h.note_to, None);
    }

    #[test]
    fn the_support_contact_is_told_now_or_at_opening() {
        let mut c = config(None);
        c.escalation.support_contact = Some("+5511900000000".into());
        let h = handover(&c, utc("2026-11-23T10:00:00Z"));
        assert_eq!(
            (h.note_to.as_deref(), h.note_at),
            (Some("5511900000000"), None)
        );
        let h = handover(&c, utc("2026-11-23T19:00:00Z"));
        assert_eq!(h.note_to.as_deref(), Some("5511900000000"));
        assert_eq!(h.note_at, Some(utc("2026-11-24T09:00:00Z")));
    }
}
