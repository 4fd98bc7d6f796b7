//! What each passage offers to say, and which offer answers.
//!
//! A passage made of prose offers a section whole when it fits a chat message, else its best
//! sentence and those right after it that stand out as much. Table rows (from every passage
//! of the same table together) are offered by what the question singles out:
//!
//! - a row whose band holds the customer's number, whose size or day is the one named, is
//!   [`Fit::Exact`]; a row whose band, size or day excludes the customer's is not offered;
//! - among the others, the rows that hold the question's most telling words; rows alike but
//!   for their size or band (one product's variants, asked without a size) together; when
//!   those words single out differently named rows alike, the one whose label names the
//!   question plainest, else the one whose name stands out by what it means, or else the
//!   customer is asked which one they mean;
//! - the whole table when nothing singles a row out and the rows read alike to the question
//!   ("opening hours?");
//! - of a row with several values (prices by contract length), the one column the question
//!   names, when it names one.
//!
//! The offer that answers is the best by a weighted sum of standardised signals ([`choose`]).

use std::collections::{HashMap, HashSet};

use super::grounding::{self, meant};
use super::parts::amounts;
use super::question::{days, months, seasons, Question};
use super::rows::Row;
use super::units::{
    capped, is_title_line, median, said_with_item, section_reply, sentence_run, states_a_price,
    states_a_share, Asked, Candidate, Lead, MAX_TABLE_REPLY_CHARS,
};
use crate::knowledge::quantity::{band_only, bands, fits, fits_named, Band, Quantity};
use crate::language::normalize;
use crate::llm::Source;

/// Weights of the signals that choose the offer that answers, each standardised over the
/// question's offers (so that embedders that spread their cosines differently weigh alike):
/// the relevance of the offer's passage, how its passage's retrieval ranks stand against the
/// other offers' ([`outranks`]) and its best sentence's score.
const WEIGHT_RELEVANCE: f32 = 2.0;
const WEIGHT_RETRIEVAL: f32 = 1.0;
const WEIGHT_SENTENCE: f32 = 0.5;
/// Weight of the share of the question's words an offer holds (0-1, already one scale: not
/// standardised, which would make a stray shared word between two offers that hold almost
/// nothing weigh as much as holding the whole question).
const WEIGHT_WORDS: f32 = 1.5;
/// What stating an amount (or that it is free) adds when the question asks a price, and what
/// being singled out by a band, size or day adds, in standard deviations of the signals above.
/// A price outweighs being ranked first among two offers alike in everything else (retrieval,
/// sentence and words together reach 3.5 there): asked a price, the answer states one.
const WEIGHT_PRICE: f32 = 4.0;
const WEIGHT_EXACT: f32 = 3.0;
/// What an offer loses that holds only in months the question does not name ([`seasonal`]),
/// as much as one singled out by a band or day gains.
const WEIGHT_SEASON: f32 = 3.0;
/// The least standard deviation the offers' relevances and best-sentence scores are
/// standardised over, as a share of the spread of the question's sentence scores. Among two
/// offers, any difference is a whole standard deviation: "vcs buscam no aeroporto?" went to
/// the driving distances from the airport over the section saying "We do not offer airport
/// transfers: a taxi ... costs about 120 €", which the retrieval ranked first and whose
/// sentence scored 0.30 against 0.25, because its passage's relevance was lower by 0.0016.
/// Measured on the development split and the shipped suites: a quarter changes two replies,
/// both to the right answer (that one and "parking?" after a question about the rooms); the
/// whole spread, which shrinks real differences too, changed seven and lost three right
/// answers.
const LEAST_SPREAD: f32 = 0.25;
/// Most rows answered together (one product's variants).
const MAX_ROWS: usize = 6;
/// Words of at least this many letters may spell a word of a row's name ([`spells_unasked`]).
const SPELT_MIN_LETTERS: usize = 4;

/// How a question's band, size or day meets an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Singled out: its band holds the customer's number, or it is the size or day named.
    Exact,
    /// Nothing of the kind to compare.
    Neutral,
}

/// Something a passage could say in reply.
#[derive(Debug, Clone)]
pub struct Offer<'a> {
    /// The passage.
    pub source: &'a Source,
    /// What it says.
    pub text: String,
    /// Its best sentence's score.
    pub best: f32,
    /// The share of the question's weight it holds (0-1).
    pub coverage: f32,
    /// Whether a band, size or day singles it out.
    pub fit: Fit,
    /// A table's row or rows.
    pub row: bool,
    /// Rows that stand out alike: the customer is asked which one they mean.
    pub ask_which: bool,
    /// Rows priced by the column whose definition holds the month or the words the question
    /// names ([`defined_column`]): they speak to the customer's date.
    pub dated: bool,
}

impl Offer<'_> {
    /// Whether it is a table row that the customer's own band, size or day singles out: their
    /// case by what they said, not by how alike the words are.
    pub fn singled_out(&self) -> bool {
        self.row && self.fit == Fit::Exact
    }
}

/// An offer with its total.
#[derive(Debug, Clone)]
pub struct Ranked<'a> {
    /// The offer.
    pub offer: Offer<'a>,
    /// Its weighted, standardised total.
    pub total: f32,
}

/// A row read from a candidate line, with its passage.
struct TableRow<'c> {
    candidate: &'c Candidate,
    row: Row,
    stems: HashSet<String>,
    /// The bands its name and word cells state, the name's first.
    bands: Vec<Band>,
    /// How many of `bands` its name states.
    name_bands: usize,
    sizes: Vec<String>,
    days: Vec<usize>,
}

impl TableRow<'_> {
    /// `Some(true)` when the question's quantities, size or day single the row out,
    /// `Some(false)` when one of them excludes it, `None` when none applies.
    fn fit(&self, question: &Question) -> Option<bool> {
        let mut verdict: Option<bool> = None;
        let mut meet = |v: Option<bool>| match v {
            Some(false) => verdict = Some(false),
            Some(true) if verdict.is_none() => verdict = Some(true),
            _ => {}
        };
        meet(fits_named(
            &question.quantities,
            &self.bands,
            &self.bands[..self.name_bands],
        ));
        if let Some(size) = &question.size {
            if !self.sizes.is_empty() {
                meet(Some(self.sizes.contains(size)));
            }
        }
        if !question.days.is_empty() && !self.days.is_empty() {
            meet(Some(question.days.iter().any(|d| self.days.contains(d))));
        }
        verdict
    }
}

