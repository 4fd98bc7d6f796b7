//! The units a reply is made of: the question's sentences as candidates, scored against what
//! the question asks ([`Asked`]), and how a run of them forms a reply within a chat message's
//! length ([`section_reply`], [`sentence_run`]); with the price and title tests that both the
//! answerer and the offers read.

use std::collections::HashSet;

use crate::knowledge::lexicon::{stem, Lexicon};
use crate::knowledge::loaders::is_row_sentence;
use crate::knowledge::quantity;
use crate::knowledge::text::{
    contains_phrase, is_stopword, lower_words, search_text, sentence_spans,
};
use crate::llm::Source;

use super::question::Question;

/// Longest reply, in characters (a chat message, not an essay).
pub(super) const MAX_REPLY_CHARS: usize = 480;

/// Longest table answered whole. A table is read by scanning for one's own row, so a longer
/// one still reads as a chat message; and when the question does not single out a row ("free
/// shipping from Madrid?" against zones by region), showing every row beats guessing one.
pub(super) const MAX_TABLE_REPLY_CHARS: usize = 1000;

/// A candidate stands out as the best one does ([`Lead`]) when it leads the median candidate by
/// at least this share of the best one's lead: a following sentence that does joins the reply,
/// and a table's best row answers alone only when no other row does.
pub(super) const FOLLOW_RELATIVE: f32 = 0.7;

/// A line of at most this many words without closing punctuation reads as a title.
pub(super) const TITLE_MAX_WORDS: usize = 5;

/// Sentences that may follow the best one (besides the items of a list it announces).
pub(super) const FOLLOW_MAX: usize = 2;

/// One sentence of a passage's context, a candidate for the reply.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    /// Source number.
    pub(super) n: usize,
    /// Order within its source's context.
    pub(super) index: usize,
    /// The sentence.
    pub(super) text: String,
    /// Embedded form: the heading path and the sentence.
    pub(super) key: String,
    /// From the passage itself (not a neighbour).
    pub(super) own: bool,
    /// Similarity to the question (embedding and words).
    pub(super) score: f32,
    /// For a table row with a name, how like the question its name alone is (the cosine of
    /// their embeddings): what tells rows apart when the question's words do not.
    pub(super) meaning: Option<f32>,
}

/// The largest share of a collection's passages a word may appear in and still name something
/// specific ("tyre" at a bike workshop, not "bike").
const SPECIFIC_SHARE: f32 = 0.25;

/// What the question is about, as stems in the documents' language, each with its weight:
/// what an offer's text is compared with.
pub(super) struct Asked {
    /// (stem, weight, known to the documents, carried from the previous question).
    pub(super) stems: Vec<(String, f32, bool, bool)>,
    /// The documents' language, for stemming offers alike.
    pub(super) language: String,
    /// The stems of the question's words the documents know only by a spelling correction
    /// ("whole" read as "while"): a guess, not what the customer named.
    pub(super) corrected: HashSet<String>,
    /// The weight from which a known word is specific to few passages (a quarter of them at
    /// most); infinite without a lexicon, where nothing is known to be.
    pub(super) specific: f32,
    /// The language the question is written in, when it says.
    pub(super) written_in: Option<&'static str>,
    /// The stems that are number words ("one", "uma"), with their values (see
    /// [`Asked::stems_of`]).
    numbers: Vec<(String, f64)>,
}

