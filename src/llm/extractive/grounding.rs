//! Whether a reply's amounts are the price of the thing asked. A wrong price said with
//! confidence is the worst reply after none, so before a price goes out two things must hold:
//!
//! - **It is about what the customer named.** Every line of the reply that states an amount
//!   (with its section's heading) holds one of the question's *specific* words: a word the
//!   documents use in few passages. A word most passages share ("bike" at a bike workshop)
//!   says the business is right, not the price: "how much to fix a flat tyre?" is not
//!   answered by "you pay a theft fee of 150 EUR for a city bike". A question whose words the
//!   documents do not use (another language) gives nothing to check by words, and its answer
//!   stands on the embedder's choice alone.
//! - **It is one thing's price.** When the question's words point at some of the priced lines
//!   and not others, yet at more than one differently named thing, the customer meant one of
//!   them. A customer names a thing by its label, its name without what it says in brackets,
//!   and says what sets it apart from its plainer neighbours: the row whose label holds the
//!   most of the question's words, and of those the one whose label adds the fewest words the customer did
//!   not say, is the one meant ("a avaliação?" is "Avaliação fisioterapêutica", not
//!   "Fisioterapia pélvica (avaliação ou sessão)"; "one PT session" is "1 session", not "Pack
//!   of 10 sessions"), and only its lines are said, under its name. When two rows tie ("a
//!   ticket?" against "Adult ticket" and "Child ticket") they are asked which, by name, with no
//!   amount. Lines the
//!   question does not tell apart (every zone's rate for "how much is shipping?") answer
//!   together, each under its name; one product's variants (one name, several sizes) are one
//!   thing.
//!
//! - **It is the customer's case.** When the question names something that none of the priced
//!   rows spells ("shipping to Huesca" against four zones), listing every row would state the
//!   wrong prices beside the right one. Another retrieved passage may assign it to one row: a
//!   sentence holding the customer's word and one row's label ("Zona 2: resto de Aragón
//!   (Huesca, Teruel...)"), and no amount of its own; that row is said alone. A question
//!   naming nothing beyond what the rows and their heading hold ("how much is shipping?") gets
//!   every row under its name. Rows named by bands of one measure alone ("até 8 km", "de 8 a
//!   15 km") are one thing's prices by how much of it: only the customer's number chooses
//!   among them, so a word of the documents' that none holds names no case of its own, and
//!   without a number every band answers. Words the rows do not spell beside one that points
//!   at a single row are what the customer says around it ("vou casar em outubro, quanto é o
//!   pacote de noiva?"): that row is their case.
//!
//! A reply of amounts for several things is replaced by their names, asking which one the
//! customer means, when the question asks a price (asked anything else, which of them is meant
//! is not what was asked, and the answerer passes to its next offer); a reply of another
//! thing's price is not sent, and the turn goes to a person.

use std::collections::HashSet;

use super::rows::Row;
use super::units::{
    is_list_item, says_any, states_a_price, states_a_share, states_an_amount, Asked,
};
use crate::knowledge::lexicon::stem;
use crate::knowledge::quantity::{band_only, Band};
use crate::knowledge::text::{is_stopword, lower_words, sentences, words};

/// Why a reply's amounts cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ungrounded {
    /// A line states an amount and none of the question's specific words.
    OtherThing,
    /// Lines state amounts for several differently named things: their names, in the reply's
    /// order.
    SeveralThings(Vec<String>),
    /// Lines state amounts for named rows, and the question names something that none of
    /// them, nor their heading, holds ("shipping to Huesca" against four zones, or against
    /// zone 2 alone): the rows' names, and the stems of those words. Which row the customer's
    /// case falls in, another passage may say ("Zone 2: the rest of Aragon (Huesca, ...)");
    /// if none does, several rows are asked about and one is not said.
    Unnamed {
        /// The rows' names, in the reply's order.
        names: Vec<String>,
        /// The stems of the question's words that no priced line holds.
        unheld: Vec<String>,
    },
}

/// What of a reply may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Grounded {
    /// All of it.
    Whole,
    /// All of it, on the embedder's choice alone: its prices are written in another language
    /// than the question, whose words cannot tell what they are about.
    ByMeaning,
    /// Only the lines of the row of this name.
    Row(String),
    /// Only this line (a list item).
    Line(String),
    /// Only the lines of the rows of these names, each named apart by the question
    /// ([`named_apart`]).
    Rows(Vec<String>),
    /// Only these sentences of prose, which are about what was asked and state no amount
    /// (one of them says it is free, or a share): the prices beside them are other things'.
    Unpriced(String),
}