/// The offers of `sources`, read from their `candidates` for `question`.
pub fn offers<'a>(
    sources: &'a [Source],
    candidates: &[Candidate],
    question: &Question,
    asked: &Asked,
) -> Vec<Offer<'a>> {
    let floor = median(candidates.iter().map(|c| c.score).collect());
    let mut out = Vec::new();
    // Rows of every passage, grouped by their table (document and heading), each line once.
    let mut tables: Vec<((String, String), Vec<TableRow>)> = Vec::new();
    let mut seen_rows: HashSet<&str> = HashSet::new();
    for source in sources {
        let sentences: Vec<&Candidate> = candidates.iter().filter(|c| c.n == source.n).collect();
        if sentences.is_empty() {
            continue;
        }
        let rows: Vec<&Candidate> = sentences
            .iter()
            .copied()
            .filter(|c| Row::parse(&c.text).is_some())
            .collect();
        // Rows are read as a table whatever prose stands around them ("Opening hours": the
        // days' rows, then "Last entry is 30 minutes before closing."); a single row line
        // among prose is read as prose.
        let tabular = rows.len() >= 2 || (!rows.is_empty() && rows.len() * 2 >= sentences.len());
        if !tabular {
            if let Some(text) = section_reply(
                source,
                candidates,
                floor,
                question.asks_price,
                &question.quantities,
            ) {
                if !is_title_line(&text) {
                    let best = sentences.iter().map(|c| c.score).fold(f32::MIN, f32::max);
                    // A price question is answered by the sentence that states the price,
                    // which need not be the passage's best ("¿me cobráis algo por la
                    // devolución?" against a returns section whose best sentence lists the
                    // return rights): the passage offers that sentence too.
                    if question.asks_price && !states_a_price(&text) {
                        if let Some(priced) = sentences
                            .iter()
                            .filter(|c| c.own && states_a_price(&c.text))
                            .max_by(|a, b| a.score.total_cmp(&b.score))
                        {
                            out.push(offer(
                                source,
                                capped(priced.text.clone()),
                                priced.score,
                                Fit::Neutral,
                                false,
                                asked,
                            ));
                        }
                    }
                    out.push(offer(
                        source,
                        capped(text),
                        best,
                        Fit::Neutral,
                        false,
                        asked,
                    ));
                }
            }
            continue;
        }
        let key = (
            source.source.clone(),
            source.heading.clone().unwrap_or_default(),
        );
        let at = match tables.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                tables.push((key, Vec::new()));
                tables.len() - 1
            }
        };
        for c in rows {
            if !seen_rows.insert(c.text.as_str()) {
                continue;
            }
            let Some(row) = Row::parse(&c.text) else {
                continue;
            };
            let subject_text = format!(
                "{} {}",
                source.heading.as_deref().unwrap_or_default(),
                row.subject()
            );
            let word_cells: String = row
                .name
                .iter()
                .cloned()
                .chain(
                    row.cells
                        .iter()
                        .filter(|(_, v)| v.chars().any(char::is_alphabetic))
                        .map(|(_, v)| v.clone()),
                )
                .collect::<Vec<_>>()
                .join(" ");
            let (bands, name_bands) = row.bands();
            tables[at].1.push(TableRow {
                candidate: c,
                stems: asked.stems_of(&subject_text),
                bands,
                name_bands,
                sizes: row.sizes(),
                days: days(&normalize(&word_cells), true),
                row,
            });
        }
        // What the passage says besides its rows ("We do not deliver to Madeira." under a zones
        // table) answers too; not a sentence that leads into them ("We can collect your car
        // from home or work and bring it back:"), which says what they are and nothing alone.
        let prose: Vec<&Candidate> = sentences
            .iter()
            .copied()
            .filter(|c| c.own && !is_row_sentence_text(&c.text))
            .filter(|c| !c.text.trim_end().ends_with(':'))
            .collect();
        if let Some(run) = sentence_run(&prose, floor, false) {
            // Said with its list item's opening, as a passage of prose alone says it.
            let text = said_with_item(&source.context, run.index, run.text);
            out.push(offer(
                source,
                capped(text),
                run.score,
                Fit::Neutral,
                false,
                asked,
            ));
        }
    }
    for ((_, heading), mut rows) in tables {
        value_words_name_nothing(&mut rows, &heading, asked);
        out.extend(table_offers(sources, candidates, rows, question, asked));
    }
    out
}

/// A column whose cells are amounts in most of a table's rows ("Valor por sessão: R$ 240")
/// holds each row's value: where a row says its value in words instead ("não atendemos", "sob
/// consulta"), those words are what the row answers, not what it is, and they no longer tell
/// it apart by the question's words ("vcs fazem atendimento domiciliar? qnto é" names the
/// home visits, not the band "acima de 15 km" whose value is "não atendemos").
fn value_words_name_nothing(rows: &mut [TableRow<'_>], heading: &str, asked: &Asked) {
    let mut columns: HashMap<String, (usize, usize)> = HashMap::new();
    for r in rows.iter() {
        for (label, value) in &r.row.cells {
            if label.is_empty() {
                continue;
            }
            let (amounts, all) = columns.entry(label.clone()).or_default();
            *all += 1;
            if Row::is_value(value) {
                *amounts += 1;
            }
        }
    }
    let labels: Vec<String> = columns
        .into_iter()
        .filter(|(_, (amounts, all))| *amounts >= 2 && amounts * 2 > *all)
        .map(|(label, _)| label)
        .collect();
    let values: HashSet<&str> = labels.iter().map(String::as_str).collect();
    if values.is_empty() {
        return;
    }
    for r in rows.iter_mut() {
        let worded = r
            .row
            .cells
            .iter()
            .any(|(label, value)| values.contains(label.as_str()) && !Row::is_value(value));
        if worded {
            let subject = r.row.subject_but(&values);
            r.stems = asked.stems_of(&format!("{heading} {subject}"));
        }
    }
}

fn is_row_sentence_text(text: &str) -> bool {
    Row::parse(text).is_some()
}

/// An offer of `text` from `source`, with the share of the question it holds.
fn offer<'a>(
    source: &'a Source,
    text: String,
    best: f32,
    fit: Fit,
    row: bool,
    asked: &Asked,
) -> Offer<'a> {
    let held = asked.stems_of(&format!(
        "{} {}",
        source.heading.as_deref().unwrap_or_default(),
        text
    ));
    Offer {
        source,
        coverage: asked.coverage(&held, false),
        text,
        best,
        fit,
        row,
        ask_which: false,
        dated: false,
    }
}

/// The offers of one table's rows, with the one price column the question names, if any.
fn table_offers<'a>(
    sources: &'a [Source],
    candidates: &[Candidate],
    rows: Vec<TableRow<'_>>,
    question: &Question,
    asked: &Asked,
) -> Vec<Offer<'a>> {
    if let Some(label) = named_column(&rows, question, asked) {
        return row_offers(sources, candidates, rows, question, asked, Some(label));
    }
    let Some(label) = defined_column(sources, &rows, candidates, question, asked) else {
        return row_offers(sources, candidates, rows, question, asked, None);
    };
    let mut out = row_offers(
        sources,
        candidates,
        rows,
        question,
        asked,
        Some(label.clone()),
    );
    for offer in &mut out {
        offer.dated = offer.row && offer.text.contains(label.as_str());
    }
    out
}