impl Asked {
    pub(super) fn of(question: &Question, lexicon: Option<&Lexicon>, language: &str) -> Self {
        let stems: Vec<(String, f32, bool, bool)> = question
            .terms
            .iter()
            .map(|t| {
                // The documents' spelling of a word they know (with its accents), else the
                // customer's.
                let spelt = match (&t.known, lexicon) {
                    (Some(known), Some(l)) => l.spelling(known).to_string(),
                    _ => t.written.clone(),
                };
                (
                    stem(&spelt, language),
                    t.weight,
                    t.known.is_some(),
                    t.carried,
                )
            })
            .collect();
        let corrected = question
            .terms
            .iter()
            .filter_map(|t| {
                let known = t.known.as_ref()?;
                let spelt = lexicon.map_or(known.as_str(), |l| l.spelling(known));
                let plain = |w: &str| stem(&crate::language::normalize(w), language);
                (plain(spelt) != plain(&t.written)).then(|| stem(spelt, language))
            })
            .collect();
        let numbers = stems
            .iter()
            .filter_map(|(stem, ..)| Some((stem.clone(), quantity::number_word(stem)?)))
            .collect();
        Asked {
            stems,
            numbers,
            corrected,
            language: language.to_string(),
            specific: lexicon.map_or(f32::INFINITY, |l| l.idf_at_share(SPECIFIC_SHARE)),
            written_in: None,
        }
    }

    /// The stems of `text`'s words; a number in digits holds the question's word for it too
    /// ("1 session" holds the "one" of "one PT session").
    pub(super) fn stems_of(&self, text: &str) -> HashSet<String> {
        let words = lower_words(text);
        let mut stems: HashSet<String> = words
            .iter()
            .map(|(lower, _)| stem(lower, &self.language))
            .collect();
        for (stem, value) in &self.numbers {
            if words
                .iter()
                .any(|(_, normal)| normal.parse::<f64>().ok() == Some(*value))
            {
                stems.insert(stem.clone());
            }
        }
        stems
    }

    /// Whether the question is written in another language than the documents: its words
    /// unknown to them are then its language's, not things the documents do not name.
    pub(super) fn foreign(&self) -> bool {
        self.written_in.is_some_and(|l| l != self.language)
    }

    /// Whether `text` is written in another language than the question: it then holds none
    /// of the question's words whatever it is about ("Alquiler de bicicletas: 25 € el día
    /// completo" for "how much to rent a bike for a day?"). Where `text` alone does not say
    /// (a table row: "Familiar — Personas: hasta 4; Temporada alta: 150 €"), the language of
    /// the passage it is from, `around`, does.
    pub(super) fn in_another_language(
        &self,
        text: &str,
        around: impl FnOnce() -> Option<&'static str>,
    ) -> bool {
        self.written_in.is_some_and(|q| {
            crate::language::detect(text)
                .or_else(around)
                .is_some_and(|l| l != q)
        })
    }

    /// Whether the question, in the documents' language, holds a word of its own that the
    /// documents never use.
    pub(super) fn names_unknown(&self) -> bool {
        !self.foreign()
            && self
                .stems
                .iter()
                .any(|(_, _, known, carried)| !known && !carried)
    }

    /// The stems of `text`'s content words (no stopwords), in order, once each.
    pub(super) fn content_stems(&self, text: &str) -> Vec<String> {
        let mut seen = HashSet::new();
        lower_words(text)
            .iter()
            .filter(|(_, normal)| !is_stopword(normal))
            .map(|(lower, _)| stem(lower, &self.language))
            .filter(|s| seen.insert(s.clone()))
            .collect()
    }

    /// Whether `stems` hold one of the question's own (not carried) words that the documents
    /// know: what a row's name or passage must hold to be about what the customer asks.
    pub(super) fn names_any(&self, stems: &HashSet<String>) -> bool {
        self.stems
            .iter()
            .any(|(stem, _, known, carried)| *known && !carried && stems.contains(stem))
    }

    /// The share of the question's weight that `stems` hold (0-1), counting only the terms
    /// the documents know when `known_only`.
    pub(super) fn coverage(&self, stems: &HashSet<String>, known_only: bool) -> f32 {
        let (mut held, mut total) = (0.0, 0.0);
        for (s, w, known, _) in &self.stems {
            if known_only && !known {
                continue;
            }
            total += w;
            if stems.contains(s) {
                held += w;
            }
        }
        if total > 0.0 {
            held / total
        } else {
            0.0
        }
    }

