//! A reply that prices several things in one line ("Front brake pads, fitted: from £95. Front
//! discs and pads: from £210.", "£45 for the front wheels, or £70 for all four") says the one
//! price the customer asked about, when their words or their number single it out: the others
//! are prices of things they did not ask about, and a customer who reads two prices may take
//! the wrong one. Nor does a reply tell the customer what a band that excludes their number
//! costs, where another band holds it ([`without_excluded_bands`]).

use std::collections::HashSet;

use crate::knowledge::quantity::{bands, Band, Quantity};
use crate::knowledge::text::{is_stopword, sentence_spans};
use crate::language::normalize;

use super::question::Question;
use super::units::{Asked, CURRENCIES};

/// One priced part of a reply.
struct Part {
    /// Its own words: the sentence, or its clause (from the comma, semicolon or conjunction
    /// before its price, or the colon before the first price, to the next price's clause).
    words: String,
    /// What it says alone: a clause comes after the words its sentence opens with ("Wheel
    /// alignment costs" before "£45 for the front wheels").
    said: String,
}

/// `reply` cut to the part that prices what `question` asks about, when it is one line that
/// prices several things and exactly one of them is singled out: by the customer's number (a
/// band of the part holds it: "a 2019 car" against "most cars from 2017 on"), else by the
/// question's own words that only that part holds, weighing more than any other part's.
pub(super) fn asked_part(reply: &str, question: &Question, asked: &Asked) -> Option<String> {
    let reply = reply.trim();
    if reply.contains('\n') {
        return None;
    }
    let parts = parts(reply);
    if parts.len() < 2 {
        return None;
    }
    let fitting: Vec<usize> = (0..parts.len())
        .filter(|&i| {
            bands(&parts[i].words)
                .iter()
                .any(|b| question.quantities.iter().any(|q| holds(b, q)))
        })
        .collect();
    if let [only] = fitting.as_slice() {
        return Some(parts[*only].said.clone());
    }
    let stems: Vec<HashSet<String>> = parts.iter().map(|p| asked.stems_of(&p.words)).collect();
    let own_weight = |i: usize| -> f32 {
        asked
            .stems
            .iter()
            .filter(|(stem, _, _, carried)| {
                !carried
                    && stems[i].contains(stem)
                    && stems
                        .iter()
                        .enumerate()
                        .all(|(j, other)| j == i || !other.contains(stem))
            })
            .map(|(_, weight, ..)| *weight)
            .sum()
    };
    let mut weights: Vec<(usize, f32)> = (0..parts.len()).map(|i| (i, own_weight(i))).collect();
    weights.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (best, weight) = weights[0];
    (weight > 0.0 && weight > weights[1].1).then(|| parts[best].said.clone())
}

/// `reply` without the clauses whose band excludes the customer's number, in each line where
/// another clause's band holds it: a child of 4 is told "até 5 anos não pagam", not also
/// "Crianças de 6 a 10 anos pagam R$ 39", which is not their price. A clause is a sentence, or
/// a part of one between semicolons; a line whose bands all exclude the number (or none
/// compares with it) is kept whole, for it is the answer's own statement of who it is for
/// ("we see patients from 12 years"). `None` when nothing is left out.
pub(super) fn without_excluded_bands(reply: &str, quantities: &[Quantity]) -> Option<String> {
    if quantities.is_empty() {
        return None;
    }
    let mut changed = false;
    let lines: Vec<String> = reply
        .split('\n')
        .map(|line| match fitting_clauses(line, quantities) {
            Some(kept) => {
                changed = true;
                kept
            }
            None => line.to_string(),
        })
        .collect();
    changed.then(|| lines.join("\n"))
}