/// The offers of one table's rows, saying the value of `column` alone where they have it.
fn row_offers<'a>(
    sources: &'a [Source],
    candidates: &[Candidate],
    rows: Vec<TableRow<'_>>,
    question: &Question,
    asked: &Asked,
    column: Option<String>,
) -> Vec<Offer<'a>> {
    let source_of = |r: &TableRow| {
        sources
            .iter()
            .find(|s| s.n == r.candidate.n)
            .expect("a candidate's source is among the sources")
    };
    // A band or size singles out a row of the thing the question names: the row's name or its
    // table's heading holds one of the question's own words ("the 60-litre aquarium" is not the
    // row "Filtro interior" whose variant reads "acuarios de hasta 60 litros"). A day names a
    // row that is named by a day ("Saturday — Open: 08:00"); a day among a row's other cells is
    // a condition of the thing it names ("Off-Peak — Gym floor all day at weekend" is not what
    // "visiting for the weekend, can I pay for one day?" asks about), which the question must
    // name as a band's row must. A question in another language has no words of the
    // documents' to say it: its row must stand out among the table's by what its name means
    // ("my cat is 12, do you have food for older cats?" is not the row "Sobres surtidos" in
    // packs of 12).
    let meaning = |r: &TableRow| r.candidate.meaning.unwrap_or(r.candidate.score);
    let meanings: Vec<f32> = rows.iter().map(meaning).collect();
    let meaning_lead = Lead::over(meanings);
    // The customer's measures with their units ("12 km"), for rows named by a band alone.
    let measured: Vec<Quantity> = question
        .quantities
        .iter()
        .filter(|q| q.unit.is_some())
        .copied()
        .collect();
    let names_it = |r: &TableRow| {
        let Some(name) = &r.row.name else {
            return true;
        };
        if !question.days.is_empty() && !days(&normalize(name), true).is_empty() {
            return true;
        }
        if asked.foreign() {
            // A name that is itself the band ("até 8 km", "Pack of 10") is the table's thing
            // in that band; a band among the other cells is a variant of the thing named.
            return fits(&question.quantities, &bands(name)) == Some(true)
                || meaning_lead.stands_out(meaning(r));
        }
        let source = source_of(r);
        let heading = source.heading.as_deref().unwrap_or_default();
        if asked.names_any(&asked.stems_of(&format!("{heading} {name}"))) {
            return true;
        }
        // A row named by its band alone ("de 8 a 15 km") is the price of what its passage
        // speaks of: the customer's measure in the band's unit ("moramos a uns 12 km") meets
        // it when the passage holds one of their words ("vcs atendem em casa? minha mãe é
        // acamada" and "Para quem não consegue vir até a clínica (idosos acamados)").
        !measured.is_empty()
            && band_only(name).is_some_and(|band| fits(&measured, &[band]) == Some(true))
            && asked.names_any(&asked.stems_of(&source.text))
    };
    let verdicts: Vec<Option<bool>> = rows
        .iter()
        .map(|r| match r.fit(question) {
            Some(true) if !names_it(r) => None,
            verdict => verdict,
        })
        .collect();
    // How much of the question each row's own words hold, counting only the words that tell
    // this table's rows apart (a word every row has says the table is right, not the row).
    // Nor does a word that names one of its columns ("a partir de cuánto no pago el envío?"
    // names the column "Envío gratis a partir de", not the row whose value says "sin envío
    // gratis"): it says what is asked of a row, not which row.
    // Nor do the words by which it asks a time of day ("a que hora abrís?" asks the hours of
    // every row, not of the rows whose access note says "24 horas").
    let labels = column_stems(&rows, asked);
    let time_words = asked.stems_of(&question.time_words.join(" "));
    let shared: HashSet<&String> = asked
        .stems
        .iter()
        .map(|s| &s.0)
        .filter(|s| {
            rows.iter().all(|r| r.stems.contains(*s))
                || labels.contains(*s)
                || time_words.contains(*s)
        })
        .collect();
    // The weight of the question's own words (`carried` false) or of those a follow-up carries
    // over from the question before (true) that `r` holds.
    let telling_of = |r: &TableRow, carried: bool| -> f32 {
        asked
            .stems
            .iter()
            .filter(|(s, _, _, c)| *c == carried && !shared.contains(s) && r.stems.contains(s))
            .map(|(_, w, ..)| *w)
            .sum()
    };
    let own: Vec<f32> = rows.iter().map(|r| telling_of(r, false)).collect();
    // A follow-up's own words come first: the words it carries over from the question before
    // only choose among the rows its own words single out alike ("how much is towel hire?",
    // then "and a padlock?" is the padlock's row, however much "towel hire" weighs).
    let mut carried: Vec<f32> = rows.iter().map(|r| telling_of(r, true)).collect();
    let mut telling = own.clone();
    // A word of the question no row holds may still name a row through another passage
    // ("envío a Huesca?": the zones list says "Zona 2: resto de Aragón (Huesca, Teruel...)"
    // and the price table has a row "Zona 2 (...)").
    for (i, weight) in bridged(&rows, candidates, asked) {
        telling[i] += weight;
    }
    // A number the question names as the documents name things ("envío a la zona 2") tells
    // apart the row whose own name says it ("Zona 2 (resto de Aragón...)"), though every row
    // holds the number among its columns ("De 2 a 5 kg"). Row names are read for numbers only
    // when the question names one.
    let names_numbers = !question.names.is_empty();
    for (i, r) in rows.iter().enumerate() {
        let Some(name) = r.row.name.as_ref().filter(|_| names_numbers) else {
            continue;
        };
        let in_name = crate::knowledge::text::named_numbers(name);
        for (number, weight, _, was_carried) in &asked.stems {
            let named = question
                .names
                .iter()
                .any(|pair| &pair.1 == number && in_name.contains(pair));
            if named && shared.contains(number) {
                if *was_carried {
                    carried[i] += weight;
                } else {
                    telling[i] += weight;
                }
            }
        }
    }
    for (i, r) in rows.iter().enumerate() {
        tracing::debug!(
            target: "palaver::extractive::rows",
            verdict = ?verdicts[i],
            telling = telling[i],
            carried = carried[i],
            meaning = r.candidate.meaning,
            bands = ?r.bands,
            stems = ?r.stems,
            row = %r.row.text.chars().take(70).collect::<String>(),
            "row"
        );
    }
    let text_of = |r: &TableRow| match &column {
        Some(label) => r
            .row
            .cells
            .iter()
            .position(|(l, _)| l == label)
            .map(|i| r.row.with_cell(i))
            .unwrap_or_else(|| r.row.text.clone()),
        None => r.row.text.clone(),
    };
    // The rows `ids` as one reply, a line each.
    let joined = |ids: &[usize]| {
        ids.iter()
            .map(|&i| text_of(&rows[i]))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // The best score of the rows `ids`.
    let best_of = |ids: &[usize]| {
        ids.iter()
            .map(|&i| rows[i].candidate.score)
            .fold(f32::MIN, f32::max)
    };
    // The rows `ids` offered as the question which of them the customer means.
    let which_of = |ids: &[usize], best: f32| {
        let mut which = offer(
            source_of(&rows[ids[0]]),
            capped(joined(ids)),
            best,
            Fit::Neutral,
            true,
            asked,
        );
        which.ask_which = true;
        which
    };
    let eligible: Vec<usize> = (0..rows.len())
        .filter(|&i| verdicts[i] != Some(false))
        .collect();
    let any_exact = eligible.iter().any(|&i| verdicts[i] == Some(true));
    let pool: Vec<usize> = eligible
        .iter()
        .copied()
        .filter(|&i| !any_exact || verdicts[i] == Some(true))
        .collect();
    let best_telling = pool.iter().map(|&i| telling[i]).fold(0.0, f32::max);
    let best_carried = pool
        .iter()
        .filter(|&&i| telling[i] + 1e-6 >= best_telling)
        .map(|&i| carried[i])
        .fold(0.0, f32::max);
    let mut out = Vec::new();
    // A row the customer names by its own words though its band excludes them ("I'm 62, can
    // I get the senior rate?"): shown, it states its band. Only when no row that fits is named
    // as much.
    let best_own_fitting = eligible.iter().map(|&i| own[i]).fold(0.0, f32::max);
    for i in 0..rows.len() {
        if verdicts[i] == Some(false) && own[i] > 0.0 && own[i] > best_own_fitting {
            let r = &rows[i];
            out.push(offer(
                source_of(r),
                capped(r.row.text.clone()),
                r.candidate.score,
                Fit::Neutral,
                true,
                asked,
            ));
        }
    }
    // Nothing singles a row out (no band, size or day, none of the question's words that tell
    // rows apart): the question is about the table ("opening hours?"), or about something the
    // rows do not name ("from Madrid, when is shipping free?" against zones by region). The
    // whole table answers when it fits a message (with the one column the question names,
    // when it names one); a longer one, by the rows that stand out.
    let top = best_of(&pool);
    if !any_exact && best_telling <= 0.0 && best_carried <= 0.0 && pool.len() > 1 {
        let text = joined(&pool);
        // Asked a price in another language, a question may name one row in words the table
        // does not use ("the first assessment" of "Avaliação (primeira consulta)"): only the
        // rows that stand out by meaning answer, as the rows of a longer table do, and every
        // row's price is not said for the one asked.
        let by_meaning = asked.foreign() && question.asks_price;
        if text.chars().count() <= MAX_TABLE_REPLY_CHARS && !by_meaning {
            out.push(offer(
                source_of(&rows[pool[0]]),
                text,
                top,
                Fit::Neutral,
                true,
                asked,
            ));
            return out;
        }
        // The rows that stand out by what their names mean (see `Candidate::meaning`). When
        // several differently named ones stand out alike, and not every row does, the customer
        // is asked which one they mean rather than told the first one's price.
        let meaning = |i: usize| meaning(&rows[i]);
        let meanings: Vec<f32> = pool.iter().map(|&i| meaning(i)).collect();
        let lead = Lead::over(meanings);
        let mut standing: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|&i| lead.stands_out(meaning(i)))
            .collect();
        standing.sort_by(|&a, &b| meaning(b).total_cmp(&meaning(a)));
        tracing::debug!(
            target: "palaver::extractive::rows",
            meanings = ?pool.iter().map(|&i| meaning(i)).collect::<Vec<_>>(),
            standing = ?standing.iter().map(|&i| &rows[i].row.name).collect::<Vec<_>>(),
            "rows by meaning"
        );
        let names: HashSet<&String> = standing
            .iter()
            .filter_map(|&i| rows[i].row.name.as_ref())
            .collect();
        if names.len() > 1 && standing.len() < pool.len() {
            out.push(which_of(&standing, top));
            return out;
        }
        for &i in &standing {
            let r = &rows[i];
            out.push(offer(
                source_of(r),
                capped(text_of(r)),
                r.candidate.score,
                Fit::Neutral,
                true,
                asked,
            ));
        }
        return out;
    }
    // The rows the question singles out most; of those, the ones whose names say least that
    // the question does not ("1x por semana" over "Pilates individual, 1x por semana" for
    // "pilates 1x por semana": the plain row unless the customer asks for the special one).
    let open: Vec<usize> = pool
        .iter()
        .copied()
        .filter(|&i| telling[i] + 1e-6 >= best_telling && carried[i] + 1e-6 >= best_carried)
        .collect();
    let unasked: Vec<usize> = open
        .iter()
        .map(|&i| unasked_words(&rows[i], &shared, asked))
        .collect();
    let fewest = unasked.iter().copied().min().unwrap_or(0);
    // A word of the customer's that the documents never use may spell one that a row's name
    // holds besides the question's ("design de sobrancelha com rena" and "Design de sobrancelha
    // com henna"): then neither the plainest row nor the plainest label is the one meant, and
    // when the rows so spelt are one thing's, they are.
    let unknown: Vec<&str> = question
        .terms
        .iter()
        .filter(|t| t.known.is_none() && !t.carried)
        .map(|t| t.word.as_str())
        .collect();
    let spelt: Vec<usize> = if asked.foreign() {
        Vec::new()
    } else {
        open.iter()
            .copied()
            .filter(|&i| spells_unasked(&rows[i], &shared, asked, &unknown))
            .collect()
    };
    let unnamed = !spelt.is_empty();
    let spelt_names: HashSet<Option<&String>> =
        spelt.iter().map(|&i| rows[i].row.name.as_ref()).collect();
    let open = if spelt_names.len() == 1 { spelt } else { open };
    let distinct_names = open
        .iter()
        .map(|&i| rows[i].row.name.clone())
        .collect::<HashSet<_>>()
        .len();
    let mut open: Vec<usize> = if distinct_names > 1 && !unnamed {
        open.iter()
            .zip(&unasked)
            .filter(|(_, u)| **u == fewest)
            .map(|(i, _)| *i)
            .collect()
    } else {
        open
    };
    // Asked a price, the one row of the table whose name holds the whole question.
    let wholly: Vec<usize> = (0..rows.len())
        .filter(|&i| names_all(&rows[i], asked))
        .collect();
    let named_wholly = match wholly.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    // Differently named rows that the question's words single out alike, none by a band, size
    // or day nor by holding the whole question: the words do not say which one is meant. The
    // one whose label names the question plainest is (see `grounding::meant`: "a avaliação?" is
    // "Avaliação fisioterapêutica", not "Fisioterapia pélvica (avaliação ou sessão)"); else
    // those whose names stand out among the table's by what they mean, when they are one
    // thing's; else the customer is asked which one they mean.
    let mut tied_names: Vec<String> = Vec::new();
    for &i in &open {
        if let Some(name) = &rows[i].row.name {
            if !tied_names.contains(name) {
                tied_names.push(name.clone());
            }
        }
    }
    let decided =
        any_exact || (question.asks_price && named_wholly.is_some_and(|w| open.contains(&w)));
    // The rows of one offer, answered together.
    let together = |ids: &[usize], fit: Fit| {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        offer(
            source_of(&rows[ids[0]]),
            capped(joined(&ids)),
            best_of(&ids),
            fit,
            true,
            asked,
        )
    };
    if tied_names.len() > 1 && !decided && !unnamed {
        // Rows the question names apart ("depilação de axila e buço") are each asked about.
        if grounding::named_apart(&tied_names, asked) {
            out.push(together(&open, Fit::Neutral));
            return out;
        }
        if let Some(name) = meant(&tied_names, asked) {
            open.retain(|&i| rows[i].row.name.as_ref() == Some(name));
        }
    }
    let tied_names: HashSet<Option<&String>> =
        open.iter().map(|&i| rows[i].row.name.as_ref()).collect();
    if tied_names.len() > 1 && !decided {
        let standing: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| meaning_lead.stands_out(meaning(&rows[i])))
            .collect();
        let standing_names: HashSet<Option<&String>> = standing
            .iter()
            .map(|&i| rows[i].row.name.as_ref())
            .collect();
        if standing_names.len() == 1 {
            open = standing;
        } else {
            let mut which = open.clone();
            which.sort_by(|&a, &b| meaning(&rows[b]).total_cmp(&meaning(&rows[a])));
            which.truncate(MAX_ROWS);
            out.push(which_of(&which, best_of(&which)));
            return out;
        }
    }
    // Other things the question names besides the one chosen ("manicure e pedicure, quanto
    // sai?"): rows whose whole names the question's own words say, each with a word the chosen
    // row lacks, are answered with it. Measured with EmbeddingGemma-300M: on the development
    // split, the shipped suites and 361 earlier probe questions no reply changed; of 61 new
    // probe questions on seven development businesses, 12 that name two rows went from one
    // row's price (or the question which of the two) to both.
    if let [one] = open.as_slice() {
        let also: Vec<usize> = (0..rows.len())
            .filter(|&j| j != *one && verdicts[j] != Some(false))
            .filter(|&j| named_besides(&rows[j], &rows[*one], asked))
            .take(MAX_ROWS - 1)
            .collect();
        if !also.is_empty() {
            let fit = if verdicts[*one] == Some(true) {
                Fit::Exact
            } else {
                Fit::Neutral
            };
            out.push(together(&[also, vec![*one]].concat(), fit));
            return out;
        }
    }
    // One product's variants (one name, several sizes or bands), none singled out: together.
    let named = |i: usize| rows[i].row.name.clone().unwrap_or_default();
    let mut grouped: HashMap<String, Vec<usize>> = HashMap::new();
    for &i in &open {
        grouped.entry(named(i)).or_default().push(i);
    }
    for &i in &open {
        let group = &grouped[&named(i)];
        let variants = !any_exact
            && group.len() > 1
            && group.len() <= MAX_ROWS
            && !named(i).is_empty()
            && question.size.is_none()
            && question.quantities.is_empty();
        if variants && group[0] != i {
            continue;
        }
        let fit = if verdicts[i] == Some(true) || (question.asks_price && named_wholly == Some(i)) {
            Fit::Exact
        } else {
            Fit::Neutral
        };
        let (text, best) = if variants {
            (joined(group), best_of(group))
        } else {
            (text_of(&rows[i]), rows[i].candidate.score)
        };
        out.push(offer(
            source_of(&rows[i]),
            capped(text),
            best,
            fit,
            true,
            asked,
        ));
    }
    out
}

