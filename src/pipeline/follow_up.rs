//! Follow-ups: a customer's message that cannot stand on its own is read with the question
//! before it ("quanto é o pilates 1x por semana?" then "e 3x?"). The evidence is in the message,
//! never in its length:
//!
//! - it opens as a continuation ("and on Saturday?", "e se eu morar a 20 km?", "y en L?");
//! - it points back at something said before ("does it have eggs?", "quanto custa isso?");
//! - it names no subject of its own: only a day, a number, a size or the asking itself
//!   ("Sunday?", "how much?", "para 2 pessoas?").
//!
//! A short message that names its own subject ("Delivery", "pix?", "horário de sábado?")
//! stands alone, as does a question with its own words after a greeting. An answer to the bot's
//! "which of these do you mean?" is read with the question it was asked about, whatever words
//! of its own it names ([`meant_option`]).

use std::collections::HashSet;

use crate::knowledge::text::{is_stopword, lower_words, terms};
use crate::llm::{ChatMessage, ChatRole};

/// Words that open a continuation of the previous question, lower-case, in the shipped
/// languages.
const OPENERS: &[&str] = &[
    "and",
    "also",
    "but",
    "so",
    "what about",
    "how about",
    "what if",
    "and if",
    "e",
    "mas",
    "também",
    "tambem",
    "então",
    "entao",
    "e se",
    "y",
    "pero",
    "también",
    "tambien",
    "entonces",
    "y si",
    "et",
    "mais",
    "aussi",
    "und",
    "aber",
    "auch",
];

/// Words that point back at something said before, lower-case.
const POINTERS: &[&str] = &[
    "it", "it's", "its", "that", "this", "them", "they", "those", "these", "isso", "isto", "esse",
    "essa", "esses", "essas", "disso", "nisso", "dele", "dela", "eso", "esto", "ese", "esa",
    "esos", "esas", "ello", "ça", "cela",
];

/// Words that only ask, without naming what about ("how much?", "quanto custa?", "¿precio?"),
/// normalised.
const ASKING: &[&str] = &[
    "much", "many", "cost", "costs", "price", "prices", "long", "time", "when", "where", "which",
    "quanto", "quanta", "quantos", "quantas", "custa", "custam", "preco", "valor", "fica", "sai",
    "quando", "onde", "qual", "cuanto", "cuanta", "cuantos", "cuantas", "cuesta", "cuestan",
    "precio", "vale", "sale", "cuando", "donde", "cual", "combien", "prix", "kostet", "preis",
    "ok", "okay", "sim", "si", "yes", "then", "entao", "entonces",
];

/// Weekday names and sizes: what a continuation changes rather than a subject.
const MODIFIERS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "segunda",
    "terca",
    "quarta",
    "quinta",
    "sexta",
    "sabado",
    "domingo",
    "lunes",
    "martes",
    "miercoles",
    "jueves",
    "viernes",
    "today",
    "tomorrow",
    "hoje",
    "amanha",
    "hoy",
    "manana",
    "xs",
    "s",
    "m",
    "l",
    "xl",
    "xxl",
    "g",
    "gg",
    "p",
    "pp",
    "weekend",
    "morning",
    "afternoon",
    "evening",
    "manha",
    "tarde",
    "noite",
    "noche",
    "people",
    "pessoas",
    "personas",
    "person",
    "pessoa",
    "persona",
    "size",
    "talla",
    "tamanho",
];

/// The customer's question that `question` follows up, when it cannot stand on its own: the
/// latest earlier customer message in `history`, with the ones before it that it follows up in
/// turn ("pilates 1x por semana?", "e 2x?", "e 3x?"). `None` when it stands alone.
pub(super) fn follow_up_of(question: &str, history: &[ChatMessage]) -> Option<String> {
    if !needs_previous(question) {
        return None;
    }
    asked_before(history)
}

/// The latest customer message in `history`, with the ones before it that it follows up in
/// turn: what a message that answers the bot's last question was asked about.
pub(super) fn asked_before(history: &[ChatMessage]) -> Option<String> {
    let asked: Vec<&ChatMessage> = history
        .iter()
        .filter(|m| m.role == ChatRole::User)
        .collect();
    let (last, earlier) = asked.split_last()?;
    let mut chain = vec![last.content.as_str()];
    for m in earlier.iter().rev() {
        if !needs_previous(chain[0]) {
            break;
        }
        chain.insert(0, m.content.as_str());
    }
    Some(chain.join(" "))
}

/// Which of `options` (the things a "which of these do you mean?" reply listed) `text` names,
/// and whether it says nothing besides that option's words: the option holding more of its
/// telling words than any other, a telling word being one that some options hold and others
/// do not ("3" and "península" tell "Zona 3 (resto de la península)" from "Zona 2 (resto de
/// Aragón)"; "zona" and "resto" tell none apart).
pub(super) fn meant_option<'a>(text: &str, options: &'a [String]) -> Option<(&'a str, bool)> {
    let content = |t: &str| -> HashSet<String> {
        lower_words(t)
            .into_iter()
            .map(|(_, normal)| normal)
            .filter(|w| !is_stopword(w))
            .collect()
    };
    let said = content(text);
    let held: Vec<HashSet<String>> = options.iter().map(|o| content(o)).collect();
    let telling: Vec<&String> = said
        .iter()
        .filter(|w| {
            let holding = held.iter().filter(|h| h.contains(*w)).count();
            holding > 0 && holding < held.len()
        })
        .collect();
    let counts: Vec<usize> = held
        .iter()
        .map(|h| telling.iter().filter(|w| h.contains(**w)).count())
        .collect();
    let best = counts.iter().copied().max().filter(|&n| n > 0)?;
    let [only] = counts
        .iter()
        .enumerate()
        .filter(|(_, &n)| n == best)
        .map(|(i, _)| i)
        .collect::<Vec<_>>()[..]
    else {
        return None;
    };
    Some((
        options[only].as_str(),
        said.iter().all(|w| held[only].contains(w)),
    ))
}