/// `line` without its clauses whose band excludes every one of the customer's `quantities`,
/// when another clause's band holds one (see [`without_excluded_bands`]).
fn fitting_clauses(line: &str, quantities: &[Quantity]) -> Option<String> {
    // Each sentence's clauses, with whether their bands hold a number of the customer's
    // (`None` when no band of theirs compares with one).
    let sentences: Vec<Vec<(&str, Option<bool>)>> = sentence_spans(line)
        .into_iter()
        .map(|span| {
            line[span]
                .split_inclusive(';')
                .map(|clause| {
                    let compared: Vec<bool> = bands(clause)
                        .iter()
                        .flat_map(|b| quantities.iter().filter_map(|q| comparable(b, q)))
                        .collect();
                    (
                        clause,
                        (!compared.is_empty()).then(|| compared.contains(&true)),
                    )
                })
                .collect()
        })
        .collect();
    let verdicts: Vec<Option<bool>> = sentences.iter().flatten().map(|c| c.1).collect();
    if !verdicts.contains(&Some(true)) || !verdicts.contains(&Some(false)) {
        return None;
    }
    let mut kept_sentences = Vec::new();
    for clauses in &sentences {
        let kept: Vec<&str> = clauses
            .iter()
            .filter(|c| c.1 != Some(false))
            .map(|c| c.0.trim())
            .collect();
        if kept.is_empty() {
            continue;
        }
        let mut sentence = kept.join(" ");
        // A sentence whose first clause is left out starts at the next one; one whose last is
        // left out ends where its last kept clause does, with the sentence's own full stop.
        if clauses[0].1 == Some(false) {
            sentence = capitalised(&sentence);
        }
        let (last, verdict) = clauses[clauses.len() - 1];
        if verdict == Some(false) {
            let stop = last
                .trim_end()
                .chars()
                .last()
                .filter(|c| ".!?".contains(*c));
            sentence = sentence.trim_end_matches([';', ',', ' ']).to_string();
            sentence.extend(stop);
        }
        kept_sentences.push(sentence);
    }
    Some(kept_sentences.join(" "))
}

/// `text` with its first letter in upper case.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// Whether `band` holds the customer's `quantity` ([`comparable`]).
fn holds(band: &Band, quantity: &Quantity) -> bool {
    comparable(band, quantity) == Some(true)
}

/// Whether `band` holds the customer's `quantity`, when the two compare: in the same unit, or
/// both years when neither says a unit ("a 2019 car", "cars made before 2017").
fn comparable(band: &Band, quantity: &Quantity) -> Option<bool> {
    let compares = match (band.unit, quantity.unit) {
        (Some(a), Some(b)) => a == b,
        (None, None) => is_year(quantity.value) && band.low.or(band.high).is_some_and(is_year),
        _ => false,
    };
    compares.then(|| band.holds(quantity) == Some(true))
}

/// Whether `value` reads as a year.
fn is_year(value: f64) -> bool {
    value.fract() == 0.0 && (1900.0..=2100.0).contains(&value)
}