/// Whether a row's name holds every word of the question that the documents know (one at
/// least): asked a price, the one row of its table that does states the price of the very
/// thing asked ("quanto custa a
/// primeira consulta?" and the row "Consulta de avaliação (primeira consulta, ...)"), where a
/// passage of prose about it may state the price of something else.
fn names_all(row: &TableRow<'_>, asked: &Asked) -> bool {
    let Some(name) = &row.row.name else {
        return false;
    };
    let held = asked.stems_of(name);
    let mut known = asked
        .stems
        .iter()
        .filter(|(_, _, known, carried)| *known && !carried)
        .peekable();
    known.peek().is_some() && known.all(|(s, ..)| held.contains(s))
}

/// How many words of a row's name, besides those every row of its table has and its numbers,
/// the question does not hold.
fn unasked_words(row: &TableRow<'_>, shared: &HashSet<&String>, asked: &Asked) -> usize {
    let Some(name) = &row.row.name else {
        return 0;
    };
    let question: HashSet<&String> = asked.stems.iter().map(|s| &s.0).collect();
    asked
        .stems_of(name)
        .iter()
        .filter(|s| !s.chars().any(|c| c.is_ascii_digit()))
        .filter(|s| !crate::knowledge::text::is_stopword(s))
        .filter(|s| !shared.contains(s) && !question.contains(s))
        .count()
}