/// Whether `question` cannot stand on its own (see the module's note).
pub(super) fn needs_previous(question: &str) -> bool {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '?' | '¿' | '!' | '¡' | '.' | ';'))
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return false;
    }
    let opened = OPENERS.iter().any(|opener| {
        let n = opener.split(' ').count();
        words.len() > n && words[..n].join(" ") == *opener
    });
    let points_back = words.iter().any(|w| POINTERS.contains(w));
    let subject = terms(question).into_iter().any(|t| {
        !t.chars().all(|c| c.is_ascii_digit())
            && !ASKING.contains(&t.as_str())
            && !MODIFIERS.contains(&t.as_str())
            && crate::knowledge::quantity::quantities(&t).is_empty()
            && !crate::knowledge::quantity::is_unit_word(&t)
    });
    opened || points_back || !subject
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(first: &str) -> Vec<ChatMessage> {
        vec![
            ChatMessage::new(ChatRole::User, first),
            ChatMessage::new(ChatRole::Assistant, "An answer."),
        ]
    }

    #[test]
    fn an_answer_to_which_of_these_names_the_option_its_telling_words_hold() {
        let zones: Vec<String> = [
            "Zona 1 (Zaragoza y área metropolitana)",
            "Zona 2 (resto de Aragón, Navarra, La Rioja, Soria y Lleida)",
            "Zona 3 (resto de la península)",
            "Zona 4 (Baleares)",
        ]
        .map(String::from)
        .to_vec();
        let third = Some(("Zona 3 (resto de la península)", true));
        assert_eq!(meant_option("la 3", &zones), third);
        assert_eq!(meant_option("y a la zona 3?", &zones), third);
        assert_eq!(
            meant_option("Zona 3 (resto de la península)", &zones),
            third
        );
        assert_eq!(meant_option("la de la peninsula", &zones), third);
        // Said with more than the option's words: read as written.
        assert_eq!(
            meant_option("la de la península, cuánto tarda?", &zones),
            Some(("Zona 3 (resto de la península)", false))
        );
        // Words every option holds, or that two hold alike, name none.
        assert_eq!(meant_option("la zona", &zones), None);
        assert_eq!(meant_option("resto", &zones), None);
        assert_eq!(meant_option("what are your opening hours?", &zones), None);
        assert_eq!(meant_option("la 3", &[]), None);
        // A hyphenated word is a word of its own, as the documents' "E-bike" is.
        let bikes: Vec<String> = [
            "E-bike rental full day",
            "City bike rental full day",
            "E-bike rental half day (4 hours)",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            meant_option("the e-bike full day", &bikes),
            Some(("E-bike rental full day", true))
        );
        assert_eq!(meant_option("full day", &bikes), None);
    }

    #[test]
    fn a_message_that_cannot_stand_alone_is_read_with_the_previous_question() {
        let earlier = history("How much is it to rent an e-bike for a day?");
        for follow_up in [
            "and how much deposit do you need for it?",
            "¿Y cuánto tarda en llegar a Canarias desde Valencia?",
            "E quanto tempo demora o tratamento completo?",
            "What about a whole week of rental with two bikes?",
            "Sunday?",
            "What if it's pouring with rain that day?",
            "how much?",
            "para 2 pessoas?",
            "e 3x?",
            "y en L?",
        ] {
            assert_eq!(
                follow_up_of(follow_up, &earlier).as_deref(),
                Some("How much is it to rent an e-bike for a day?"),
                "{follow_up}"
            );
        }
    }

    #[test]
    fn a_message_that_names_its_own_subject_stands_alone() {
        let earlier = history("What are your opening hours on Saturday?");
        for question in [
            "Do you repair hydraulic brakes on mountain bikes?",
            "Where is the shop, and is there parking nearby?",
            "Eternal question: which saddle is best for long rides?",
            "Delivery",
            "Towels?",
            "pix?",
            "horário de sábado?",
            "devoluciones?",
        ] {
            assert_eq!(follow_up_of(question, &earlier), None, "{question}");
        }
        assert_eq!(follow_up_of("Sunday?", &[]), None);
    }

    #[test]
    fn a_chain_of_follow_ups_keeps_the_question_it_started_from() {
        let chat = [
            ChatMessage::new(ChatRole::User, "quanto é o pilates 1x por semana?"),
            ChatMessage::new(ChatRole::Assistant, "R$ 260."),
            ChatMessage::new(ChatRole::User, "e 2x?"),
            ChatMessage::new(ChatRole::Assistant, "R$ 390."),
        ];
        assert_eq!(
            follow_up_of("e 3x?", &chat).as_deref(),
            Some("quanto é o pilates 1x por semana? e 2x?")
        );
    }
}
