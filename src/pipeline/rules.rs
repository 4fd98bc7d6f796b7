//! Escalation rules, pure: does a customer message hand the conversation to a person? Two
//! triggers are read from the text — the agent's keywords (whole words or phrases, case- and
//! accent-insensitive, any language) and an explicit request for a person ("I want to talk to a
//! human", "quero falar com um atendente", "quiero hablar con una persona") — the others (low
//! confidence, answerer failure) are decided by the pipeline after retrieval and generation.

use serde::Serialize;

use crate::domain::{EscalationReason, EscalationSettings};
use crate::knowledge::text::{contains_phrase, normalize};

/// Why a conversation is escalated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum Trigger {
    /// A configured keyword or phrase was said.
    Keyword(String),
    /// The customer asked for a person.
    HumanRequest(String),
    /// No source was good enough to answer from.
    LowConfidence(String),
    /// The answerer failed after its retries.
    AnswererFailed(String),
    /// A person replied from the business's own phone.
    HumanTakeover(String),
    /// Outside the 24-hour window with no template to send.
    WindowClosed(String),
    /// The customer's messages could not be handled in time.
    TurnFailed(String),
}

impl Trigger {
    /// Why, as the store and the API name it.
    pub fn reason(&self) -> EscalationReason {
        match self {
            Trigger::Keyword(_) => EscalationReason::Keyword,
            Trigger::HumanRequest(_) => EscalationReason::HumanRequest,
            Trigger::LowConfidence(_) => EscalationReason::LowConfidence,
            Trigger::AnswererFailed(_) => EscalationReason::AnswererFailed,
            Trigger::HumanTakeover(_) => EscalationReason::HumanTakeover,
            Trigger::WindowClosed(_) => EscalationReason::WindowClosed,
            Trigger::TurnFailed(_) => EscalationReason::TurnFailed,
        }
    }

    /// The detail (matched keyword, error ...).
    pub fn detail(&self) -> &str {
        match self {
            Trigger::Keyword(d)
            | Trigger::HumanRequest(d)
            | Trigger::LowConfidence(d)
            | Trigger::AnswererFailed(d)
            | Trigger::HumanTakeover(d)
            | Trigger::WindowClosed(d)
            | Trigger::TurnFailed(d) => d,
        }
    }

    /// A short human-readable reason for notes and the inbox.
    pub fn describe(&self) -> String {
        match self {
            Trigger::Keyword(k) => format!("said \"{k}\""),
            Trigger::HumanRequest(_) => "asked for a person".into(),
            Trigger::LowConfidence(_) => "question the knowledge base does not answer".into(),
            Trigger::AnswererFailed(_) => "the answerer failed".into(),
            Trigger::HumanTakeover(_) => "a person replied from the business phone".into(),
            Trigger::WindowClosed(_) => {
                "outside the 24-hour window and no template configured".into()
            }
            Trigger::TurnFailed(_) => "the bot could not answer in time".into(),
        }
    }
}

/// Verbs of asking to talk, in English, Spanish, Portuguese, German and French (normalised).
const TALK: &[&str] = &[
    "talk",
    "speak",
    "chat",
    "connect",
    "transfer",
    "falar",
    "conversar",
    "fale",
    "hablar",
    "habla",
    "hable",
    "comunicar",
    "sprechen",
    "reden",
    "parler",
];

/// Verbs of putting a caller through, with the words that must follow them to mean it ("me
/// pasas con el dueño", "me passa pro gerente"): alone they say other things ("¿qué pasa si
/// viene otra persona?").
const PUT_THROUGH: &[(&str, &[&str])] = &[
    ("pasas", &["con"]),
    ("pasa", &["con"]),
    ("pasame", &["con"]),
    ("pasar", &["con"]),
    ("pone", &["con"]),
    ("pones", &["con"]),
    ("ponme", &["con"]),
    ("poner", &["con"]),
    ("passa", &["pro", "pra", "para", "com"]),
    ("passe", &["pro", "pra", "para", "com"]),
    ("passar", &["pro", "pra", "para", "com"]),
    ("transfere", &["pro", "pra", "para"]),
    ("transferir", &["pro", "pra", "para"]),
];