/// Whether the question names `row` besides `chosen`: it says `row`'s whole label
/// ([`grounding::says_label`]) and the two are named apart ([`grounding::named_apart`]):
/// "manicure e pedicure" names "Manicure" besides "Pedicure"; "design de sobrancelha com
/// henna" names nothing besides "Design de sobrancelha com henna".
fn named_besides(row: &TableRow<'_>, chosen: &TableRow<'_>, asked: &Asked) -> bool {
    let (Some(name), Some(chosen)) = (&row.row.name, &chosen.row.name) else {
        return false;
    };
    name != chosen
        && grounding::says_label(name, asked)
        && grounding::named_apart(&[name.clone(), chosen.clone()], asked)
}

/// Whether one of the customer's words the documents never use (`unknown`, normalised) spells
/// a word of `row`'s name that [`unasked_words`] counts, a letter or two apart ("rena" and
/// "henna"): too short or too far for the lexicon to read as the documents' word among all of
/// theirs, it is near enough to one of the few the question leaves unsaid.
fn spells_unasked(
    row: &TableRow<'_>,
    shared: &HashSet<&String>,
    asked: &Asked,
    unknown: &[&str],
) -> bool {
    let Some(name) = &row.row.name else {
        return false;
    };
    let question: HashSet<&String> = asked.stems.iter().map(|s| &s.0).collect();
    normalize(name)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= SPELT_MIN_LETTERS)
        .filter(|w| !crate::knowledge::text::is_stopword(w))
        .filter(|w| {
            let stem = asked.stems_of(w);
            !stem
                .iter()
                .any(|s| shared.contains(s) || question.contains(s))
        })
        .any(|w| {
            unknown.iter().any(|u| {
                let far = strsim::damerau_levenshtein(u, w);
                u.chars().count() >= SPELT_MIN_LETTERS
                    && far <= 2
                    && far * 2 < u.chars().count().max(w.chars().count())
            })
        })
}

