//! What an agent's documents say about the business, gathered without a model: its name and
//! what it is, what it offers, its opening hours, the languages the documents are written in,
//! their tone, and the topics to hand to a person. The outline is the offline draft of an
//! agent's instructions (rendered by [`crate::prompts::Prompts::draft_instructions`]) and the
//! skeleton a model is given when it drafts them.
//!
//! Everything here is read off the documents by rules that hold for any business: a sentence
//! "X is a ..." names the business, a weekday beside a time is an opening hour, a document
//! named like a price list or a menu lists what is offered, a sentence that sends customers to
//! the team marks a topic for a person. The same documents always give the same outline.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::loaders::is_row_sentence;
use super::text::sentences;
use crate::language::{self, normalize};

/// One passage of a document, in document order.
#[derive(Debug, Clone, Copy)]
pub struct Passage<'a> {
    /// Its heading path (`Delivery > Costs`), if any.
    pub heading: Option<&'a str>,
    /// Its text.
    pub text: &'a str,
}

/// A document as the outline reads it.
#[derive(Debug, Clone)]
pub struct DocumentText<'a> {
    /// Its file name.
    pub source: &'a str,
    /// Its title.
    pub title: &'a str,
    /// Its passages, in order.
    pub passages: Vec<Passage<'a>>,
}

/// What the agent's settings already say.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settled<'a> {
    /// The business name set on the agent (empty: none).
    pub business_name: &'a str,
    /// The reply language set on the agent.
    pub language: Option<&'a str>,
    /// Words with which customers ask for a person.
    pub handover_keywords: &'a [String],
}

/// A statement and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Fact {
    /// The statement.
    pub text: String,
    /// Where: the document's file name and the section (`opening-hours.md › Saturday`).
    pub source: String,
}

/// How the documents speak to customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    /// Contractions, exclamations, the informal "you" (tú, du).
    Informal,
    /// Neither marked.
    Neutral,
    /// The formal "you" (usted, o senhor, Sie).
    Formal,
}

/// A topic that goes to a person, with what in the documents marks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Topic {
    /// What the customer does, completing "hand over when a customer ...".
    pub topic: String,
    /// Where the documents raise it (none for the agent's own hand-over words).
    pub evidence: Option<Fact>,
}

/// What the documents say about the business.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Outline {
    /// The business's name: the agent's setting, else the name the documents use.
    pub business_name: Option<String>,
    /// The sentence that says what the business is.
    pub about: Option<Fact>,
    /// What it offers: products, services, plans.
    pub offers: Vec<Fact>,
    /// Opening hours, closing days and holidays.
    pub hours: Vec<Fact>,
    /// The documents' languages (ISO 639-1), most documents first.
    pub languages: Vec<String>,
    /// The agent's reply language, when set.
    pub reply_language: Option<String>,
    /// How the documents speak.
    pub tone: Tone,
    /// Whether the documents speak for the business as "we".
    pub speaks_as_we: bool,
    /// Topics to hand to a person.
    pub hand_over: Vec<Topic>,
    /// Documents read.
    pub documents: usize,
}

/// Longest statement kept, in characters.
const MAX_FACT_CHARS: usize = 240;
const MAX_OFFERS: usize = 15;
const MAX_HOURS: usize = 10;
const MAX_REFERRED: usize = 6;
/// Text read per document to tell its language.
const LANGUAGE_SAMPLE_CHARS: usize = 3000;

/// Words of a document's name or title that mark a list of what is offered.
const OFFER_WORDS: &[&str] = &[
    "price",
    "prices",
    "pricing",
    "pricelist",
    "menu",
    "catalog",
    "catalogue",
    "product",
    "products",
    "service",
    "services",
    "rates",
    "membership",
    "memberships",
    "courses",
    "classes",
    "treatments",
    "precos",
    "preco",
    "servicos",
    "produtos",
    "cardapio",
    "cursos",
    "mensalidades",
    "valores",
    "tratamentos",
    "precios",
    "servicios",
    "productos",
    "catalogo",
    "carta",
    "tarifas",
    "preise",
    "leistungen",
    "produkte",
    "angebot",
    "prix",
    "tarifs",
    "carte",
    "produits",
];