/// Who the customer wants to talk to (normalised).
const PERSON: &[&str] = &[
    "person",
    "human",
    "someone",
    "somebody",
    "representative",
    "operator",
    "agent",
    "staff",
    "employee",
    "manager",
    "supervisor",
    "receptionist",
    "owner",
    "boss",
    "pessoa",
    "humano",
    "humana",
    "atendente",
    "alguem",
    "funcionario",
    "gerente",
    "responsavel",
    "dono",
    "dona",
    "chefe",
    "patrao",
    "rececionista",
    "recepcionista",
    "persona",
    "alguien",
    "agente",
    "operador",
    "responsable",
    "encargado",
    "encargada",
    "jefe",
    "jefa",
    "dueno",
    "duena",
    "propietario",
    "propietaria",
    "mensch",
    "menschen",
    "mitarbeiter",
    "vorgesetzten",
    "inhaber",
    "inhaberin",
    "chef",
    "jemandem",
    "jemand",
    "personne",
    "humain",
    "conseiller",
    "receptionniste",
    "patron",
    "proprietaire",
];

/// Phrases that are requests for a person on their own (normalised).
const PHRASES: &[&str] = &[
    "real person",
    "live agent",
    "customer service",
    "pessoa de verdade",
    "persona real",
    "echter mensch",
    "atendimento humano",
    "atencion al cliente",
];

/// Verbs that come after the person in German word order ("mit einem Mitarbeiter sprechen").
const TALK_FINAL: &[&str] = &["sprechen", "reden", "verbinden"];

/// Words between the verb and the person that still make a request ("talk to a real person").
const MAX_GAP: usize = 4;

/// Checks a customer message against the agent's escalation rules.
pub fn check(text: &str, settings: &EscalationSettings) -> Option<Trigger> {
    if text.trim().is_empty() {
        return None;
    }
    for keyword in &settings.keywords {
        if contains_phrase(text, keyword) {
            return Some(Trigger::Keyword(keyword.clone()));
        }
    }
    if settings.detect_human_request {
        if let Some(phrase) = human_request(text) {
            return Some(Trigger::HumanRequest(phrase));
        }
    }
    None
}

/// Words in the longest message read as asking for the bot back: a long message that happens to
/// mention "the bot" is for the person who has the conversation.
const BACK_TO_BOT_MAX_WORDS: usize = 6;

/// A short message from a customer waiting for a person that asks for the bot again, by one of
/// the agent's phrases: the phrase matched.
pub fn asks_for_bot(text: &str, settings: &EscalationSettings) -> Option<String> {
    if text.split_whitespace().count() > BACK_TO_BOT_MAX_WORDS {
        return None;
    }
    // The longest phrase said names the request best ("voltar ao bot" over "bot").
    let mut phrases: Vec<&String> = settings.back_to_bot.iter().collect();
    phrases.sort_by_key(|p| std::cmp::Reverse(p.len()));
    phrases
        .into_iter()
        .find(|phrase| contains_phrase(text, phrase))
        .cloned()
}