/// Checks `reply` (from the section headed `heading`, whose text is `passage`) against the
/// question read as `asked`, when the question asks a price.
pub(super) fn check(
    reply: &str,
    heading: Option<&str>,
    asked: &Asked,
    passage: &str,
) -> Result<Grounded, Ungrounded> {
    let (priced, items): (Vec<String>, Vec<&str>) = lines(reply)
        .into_iter()
        .filter(|(l, _)| states_a_price(l))
        .unzip();
    if priced.is_empty() {
        return Ok(Grounded::Whole);
    }
    // The question's own words that some of the priced lines hold and others do not: it
    // points at those lines. Lines it does not tell apart (no zone named in "how much is
    // shipping?") answer together, each with its name.
    let held: Vec<HashSet<String>> = priced.iter().map(|l| asked.stems_of(l)).collect();
    let pointing = asked.stems.iter().any(|(stem, _, known, carried)| {
        let holders = held.iter().filter(|h| h.contains(stem)).count();
        *known && !carried && holders > 0 && holders < priced.len()
    });
    // The one row or line it points at, when it points at one.
    let mut pointed = None;
    if pointing {
        let pointed_at: Vec<((&String, &HashSet<String>), &&str)> = priced
            .iter()
            .zip(&held)
            .zip(&items)
            .filter(|((_, h), _)| asked.names_any(h))
            .collect();
        let lines: Vec<&String> = pointed_at.iter().map(|((l, _), _)| *l).collect();
        let mut names = row_names(lines.iter().map(|l| l.as_str()));
        if names.len() > 1 {
            if named_apart(&names, asked) {
                return Ok(Grounded::Rows(names));
            }
            return match meant(&names, asked) {
                Some(name) => Ok(Grounded::Row(name.clone())),
                None => Err(Ungrounded::SeveralThings(names)),
            };
        }
        // A list item is one thing's price as a row is, whatever sentences it is written in
        // ("Sequência de massas: R$ 79 por pessoa. Crianças de 6 a 10 anos pagam R$ 39");
        // a sentence of prose is not ("We pick you up at the bus stop for 5 € if you tell us
        // the day before" holds the "day" of "how much for a full day?").
        let one_item = holding_most(pointed_at.iter().map(|((_, h), item)| (**item, *h)), asked);
        pointed = match (names.pop(), one_item) {
            (Some(name), _) => Some(Grounded::Row(name)),
            (None, Some(item)) => Some(Grounded::Line(item.to_string())),
            _ => None,
        };
    }
    // Lines written in another language than the question's hold none of its words, whatever
    // they price (a Spanish price list read for an English question, where the English page
    // beside it makes "day" a word the documents know): words cannot tell what they are
    // about, and the answer stands on the embedder's choice, as when the documents use none
    // of the question's words.
    // The passage's language, read only for a line too short to say its own.
    let around = std::cell::LazyCell::new(|| crate::language::detect(passage));
    if priced
        .iter()
        .all(|l| asked.in_another_language(l, || *around))
    {
        return Ok(pointed.unwrap_or(Grounded::ByMeaning));
    }
    // Several things priced where the question names a case of its own that they do not
    // spell: listing every price would state the wrong ones beside the right one. When its
    // words also point at one row, that row is the case they name.
    let names = row_names(priced.iter().map(String::as_str));
    let heading = asked.stems_of(heading.unwrap_or_default());
    // Without the documents' words (no lexicon) nothing is known to be specific.
    let lexicon = asked.specific.is_finite();
    if lexicon && names.len() > 1 {
        // Rows named by bands of one measure alone ("até 8 km", "de 8 a 15 km") are one
        // thing's prices by how much of it: the customer's number chooses the row (see
        // `offers`), and no word of the documents' can. Without a number, every band answers.
        let schedule = a_schedule(&names);
        let unheld: Vec<String> = asked
            .stems
            .iter()
            .filter(|(stem, weight, known, carried)| {
                // A word the documents never use names the customer's case when the
                // question is in their language ("Sevilla"); in another, it is that
                // language's word.
                !carried
                    && (if *known {
                        *weight >= asked.specific && !schedule
                    } else {
                        !asked.foreign()
                    })
                    && !heading.contains(stem)
                    && !held.iter().any(|h| h.contains(stem))
            })
            .map(|(stem, ..)| stem.clone())
            .collect();
        if !unheld.is_empty() {
            return match pointed {
                Some(grounded) => Ok(grounded),
                None => Err(Ungrounded::Unnamed { names, unheld }),
            };
        }
    }
    let specific: Vec<&String> = asked
        .stems
        .iter()
        .filter(|(stem, weight, known, carried)| {
            // A carried word (from the question before) counts at half its weight.
            let weight = if *carried { weight * 2.0 } else { *weight };
            *known && weight >= asked.specific && !asked.corrected.contains(stem)
        })
        .map(|(stem, ..)| stem)
        .collect();
    if specific.is_empty() {
        return Ok(Grounded::Whole);
    }
    let about_it = |line: &HashSet<String>| {
        specific
            .iter()
            .any(|s| line.contains(*s) || heading.contains(*s))
    };
    if held.iter().all(about_it) {
        return Ok(Grounded::Whole);
    }
    // Among several priced lines, the one row the question's words point at is about it
    // ("quanto custa o sagu?": "Sagu de vinho com creme: R$ 18." among the desserts).
    if let Some(grounded) = pointed {
        return Ok(grounded);
    }
    // One named row about none of the specific words: another passage may still assign the
    // customer's case to it ("Huesca" to "Zona 2").
    match names.as_slice() {
        [_] => Err(Ungrounded::Unnamed {
            names,
            unheld: specific
                .into_iter()
                .filter(|s| !heading.contains(*s))
                .cloned()
                .collect(),
        }),
        // Prose whose prices are other things' may say what was asked costs in sentences of
        // its own: "how much is an MOT retest?" against "An MOT test costs £54.85, ... If the
        // car fails and you leave it with us for the repairs, the retest is free within 10
        // working days." Those sentences answer, without the prices, when one of them says a
        // price without an amount: that it is free, or a share. Sentences about the thing
        // that say neither ("Alterations take a week") leave the price unanswered.
        [] => {
            let mut own = String::new();
            let mut last = None;
            let mut says_price = false;
            for (sentence, line) in lines(reply) {
                if states_a_price(&sentence) || !about_it(&asked.stems_of(&sentence)) {
                    continue;
                }
                // "Free" alone, which [`states_a_price`] does not read (a gluten-free loaf), says
                // a price in a sentence about the thing asked ("the retest is free").
                says_price |= says_any(&sentence, &["free"]) || states_a_share(&sentence);
                if !own.is_empty() {
                    own.push(if last == Some(line) { ' ' } else { '\n' });
                }
                own.push_str(&sentence);
                last = Some(line);
            }
            if says_price {
                Ok(Grounded::Unpriced(own))
            } else {
                Err(Ungrounded::OtherThing)
            }
        }
        _ => Err(Ungrounded::OtherThing),
    }
}