/// Words of a document's name or title that mark its opening hours.
const HOURS_WORDS: &[&str] = &[
    "hours",
    "opening",
    "horario",
    "horarios",
    "abertura",
    "funcionamento",
    "horaire",
    "horaires",
    "offnungszeiten",
    "timetable",
    "schedule",
    "calendario",
];

/// Days and kinds of days, folded (see [`normalize`]).
const DAY_WORDS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "saturdays",
    "sunday",
    "sundays",
    "weekday",
    "weekdays",
    "weekend",
    "weekends",
    "holiday",
    "holidays",
    "segunda",
    "segundas",
    "terca",
    "tercas",
    "quarta",
    "quartas",
    "quinta",
    "quintas",
    "sexta",
    "sextas",
    "sabado",
    "sabados",
    "domingo",
    "domingos",
    "feriado",
    "feriados",
    "lunes",
    "martes",
    "miercoles",
    "jueves",
    "viernes",
    "festivo",
    "festivos",
    "montag",
    "dienstag",
    "mittwoch",
    "donnerstag",
    "freitag",
    "samstag",
    "sonntag",
    "feiertag",
    "feiertage",
    "wochenende",
    "lundi",
    "mardi",
    "mercredi",
    "jeudi",
    "vendredi",
    "samedi",
    "dimanche",
];

/// "Closed", folded.
const CLOSED_WORDS: &[&str] = &[
    "closed",
    "fechado",
    "fechados",
    "fechada",
    "fechamos",
    "cerrado",
    "cerrados",
    "cerramos",
    "geschlossen",
    "ferme",
    "fermee",
];

/// Kinds of request that need a person, each with the folded word beginnings that mark it.
const TOPICS: &[(&str, &[&str])] = &[
    (
        "complains or is unhappy with an order or a service",
        &[
            "complain",
            "reclamac",
            "reclamo",
            "queja",
            "beschwerde",
            "plainte",
        ],
    ),
    (
        "asks for a refund",
        &["refund", "reembols", "estorno", "ruckerstatt", "rembours"],
    ),
    (
        "reports a damaged, faulty or wrong item",
        &[
            "damaged",
            "faulty",
            "defective",
            "danificad",
            "defeituos",
            "danad",
            "defectuos",
            "beschadig",
            "endommag",
        ],
    ),
    (
        "asks about allergies, intolerances or their health",
        &[
            "allerg",
            "alerg",
            "coeliac",
            "celiac",
            "intoleran",
            "medication",
            "medicament",
        ],
    ),
    (
        "has an emergency",
        &["emergenc", "urgenc", "urgent", "notfall"],
    ),
    (
        "questions an invoice or a charge",
        &[
            "invoice",
            "factura",
            "fatura",
            "rechnung",
            "facture",
            "chargeback",
        ],
    ),
    (
        "asks about their personal data or a legal matter",
        &[
            "gdpr",
            "rgpd",
            "lgpd",
            "privacy",
            "privacidad",
            "datenschutz",
            "lawyer",
            "abogado",
            "advogado",
        ],
    ),
];

/// Folded phrases with which documents send customers to the team.
const REFERRALS: &[&str] = &[
    "contact us",
    "call us",
    "speak to",
    "speak with",
    "talk to",
    "ask at the counter",
    "ask our staff",
    "get in touch",
    "fale com",
    "fale conosco",
    "entre em contato",
    "entre em contacto",
    "ligue para",
    "ligue-nos",
    "contacte-nos",
    "contacta con",
    "contactanos",
    "contactenos",
    "llamanos",
    "llamenos",
    "habla con",
    "hable con",
    "rufen sie",
    "kontaktieren sie",
    "sprechen sie",
    "contactez",
    "appelez",
];