/// Rows named through another passage: for each word of the question that no row holds, a
/// retrieved sentence outside the table that holds it as a name (capitalised) and names one row by the head of its
/// name (its words before a bracket or a comma, "Zona 2") credits that row with the word's
/// weight.
fn bridged(rows: &[TableRow<'_>], candidates: &[Candidate], asked: &Asked) -> Vec<(usize, f32)> {
    let unheld: Vec<(&String, f32)> = asked
        .stems
        .iter()
        .filter(|(s, _, known, carried)| {
            *known && !carried && !rows.iter().any(|r| r.stems.contains(s))
        })
        .map(|(s, w, ..)| (s, *w))
        .collect();
    if unheld.is_empty() {
        return Vec::new();
    }
    let heads: Vec<Option<String>> = rows
        .iter()
        .map(|r| {
            let name = r.row.name.as_deref()?;
            let head = name.split(['(', ',', '—', ':']).next()?.trim();
            let head = normalize(head);
            (head.split_whitespace().count() >= 1 && head.len() >= 3).then_some(head)
        })
        .collect();
    let in_table: HashSet<&str> = rows.iter().map(|r| r.candidate.text.as_str()).collect();
    let mut out: Vec<(usize, f32)> = Vec::new();
    for c in candidates {
        if in_table.contains(c.text.as_str()) {
            continue;
        }
        // Only names bridge ("Huesca" in a list of a zone's provinces): a word the sentence
        // writes with a capital. A common word it shares with the question ("no pago el
        // envío" and "los paga el destinatario") says nothing of which row.
        let names: String = c
            .text
            .split(|ch: char| !ch.is_alphanumeric())
            .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
            .collect::<Vec<_>>()
            .join(" ");
        let held = asked.stems_of(&names);
        let weight: f32 = unheld
            .iter()
            .filter(|(s, _)| held.contains(*s))
            .map(|(_, w)| *w)
            .sum();
        if weight <= 0.0 {
            continue;
        }
        let text = normalize(&c.text);
        let named: Vec<usize> = heads
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                h.as_deref()
                    .is_some_and(|h| crate::knowledge::text::contains_phrase(&text, h))
            })
            .map(|(i, _)| i)
            .collect();
        if let [one] = named.as_slice() {
            if !out.iter().any(|(i, _)| i == one) {
                out.push((*one, weight));
            }
        }
    }
    out
}