/// Finds an explicit request for a person: a talk verb followed closely by a person word, or
/// a phrase that asks for one by itself.
pub fn human_request(text: &str) -> Option<String> {
    let normal = normalize(text);
    let words: Vec<&str> = normal
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    for phrase in PHRASES {
        if contains_phrase(&normal, phrase) {
            return Some((*phrase).to_string());
        }
    }
    for (i, w) in words.iter().enumerate() {
        let puts_through = PUT_THROUGH
            .iter()
            .any(|(verb, next)| verb == w && words.get(i + 1).is_some_and(|n| next.contains(n)));
        if TALK.contains(w) || puts_through {
            for (j, target) in words.iter().enumerate().skip(i + 1).take(MAX_GAP + 1) {
                if PERSON.contains(target) {
                    return Some(words[i..=j].join(" "));
                }
            }
        }
        if TALK_FINAL.contains(w) {
            for j in (i.saturating_sub(MAX_GAP + 1)..i).rev() {
                if PERSON.contains(&words[j]) {
                    return Some(words[j..=i].join(" "));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(keywords: &[&str]) -> EscalationSettings {
        EscalationSettings {
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn keywords_are_whole_words_in_any_case_and_accent() {
        let s = settings(&[
            "humano",
            "atendente",
            "Mensch",
            "agent",
            "falar com gerente",
        ]);
        let cases: &[(&str, Option<&str>)] = &[
            ("Quero um HUMANO!", Some("humano")),
            ("quero falar com o atendente por favor", Some("atendente")),
            ("Kann ich mit einem Mensch reden?", Some("Mensch")),
            ("agent please", Some("agent")),
            ("Preciso falar com gerente.", Some("falar com gerente")),
            ("Do you have an agenda for the event?", None),
            ("humanos são legais", None),
            ("What are your opening hours?", None),
        ];
        for (text, expected) in cases {
            let got = check(
                text,
                &EscalationSettings {
                    detect_human_request: false,
                    ..s.clone()
                },
            );
            assert_eq!(
                got,
                expected.map(|k| Trigger::Keyword(k.to_string())),
                "{text}"
            );
        }
    }

    #[test]
    fn a_short_message_asks_for_the_bot_back() {
        let s = EscalationSettings::default();
        assert_eq!(asks_for_bot("bot", &s).as_deref(), Some("bot"));
        assert_eq!(
            asks_for_bot("Back to the bot please", &s).as_deref(),
            Some("back to the bot")
        );
        assert_eq!(
            asks_for_bot("quero voltar ao bot", &s).as_deref(),
            Some("voltar ao bot")
        );
        assert_eq!(asks_for_bot("bother", &s), None);
        assert_eq!(
            asks_for_bot(
                "the bot told me the wrong price yesterday, can you check",
                &s
            ),
            None,
            "a long message is for the person"
        );
    }

    #[test]
    fn accents_in_keywords_and_messages_are_ignored() {
        let s = settings(&["atenção"]);
        assert!(check("preciso de ATENCAO", &s).is_some());
        let s = settings(&["atencao"]);
        assert!(check("preciso de atenção", &s).is_some());
    }

    #[test]
    fn requests_for_a_person_in_several_languages() {
        let yes = [
            "I want to talk to a person",
            "Can I speak with a real person please?",
            "Let me talk to someone",
            "Can I speak to a person again?",
            "connect me to an agent",
            "Quero falar com uma pessoa",
            "posso falar com alguém?",
            "Quiero hablar con una persona",
            "¿Puedo hablar con alguien?",
            "Ich möchte mit einem Mitarbeiter sprechen",
            "Je veux parler à un conseiller",
            "customer service please",
            "Can I speak to a supervisor?",
            "Queria falar com a rececionista, por favor.",
            "Preciso de falar com o responsável",
            "Quiero hablar con un responsable.",
            "¿Puedo hablar con el encargado?",
            "Ich will mit Ihrem Vorgesetzten sprechen",
            "Je voudrais parler à la réceptionniste",
            "quero falar com a dona do salão por favor",
            "Can I talk to the owner?",
            "¿Puedo hablar con el dueño?",
            "Ich möchte mit dem Inhaber sprechen",
            "me pasas con el dueño porfa",
            "¿Me pone con el encargado?",
            "me passa pro gerente por favor",
            "Können Sie mich mit dem Chef verbinden?",
        ];
        let s = settings(&[]);
        for text in yes {
            assert!(
                matches!(check(text, &s), Some(Trigger::HumanRequest(_))),
                "{text}"
            );
        }
        let no = [
            "Do you sell person-sized cakes?",
            "What time do you open?",
            "I want a chocolate cake",
            "I need someone to deliver a cake to my mother",
            "Can you talk about your refund policy?",
            "Quem é o responsável pelas entregas?",
            "Is the owner a hairdresser too?",
            "¿Qué pasa si viene otra persona?",
            "I got through to the staff yesterday",
            "",
        ];
        for text in no {
            assert_eq!(check(text, &s), None, "{text}");
        }
    }

    #[test]
    fn human_request_detection_can_be_turned_off() {
        let s = EscalationSettings {
            keywords: vec![],
            detect_human_request: false,
            ..Default::default()
        };
        assert_eq!(check("I want to talk to a person", &s), None);
    }

    #[test]
    fn reasons_are_stable_codes() {
        // Serialised as the API and eval reports show them: the domain's reason names.
        let cases = [
            (Trigger::Keyword("x".into()), "keyword"),
            (Trigger::HumanRequest("x".into()), "human_request"),
            (Trigger::LowConfidence("x".into()), "low_confidence"),
            (Trigger::AnswererFailed("x".into()), "answerer_failed"),
            (Trigger::HumanTakeover("x".into()), "human_takeover"),
            (Trigger::WindowClosed("x".into()), "window_closed"),
            (Trigger::TurnFailed("x".into()), "turn_failed"),
        ];
        for (trigger, name) in cases {
            assert_eq!(trigger.reason().as_str(), name);
            let json = serde_json::to_value(&trigger).unwrap();
            assert_eq!(json["reason"], name);
            assert_eq!(trigger.detail(), "x");
        }
    }
}