/// The priced parts of `line`: each sentence that states one amount, and each clause of a
/// sentence that states several, from the break before its amount ([`clause_break`]; a
/// sentence whose amounts no break sets apart is one part).
fn parts(line: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    for span in sentence_spans(line) {
        let sentence = &line[span];
        let starts = amount_starts(sentence);
        match starts.as_slice() {
            [] => {}
            [_] => parts.push(Part {
                words: sentence.to_string(),
                said: sentence.to_string(),
            }),
            _ => {
                // The words the sentence opens with, up to its first clause: a colon before the
                // first amount ends them ("Vinho da casa: taça R$ 19, garrafa R$ 79"), else the
                // amount does ("Wheel alignment costs £45 for...", "Yes, gift cards of 20 EUR,
                // 50 EUR and 100 EUR": a comma there is the sentence's own, and what it opens
                // with names every amount).
                let first = sentence[..starts[0]]
                    .rfind(':')
                    .map_or(starts[0], |at| at + 1);
                let lead = sentence[..first].trim_end();
                let mut cuts = vec![first];
                for pair in starts.windows(2) {
                    cuts.extend(
                        clause_break(&sentence[pair[0]..pair[1]]).map(|at| pair[0] + at + 1),
                    );
                }
                // Amounts set apart by neither a mark nor a conjunction ("R$ 19 a taça R$ 79 a
                // garrafa") leave no clause to tell: the sentence is one part.
                if cuts.len() < starts.len() {
                    parts.push(Part {
                        words: sentence.to_string(),
                        said: sentence.to_string(),
                    });
                    continue;
                }
                cuts.push(sentence.len());
                let mut said: Vec<Part> = Vec::new();
                let mut first_case = None;
                for (i, cut) in cuts.windows(2).enumerate() {
                    let clause = sentence[cut[0]..cut[1]].trim();
                    let alone = without_leading_function_words(clause)
                        .trim_end_matches([',', ';', ' ', '.']);
                    let opening = if i == 0 {
                        Some(lead)
                    } else {
                        own_lead(lead, clause)
                    };
                    let Some(opening) = opening else {
                        break;
                    };
                    let clause = if opening == lead {
                        alone
                    } else {
                        // The first clause's own case is then what `lead` says after it.
                        first_case = Some(lead[opening.len()..].trim());
                        clause
                    };
                    let clause = clause.trim_end_matches([',', ';', ' ', '.']);
                    said.push(Part {
                        words: clause.to_string(),
                        said: format!("{opening} {clause}.").trim_start().to_string(),
                    });
                }
                // A later clause whose own case cannot be told from the first's ([`own_lead`])
                // leaves the sentence one part.
                if said.len() < cuts.len() - 1 {
                    parts.push(Part {
                        words: sentence.to_string(),
                        said: sentence.to_string(),
                    });
                    continue;
                }
                if let Some(case) = first_case {
                    said[0].words = format!("{case} {}", said[0].words);
                }
                parts.extend(said);
            }
        }
    }
    parts
}

/// The words a later `clause` of a sentence is said after, when `lead` (what the sentence
/// opens with, up to its first amount) holds the first clause's own case: a clause that names
/// its own case before a colon ("on a coat: £35") says that case in the place of the first's
/// ("on a jacket" of "Shortening sleeves on a jacket: £28"), where its opening function words
/// stand in `lead` ("Shortening sleeves on a coat: £35."), or after the words before `lead`'s
/// own last colon ("Prices: adults: £10; children: £5" gives "Prices: children: £5."). `None`
/// when neither tells where the first case starts. A clause with no colon before its amount
/// ("garrafa R$ 79", "£70 for all four wheels") is said after the whole `lead`.
fn own_lead<'s>(lead: &'s str, clause: &str) -> Option<&'s str> {
    let amount = amount_starts(clause)
        .first()
        .copied()
        .unwrap_or(clause.len());
    if !clause[..amount].contains(':') {
        return Some(lead);
    }
    let named = without_leading_function_words(clause);
    let function_words = normalize(&clause[..clause.len() - named.len()]);
    let opening = lead.trim_end_matches(':').trim_end();
    if !function_words.is_empty() {
        let at = words_at(opening)
            .into_iter()
            .map(|(at, _)| at)
            .rev()
            .find(|&at| normalize(&opening[at..]).starts_with(&format!("{function_words} ")));
        if let Some(at) = at.filter(|&at| at > 0) {
            return Some(opening[..at].trim_end());
        }
    }
    opening.rfind(':').map(|at| &lead[..=at])
}

/// The words of `text` split at whitespace, each with where it starts (byte offsets).
fn words_at(text: &str) -> Vec<(usize, &str)> {
    text.split_whitespace()
        .map(|t| (t.as_ptr() as usize - text.as_ptr() as usize, t))
        .collect()
}

/// Words that join two clauses of one sentence, in the languages of the shipped templates and
/// their neighbours: "taça R$ 19 e garrafa R$ 79", "0,10 € en blanco y negro y 0,30 € en
/// color".
const CONJUNCTIONS: &[&str] = &["and", "or", "y", "o", "u", "e", "ou", "et", "und", "oder"];