    /// The share of the question's own (not carried) weight in words the documents never use.
    pub(super) fn unknown_share(&self) -> f32 {
        let own: Vec<_> = self.stems.iter().filter(|s| !s.3).collect();
        let total: f32 = own.iter().map(|s| s.1).sum();
        if total <= 0.0 {
            return 0.0;
        }
        own.iter().filter(|s| !s.2).map(|s| s.1).sum::<f32>() / total
    }
}

/// A reply cut to [`MAX_REPLY_CHARS`] (only a single overlong sentence needs it: units grow
/// within the limit).
pub(super) fn capped(reply: String) -> String {
    if reply.chars().count() > MAX_REPLY_CHARS {
        reply.chars().take(MAX_REPLY_CHARS - 1).collect::<String>() + "…"
    } else {
        reply
    }
}

/// A line of a list: `- item`, `* item`, `• item`, `1. item`, `2) item`.
pub(super) fn is_list_item(line: &str) -> bool {
    let line = line.trim_start();
    if line.starts_with(['-', '*', '•', '–']) {
        return true;
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && line[digits..].starts_with(['.', ')'])
}

/// The median of `values` (0 when empty).
pub(super) fn median(mut values: Vec<f32>) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f32::total_cmp);
    values[values.len() / 2]
}

/// The lead of a best candidate over the median one (`floor`, the median of all the question's
/// candidates): another candidate stands out as it does when it leads the median by at least
/// [`FOLLOW_RELATIVE`] of that (a scale-free rule: embedders spread their cosines differently).
pub(super) struct Lead {
    pub(super) floor: f32,
    pub(super) spread: f32,
}

impl Lead {
    pub(super) fn of(best: f32, floor: f32) -> Self {
        Self {
            floor,
            spread: (best - floor).max(0.0),
        }
    }

    /// The lead of the best of `values` over their median.
    pub(super) fn over(values: Vec<f32>) -> Self {
        let best = values.iter().copied().fold(f32::MIN, f32::max);
        Self::of(best, median(values))
    }

    /// Whether `score` leads the floor by [`FOLLOW_RELATIVE`] of the best one's lead (when the
    /// best does not lead at all, whatever reaches the floor stands out as much as it does).
    pub(super) fn stands_out(&self, score: f32) -> bool {
        score - self.floor >= FOLLOW_RELATIVE * self.spread
    }
}

/// Whether `text` holds one of `phrases` as whole words ([`contains_phrase`]).
pub(super) fn says_any(text: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| contains_phrase(text, p))
}

/// Currency codes and names written next to an amount ("9.50 EUR", "price_eur: 9.50").
pub(super) const CURRENCIES: [&str; 6] = ["eur", "euro", "euros", "usd", "gbp", "brl"];

/// Whether `text` states an amount of money (a number next to a currency sign or code) or that
/// something is free.
pub(super) fn states_a_price(text: &str) -> bool {
    states_an_amount(text) || says_any(text, &FREE)
}

/// Whether `text` states an amount of money: a number next to a currency sign or code, or in
/// hundredths of one ("50p", "10 céntimos").
pub(super) fn states_an_amount(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let sign = chars.iter().enumerate().any(|(i, c)| {
        matches!(c, '€' | '$' | '£')
            && chars[i.saturating_sub(2)..(i + 3).min(chars.len())]
                .iter()
                .any(char::is_ascii_digit)
    });
    let words: Vec<String> = search_text(text).split(' ').map(str::to_owned).collect();
    let number = |i: usize| {
        words
            .get(i)
            .is_some_and(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit()))
    };
    // Pence written onto their number ("50p").
    let pence = |w: &str| {
        w.strip_suffix('p')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    sign || words.iter().enumerate().any(|(i, w)| {
        (CURRENCIES.contains(&w.as_str()) && (number(i + 1) || (i > 0 && number(i - 1))))
            || (MINOR_UNITS.contains(&w.as_str()) && i > 0 && number(i - 1))
            || pence(w)
    })
}