/// Of the list items the question's words point at (each with the stems of one of its priced
/// sentences), the one that holds every question word another holds, and more: "the zip on my
/// coat" points at "Replacing a zip: £15 on trousers and skirts, £30 on coats and jackets."
/// (zip, replace, coat) over "Shortening sleeves on a jacket: £28; on a coat: £35." (coat).
/// When no item holds more than each other, the same over what the items open with, up to
/// their first colon, the thing each prices: "take up a pair of trousers" points at "Trouser
/// hems: £12" over "Replacing a zip: £15 on trousers and skirts", where trousers are a case of
/// the zip's price, not what it is.
/// None when a sentence is not a list item's, or neither the items' words nor their openings'
/// single one out.
fn holding_most<'a>(
    pointed: impl Iterator<Item = (&'a str, &'a HashSet<String>)>,
    asked: &Asked,
) -> Option<&'a str> {
    // The question's own known words that `held` holds.
    let own = |held: &HashSet<String>| -> HashSet<&str> {
        asked
            .stems
            .iter()
            .filter(|(stem, _, known, carried)| *known && !carried && held.contains(stem))
            .map(|(stem, ..)| stem.as_str())
            .collect()
    };
    let mut items: Vec<(&str, HashSet<&str>)> = Vec::new();
    for (item, held) in pointed {
        if !is_list_item(item) {
            return None;
        }
        match items.iter_mut().find(|(i, _)| *i == item) {
            Some((_, all)) => all.extend(own(held)),
            None => items.push((item, own(held))),
        }
    }
    holding_more(&items).or_else(|| {
        let openings: Vec<(&str, HashSet<&str>)> = items
            .iter()
            .map(|(item, _)| {
                let opening = item.split_once(':').map_or("", |(opening, _)| opening);
                (*item, own(&asked.stems_of(opening)))
            })
            .collect();
        holding_more(&openings)
    })
}