/// Where the clause before the last one of `text` ends: its last comma or semicolon that is no
/// decimal comma ("R$ 19,90 e R$ 79,90"), else the space before its last conjunction.
fn clause_break(text: &str) -> Option<usize> {
    let mark = text
        .char_indices()
        .filter(|&(at, c)| {
            matches!(c, ',' | ';')
                && !text[at + 1..]
                    .chars()
                    .next()
                    .is_some_and(|next| next.is_ascii_digit())
        })
        .map(|(at, _)| at)
        .next_back();
    mark.or_else(|| {
        text.char_indices()
            .filter(|&(at, c)| {
                c.is_whitespace()
                    && text[at + 1..]
                        .split_whitespace()
                        .next()
                        .is_some_and(|word| CONJUNCTIONS.contains(&word.to_lowercase().as_str()))
            })
            .map(|(at, _)| at)
            .next_back()
    })
}

/// `clause` without the function words it opens with ("or £70 for all four wheels").
fn without_leading_function_words(clause: &str) -> &str {
    let mut rest = clause.trim_start();
    while let Some((word, after)) = rest.split_once(char::is_whitespace) {
        if !is_stopword(&normalize(word)) {
            break;
        }
        rest = after.trim_start();
    }
    rest
}

/// Where each amount of money in `text` starts (byte offsets): a number with a currency sign
/// or code before or after it ("£95", "R$ 150", "95 €", "9.50 EUR").
pub(super) fn amount_starts(text: &str) -> Vec<usize> {
    let tokens = words_at(text);
    let digit = |t: &str| t.chars().any(|c| c.is_ascii_digit());
    let sign = |t: &str| t.contains(['€', '$', '£']);
    let code = |t: &str| {
        let word: String = t.chars().filter(|c| c.is_alphabetic()).collect();
        CURRENCIES.contains(&word.to_lowercase().as_str())
    };
    let number = |t: &str| t.chars().next().is_some_and(|c| c.is_ascii_digit());
    let mut starts = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (at, token) = tokens[i];
        let next = tokens.get(i + 1).map(|(_, t)| *t);
        if sign(token) && (digit(token) || next.is_some_and(number)) {
            starts.push(at);
            i += if digit(token) { 1 } else { 2 };
        } else if (number(token) && next.is_some_and(|n| (sign(n) && !digit(n)) || code(n)))
            || (code(token) && next.is_some_and(number))
        {
            starts.push(at);
            i += 2;
        } else {
            i += 1;
        }
    }
    starts
}

/// The amounts of money `text` states ([`amount_starts`]), as numbers: "£7.50" is 7.5,
/// "6,90 €" 6.9, "1.800 €" and "R$ 1.800,00" 1800.
pub(super) fn amounts(text: &str) -> Vec<f64> {
    amount_starts(text)
        .into_iter()
        .filter_map(|at| {
            let rest = &text[at..];
            let digits = rest.find(|c: char| c.is_ascii_digit())?;
            let number: String = rest[digits..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ','))
                .collect();
            amount_value(number.trim_end_matches(['.', ',']))
        })
        .collect()
}