/// Hundredths of a currency written after an amount ("folded shirts cost 50 cents more",
/// "la bolsa cuesta 10 céntimos"), normalised. They state a price as the currency does, and
/// are not read as amounts of it ([`CURRENCIES`]), which would make 50 cents 50.
const MINOR_UNITS: [&str; 5] = ["pence", "cents", "centimos", "centavos", "centimes"];

/// Whether `text` states a share: a number followed by a per cent sign ("um sinal de 30%",
/// "a 10 % discount"). Asked how much a deposit, discount or surcharge is, a share is the
/// amount.
pub(super) fn states_a_share(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    chars.iter().enumerate().any(|(i, c)| {
        *c == '%'
            && chars[..i]
                .iter()
                .rev()
                .find(|c| !c.is_whitespace())
                .is_some_and(char::is_ascii_digit)
    })
}

/// Words by which a text says something costs nothing, normalised. Not "free" alone: a
/// gluten-free loaf or a free workshop slot says nothing of a price.
pub(super) const FREE: [&str; 14] = [
    "free of charge",
    "for free",
    "no charge",
    "no extra charge",
    "no extra cost",
    "gratis",
    "gratuito",
    "gratuita",
    "sem custo",
    "sin coste",
    "sin costo",
    "kostenlos",
    "gratuit",
    "gratuite",
];

/// A short line without closing punctuation ("Morning Meeting" in a PDF menu): a title, which
/// says nothing alone; the lines under it do.
pub(super) fn is_title_line(text: &str) -> bool {
    let text = text.trim();
    text.split_whitespace().count() <= TITLE_MAX_WORDS
        && !text.ends_with(['.', '!', '?', ':', ';'])
        && !is_row_sentence(text)
}

/// A source's whole context, when it is at most `limit` characters.
pub(super) fn whole(source: &Source, limit: usize) -> Option<&str> {
    let whole = source.context.trim();
    (!whole.is_empty() && whole.chars().count() <= limit).then_some(whole)
}

/// What a chosen section says in reply. A section short enough for a chat message answers as
/// a unit (but for a question that asks no price, the prose paragraph of its best sentence
/// answers alone when it states no price and the rest of the section does; and for one that
/// asks a price, the line of its best sentence does when no other priced line stands out as
/// it does, less those the customer's `quantities` fall outside: [`priced_line`]); from a longer
/// one, the paragraph of its best sentence when that paragraph is prose that fits and states
/// no price the best sentence does not (its author's unit: "we keep slots for emergencies"
/// and "call before 17:00 to be seen the same day" are one answer); else its best sentence
/// and the sentences right after it while they stand out from the rest as much as it does
/// (answers often run over two sentences); a sentence that announces a list brings the list.
pub(super) fn section_reply(
    section: &Source,
    candidates: &[Candidate],
    floor: f32,
    asks_price: bool,
    quantities: &[quantity::Quantity],
) -> Option<String> {
    let sentences: Vec<&Candidate> = candidates.iter().filter(|c| c.n == section.n).collect();
    let best = sentences.iter().max_by(|a, b| a.score.total_cmp(&b.score));
    if let Some(whole) = whole(section, MAX_REPLY_CHARS) {
        // Asked a price, a list that prices several things answers with its best line alone
        // when no other priced line stands out as it does: a customer who reads two prices may
        // take the wrong one ("Pase de día: 18 €" for a single day, not also "Bono de 10 días:
        // 140 €").
        if let Some(line) = best
            .filter(|_| asks_price)
            .and_then(|best| priced_line(section, &sentences, best, floor, quantities))
        {
            return Some(line);
        }
        // Where the rest of the section prices other things, a question that asks no price is
        // answered by its best sentence's prose paragraph alone when that states none ("No
        // tenemos piscina ni spa." below the bike hire's and the canoe trip's prices).
        let unpriced = best
            .filter(|_| !asks_price)
            .and_then(|best| paragraph_of(&section.context, best.index))
            .filter(|paragraph| !paragraph.iter().any(|s| states_a_price(s)))
            .map(|paragraph| paragraph.join(" "));
        if let Some(paragraph) = unpriced {
            let context = &section.context;
            let priced = sentence_spans(context)
                .into_iter()
                .any(|s| states_a_price(&context[s]));
            if priced && paragraph.trim() != whole {
                return Some(paragraph);
            }
        }
        return Some(whole.to_string());
    }
    let best = best?;
    if let Some(paragraph) = paragraph_of(&section.context, best.index) {
        let reply = paragraph.join(" ");
        let priced_elsewhere = paragraph
            .iter()
            .any(|s| *s != best.text && states_a_price(s));
        if paragraph.len() > 1 && !priced_elsewhere && reply.chars().count() <= MAX_REPLY_CHARS {
            return Some(reply);
        }
    }
    let run = sentence_run(&sentences, floor, true)?;
    Some(said_with_item(&section.context, run.index, run.text))
}