/// Verbs after which a sentence's subject is what it describes: "X is a bakery".
const COPULAS: &[&str] = &[
    " is a ",
    " is an ",
    " is the ",
    " is one ",
    " are a ",
    " é um ",
    " é uma ",
    " é a ",
    " é o ",
    " es un ",
    " es una ",
    " es la ",
    " es el ",
    " ist ein ",
    " ist eine ",
    " est un ",
    " est une ",
];

/// Clock times: `07:30`, `9h30`, `9.30`, `9h`, `9 am`, `5pm`.
static TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:[01]?\d|2[0-3])(?::|h|\.)[0-5]\d\b|\b\d{1,2}\s?(?:am|pm|a\.m\.|p\.m\.|h)\b",
    )
    .expect("the time pattern compiles")
});

/// Gathers the outline of `documents`, with what `settled` already says.
pub fn outline(documents: &[DocumentText<'_>], settled: Settled<'_>) -> Outline {
    let business_name = match settled.business_name.trim() {
        "" => business_name(documents),
        name => Some(name.to_string()),
    };
    let about = business_name
        .as_deref()
        .and_then(|name| about(documents, name));
    let (tone, speaks_as_we) = tone(documents);
    Outline {
        business_name,
        about,
        offers: offers(documents),
        hours: hours(documents),
        languages: languages(documents),
        reply_language: settled.language.map(str::to_string),
        tone,
        speaks_as_we,
        hand_over: hand_over(documents, settled.handover_keywords),
        documents: documents.len(),
    }
}

/// Folded words of `text`.
fn folded_words(text: &str) -> Vec<String> {
    normalize(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether the folded `text` holds `phrase` (folded) as whole words.
fn has_phrase(folded: &str, phrase: &str) -> bool {
    folded.match_indices(phrase).any(|(at, _)| {
        let before = folded[..at].chars().next_back();
        let after = folded[at + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// `text` cut to [`MAX_FACT_CHARS`] at a word, marked when cut.
fn clip(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= MAX_FACT_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_FACT_CHARS).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{}…", cut.trim_end_matches([',', ';', ':']))
}

/// The last part of a heading path, unless it only repeats the document's title.
fn section<'a>(doc: &DocumentText<'_>, heading: Option<&'a str>) -> Option<&'a str> {
    let last = heading?.rsplit(" > ").next()?.trim();
    (!last.is_empty() && normalize(last) != normalize(doc.title)).then_some(last)
}

fn fact(doc: &DocumentText<'_>, heading: Option<&str>, text: &str) -> Fact {
    let source = match section(doc, heading) {
        Some(s) => format!("{} › {s}", doc.source),
        None => doc.source.to_string(),
    };
    Fact {
        text: clip(text),
        source,
    }
}

/// Whether the words of a document's name and title include one of `words`.
fn named_like(doc: &DocumentText<'_>, words: &[&str]) -> bool {
    folded_words(&format!("{} {}", doc.source, doc.title))
        .iter()
        .any(|w| words.contains(&w.as_str()))
}

/// The subject of "X is a ..." when it reads as a name: one to six words, the long ones
/// capitalised.
fn named_subject(sentence: &str) -> Option<&str> {
    let at = COPULAS.iter().filter_map(|c| sentence.find(c)).min()?;
    let subject = sentence[..at].trim();
    let words: Vec<&str> = subject.split_whitespace().collect();
    let capitalised =
        |w: &&str| w.chars().count() <= 3 || w.chars().next().is_some_and(char::is_uppercase);
    ((1..=6).contains(&words.len())
        && words
            .first()
            .is_some_and(|w| w.chars().next().is_some_and(char::is_uppercase))
        && words.iter().all(capitalised)
        && ![
            "We", "It", "This", "Our", "Nós", "Somos", "Este", "Esta", "Wir", "Nous",
        ]
        .contains(&words[0]))
    .then_some(subject)
}

/// A title's part that reads as a name: "Ciclo Ribeira — frequently asked questions".
fn title_names(title: &str) -> Vec<&str> {
    for sep in [" — ", " – ", " - ", ": ", " | "] {
        if let Some((a, b)) = title.split_once(sep) {
            return [a.trim(), b.trim()]
                .into_iter()
                .filter(|part| {
                    let words: Vec<&str> = part.split_whitespace().collect();
                    (1..=6).contains(&words.len())
                        && words.iter().all(|w| {
                            w.chars().count() <= 3
                                || w.chars().next().is_some_and(char::is_uppercase)
                        })
                })
                .collect();
        }
    }
    Vec::new()
}

/// The opening sentences of each document.
fn openings<'a>(doc: &'a DocumentText<'a>) -> impl Iterator<Item = (Option<&'a str>, String)> + 'a {
    doc.passages.iter().take(3).flat_map(|p| {
        sentences(p.text)
            .into_iter()
            .take(4)
            .map(move |s| (p.heading, s))
    })
}

/// The name most of the documents use for the business.
fn business_name(documents: &[DocumentText<'_>]) -> Option<String> {
    // Candidates in the order first seen, each with a score: a "X is a ..." sentence counts
    // twice, a title once, and every document that mentions it once more.
    let mut candidates: Vec<(String, usize)> = Vec::new();
    let mut add = |name: &str, weight: usize| match candidates.iter_mut().find(|(n, _)| n == name) {
        Some((_, score)) => *score += weight,
        None => candidates.push((name.to_string(), weight)),
    };
    for doc in documents {
        for name in title_names(doc.title) {
            add(name, 1);
        }
        for (_, sentence) in openings(doc) {
            if let Some(name) = named_subject(&sentence) {
                add(name, 2);
            }
        }
    }
    let mentioned = |name: &str| {
        documents
            .iter()
            .filter(|d| d.title.contains(name) || d.passages.iter().any(|p| p.text.contains(name)))
            .count()
    };
    let needed = if documents.len() > 1 { 3 } else { 2 };
    candidates
        .into_iter()
        .map(|(name, score)| {
            let total = score + mentioned(&name);
            (name, total)
        })
        .filter(|(_, score)| *score >= needed)
        .fold(
            None,
            |best: Option<(String, usize)>, (name, score)| match best {
                Some((_, top)) if top >= score => best,
                _ => Some((name, score)),
            },
        )
        .map(|(name, _)| name)
}

/// The first sentence saying what the business is.
fn about(documents: &[DocumentText<'_>], name: &str) -> Option<Fact> {
    documents.iter().find_map(|doc| {
        openings(doc).find_map(|(heading, sentence)| {
            let subject = named_subject(&sentence)?;
            (subject == name || subject.starts_with(name) || name.starts_with(subject))
                .then(|| fact(doc, heading, &sentence))
        })
    })
}

/// What the business offers: the rows of its price lists and catalogues, or their sections.
fn offers(documents: &[DocumentText<'_>]) -> Vec<Fact> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for doc in documents.iter().filter(|d| named_like(d, OFFER_WORDS)) {
        let mut items = Vec::new();
        for p in &doc.passages {
            let rows: Vec<&str> = p.text.lines().filter(|l| is_row_sentence(l)).collect();
            if rows.is_empty() {
                if let Some(heading) = section(doc, p.heading) {
                    if !heading.ends_with('?') {
                        items.push((p.heading, heading.to_string()));
                    }
                }
            }
            for row in rows {
                if let Some((name, _)) = row.trim().split_once(" — ") {
                    items.push((p.heading, name.trim().to_string()));
                }
            }
        }
        for (heading, item) in items {
            if out.len() >= MAX_OFFERS {
                return out;
            }
            if seen.insert(normalize(&item)) {
                out.push(fact(doc, heading, &item));
            }
        }
    }
    out
}

/// Whether folded `words` include a day word.
fn names_a_day(words: &[String]) -> bool {
    words.iter().any(|w| DAY_WORDS.contains(&w.as_str()))
}

/// A table row of one cell, `Monday — Opening hours: 07:30 – 19:00.`, as `Monday: 07:30 –
/// 19:00.`: the column's name says nothing the list's title does not.
fn single_cell_row(sentence: &str) -> Option<String> {
    if !is_row_sentence(sentence) {
        return None;
    }
    let (name, cells) = sentence.split_once(" — ")?;
    let (_, value) = cells.split_once(": ")?;
    (!cells.contains("; ")).then(|| format!("{}: {}", name.trim(), value.trim()))
}

/// Opening hours: sentences with a time or "closed", and a day in them or in their heading.
fn hours(documents: &[DocumentText<'_>]) -> Vec<Fact> {
    // Documents about opening hours first, then the rest, each in its order.
    let ordered = documents
        .iter()
        .filter(|d| named_like(d, HOURS_WORDS))
        .chain(documents.iter().filter(|d| !named_like(d, HOURS_WORDS)));
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for doc in ordered {
        for p in &doc.passages {
            let heading = section(doc, p.heading);
            let heading_names_day = heading.is_some_and(|h| names_a_day(&folded_words(h)));
            for sentence in sentences(p.text) {
                let words = folded_words(&sentence);
                let timed = TIME.is_match(&sentence)
                    || words.iter().any(|w| CLOSED_WORDS.contains(&w.as_str()));
                if !timed {
                    continue;
                }
                let text = if names_a_day(&words) {
                    single_cell_row(&sentence).unwrap_or_else(|| sentence.clone())
                } else if heading_names_day {
                    format!("{}: {sentence}", heading.unwrap_or_default())
                } else {
                    continue;
                };
                if out.len() >= MAX_HOURS {
                    return out;
                }
                if seen.insert(normalize(&text)) {
                    out.push(fact(doc, p.heading, &text));
                }
            }
        }
    }
    out
}

/// The documents' languages, most documents first (ties by code).
fn languages(documents: &[DocumentText<'_>]) -> Vec<String> {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for doc in documents {
        let sample: String = doc
            .passages
            .iter()
            .map(|p| p.text)
            .collect::<Vec<_>>()
            .join("\n")
            .chars()
            .take(LANGUAGE_SAMPLE_CHARS)
            .collect();
        if let Some(code) = language::detect(&sample) {
            *counts.entry(code).or_default() += 1;
        }
    }
    let mut found: Vec<(&str, usize)> = counts.into_iter().collect();
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    found
        .into_iter()
        .map(|(code, _)| code.to_string())
        .collect()
}

/// Per thousand words, markers of each tone under which the documents are [`Tone::Neutral`].
const TONE_MARKERS_PER_1000: usize = 4;

/// How the documents speak, and whether as "we".
fn tone(documents: &[DocumentText<'_>]) -> (Tone, bool) {
    const INFORMAL: &[&str] = &["tu", "tú", "contigo", "du", "dich", "dir", "dein", "deine"];
    const FORMAL: &[&str] = &[
        "usted", "ustedes", "senhor", "senhora", "Sie", "Ihnen", "vous",
    ];
    const WE: &[&str] = &[
        "we", "our", "us", "nos", "nós", "nosso", "nossa", "nossos", "nossas", "nosotros",
        "nuestro", "nuestra", "nuestros", "nuestras", "wir", "unser", "unsere", "nous", "notre",
    ];
    let (mut words, mut informal, mut formal, mut we) = (0usize, 0usize, 0usize, 0usize);
    for doc in documents {
        for p in &doc.passages {
            informal += p.text.matches('!').count();
            for raw in p
                .text
                .split(|c: char| c.is_whitespace() || ",.;:()\"?!¡¿".contains(c))
            {
                if raw.is_empty() {
                    continue;
                }
                words += 1;
                let lower = raw.to_lowercase().replace('’', "'");
                if ["n't", "'re", "'ve", "'ll", "'m"]
                    .iter()
                    .any(|s| lower.ends_with(s))
                    || lower == "let's"
                    || INFORMAL.contains(&lower.as_str())
                {
                    informal += 1;
                }
                // "Sie" and "Ihnen" are formal only capitalised; the others in any case.
                if FORMAL.contains(&raw) || (FORMAL.contains(&lower.as_str()) && lower != "sie") {
                    formal += 1;
                }
                if WE.contains(&lower.as_str()) {
                    we += 1;
                }
            }
        }
    }
    let per_1000 = |n: usize| n * 1000 / words.max(1);
    let tone = if formal > informal && per_1000(formal) >= TONE_MARKERS_PER_1000 {
        Tone::Formal
    } else if per_1000(informal) >= TONE_MARKERS_PER_1000 {
        Tone::Informal
    } else {
        Tone::Neutral
    };
    (tone, words > 0 && per_1000(we) >= 10)
}

/// Topics for a person: customers asking for one, the kinds of request the documents raise
/// that need one, and the questions the documents themselves send to the team.
fn hand_over(documents: &[DocumentText<'_>], keywords: &[String]) -> Vec<Topic> {
    let mut out = Vec::new();
    if !keywords.is_empty() {
        out.push(Topic {
            topic: format!(
                "asks for a person (for example: {})",
                keywords
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            evidence: None,
        });
    }
    let mut raised: Vec<Option<Fact>> = vec![None; TOPICS.len()];
    let mut referred = Vec::new();
    let mut referred_seen = HashSet::new();
    for doc in documents {
        for p in &doc.passages {
            for sentence in sentences(p.text) {
                let folded = normalize(&sentence);
                let words = folded_words(&sentence);
                for (i, (_, stems)) in TOPICS.iter().enumerate() {
                    if raised[i].is_none()
                        && words.iter().any(|w| stems.iter().any(|s| w.starts_with(s)))
                    {
                        raised[i] = Some(fact(doc, p.heading, &sentence));
                    }
                }
                if referred.len() < MAX_REFERRED && REFERRALS.iter().any(|r| has_phrase(&folded, r))
                {
                    let about = section(doc, p.heading).unwrap_or(doc.title).to_string();
                    if referred_seen.insert(normalize(&about)) {
                        referred.push(Topic {
                            topic: format!(
                                "asks about “{about}” (the documents send it to the team)"
                            ),
                            evidence: Some(fact(doc, p.heading, &sentence)),
                        });
                    }
                }
            }
        }
    }
    for ((topic, _), evidence) in TOPICS.iter().zip(raised) {
        if let Some(evidence) = evidence {
            out.push(Topic {
                topic: (*topic).to_string(),
                evidence: Some(evidence),
            });
        }
    }
    out.extend(referred);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc<'a>(
        source: &'a str,
        title: &'a str,
        passages: &[(Option<&'a str>, &'a str)],
    ) -> DocumentText<'a> {
        DocumentText {
            source,
            title,
            passages: passages
                .iter()
                .map(|(heading, text)| Passage {
                    heading: *heading,
                    text,
                })
                .collect(),
        }
    }

    /// A bike shop's documents, as passages.
    fn bikes() -> Vec<DocumentText<'static>> {
        vec![
            doc(
                "faq.md",
                "Ciclo Ribeira — frequently asked questions",
                &[
                    (None, "Ciclo Ribeira is a small bicycle workshop and rental shop in the old town of Porto. We fix bikes of every kind and rent city bikes."),
                    (Some("Ciclo Ribeira — frequently asked questions > Where is the shop?"), "We are at Rua dos Mercadores 48, in the Ribeira district."),
                    (Some("Ciclo Ribeira — frequently asked questions > My repair failed"), "If a repair fails within 30 days, please talk to the mechanic on duty. We'll look at it for free."),
                ],
            ),
            doc(
                "opening-hours.md",
                "Opening hours",
                &[
                    (Some("Opening hours > Monday to Friday"), "Open from 09:30 to 19:00, without a lunch break.\nThe workshop takes in new repairs until 18:00."),
                    (Some("Opening hours > Saturday"), "Open from 10:00 to 17:00."),
                    (Some("Opening hours > Sunday"), "We are closed on Sundays."),
                    (Some("Opening hours > Booking"), "Messages sent at 22:00 are answered the next day."),
                ],
            ),
            doc(
                "price-list.csv",
                "price-list",
                &[
                    (None, "Puncture repair — price eur: 9.50; turnaround: same day.\nFull service — price eur: 79; turnaround: 2 days."),
                    (None, "E-bike rental — price eur: 45; turnaround: per day."),
                ],
            ),
            doc(
                "policies.md",
                "Policies",
                &[(Some("Policies > Damage"), "A damaged rental bike is repaired at cost. Refunds for unused days are given in cash.")],
            ),
        ]
    }

    #[test]
    fn a_bike_shop_is_outlined_from_its_documents() {
        let keywords = vec!["human".to_string(), "agent".to_string()];
        let o = outline(
            &bikes(),
            Settled {
                business_name: "",
                language: None,
                handover_keywords: &keywords,
            },
        );
        assert_eq!(o.business_name.as_deref(), Some("Ciclo Ribeira"));
        let about = o.about.unwrap();
        assert!(
            about
                .text
                .starts_with("Ciclo Ribeira is a small bicycle workshop"),
            "{about:?}"
        );
        assert_eq!(about.source, "faq.md");
        let offers: Vec<&str> = o.offers.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(offers, ["Puncture repair", "Full service", "E-bike rental"]);
        let hours: Vec<&str> = o.hours.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(
            hours,
            [
                "Monday to Friday: Open from 09:30 to 19:00, without a lunch break.",
                "Monday to Friday: The workshop takes in new repairs until 18:00.",
                "Saturday: Open from 10:00 to 17:00.",
                "We are closed on Sundays.",
            ],
            "a time without a day (the booking line) is not an opening hour"
        );
        assert_eq!(o.hours[2].source, "opening-hours.md › Saturday");
        assert_eq!(o.languages, ["en"]);
        assert!(o.speaks_as_we);
        let topics: Vec<&str> = o.hand_over.iter().map(|t| t.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "asks for a person (for example: human, agent)",
                "asks for a refund",
                "reports a damaged, faulty or wrong item",
                "asks about “My repair failed” (the documents send it to the team)",
            ]
        );
        assert_eq!(
            o.hand_over[1].evidence.as_ref().unwrap().source,
            "policies.md › Damage"
        );
        assert_eq!(o.documents, 4);
    }

    #[test]
    fn the_agent_settings_come_first() {
        let o = outline(
            &bikes(),
            Settled {
                business_name: "Bicicletas do Porto",
                language: Some("pt"),
                handover_keywords: &[],
            },
        );
        assert_eq!(o.business_name.as_deref(), Some("Bicicletas do Porto"));
        assert_eq!(
            o.about, None,
            "no sentence describes a business of that name"
        );
        assert_eq!(o.languages, ["en"]);
        assert_eq!(o.reply_language.as_deref(), Some("pt"));
        assert!(!o.hand_over[0].topic.starts_with("asks for a person"));
    }

    #[test]
    fn names_are_taken_only_where_the_documents_agree() {
        // One title with a dash is not enough to name the business.
        let docs = [
            doc(
                "faq.md",
                "Delivery - Frequently Asked",
                &[(None, "Orders ship within two days.")],
            ),
            doc("notes.md", "Notes", &[(None, "The van is blue.")]),
        ];
        assert_eq!(outline(&docs, Settled::default()).business_name, None);
        // A pronoun is not a name.
        assert_eq!(named_subject("We are a family bakery."), None);
        assert_eq!(named_subject("It is a small shop."), None);
        assert_eq!(
            named_subject("Casa Nube Bakery is a neighbourhood bakery."),
            Some("Casa Nube Bakery")
        );
        assert_eq!(
            named_subject("A Clínica Sorriso é uma clínica dentária."),
            Some("A Clínica Sorriso")
        );
        assert_eq!(named_subject("the shop is a mess"), None);
    }

    #[test]
    fn hours_are_read_in_several_languages_and_forms() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("Tuesday — Opening hours: 07:30 – 19:00.", None, true),
            ("Monday — Opening hours: Closed.", None, true),
            ("De segunda a sexta, das 9h às 18h.", None, true),
            ("Los sábados abrimos de 10:00 a 14:00.", None, true),
            ("Am Sonntag geschlossen.", None, true),
            ("Open 9am to 5pm.", Some("Weekdays"), true),
            ("Orders placed before 13:00 ship the same day.", None, false),
            ("We have 14 city bikes.", Some("Saturday"), false),
        ];
        for (text, heading, expected) in cases {
            let heading = heading.map(|h| format!("Hours > {h}"));
            let docs = [doc("hours.md", "Hours", &[(heading.as_deref(), text)])];
            let found = !hours(&docs).is_empty();
            assert_eq!(found, *expected, "{text} under {heading:?}");
        }
    }

    #[test]
    fn table_rows_of_hours_read_as_plain_lines() {
        let docs = [doc(
            "hours.md",
            "Hours",
            &[(
                Some("Hours > Weekly hours"),
                "Monday — Opening hours: Closed.\nTuesday — Opening hours: 07:30 – 19:00.\nSaturday — Opens: 08:00; Closes: 15:00.",
            )],
        )];
        let lines: Vec<String> = hours(&docs).into_iter().map(|f| f.text).collect();
        assert_eq!(
            lines,
            [
                "Monday: Closed.",
                "Tuesday: 07:30 – 19:00.",
                "Saturday — Opens: 08:00; Closes: 15:00."
            ]
        );
    }

    #[test]
    fn tone_follows_how_the_documents_address_customers() {
        let informal = [doc(
            "a.md",
            "A",
            &[(
                None,
                "Hey! You're welcome any time, we'll sort it out. Don't worry!",
            )],
        )];
        assert_eq!(tone(&informal).0, Tone::Informal);
        let formal = [doc("a.md", "A", &[(None, "Le rogamos que usted presente el recibo. Si usted lo desea, le enviamos la factura.")])];
        assert_eq!(tone(&formal).0, Tone::Formal);
        let neutral = [doc("a.md", "A", &[(None, "Orders ship within two working days. Delivery costs 4 EUR within the city. Larger orders are delivered free of charge.")])];
        assert_eq!(tone(&neutral), (Tone::Neutral, false));
    }

    #[test]
    fn topics_for_a_person_are_found_in_portuguese_and_spanish() {
        let docs = [
            doc(
                "faq.md",
                "Perguntas",
                &[(
                    Some("Perguntas > Alergias"),
                    "Tem alergia a algum material? Fale com a recepção antes da consulta.",
                )],
            ),
            doc(
                "envios.md",
                "Envíos",
                &[(
                    None,
                    "Si el paquete llega dañado, contacta con nosotros en 48 horas.",
                )],
            ),
        ];
        let topics: Vec<String> = hand_over(&docs, &[]).into_iter().map(|t| t.topic).collect();
        assert_eq!(
            topics,
            [
                "reports a damaged, faulty or wrong item",
                "asks about allergies, intolerances or their health",
                "asks about “Alergias” (the documents send it to the team)",
                "asks about “Envíos” (the documents send it to the team)",
            ]
        );
    }

    #[test]
    fn long_statements_are_cut_at_a_word() {
        let long = "word ".repeat(100);
        let clipped = clip(&long);
        assert!(clipped.chars().count() <= MAX_FACT_CHARS + 1);
        assert!(clipped.ends_with("word…"), "{clipped}");
        assert_eq!(clip("  short   one "), "short one");
    }

    #[test]
    fn no_documents_give_an_empty_outline() {
        let o = outline(&[], Settled::default());
        assert_eq!(o.business_name, None);
        assert!(o.offers.is_empty() && o.hours.is_empty() && o.languages.is_empty());
        assert!(o.hand_over.is_empty());
        assert_eq!(o.tone, Tone::Neutral);
    }
}