/// The labels of a table's columns that state a price in one of its rows at least, in the
/// order they first appear. Only prices are alternatives to choose between ("6-month contract:
/// £49; 12-month contract: £44"); a weight or a code beside a price is not a column to pick
/// instead of it.
fn price_labels<'r>(rows: &'r [TableRow<'_>]) -> Vec<&'r String> {
    let mut labels: Vec<&String> = Vec::new();
    for r in rows {
        for i in r.row.value_cells() {
            let (label, value) = &r.row.cells[i];
            if !label.is_empty() && states_a_price(value) && !labels.contains(&label) {
                labels.push(label);
            }
        }
    }
    labels
}

/// The price column of a table the question names, when it names exactly one of several: by
/// its label's words ("12-month contract", "Rolling monthly (no contract)") or by its band
/// holding the customer's number ("Más de 5 kg" for 8 kg).
fn named_column(rows: &[TableRow<'_>], question: &Question, asked: &Asked) -> Option<String> {
    let pool = price_labels(rows);
    if pool.len() < 2 {
        return None;
    }
    // A band holding the customer's number names its column; else the label that holds the
    // most of the question's words, when one holds more than every other ("a partir de cuánto
    // no pago el envío?" names "Envío gratis a partir de" over "Precio del envío").
    let by_band: Vec<&String> = pool
        .iter()
        .copied()
        .filter(|label| fits(&question.quantities, &bands(label)) == Some(true))
        .collect();
    if let [one] = by_band.as_slice() {
        return Some((*one).clone());
    }
    if question.asks_cheapest {
        if let Some(label) = cheapest_column(rows, &pool) {
            return Some(label.clone());
        }
    }
    // A word of the table's heading is what every column is about ("sessions" under "Prices
    // for 60-minute sessions"): it names none of them, and "Price per session" is not meant
    // over "Price" by a customer asking the price of 20 sessions.
    // The rows of one passage share its heading: each is read once, not once per row.
    let prefixes: HashSet<&str> = rows
        .iter()
        .map(|r| {
            r.candidate
                .key
                .strip_suffix(r.candidate.text.as_str())
                .unwrap_or_default()
        })
        .collect();
    let heading: HashSet<String> = prefixes
        .into_iter()
        .flat_map(|prefix| asked.stems_of(prefix))
        .collect();
    let words = |label: &str| -> f32 {
        let held = asked.stems_of(label);
        asked
            .stems
            .iter()
            .filter(|(s, _, _, carried)| !carried && held.contains(s) && !heading.contains(s))
            .map(|(_, w, ..)| *w)
            .sum()
    };
    let mut scored: Vec<(f32, &String)> = pool.into_iter().map(|l| (words(l), l)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    match scored.as_slice() {
        [(best, label), rest @ ..]
            if *best > 0.0 && rest.first().is_none_or(|(next, _)| next < best) =>
        {
            Some((*label).clone())
        }
        _ => None,
    }
}

/// The one of `labels` whose amount is the lowest in every row of `rows` that states amounts
/// under two labels or more ("Budget: £55; Mid-range: £75; Premium: £100"), when one is.
fn cheapest_column<'l>(rows: &[TableRow<'_>], labels: &[&'l String]) -> Option<&'l String> {
    let mut cheapest: Option<&'l String> = None;
    for r in rows {
        let priced: Vec<(&'l String, f64)> = labels
            .iter()
            .filter_map(|&label| {
                let (_, value) = r.row.cells.iter().find(|(l, _)| l == label)?;
                Some((label, *amounts(value).first()?))
            })
            .collect();
        if priced.len() < 2 {
            continue;
        }
        let lowest = priced.iter().map(|(_, v)| *v).fold(f64::MAX, f64::min);
        let lowest: Vec<&'l String> = priced
            .iter()
            .filter(|(_, v)| *v == lowest)
            .map(|(label, _)| *label)
            .collect();
        let [label] = lowest[..] else {
            return None;
        };
        if cheapest.is_some_and(|c| c != label) {
            return None;
        }
        cheapest = Some(label);
    }
    cheapest
}

/// The price column of a table whose label the documents define by months ("Temporada alta:
/// del 1 de julio al 15 de septiembre") holding the month the question names ("la familiar en
/// noviembre"): the one label whose defining sentences name that month, or, when none does,
/// the one label defined by no month while every other is ("El resto del año es temporada
/// baja"). A question that names no month names the column whose definitions alone hold its
/// words ([`defined_by_words`]). A sentence defines a label when it holds all of the label's
/// words, outside the table's own rows: a sentence of the retrieved passages, or of their
/// documents' openings ([`Source::lead`]), where a document says what its terms mean.
fn defined_column(
    sources: &[Source],
    rows: &[TableRow<'_>],
    candidates: &[Candidate],
    question: &Question,
    asked: &Asked,
) -> Option<String> {
    let labels = price_labels(rows);
    if labels.len() < 2 {
        return None;
    }
    let own_rows: HashSet<&str> = rows.iter().map(|r| r.candidate.text.trim()).collect();
    let leads: Vec<String> = sources
        .iter()
        .filter_map(|s| s.lead.as_deref())
        .flat_map(crate::knowledge::text::sentences)
        .collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let sentences: Vec<(&str, HashSet<String>)> = candidates
        .iter()
        .map(|c| c.text.trim())
        .chain(leads.iter().map(|l| l.trim()))
        .filter(|text| !own_rows.contains(text) && seen.insert(text))
        .map(|text| (text, asked.stems_of(text)))
        .collect();
    let definitions: Vec<Vec<&(&str, HashSet<String>)>> = labels
        .iter()
        .map(|label| {
            let words = asked.content_stems(label);
            sentences
                .iter()
                .filter(|(_, stems)| !words.is_empty() && words.iter().all(|w| stems.contains(w)))
                .collect()
        })
        .collect();
    if question.months.is_empty() {
        return defined_by_words(rows, &labels, &definitions, asked);
    }
    let defined: Vec<HashSet<usize>> = definitions
        .iter()
        .map(|sentences| {
            sentences
                .iter()
                .flat_map(|(text, _)| months(&normalize(text)))
                .collect()
        })
        .collect();
    let holding: Vec<usize> = (0..labels.len())
        .filter(|&i| question.months.iter().any(|m| defined[i].contains(m)))
        .collect();
    match holding.as_slice() {
        [one] => Some(labels[*one].clone()),
        [] => {
            let undefined: Vec<usize> = (0..labels.len())
                .filter(|&i| defined[i].is_empty())
                .collect();
            match undefined.as_slice() {
                [one] => Some(labels[*one].clone()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The one of `labels` whose `definitions` hold the most of the question's own words that
/// no other label's definitions hold, and neither the rows nor the labels do ("la familiar en
/// semana santa" against "Temporada alta: del 1 de julio al 15 de septiembre, Semana Santa,
/// puentes..."; "semana" alone is also in "entre semana se puede reservar una sola noche",
/// under the low season).
fn defined_by_words(
    rows: &[TableRow<'_>],
    labels: &[&String],
    definitions: &[Vec<&(&str, HashSet<String>)>],
    asked: &Asked,
) -> Option<String> {
    let named: HashSet<String> = rows
        .iter()
        .flat_map(|r| r.stems.iter().cloned())
        .chain(labels.iter().flat_map(|l| asked.content_stems(l)))
        .collect();
    let mut scores = vec![0.0f32; labels.len()];
    for (stem, weight, _, carried) in &asked.stems {
        if *carried || named.contains(stem) {
            continue;
        }
        let holders: Vec<usize> = (0..labels.len())
            .filter(|&i| definitions[i].iter().any(|(_, stems)| stems.contains(stem)))
            .collect();
        if let [one] = holders.as_slice() {
            scores[*one] += weight;
        }
    }
    let best = (0..labels.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b]))?;
    let alone = (0..labels.len()).all(|i| i == best || scores[i] < scores[best]);
    (scores[best] > 0.0 && alone).then(|| labels[best].clone())
}

/// The question's words found in the labels of a table's value columns ("Precio del envío",
/// "Envío gratis a partir de").
fn column_stems<'s>(rows: &[TableRow<'_>], asked: &'s Asked) -> HashSet<&'s String> {
    let labels: HashSet<&String> = rows
        .iter()
        .flat_map(|r| {
            r.row
                .value_cells()
                .into_iter()
                .map(move |i| &r.row.cells[i].0)
        })
        .filter(|l| !l.is_empty())
        .collect();
    let held: HashSet<String> = labels.iter().flat_map(|l| asked.stems_of(l)).collect();
    asked
        .stems
        .iter()
        .map(|s| &s.0)
        .filter(|s| held.contains(*s))
        .collect()
}

/// The offers ranked by the weighted sum of their standardised signals, best first (ties go to
/// the earlier offer, in retrieval order). `spread` is the standard deviation of the scores of
/// every sentence read for the question; the offers' relevances and best-sentence scores are
/// standardised over at least [`LEAST_SPREAD`] of it ([`standardised`]).
pub fn choose<'a>(offers: Vec<Offer<'a>>, question: &Question, spread: f32) -> Vec<Ranked<'a>> {
    let least = LEAST_SPREAD * spread;
    let offers: Vec<Offer<'a>> = offers
        .into_iter()
        .filter_map(|mut offer| match section_days_fit(&offer, question) {
            Some(false) => None,
            Some(true) => {
                if offer.fit == Fit::Neutral {
                    offer.fit = Fit::Exact;
                }
                Some(offer)
            }
            None => Some(offer),
        })
        .collect();
    let relevance = standardised(offers.iter().map(|o| o.source.relevance).collect(), least);
    let retrieval = standardised(
        offers
            .iter()
            .map(|o| {
                offers
                    .iter()
                    .map(|other| outranks(o.source, other.source))
                    .sum::<i32>() as f32
            })
            .collect(),
        0.0,
    );
    let sentence = standardised(offers.iter().map(|o| o.best).collect(), least);
    // An offer that holds only in months the question does not name is an exception to what
    // holds the rest of the year, unless the question's words point at it more than at any
    // offer that holds all year ("voces fecham no fim de ano?" and "Recesso de fim de ano: a
    // clínica fica fechada de 24 de dezembro a 1º de janeiro").
    let exceptions: Vec<bool> = offers
        .iter()
        .map(|o| question.months.is_empty() && seasonal(&o.text))
        .collect();
    let all_year_coverage = offers
        .iter()
        .zip(&exceptions)
        .filter(|(_, s)| !**s)
        .map(|(o, _)| o.coverage)
        .fold(0.0, f32::max);
    let mut ranked: Vec<Ranked<'a>> = offers
        .into_iter()
        .enumerate()
        .map(|(i, offer)| {
            // A share answers how much as an amount does: "qnto é o sinal pra noiva?" is
            // answered by "Para noivas pedimos um sinal de 30%", not by the bride's package.
            let price =
                question.asks_price && (states_a_price(&offer.text) || states_a_share(&offer.text));
            let season = exceptions[i] && offer.coverage <= all_year_coverage;
            let total = WEIGHT_RELEVANCE * relevance[i]
                + WEIGHT_RETRIEVAL * retrieval[i]
                + WEIGHT_SENTENCE * sentence[i]
                + WEIGHT_WORDS * offer.coverage
                + WEIGHT_PRICE * f32::from(u8::from(price))
                + WEIGHT_EXACT * f32::from(u8::from(offer.fit == Fit::Exact))
                - WEIGHT_SEASON * f32::from(u8::from(season));
            Ranked { offer, total }
        })
        .collect();
    ranked.sort_by(|a, b| b.total.total_cmp(&a.total));
    for r in ranked.iter().take(6) {
        tracing::debug!(
            target: "palaver::extractive::offers",
            total = r.total,
            n = r.offer.source.n,
            relevance = r.offer.source.relevance,
            best = r.offer.best,
            coverage = r.offer.coverage,
            exact = r.offer.fit == Fit::Exact,
            text = %r.offer.text.chars().take(90).collect::<String>(),
            "offer"
        );
    }
    ranked
}

/// Whether every line of `text` holds only in some months ([`seasons`]): "En agosto (del 1 al
/// 31) abrimos solo por las mañanas" is an exception to the opening hours, not the answer to
/// "a que hora abris?", which names no month; "Prices from 1 April 2025" holds now.
fn seasonal(text: &str) -> bool {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    lines.peek().is_some() && lines.all(|l| !seasons(&normalize(l)).is_empty())
}

/// 1 when the dense and the keyword search both rank `a` at least as high as `b`, and one of
/// them higher; -1 the other way round; 0 when they disagree, or rank both alike. Summed over
/// the other offers, it orders passages as the retrieval's place does, but for two passages
/// the searches rank in opposite orders ("Cómo devolver" first by meaning and second by words,
/// "Plazo para devolver" the other way): these are alike to the retrieval, where their places
/// are a whole rank apart. A passage a search did not find ranks below every one it found.
fn outranks(a: &Source, b: &Source) -> i32 {
    use std::cmp::Ordering;
    let by = |x: Option<usize>, y: Option<usize>| match (x, y) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => Ordering::Equal,
    };
    match (
        by(a.dense_rank, b.dense_rank),
        by(a.keyword_rank, b.keyword_rank),
    ) {
        (Ordering::Greater, Ordering::Less) | (Ordering::Less, Ordering::Greater) => 0,
        (Ordering::Greater, _) | (_, Ordering::Greater) => 1,
        (Ordering::Less, _) | (_, Ordering::Less) => -1,
        _ => 0,
    }
}

/// How the days the question names meet the days an offer's section heading names (a
/// timetable by day, a menu for the weekend): `Some(false)` when the heading names other days
/// and the offer itself names none of the question's ("and Saturday?" is not answered from
/// "Timetable > Tuesday"; "Monday to Saturday" may still say "closed on Sundays"),
/// `Some(true)` when it names one of them, `None` when either names no day.
fn section_days_fit(offer: &Offer<'_>, question: &Question) -> Option<bool> {
    if question.days.is_empty() {
        return None;
    }
    let heading = heading_days(offer);
    if heading.is_empty() {
        return None;
    }
    Some(names_a_day_in(offer, question, &heading))
}

/// The weekdays `offer`'s section heading names.
fn heading_days(offer: &Offer<'_>) -> Vec<usize> {
    days(
        &normalize(offer.source.heading.as_deref().unwrap_or_default()),
        false,
    )
}

/// Whether `offer` or its section's heading names one of the days the question names.
pub fn names_a_day_asked(offer: &Offer<'_>, question: &Question) -> bool {
    names_a_day_in(offer, question, &heading_days(offer))
}

/// Whether the days of `offer`'s section `heading`, or its text, hold one the question names.
fn names_a_day_in(offer: &Offer<'_>, question: &Question, heading: &[usize]) -> bool {
    let meets = |named: &[usize]| question.days.iter().any(|d| named.contains(d));
    meets(heading) || meets(&days(&normalize(&offer.text), false))
}

/// `values` less their mean, over their standard deviation or `least`, whichever is larger
/// (just less the mean when they are all alike and `least` is 0).
pub fn standardised(values: Vec<f32>, least: f32) -> Vec<f32> {
    let (mean, sd) = crate::knowledge::relevance::mean_and_sd(&values);
    let sd = sd.max(least);
    let sd = if sd > f32::EPSILON { sd } else { 1.0 };
    values.into_iter().map(|v| (v - mean) / sd).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(n: usize) -> Source {
        Source {
            n,
            source: "shop.md".into(),
            title: "Shop".into(),
            heading: Some("Shop > Opening hours".into()),
            text: String::new(),
            similarity: 0.5,
            relevance: 0.3,
            dense_rank: Some(n),
            keyword_rank: Some(n),
            context: String::new(),
            lead: None,
        }
    }

    fn offer<'a>(source: &'a Source, text: &str, coverage: f32) -> Offer<'a> {
        Offer {
            source,
            text: text.into(),
            best: 0.5,
            coverage,
            fit: Fit::Neutral,
            row: false,
            ask_which: false,
            dated: false,
        }
    }

    #[test]
    fn an_exception_for_some_months_answers_only_when_asked_for() {
        // The exception's passage ranks first: alike otherwise, it would answer.
        let (first, second) = (source(1), source(2));
        let august = "In August we open only in the mornings, from 10:00 to 14:00.";
        let hours = "Monday to Friday — Open: 10:00 to 20:00.";
        let chosen = |question: &str, coverage: [f32; 2]| {
            let offers = vec![
                offer(&first, august, coverage[0]),
                offer(&second, hours, coverage[1]),
            ];
            choose(offers, &Question::read(question, None, Some("en")), 0.1)[0]
                .offer
                .text
                .clone()
        };
        assert_eq!(chosen("what time do you open?", [0.5, 0.5]), hours);
        assert_eq!(
            chosen("what time do you open in august?", [0.5, 0.5]),
            august
        );
        // The question's words point at the exception more than at what holds all year.
        assert_eq!(
            chosen("what time do you open for the summer?", [1.0, 0.5]),
            august
        );
        // What holds since a date holds now.
        let since = "From 1 April 2025 we open at 10:00.";
        let offers = vec![offer(&first, since, 0.5), offer(&second, hours, 0.5)];
        let ranked = choose(
            offers,
            &Question::read("what time do you open?", None, Some("en")),
            0.1,
        );
        assert_eq!(ranked[0].offer.text, since);
    }
}