/// `reply`, whose first sentence is the `index`-th of `text`, said with the rest of its list
/// item when it goes on an item's line. An item is one thing, whatever sentences it is written
/// in: what goes after the reply tells what the item holds ("- An interim service is for cars
/// that cover high mileage: every 6,000 miles or 6 months. Oil and oil filter change, ...")
/// and what goes before, what it speaks of ("Larger rugs we do not clean." after "- Rugs up to
/// 2 square metres: £35."). (A title line above it is the item's opening already.)
pub(super) fn said_with_item(text: &str, index: usize, reply: String) -> String {
    let Some(span) = sentence_spans(text).into_iter().nth(index) else {
        return reply;
    };
    let line = line_around(text, &span);
    if let Some(item) = whole_item(text[line.clone()].trim(), &reply) {
        return item.to_string();
    }
    let first_line = reply.lines().next().unwrap_or_default().trim();
    match item_opening(&text[line.start..span.start]) {
        Some(opening)
            if !opening.ends_with(first_line)
                && opening.chars().count() + reply.chars().count() < MAX_REPLY_CHARS =>
        {
            format!("{opening} {reply}")
        }
        _ => reply,
    }
}

/// `line`, a list item, when it holds `reply` and says more, and is short enough to be a
/// reply.
fn whole_item<'a>(line: &'a str, reply: &str) -> Option<&'a str> {
    let reply = reply.trim();
    (is_list_item(line)
        && line != reply
        && line.contains(reply)
        && line.chars().count() <= MAX_REPLY_CHARS)
        .then_some(line)
}

/// The start of a list item, from what its line holds `before` a sentence, when the sentence
/// does not open the item.
fn item_opening(before: &str) -> Option<&str> {
    let opening = before.trim_end();
    (!opening.is_empty() && is_list_item(opening)).then_some(opening)
}

/// The line of `text` that holds `span`, without its line break.
fn line_around(text: &str, span: &std::ops::Range<usize>) -> std::ops::Range<usize> {
    let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let end = text[span.end..]
        .find('\n')
        .map_or(text.len(), |i| span.end + i);
    start..end
}