/// The item of `items` whose words hold every other's and more.
fn holding_more<'a>(items: &[(&'a str, HashSet<&str>)]) -> Option<&'a str> {
    items
        .iter()
        .find(|(item, words)| {
            items.iter().all(|(other, theirs)| {
                other == item || (theirs.is_subset(words) && theirs.len() < words.len())
            })
        })
        .map(|(item, _)| *item)
}

/// Whether `names` are bands of one measure and nothing else, none of them a single value: the
/// rows of a price list by distance, size or weight ("até 8 km", "de 8 a 15 km", "acima de 15
/// km"). Single values ("Pack of 5", "Pack of 10") are things to choose from.
fn a_schedule(names: &[String]) -> bool {
    let bands: Option<Vec<Band>> = names.iter().map(|n| band_only(n)).collect();
    bands.is_some_and(|bands| {
        bands.len() > 1
            && bands
                .iter()
                .all(|b| !b.is_exact() && b.unit.is_some() && b.unit == bands[0].unit)
    })
}

/// The one of `names` (rows the question points at) that the customer means: the one whose
/// label (its name without what it says in brackets) holds the most weight of the question's
/// own words and, among those, adds the fewest words of its own; none when two rows tie.
pub(super) fn meant<'a>(names: &'a [String], asked: &Asked) -> Option<&'a String> {
    let own: Vec<(&str, f32)> = asked
        .stems
        .iter()
        .filter(|(.., carried)| !carried)
        .map(|(stem, weight, ..)| (stem.as_str(), *weight))
        .collect();
    let fits: Vec<(f32, usize)> = names
        .iter()
        .map(|name| {
            let label = asked.content_stems(&label(name));
            let held: f32 = own
                .iter()
                .filter(|(stem, _)| label.iter().any(|l| l == stem))
                .map(|(_, weight)| weight)
                .sum();
            let added = label
                .iter()
                .filter(|l| !own.iter().any(|(stem, _)| stem == l))
                .count();
            (held, added)
        })
        .collect();
    let better = |a: &(f32, usize), b: &(f32, usize)| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1);
    let best =
        (0..fits.len()).find(|&i| (0..fits.len()).all(|j| j == i || better(&fits[i], &fits[j])))?;
    Some(&names[best])
}

/// Whether the question's own words say every word of `name`'s label ([`label`]), its
/// numbers too: the question names that row itself ("Manicure" in "manicure e pedicure").
pub(super) fn says_label(name: &str, asked: &Asked) -> bool {
    says_all(&asked.content_stems(&label(name)), asked)
}

/// Whether the question's own words say each of a label's `words` (one at least).
fn says_all(words: &[String], asked: &Asked) -> bool {
    !words.is_empty() && words.iter().all(|w| says_itself(w, asked))
}

/// Whether `stem` is one of the question's own words (not carried over from the question
/// before).
fn says_itself(stem: &str, asked: &Asked) -> bool {
    asked
        .stems
        .iter()
        .any(|(own, .., carried)| !carried && own == stem)
}

/// Whether the question names each of `names` apart: each label holds one of the question's
/// own words that no other one holds, and the question says every label but one whole
/// ([`says_label`]). "manicure e pedicure" names "Manicure" and "Pedicure" apart; "corte"
/// names none of "Corte feminino" and "Corte masculino" apart, and "design de sobrancelha com
/// henna" names "Design de sobrancelha" nothing of its own.
pub(super) fn named_apart(names: &[String], asked: &Asked) -> bool {
    let labels: Vec<Vec<String>> = names
        .iter()
        .map(|n| asked.content_stems(&label(n)))
        .collect();
    let apart = labels.iter().enumerate().all(|(i, words)| {
        words.iter().any(|w| {
            says_itself(w, asked)
                && labels
                    .iter()
                    .enumerate()
                    .all(|(j, other)| j == i || !other.contains(w))
        })
    });
    let unsaid = labels
        .iter()
        .filter(|words| !says_all(words, asked))
        .count();
    apart && unsaid <= 1
}