/// The value of an amount's digits and separators: the last separator is the decimal one when
/// one or two digits follow it, else every separator groups thousands.
fn amount_value(number: &str) -> Option<f64> {
    let decimals = number
        .rfind(['.', ','])
        .filter(|&at| (2..=3).contains(&(number.len() - at)));
    let (whole, fraction) = match decimals {
        Some(at) => (&number[..at], &number[at + 1..]),
        None => (number, ""),
    };
    let whole: String = whole.chars().filter(char::is_ascii_digit).collect();
    format!("{whole}.{fraction}0").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(reply: &str, question: &str) -> Option<String> {
        let read = Question::read(question, None, Some("en"));
        let asked = Asked::of(&read, None, "en");
        asked_part(reply, &read, &asked)
    }

    #[test]
    fn amounts_are_found_with_their_signs_and_codes() {
        let text = "£45 front, R$ 150 here, 95 € there, 9.50 EUR, 12% off and 3 items.";
        let found: Vec<&str> = amount_starts(text)
            .into_iter()
            .map(|at| text[at..].split_whitespace().next().unwrap())
            .collect();
        assert_eq!(found, ["£45", "R$", "95", "9.50"]);
        assert_eq!(amounts(text), [45.0, 150.0, 95.0, 9.5]);
        let thousands = "1.800 €, R$ 1.800,00, £1,250 and 6,90 € or £7.5.";
        assert_eq!(amounts(thousands), [1800.0, 1800.0, 1250.0, 6.9, 7.5]);
    }

    #[test]
    fn the_price_the_question_names_is_said_alone() {
        let brakes = "- Front brake pads, fitted: from £95. Front discs and pads: from £210.";
        assert_eq!(
            cut(brakes, "front brake pads fitted how much").as_deref(),
            Some("- Front brake pads, fitted: from £95.")
        );
        assert_eq!(
            cut(brakes, "how much are front discs").as_deref(),
            Some("Front discs and pads: from £210.")
        );
        let wheels = "Wheel alignment (also called tracking) costs £45 for the front wheels, \
                      or £70 for all four wheels.";
        assert_eq!(
            cut(wheels, "how much for tracking on the front").as_deref(),
            Some("Wheel alignment (also called tracking) costs £45 for the front wheels.")
        );
        assert_eq!(
            cut(wheels, "and all four wheels?").as_deref(),
            Some("Wheel alignment (also called tracking) costs £70 for all four wheels.")
        );
    }

    #[test]
    fn a_clause_names_its_price_before_it() {
        let wine = "- Vinho da casa (tinto ou branco, da Serra Gaúcha): taça R$ 19, garrafa R$ 79.";
        assert_eq!(
            cut(wine, "quanto é a garrafa do vinho da casa?").as_deref(),
            Some("- Vinho da casa (tinto ou branco, da Serra Gaúcha): garrafa R$ 79.")
        );
        assert_eq!(
            cut(wine, "e a taça?").as_deref(),
            Some("- Vinho da casa (tinto ou branco, da Serra Gaúcha): taça R$ 19.")
        );
    }

    #[test]
    fn a_clause_that_names_its_own_case_says_it_in_the_place_of_the_firsts() {
        let sleeves = "- Shortening sleeves on a jacket: £28; on a coat: £35.";
        assert_eq!(
            cut(sleeves, "how much to shorten a coat's sleeves?").as_deref(),
            Some("- Shortening sleeves on a coat: £35.")
        );
        assert_eq!(
            cut(sleeves, "how much to shorten jacket sleeves?").as_deref(),
            Some("- Shortening sleeves on a jacket: £28.")
        );
        let tickets = "Tickets: adults: £10; children: £5.";
        assert_eq!(
            cut(tickets, "how much for children?").as_deref(),
            Some("Tickets: children: £5.")
        );
        // Where the first case starts cannot be told: the sentence is said whole.
        let sizes = "Small dogs £20; large: £30.";
        assert_eq!(cut(sizes, "how much for large dogs?"), None);
    }

    #[test]
    fn a_decimal_comma_is_no_clause_break() {
        let wine = "- Vinho da casa: taça R$ 19,90, garrafa R$ 79,90.";
        assert_eq!(
            cut(wine, "quanto é a garrafa?").as_deref(),
            Some("- Vinho da casa: garrafa R$ 79,90.")
        );
        let sizes = "- Arnés: 12,50 € el pequeño, 15,90 € el grande.";
        assert_eq!(
            cut(sizes, "cuanto es el grande?").as_deref(),
            Some("- Arnés: 15,90 € el grande.")
        );
    }

    #[test]
    fn a_conjunction_before_an_amount_parts_clauses_as_a_comma_does() {
        // Whichever side of its price a clause names it.
        let wine = "- Vinho da casa: taça R$ 19,90 e garrafa R$ 79,90.";
        assert_eq!(
            cut(wine, "quanto é a garrafa?").as_deref(),
            Some("- Vinho da casa: garrafa R$ 79,90.")
        );
        let printing = "- Impresión: 0,10 € por página en blanco y negro y 0,30 € en color.";
        assert_eq!(
            cut(printing, "imprimir a color cuanto cuesta por hoja?").as_deref(),
            Some("- Impresión: 0,30 € en color.")
        );
        // With neither a mark nor a conjunction, they are not told apart.
        let wine = "- Vinho da casa: R$ 19,90 a taça R$ 79,90 a garrafa.";
        assert_eq!(cut(wine, "quanto é a garrafa?"), None);
    }

    #[test]
    fn a_year_picks_the_price_whose_years_hold_it() {
        let regas = "- Air conditioning re-gas: £69 for cars that use R134a gas (most cars \
                     made before 2017), £119 for cars that use R1234yf gas (most cars from \
                     2017 on).";
        assert_eq!(
            cut(regas, "air con regas for a 2019 car?").as_deref(),
            Some(
                "- Air conditioning re-gas: £119 for cars that use R1234yf gas (most cars from \
                 2017 on)."
            )
        );
        assert_eq!(
            cut(regas, "regas on my 2012 focus").as_deref(),
            Some(
                "- Air conditioning re-gas: £69 for cars that use R134a gas (most cars made \
                 before 2017)."
            )
        );
    }

    fn fitted(reply: &str, question: &str) -> Option<String> {
        let read = Question::read(question, None, Some("pt"));
        without_excluded_bands(reply, &read.quantities)
    }

    #[test]
    fn a_band_that_excludes_the_customers_number_is_left_out_beside_one_that_holds_it() {
        let pasta = "- Sequência de massas: R$ 79 por pessoa. Crianças de 6 a 10 anos pagam \
                     R$ 39; até 5 anos não pagam.\n- Polenta frita: R$ 28 a porção.";
        assert_eq!(
            fitted(pasta, "meu filho tem 4 anos, paga a sequencia?").as_deref(),
            Some(
                "- Sequência de massas: R$ 79 por pessoa. Até 5 anos não pagam.\n\
                 - Polenta frita: R$ 28 a porção."
            )
        );
        assert_eq!(
            fitted(pasta, "e com 8 anos?").as_deref(),
            Some(
                "- Sequência de massas: R$ 79 por pessoa. Crianças de 6 a 10 anos pagam R$ 39.\n\
                 - Polenta frita: R$ 28 a porção."
            )
        );
        // Sentences alike.
        let delivery = "Até 3 km a entrega custa R$ 6. De 3 a 7 km, R$ 12.";
        assert_eq!(
            fitted(delivery, "moro a 5 km, quanto fica a entrega?").as_deref(),
            Some("De 3 a 7 km, R$ 12.")
        );
    }

    #[test]
    fn bands_that_all_exclude_or_none_that_compares_keep_the_reply_whole() {
        let pasta = "Crianças de 6 a 10 anos pagam R$ 39; até 5 anos não pagam.";
        // No band holds 12: the reply says who its prices are for.
        assert_eq!(fitted(pasta, "meu filho tem 12 anos, paga?"), None);
        // No number of the customer's, or none in the bands' unit.
        assert_eq!(fitted(pasta, "criança paga a sequencia?"), None);
        assert_eq!(fitted(pasta, "moro a 4 km, paga?"), None);
        // A band in another line is another row's.
        let rows = "Até 5 anos: grátis\nDe 6 a 10 anos: R$ 39";
        assert_eq!(fitted(rows, "meu filho tem 4 anos"), None);
    }

    #[test]
    fn prices_the_question_does_not_tell_apart_are_all_said() {
        let wheels = "Wheel alignment (also called tracking) costs £45 for the front wheels, \
                      or £70 for all four wheels.";
        assert_eq!(cut(wheels, "do you do wheel alignment?"), None);
        let cards = "Yes, gift cards of 20 EUR, 50 EUR and 100 EUR are sold at the counter.";
        assert_eq!(cut(cards, "do you sell gift cards?"), None);
        assert_eq!(cut(wheels, "how much is tracking for 2 cars"), None);
        // One price only, or several lines: nothing to choose between here.
        assert_eq!(cut("An MOT costs £54.85.", "how much is an mot"), None);
        assert_eq!(
            cut("Day pass: £10\n10-visit pass: £80", "day pass price"),
            None
        );
    }
}