/// The line of `section` that holds its `best` sentence, with the title line above it if any,
/// when that line prices something, another line of the section prices something else, and
/// no sentence of another priced line stands out as the best one does ([`Lead`]). A priced
/// line whose band the customer's `quantities` fall outside is another offer, as a table's row
/// is ("Bono de 10 días: 140 €" for "un día suelto"): it is no rival, and where some are such
/// and others stand out still, the line answers with those others ("El primer día de prueba es
/// gratis"), in the section's order. The best line itself may be such a line ("el bono de un
/// día?"): then the lines that stand out and whose bands do not leave the customer's number
/// out answer without it, and where none does, the list answers whole rather than with a price
/// that is not theirs.
fn priced_line(
    section: &Source,
    sentences: &[&Candidate],
    best: &Candidate,
    floor: f32,
    quantities: &[quantity::Quantity],
) -> Option<String> {
    let context = &section.context;
    let spans = sentence_spans(context);
    let line_of = |index: usize| spans.get(index).map(|span| line_around(context, span));
    let line = line_of(best.index)?;
    let text = context[line.clone()].trim();
    let priced = context.lines().filter(|l| states_a_price(l)).count();
    if priced < 2 || !states_a_price(text) {
        return None;
    }
    let lead = Lead::of(best.score, floor);
    let mut rivals: Vec<std::ops::Range<usize>> = sentences
        .iter()
        .filter(|c| lead.stands_out(c.score))
        .filter_map(|c| line_of(c.index))
        .filter(|other| *other != line && states_a_price(&context[other.clone()]))
        .collect();
    rivals.sort_by_key(|other| other.start);
    rivals.dedup();
    let excluded = |other: &std::ops::Range<usize>| {
        quantity::fits(quantities, &quantity::bands(&context[other.clone()])) == Some(false)
    };
    let mut lines: Vec<std::ops::Range<usize>> =
        rivals.iter().filter(|r| !excluded(r)).cloned().collect();
    if excluded(&line) {
        // Not the customer's price: the lines that do not leave their number out answer, else
        // the list.
        if lines.is_empty() {
            return None;
        }
    } else {
        // Every rival may be the one meant: the list answers.
        if !rivals.is_empty() && lines.len() == rivals.len() {
            return None;
        }
        lines.push(line);
        lines.sort_by_key(|l| l.start);
    }
    let said = lines
        .iter()
        .map(|l| context[l.clone()].trim())
        .collect::<Vec<_>>()
        .join("\n");
    let title = context[..lines[0].start]
        .trim_end()
        .rsplit('\n')
        .next()
        .map(str::trim)
        .filter(|above| !above.is_empty() && is_title_line(above));
    Some(match title {
        Some(title) => format!("{title}\n{said}"),
        None => said,
    })
}

/// The sentences of the paragraph of `text` (between blank lines) that holds its `index`-th
/// sentence; none when the paragraph is lines (a list, a table's rows, a PDF's items, or two
/// neighbouring passages, which the context joins by a line break), which are read one by one.
fn paragraph_of(text: &str, index: usize) -> Option<Vec<&str>> {
    let spans = sentence_spans(text);
    let span = spans.get(index)?;
    let start = text[..span.start].rfind("\n\n").map_or(0, |i| i + 2);
    let end = text[span.end..]
        .find("\n\n")
        .map_or(text.len(), |i| span.end + i);
    if text[start..end].trim().contains('\n') {
        return None;
    }
    Some(
        spans
            .into_iter()
            .filter(|s| s.start >= start && s.end <= end)
            .map(|s| &text[s])
            .collect(),
    )
}