/// A row's label: its name without what it says in brackets ("Desvitalização de dente
/// anterior" of "Desvitalização (tratamento de canal) de dente anterior").
pub(super) fn label(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    for c in name.chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The distinct names of the table rows among `lines`, in order (one product's sizes share
/// one name).
pub(super) fn row_names<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    lines
        .filter_map(|l| Row::parse(l).and_then(|r| r.name))
        .map(|n| n.trim().to_string())
        .filter(|n| seen.insert(n.to_lowercase()))
        .collect()
}

/// The one of `names` that a sentence of `texts` assigns the customer's case to: a sentence
/// stating no amount, holding one of the `unheld` stems (read by `asked`) and the label of
/// exactly one name (without what it says in brackets, "Zona 2" of "Zona 2 (resto de
/// Aragón)"), when every such sentence agrees on it.
///
/// A single row is named by its label's rarest word too (by `weight`, a normalised word's
/// weight in the documents): a sentence seldom spells a row's whole label ("A puncture during
/// a rental is fixed for free" of "Puncture repair"), and with one row there is no other it
/// could mean. Among several rows, only whole labels tell them apart ("Zona" is in all four).
pub(super) fn assigned<'a>(
    names: &'a [String],
    unheld: &[String],
    texts: impl Iterator<Item = &'a str>,
    asked: &Asked,
    weight: impl Fn(&str) -> f32,
) -> Option<&'a String> {
    let labels: Vec<Vec<String>> = names.iter().map(|n| words(&label(n))).collect();
    // The single row's rarest content word, as a stem.
    let rarest: Option<String> = match names {
        [name] => lower_words(&label(name))
            .into_iter()
            .filter(|(_, normal)| !is_stopword(normal) && normal.chars().any(char::is_alphabetic))
            .max_by(|a, b| weight(&a.1).total_cmp(&weight(&b.1)))
            .map(|(lower, _)| stem(&lower, &asked.language)),
        _ => None,
    };
    let mut found: Option<usize> = None;
    for text in texts {
        for sentence in sentences(text) {
            // A sentence that states an amount prices what it names itself ("Shortening
            // sleeves on a jacket: £28; on a coat: £35."): the customer's word beside a row's
            // label there is that price's case, not the row's.
            if states_an_amount(&sentence) {
                continue;
            }
            let stems = asked.stems_of(&sentence);
            if !unheld.iter().any(|u| stems.contains(u)) {
                continue;
            }
            let said = words(&sentence);
            let holds = |label: &Vec<String>| {
                !label.is_empty() && said.windows(label.len()).any(|w| w == label.as_slice())
                    || rarest.as_ref().is_some_and(|r| stems.contains(r))
            };
            let matching: Vec<usize> = (0..names.len()).filter(|&i| holds(&labels[i])).collect();
            match (matching.as_slice(), found) {
                ([one], None) => found = Some(*one),
                ([one], Some(before)) if *one == before => {}
                ([], _) => {}
                _ => return None,
            }
        }
    }
    found.map(|i| &names[i])
}

/// A reply's rows, and the sentences of its other lines, each with the line it is in.
fn lines(reply: &str) -> Vec<(String, &str)> {
    reply
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .flat_map(|l| {
            if Row::parse(l).is_some() {
                vec![(l.to_string(), l)]
            } else {
                sentences(l).into_iter().map(|s| (s, l)).collect()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::lexicon::Lexicon;
    use crate::llm::extractive::Question;

    #[test]
    fn a_label_keeps_the_words_after_its_brackets() {
        assert_eq!(
            label("Desvitalização (tratamento de canal) de dente anterior"),
            "Desvitalização de dente anterior"
        );
        assert_eq!(label("Zona 2 (resto de Aragón)"), "Zona 2");
        assert_eq!(label("Day pass [gym floor (16+)] only"), "Day pass only");
    }

    /// `question` read against a clinic's documents: `table` and two other passages.
    fn asked(question: &str, table: &str) -> Asked {
        let lexicon = Lexicon::build([
            (Some("Valores"), table),
            (
                Some("Horários"),
                "Abrimos de segunda a sexta, das 7h às 20h.",
            ),
            (Some("Pagamento"), "Aceitamos cartão, Pix e dinheiro."),
        ]);
        read_in(&lexicon, question)
    }

    /// `question`, in Portuguese, read against the documents of `lexicon`.
    fn read_in(lexicon: &Lexicon, question: &str) -> Asked {
        let question = Question::read(question, Some(lexicon), Some("pt"));
        Asked::of(&question, Some(lexicon), "pt")
    }

    #[test]
    fn a_sentence_that_prices_the_customers_case_itself_assigns_it_to_no_row() {
        let zones = "Zona 2: resto de Aragón (Huesca y Teruel). Zona 3: resto de la península.";
        let lexicon = Lexicon::build([
            (Some("Zonas"), zones),
            (Some("Pagos"), "Aceptamos tarjeta y Bizum."),
        ]);
        let asked = read_in(&lexicon, "cuanto cuesta el envio a huesca?");
        let names = vec!["Zona 2 (resto de Aragón)".to_string()];
        let unheld = vec!["huesc".to_string()];
        let by_zones = assigned(&names, &unheld, [zones].into_iter(), &asked, |_| 1.0);
        assert_eq!(by_zones, Some(&names[0]));
        // Where the sentence states its own amount, that amount is the case's price.
        let priced = "Zona 2: envío a Huesca en mano, 9,90 €.";
        let by_priced = assigned(&names, &unheld, [priced].into_iter(), &asked, |_| 1.0);
        assert_eq!(by_priced, None);
    }

    const SERVICES: &str = "Consulta inicial — Valor: R$ 180.\nConsulta de retorno — Valor: R$ 120.\nDrenagem linfática — Valor: R$ 150.";

    #[test]
    fn rows_the_question_points_at_alike_become_the_question_which_one() {
        assert_eq!(
            check(
                SERVICES,
                None,
                &asked("quanto custa a consulta?", SERVICES),
                ""
            ),
            Err(Ungrounded::SeveralThings(vec![
                "Consulta inicial".into(),
                "Consulta de retorno".into()
            ]))
        );
    }

    #[test]
    fn the_row_whose_label_says_what_the_question_says_is_the_one_meant() {
        assert_eq!(
            check(
                SERVICES,
                None,
                &asked("quanto custa a consulta de retorno?", SERVICES),
                ""
            ),
            Ok(Grounded::Row("Consulta de retorno".into()))
        );
        let services = "Avaliação fisioterapêutica (primeira consulta) — Valor: R$ 180.\nFisioterapia pélvica (avaliação ou sessão) — Valor: R$ 195.\nDrenagem linfática — Valor: R$ 150.";
        assert_eq!(
            check(
                services,
                None,
                &asked("quanto custa a avaliação?", services),
                ""
            ),
            Ok(Grounded::Row(
                "Avaliação fisioterapêutica (primeira consulta)".into()
            ))
        );
    }

    const TRANSFER: &str = "Buscamos você na rodoviária por R$ 5 se avisar no dia anterior. Um \
                            táxi da rodoviária custa uns R$ 10.";

    #[test]
    fn the_one_priced_line_the_question_names_is_said_alone() {
        let desserts =
            "- Sagu de vinho com creme: R$ 18.\n- Tiramisù: R$ 24.\n- Pudim de leite: R$ 16.";
        let lexicon = Lexicon::build([
            (Some("Transporte"), TRANSFER),
            (Some("Sobremesas"), desserts),
            (
                Some("Massas"),
                "Talharim ao sugo: R$ 42. Lasanha da Vó: R$ 62.",
            ),
            (
                Some("Bebidas"),
                "Refrigerante lata: R$ 7. Água mineral: R$ 5.",
            ),
            (Some("Horários"), "Abrimos de terça a domingo."),
            (Some("Pagamento"), "Aceitamos cartão, Pix e dinheiro."),
        ]);
        let asked = |question: &str| read_in(&lexicon, question);
        assert_eq!(
            check(
                desserts,
                Some("Cardápio > Sobremesas"),
                &asked("quanto custa o sagu?"),
                ""
            ),
            Ok(Grounded::Line("- Sagu de vinho com creme: R$ 18.".into()))
        );
        // An item of two sentences is one thing's entry: the question's words in either
        // point at it.
        let to_share = "- Sequência de massas: três massas à vontade, R$ 79 por pessoa. Crianças de 6 a 10 anos pagam R$ 39.\n- Polenta frita: R$ 28 a porção.\n- Salada verde: R$ 24.";
        let lexicon = Lexicon::build([
            (Some("Pratos para dividir"), to_share),
            (Some("Sobremesas"), desserts),
            (Some("Horários"), "Abrimos de terça a domingo."),
            (Some("Pagamento"), "Aceitamos cartão, Pix e dinheiro."),
        ]);
        assert_eq!(
            check(
                to_share,
                Some("Cardápio > Pratos para dividir"),
                &read_in(
                    &lexicon,
                    "a sequencia de massas quanto paga uma criança de 8 anos?"
                ),
                ""
            ),
            Ok(Grounded::Line(to_share.lines().next().unwrap().into()))
        );
        // A sentence of prose is not singled out so.
        assert!(!matches!(
            check(
                TRANSFER,
                None,
                &asked("se eu avisar antes, quanto custa?"),
                ""
            ),
            Ok(Grounded::Line(_))
        ));
        // Asked about all of them, all of them answer.
        assert_eq!(
            check(
                desserts,
                Some("Cardápio > Sobremesas"),
                &asked("quanto custam as sobremesas?"),
                ""
            ),
            Ok(Grounded::Whole)
        );
    }

    #[test]
    fn of_the_items_the_question_points_at_the_one_holding_the_others_words_and_more_is_said() {
        let alterations = "- Trouser hems: £12.\n- Shortening sleeves on a jacket: £28; on a coat: £35.\n- Replacing a zip: £15 on trousers and skirts, £30 on coats and jackets.\n- Sewing buttons back on: £2 each.";
        let lexicon = Lexicon::build([
            (Some("Prices > Alterations"), alterations),
            (
                Some("Prices > Dry cleaning"),
                "Coat — Standard: £18.00.\nJacket or blazer — Standard: £10.00.",
            ),
            (Some("Opening hours"), "We open Monday to Saturday."),
            (Some("Paying"), "We take cards and cash."),
        ]);
        let asked = |question: &str| {
            Asked::of(
                &Question::read(question, Some(&lexicon), Some("en")),
                Some(&lexicon),
                "en",
            )
        };
        assert_eq!(
            check(
                alterations,
                Some("Prices > Alterations"),
                &asked("the zip on my coat is broken, can you replace it? price?"),
                ""
            ),
            Ok(Grounded::Line(alterations.lines().nth(2).unwrap().into()))
        );
        // Held alike, the question's word is what one item prices and a case of the other's.
        assert_eq!(
            check(
                alterations,
                Some("Prices > Alterations"),
                &asked("how much to take up a pair of trousers"),
                ""
            ),
            Ok(Grounded::Line(alterations.lines().next().unwrap().into()))
        );
        // Two items each holding a word the other does not: neither is said alone.
        assert!(!matches!(
            check(
                alterations,
                Some("Prices > Alterations"),
                &asked("how much for a zip and buttons?"),
                ""
            ),
            Ok(Grounded::Line(_))
        ));
    }

    #[test]
    fn one_column_of_several_rows_is_not_listed_for_a_place_they_do_not_name() {
        let table = "Zona 1 (Zaragoza) — Hasta 2 kg: 2,90 €; De 2 a 5 kg: 3,90 €.\nZona 2 (resto de Aragón) — Hasta 2 kg: 4,90 €; De 2 a 5 kg: 5,95 €.";
        let lexicon = Lexicon::build([
            (Some("Envíos > Precio según el peso del pedido"), table),
            (Some("Horarios"), "Abrimos de lunes a viernes."),
            (Some("Pago"), "Aceptamos tarjeta y efectivo."),
        ]);
        let question = Question::read(
            "enviais a mallorca? seria un pedido de unos 3 kg",
            Some(&lexicon),
            Some("es"),
        );
        let asked = Asked::of(&question, Some(&lexicon), "es");
        // The column the band picks, in every zone: a band's figures in its header keep the
        // lines rows.
        let reply = "Zona 1 (Zaragoza) — De 2 a 5 kg: 3,90 €.\nZona 2 (resto de Aragón) — De 2 a 5 kg: 5,95 €.";
        assert!(matches!(
            check(reply, Some("Envíos > Precio según el peso del pedido"), &asked, ""),
            Err(Ungrounded::Unnamed { names, .. }) if names.len() == 2
        ));
    }

    #[test]
    fn a_price_list_by_distance_answers_with_every_band_when_no_distance_is_given() {
        let table = "até 8 km — Valor por sessão: R$ 240.\nde 8 a 15 km — Valor por sessão: R$ 280.\nacima de 15 km — Valor por sessão: não atendemos.";
        let heading = Some("Serviços e valores > Fisioterapia domiciliar");
        let lexicon = Lexicon::build([
            (heading, table),
            (
                Some("Convênios"),
                "Atendimentos por convênio são feitos de segunda a sexta.",
            ),
            (Some("Pagamento"), "Aceitamos cartão, Pix e dinheiro."),
            (
                Some("Horários"),
                "Abrimos de segunda a sexta, das 7h às 20h.",
            ),
            (
                Some("Equipe"),
                "São seis fisioterapeutas e duas recepcionistas.",
            ),
            (
                Some("Cancelamento"),
                "Cancele com 24 horas de antecedência.",
            ),
            (Some("Preparação"), "Venha com roupa confortável."),
        ]);
        let read = |q: &str| read_in(&lexicon, q);
        // "atendimento" is a word of the documents that no band holds: it names the service,
        // not a band, which only a distance chooses.
        assert_eq!(
            check(
                table,
                heading,
                &read("vocês fazem atendimento domiciliar? quanto é"),
                ""
            ),
            Ok(Grounded::Whole)
        );
        // A place the documents never name may be beyond every band.
        assert!(matches!(
            check(
                table,
                heading,
                &read("fazem atendimento domiciliar em Pinhais? quanto é"),
                ""
            ),
            Err(Ungrounded::Unnamed { .. })
        ));
        // Packs are things to choose from, not bands of one measure.
        assert!(!a_schedule(&["5 sessões".into(), "10 sessões".into()]));
        assert!(a_schedule(&["até 8 km".into(), "de 8 a 15 km".into()]));
    }

    #[test]
    fn a_question_that_tells_no_priced_line_apart_is_answered_by_all_of_them() {
        assert_eq!(
            check(SERVICES, None, &asked("quanto custa?", SERVICES), ""),
            Ok(Grounded::Whole)
        );
    }

    #[test]
    fn prose_pricing_another_thing_answers_only_where_it_says_the_thing_is_free() {
        let mot = "An MOT test costs £54.85, the most the law allows. If the car fails and you \
                   leave it with us, the retest is free within 10 working days.";
        let booking = "An MOT test costs £54.85, the most the law allows. Book the retest within \
                       10 working days.";
        let read = |passage: &str| {
            let lexicon = Lexicon::build([
                (Some("MOT"), passage),
                (
                    Some("Booking"),
                    "Book your MOT or service online or by phone.",
                ),
                (
                    Some("Servicing"),
                    "A service with an MOT at the same visit takes £20 off.",
                ),
                (Some("Hours"), "We open Monday to Friday, 8am to 6pm."),
            ]);
            let question = Question::read("how much is an mot retest?", Some(&lexicon), Some("en"));
            Asked::of(&question, Some(&lexicon), "en")
        };
        // The test's price is not the retest's; the sentence saying the retest is free is.
        assert_eq!(
            check(mot, None, &read(mot), ""),
            Ok(Grounded::Unpriced(
                "If the car fails and you leave it with us, the retest is free within 10 \
                 working days."
                    .into()
            ))
        );
        // A sentence about the retest that says no price leaves the price unanswered.
        assert_eq!(
            check(booking, None, &read(booking), ""),
            Err(Ungrounded::OtherThing)
        );
    }

    #[test]
    fn prices_in_another_language_than_the_question_stand_on_meaning_alone() {
        let returns = "- Por mensajero: te mandamos una etiqueta y descontamos 4,50 € del \
                       reembolso.\n- En la tienda: tráelo con el ticket. Sin coste.";
        let lexicon = Lexicon::build([
            (Some("Devoluciones"), returns),
            (Some("Juguetes"), "Pelota de goma maciza — Precio: 5,90 €."),
            (
                Some("Horario"),
                "Abrimos de lunes a sábado, de 10:00 a 20:00.",
            ),
        ]);
        let mut asked = read_in(&lexicon, "quanto custa a bola de borracha média?");
        asked.written_in = Some("pt");
        // No word of the question can say what the Spanish lines price: only the embedder's
        // choice of them can, which the answerer trusts as its first choice alone.
        assert_eq!(
            check(returns, Some("Devoluciones"), &asked, returns),
            Ok(Grounded::ByMeaning)
        );
    }
}