/// The best of `sentences` (one source's, in their order) and the ones right after it while
/// they stand out as much (see [`section_reply`]), with the best one's score. The first line
/// under a title comes with its title: it speaks of what the title names ("Over-60s Strength"
/// over "A slower strength class for members aged 60 and over", a term over its definition).
/// Unless `titles_answer`, a title line is never the best sentence nor one that follows it.
pub(super) fn sentence_run(
    sentences: &[&Candidate],
    floor: f32,
    titles_answer: bool,
) -> Option<Run> {
    let sentences = || sentences.iter().copied();
    let first = sentences()
        .filter(|c| titles_answer || !is_title_line(&c.text))
        .max_by(|a, b| a.score.total_cmp(&b.score))?;
    let lead = Lead::of(first.score, floor);
    let titled = is_title_line(&first.text);
    let title = first
        .index
        .checked_sub(1)
        .and_then(|i| sentences().find(|c| c.index == i))
        .filter(|c| !titled && is_title_line(&c.text));
    let mut reply = match title {
        Some(title) => format!("{}\n{}", title.text, first.text),
        None => first.text.clone(),
    };
    let mut next = first.index + 1;
    let mut followed = 0;
    let mut in_list = false;
    while let Some(c) = sentences().find(|c| c.index == next) {
        if !titles_answer && is_title_line(&c.text) {
            break;
        }
        if titled {
            // A title brings the lines under it, up to the next title.
            if is_title_line(&c.text) || reply.len() + c.text.len() + 1 > MAX_REPLY_CHARS {
                break;
            }
            reply.push(if next == first.index + 1 { '\n' } else { ' ' });
            reply.push_str(&c.text);
            next += 1;
            continue;
        }
        in_list = (in_list || reply.ends_with(':')) && is_list_item(&c.text);
        let close = lead.stands_out(c.score) && followed < FOLLOW_MAX;
        if !(in_list || close) || reply.len() + c.text.len() + 1 > MAX_REPLY_CHARS {
            break;
        }
        reply.push(if in_list { '\n' } else { ' ' });
        reply.push_str(&c.text);
        followed += usize::from(!in_list);
        next += 1;
    }
    Some(Run {
        text: reply,
        score: first.score,
        index: first.index,
    })
}

/// A run of sentences ([`sentence_run`]).
pub(super) struct Run {
    /// The sentences, with the title line above the first when it comes with it.
    pub text: String,
    /// The first sentence's score.
    pub score: f32,
    /// The first sentence's place in its passage.
    pub index: usize,
}

/// Auxiliaries that may stand between "we" and its negation ("we do not", "we will never").
const NEGATED_AUXILIARIES: [&str; 7] = ["do", "does", "will", "can", "are", "could", "would"];
/// Negations after "we" (or its auxiliary).
const WE_NEGATIONS: [&str; 9] = [
    "not", "never", "dont", "don't", "cannot", "can't", "wont", "won't", "no",
];
/// Negations that come before a verb in Portuguese and Spanish ("não servimos", "no hacemos").
const NEGATIONS_BEFORE: [&str; 4] = ["nao", "no", "nunca", "jamais"];
/// Pronouns that may stand between a negation and its verb ("no lo hacemos", "não os
/// aceitamos").
const CLITICS: [&str; 12] = [
    "se", "lo", "la", "los", "las", "le", "les", "o", "a", "os", "as", "lhe",
];

/// Whether `text` says that the business does not do something, in the first person plural:
/// "we do not dye", "we don't do bodywork", "não servimos destilados", "no ofrecemos
/// atención de llamadas", "nous ne faisons pas", "wir reparieren keine Schuhe".
pub(super) fn says_not_done(text: &str) -> bool {
    // A typographic apostrophe ("don’t", "n’offrons") reads as a plain one.
    let folded = crate::language::normalize(text).replace('\u{2019}', "'");
    let words: Vec<&str> = folded
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().enumerate().any(|(i, w)| {
        let after = |k: usize| words.get(i + k).copied().unwrap_or_default();
        match *w {
            "we" => {
                let next = if NEGATED_AUXILIARIES.contains(&after(1)) {
                    after(2)
                } else {
                    after(1)
                };
                WE_NEGATIONS.contains(&next)
            }
            "nous" => after(1) == "ne" || after(1).starts_with("n'"),
            "wir" => (1..=4).any(|k| after(k) == "nicht" || after(k).starts_with("kein")),
            _ if NEGATIONS_BEFORE.contains(w) => {
                let verb = if CLITICS.contains(&after(1)) {
                    after(2)
                } else {
                    after(1)
                };
                verb.len() > 4 && verb.ends_with("mos")
            }
            _ => false,
        }
    })
}
