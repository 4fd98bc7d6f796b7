//! Reading a customer's question for the extractive answerer: its content terms (what it is
//! about, in the documents' own words where they have them), the quantities it gives, the size
//! or day it names, and whether it asks a price. A follow-up ("e 3x?", "and on Saturday?") is
//! read with the question before it: what it says replaces what that one said of the same kind
//! (a number of the same unit, another size, another day), and the rest carries over.

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::knowledge::lexicon::Lexicon;
use crate::knowledge::quantity::{self, Quantity};
use crate::knowledge::text::{contains_phrase, terms, words};
use crate::language::normalize;

/// Words that say what kind of answer is wanted rather than what it is about ("how much",
/// "time", "precio"), in the shipped languages and a few of French and German, normalised.
/// They weigh little: every price row states a price, every hours line an hour. Words of
/// opening ("open", "horário", "abren", "ouvert") are not among them: they name what is asked,
/// the opening hours, which a timetable of classes does not give though it states hours too.
const ASKING_WORDS: &[&str] = &[
    // en
    "much",
    "many",
    "cost",
    "costs",
    "price",
    "prices",
    "charge",
    "charges",
    "fee",
    "fees",
    "pay",
    "time",
    "times",
    "long",
    "take",
    "get",
    "need",
    "want",
    "like",
    "know",
    "tell",
    "available",
    "offer",
    "offers",
    "info",
    "information",
    "also",
    "just",
    "only",
    "still",
    "yes",
    "ok",
    "okay",
    "guys",
    "anyone",
    "would",
    // pt
    "quanto",
    "quanta",
    "quantos",
    "quantas",
    "custa",
    "custam",
    "custo",
    "preco",
    "precos",
    "valor",
    "valores",
    "tempo",
    "cobram",
    "pagar",
    "fica",
    "sai",
    "atendem",
    "atende",
    "fazem",
    "faz",
    "tem",
    "teem",
    "tenho",
    "queria",
    "quero",
    "queremos",
    "gostaria",
    "saber",
    "preciso",
    "pode",
    "podem",
    "posso",
    "consigo",
    "tambem",
    "ainda",
    "so",
    "sim",
    "boa",
    "bom",
    "tarde",
    "noite",
    "dia",
    "ola",
    "oi",
    "tudo",
    "bem",
    "entao",
    "aqui",
    "ai",
    "vcs",
    "voces",
    "voce",
    "hein",
    "ne",
    "gente",
    // es
    "cuanto",
    "cuanta",
    "cuantos",
    "cuantas",
    "cuesta",
    "cuestan",
    "coste",
    "costo",
    "precio",
    "precios",
    "tiempo",
    "vale",
    "valen",
    "cobrais",
    "cobran",
    "teneis",
    "tienen",
    "hacen",
    "haceis",
    "quiero",
    "quisiera",
    "necesito",
    "puedo",
    "puede",
    "podemos",
    "pueden",
    "podeis",
    "tambien",
    "todavia",
    "solo",
    "buenas",
    "buenos",
    "dias",
    "tardes",
    "noches",
    "hola",
    "vosotros",
    "ahi",
    "alli",
    "ustedes",
    // light verbs, which say little of what is asked ("feito aí na clínica", "made to measure")
    "feito",
    "feita",
    "feitos",
    "feitas",
    "fazer",
    "fizer",
    "made",
    "make",
    "done",
    "do",
    "does",
    "hecho",
    "dar",
    "dais",
    "dan",
    "dao",
    "hecha",
    "hacer",
    "hace",
    "hago",
    "ter",
    "tener",
    "have",
    "has",
    // fr, de
    "combien",
    "prix",
    "temps",
    "coute",
    "kostet",
    "preis",
];

/// [`ASKING_WORDS`], to look words up in.
static ASKING: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| ASKING_WORDS.iter().copied().collect());

/// Weekday names and their short forms, normalised, by day (Monday first), in the shipped
/// languages. Short forms count only where a row names its days ("Seg–Sex", "Mon-Fri").
const WEEKDAYS: &[(&[&str], &[&str])] = &[
    (
        &[
            "monday", "mondays", "segunda", "segundas", "lunes", "lundi", "montag",
        ],
        &["mon", "seg", "lun", "mo"],
    ),
    (
        &[
            "tuesday", "tuesdays", "terca", "tercas", "martes", "mardi", "dienstag",
        ],
        &["tue", "tues", "ter", "mar", "di"],
    ),
    (
        &[
            "wednesday",
            "wednesdays",
            "quarta",
            "quartas",
            "miercoles",
            "mercredi",
            "mittwoch",
        ],
        &["wed", "qua", "mie", "mi"],
    ),
    (
        &[
            "thursday",
            "thursdays",
            "quinta",
            "quintas",
            "jueves",
            "jeudi",
            "donnerstag",
        ],
        &["thu", "thur", "thurs", "qui", "jue", "do"],
    ),
    (
        &[
            "friday", "fridays", "sexta", "sextas", "viernes", "vendredi", "freitag",
        ],
        &["fri", "sex", "vie", "fr"],
    ),
    (
        &[
            "saturday",
            "saturdays",
            "sabado",
            "sabados",
            "samedi",
            "samstag",
        ],
        &["sat", "sab", "sa"],
    ),
    (
        &[
            "sunday", "sundays", "domingo", "domingos", "dimanche", "sonntag",
        ],
        &["sun", "dom", "so"],
    ),
];

/// Phrases that name the working week (Monday to Friday), normalised.
const WORKING_WEEK: &[&str] = &[
    "weekday",
    "weekdays",
    "week days",
    "during the week",
    "in the week",
    "durante a semana",
    "dias de semana",
    "dia de semana",
    "dias uteis",
    "dia util",
    "durante la semana",
    "entre semana",
    "dias laborables",
    "en semana",
    "en la semana",
    "en semaine",
    "wochentags",
];

/// Phrases that name the weekend (Saturday and Sunday), normalised.
const WEEKEND: &[&str] = &[
    "weekend",
    "weekends",
    "fim de semana",
    "fins de semana",
    "final de semana",
    "finais de semana",
    "fds",
    "fin de semana",
    "findes",
    "finde",
    "week end",
    "wochenende",
];

/// Words that join the first and last day of a range ("Monday to Friday", "segunda a sexta").
const DAY_RANGE_JOINS: &[&str] = &[
    "to", "a", "al", "till", "until", "through", "thru", "ate", "hasta", "bis", "au",
];

/// The words of `normal` (normalised text) as days and months are read from them: a range
/// written with a dash ("seg-sex", "mon–fri", "June-August") is its two ends with "-" between.
fn date_words(normal: &str) -> Vec<&str> {
    normal
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '–'))
        .flat_map(|w| {
            let dashed: Vec<&str> = w.split(['-', '–']).filter(|p| !p.is_empty()).collect();
            if dashed.len() == 2 {
                vec![dashed[0], "-", dashed[1]]
            } else {
                dashed
            }
        })
        .collect()
}

/// The weekdays `normal` (normalised text) names (0 = Monday), in order: days by name, ranges
/// ("Monday to Friday", "seg-sex"), the working week ("durante a semana") and the weekend.
/// `short` also reads short forms ("Sat"), for rows, whose names are terse.
pub fn days(normal: &str, short: bool) -> Vec<usize> {
    let words = date_words(normal);
    let day_of = |w: &str| {
        WEEKDAYS
            .iter()
            .position(|(names, shorts)| names.contains(&w) || (short && shorts.contains(&w)))
    };
    let mut out: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let Some(first) = day_of(words[i]) else {
            i += 1;
            continue;
        };
        let joined = words
            .get(i + 1)
            .is_some_and(|w| *w == "-" || DAY_RANGE_JOINS.contains(w));
        match words.get(i + 2).and_then(|w| day_of(w)).filter(|_| joined) {
            Some(last) if last > first => {
                out.extend(first..=last);
                i += 3;
            }
            _ => {
                out.push(first);
                i += 1;
            }
        }
    }
    if WORKING_WEEK.iter().any(|p| contains_phrase(normal, p)) {
        out.extend(0..5);
    }
    if WEEKEND.iter().any(|p| contains_phrase(normal, p)) {
        out.extend(5..7);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Month names, normalised, by month (January first), in the shipped languages.
const MONTHS: &[&[&str]] = &[
    &["january", "janeiro", "enero", "janvier", "januar"],
    &["february", "fevereiro", "febrero", "fevrier", "februar"],
    &["march", "marco", "marzo", "mars", "marz"],
    &["april", "abril", "avril"],
    &["may", "maio", "mayo", "mai"],
    &["june", "junho", "junio", "juin", "juni"],
    &["july", "julho", "julio", "juillet", "juli"],
    &["august", "agosto", "aout"],
    &[
        "september",
        "setembro",
        "septiembre",
        "setiembre",
        "septembre",
    ],
    &["october", "outubro", "octubre", "octobre", "oktober"],
    &["november", "novembro", "noviembre", "novembre"],
    &["december", "dezembro", "diciembre", "decembre", "dezember"],
];

/// Month names that are other words too ("may I", "march", "Marco"): months only next to a
/// number or after a word that places a date ("in May", "15 March", "em março").
const MONTH_HOMOGRAPHS: &[&str] = &["may", "march", "marco", "mars"];

/// Words that place a date before a month's name.
const DATE_CUES: &[&str] = &[
    "in", "of", "from", "to", "until", "till", "since", "next", "last", "em", "de", "do", "ate",
    "desde", "en", "del", "hasta", "a", "al", "au", "im", "ab", "bis",
];

/// Words that may stand between the first and last month of a range besides the word that
/// joins them ("del 1 de julio al 15 de septiembre", "from 1st May to 30th June").
const DATE_FILLERS: &[&str] = &[
    "de", "del", "do", "da", "of", "the", "le", "em", "en", "el", "dem",
];

/// The months `normal` (normalised text) names (0 = January), in order: months by name, and
/// ranges ("de abril a octubre", "del 23 de diciembre al 6 de enero", "June-August"), which
/// may run over the year's end. A range that starts or ends within a month holds that month.
pub fn months(normal: &str) -> Vec<usize> {
    in_order(month_spans(normal))
}

/// The months within which what `normal` (normalised text) says holds, as [`months`] reads
/// them, but for a date that only says since when ("Prices from 1 April 2025", "válidos desde
/// março", "a partir de 1º de fevereiro"): what is in force since a date holds in every month
/// after it. "En agosto abrimos solo por las mañanas" holds in August; "From 1 November to 28
/// February we open at 10:00", in those months.
pub fn seasons(normal: &str) -> Vec<usize> {
    in_order(month_spans(normal).into_iter().filter(|span| !span.since))
}

/// The months of `spans`, each once, in the year's order.
fn in_order(spans: impl IntoIterator<Item = MonthSpan>) -> Vec<usize> {
    let mut out: Vec<usize> = spans.into_iter().flat_map(|span| span.months).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Words that say a date is when something starts to hold, with no end ("since", "desde";
/// "partir" of "a partir de").
const SINCE_CUES: &[&str] = &["since", "from", "desde", "partir", "depuis", "seit", "ab"];

/// A month or a range of months that a text names.
struct MonthSpan {
    /// The months, in order.
    months: Vec<usize>,
    /// Whether it is a lone date said as a start ("from 1 April 2025").
    since: bool,
}

/// The months and ranges of months `normal` (normalised text) names, in order.
fn month_spans(normal: &str) -> Vec<MonthSpan> {
    let words = date_words(normal);
    let number = |w: &str| w.starts_with(|c: char| c.is_ascii_digit());
    let month_at = |i: usize| {
        let w = words[i];
        let month = MONTHS.iter().position(|names| names.contains(&w))?;
        let placed = i
            .checked_sub(1)
            .is_some_and(|p| number(words[p]) || DATE_CUES.contains(&words[p]))
            || words.get(i + 1).is_some_and(|n| number(n));
        (placed || !MONTH_HOMOGRAPHS.contains(&w)).then_some(month)
    };
    // Whether the date ending at word `i` is said as a start: the word before its day and
    // fillers is a "since" cue.
    let said_since = |i: usize| {
        words[..i]
            .iter()
            .rev()
            .find(|w| !number(w) && !DATE_FILLERS.contains(w))
            .is_some_and(|w| SINCE_CUES.contains(w))
    };
    let named: Vec<(usize, usize)> = (0..words.len())
        .filter_map(|i| month_at(i).map(|m| (i, m)))
        .collect();
    let joins = |w: &&str| *w == "-" || DAY_RANGE_JOINS.contains(w);
    let mut out = Vec::new();
    let mut k = 0;
    while k < named.len() {
        let (i, first) = named[k];
        let range_to = named.get(k + 1).filter(|(j, _)| {
            let between = &words[i + 1..*j];
            between.iter().any(joins)
                && between
                    .iter()
                    .all(|w| joins(w) || DATE_FILLERS.contains(w) || number(w))
        });
        match range_to {
            Some(&(_, last)) => {
                let mut month = first;
                let mut months = vec![month];
                while month != last {
                    month = (month + 1) % 12;
                    months.push(month);
                }
                out.push(MonthSpan {
                    months,
                    since: false,
                });
                k += 2;
            }
            None => {
                out.push(MonthSpan {
                    months: vec![first],
                    since: said_since(i),
                });
                k += 1;
            }
        }
    }
    out
}

/// Clothing and product sizes, as customers name them.
const SIZES: &[&str] = &["xxs", "xs", "s", "m", "l", "xl", "xxl", "xxxl"];

/// Words that say what follows is a size ("talla M", "tamanho G", "size L").
const SIZE_CUES: &[&str] = &[
    "talla", "tamanho", "tam", "size", "taille", "grosse", "talle",
];

/// One content term of a question.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// As the customer wrote it, normalised.
    pub word: String,
    /// As the customer wrote it, lower-case with its accents (for stemming).
    pub written: String,
    /// The documents' form of it, when they have one ([`Lexicon::canonical`]).
    pub known: Option<String>,
    /// How much it tells passages apart ([`Lexicon::idf`] of its known form).
    pub weight: f32,
    /// Carried over from the question this one follows up.
    pub carried: bool,
}

/// A question as the answerer reads it.
#[derive(Debug, Clone, Default)]
pub struct Question {
    /// Content terms, most telling first.
    pub terms: Vec<Term>,
    /// Quantities given ("12 km", "2x", "I'm 68").
    pub quantities: Vec<Quantity>,
    /// A size named ("M", "XL"), upper-cased.
    pub size: Option<String>,
    /// The weekdays named (0 = Monday): a day, a range, the working week or the weekend.
    pub days: Vec<usize>,
    /// The months named (0 = January), alone or in ranges.
    pub months: Vec<usize>,
    /// Whether it asks what something costs.
    pub asks_price: bool,
    /// The unit of the quantity it asks for: "how many days", "quantas vezes", and for "how
    /// long" or "quanto tempo" a duration ([`quantity::Unit::Days`] stands for any).
    pub asks_count: Option<quantity::Unit>,
    /// The words by which it asks a time of day ("hora" of "a que hora abrís?"), normalised:
    /// they say what is asked of a row, not which row ([`Question::asks_time`]).
    pub time_words: Vec<String>,
    /// The words by which it asks if or when the business opens ("abrem" of "abrem
    /// segunda?"), normalised: like [`Question::time_words`], they say what is asked of a day,
    /// not which day ([`Question::asks_open`]).
    pub open_words: Vec<String>,
    /// Whether it asks for the cheapest ("cheapest tyres for 15 inch wheels?", "qual o mais
    /// barato?"): a price, the lowest of those offered.
    pub asks_cheapest: bool,
    /// The numbers it names as the documents write them in names, each with the word before
    /// it (("zona", "2") for "envío a la zona 2"), normalised; a follow-up naming none keeps
    /// the previous question's.
    pub names: Vec<(String, String)>,
}

impl Question {
    /// Reads `text` against the documents' `lexicon` (`language`: the customer's, when known).
    pub fn read(text: &str, lexicon: Option<&Lexicon>, language: Option<&str>) -> Self {
        Self::read_spelling(text, lexicon, language, &|_| false)
    }

    /// [`Question::read`], knowing which words are words of their own (`spells`, see
    /// [`crate::embed::Embedder::spells`]): those are never read as a misspelling of the
    /// documents' words.
    pub fn read_spelling(
        text: &str,
        lexicon: Option<&Lexicon>,
        language: Option<&str>,
        spells: &dyn Fn(&str) -> bool,
    ) -> Self {
        let normal = normalize(text);
        let named_days = days(&normal, false);
        let named_months = months(&normal);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        // Unit words that follow a number ("4 kg", "20 sessions") say what the number counts,
        // not what the question is about.
        let after_number: HashSet<String> = {
            let words: Vec<String> = crate::knowledge::text::words(text);
            words
                .windows(2)
                .filter(|w| {
                    w[0].chars().all(|c| c.is_ascii_digit())
                        || w[0].ends_with(|c: char| c.is_ascii_digit())
                })
                .map(|w| w[1].clone())
                .filter(|w| quantity::is_unit_word(w))
                .collect()
        };
        let written: std::collections::HashMap<String, String> =
            crate::knowledge::text::lower_words(text)
                .into_iter()
                .map(|(lower, normal)| (normal, lower))
                .collect();
        // A hyphenated word is a term of its own where the documents write it too ("e-bike",
        // "ebike"): its parts alone may not tell what it names apart.
        let joined = crate::knowledge::text::compounds(text)
            .into_iter()
            .map(|(_, normal)| normal)
            .filter(|w| lexicon.is_some_and(|l| l.knows(w)));
        for word in terms(text).into_iter().chain(joined) {
            if ASKING.contains(word.as_str())
                || after_number.contains(&word)
                || word.chars().all(|c| c.is_ascii_digit())
                || !days(&word, false).is_empty()
                // A month the documents never name is a date to place in their ranges, not a
                // word to find ("la familiar en noviembre" against "temporada alta: del 1 de
                // julio al 15 de septiembre").
                || (!months(&word).is_empty() && lexicon.is_some_and(|l| !l.knows(&word)))
                || !seen.insert(word.clone())
            {
                continue;
            }
            let spelt = written.get(&word).cloned().unwrap_or_else(|| word.clone());
            let known = lexicon.and_then(|l| l.canonical(&spelt, language, spells(&spelt)));
            let weight = match (lexicon, &known) {
                (Some(l), Some(k)) => l.idf(k),
                (Some(l), None) => l.idf(&word),
                (None, _) => 1.0,
            };
            out.push(Term {
                word,
                written: spelt,
                known,
                weight,
                carried: false,
            });
        }
        // A number the documents write as part of a name ("Zona 3 (resto de la península)"),
        // written after the same word ("y a la zona 3?"), is a word of that name that tells
        // rows apart, not a quantity to place in their bands ("De 2 a 5 kg").
        let mut names: Vec<(String, String)> = Vec::new();
        if let Some(l) = lexicon {
            for (word, number) in crate::knowledge::text::named_numbers(text) {
                if !l.names_number(&word, &number) {
                    continue;
                }
                names.push((word, number.clone()));
                if seen.insert(number.clone()) {
                    out.push(Term {
                        word: number.clone(),
                        written: number.clone(),
                        known: Some(number.clone()),
                        weight: l.idf(&number),
                        carried: false,
                    });
                }
            }
        }
        let mut quantities = quantity::quantities(text);
        quantities.retain(|q| {
            q.unit.is_some()
                || !names
                    .iter()
                    .any(|(_, n)| n.parse::<f64>().ok() == Some(q.value))
        });
        out.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        let asks_cheapest = asks_cheapest(&normal);
        let open_words: Vec<String> = OPENING
            .iter()
            .filter(|p| contains_phrase(&normal, p))
            .map(|p| p.to_string())
            .collect();
        let time_words: Vec<String> = WHAT_TIME
            .iter()
            .filter(|p| contains_phrase(&normal, p))
            .flat_map(|p| p.split(' '))
            .map(str::to_owned)
            .collect();
        Question {
            terms: out,
            quantities,
            size: size(text),
            days: named_days,
            months: named_months,
            asks_price: asks_cheapest || asks_price(&normal),
            asks_count: asks_count(&normal),
            time_words,
            open_words,
            asks_cheapest,
            names,
        }
    }

    /// Whether `text` states what the question asks for: a quantity of the kind it asks (see
    /// [`Question::asks_count`]), a time of day when it asks one, and a time of day or a
    /// closing ("fechado", "closed") when it asks whether the business opens on a day; true
    /// when it asks for none of these. (Asked whether they open in August, a closing for the
    /// holidays may be written in any words.)
    pub fn answer_stated(&self, text: &str) -> bool {
        let count = self.asks_count.is_none_or(|asked| {
            let stated = if asked.is_duration() {
                quantity::durations(text)
            } else {
                quantity::quantities(text)
            };
            stated
                .iter()
                .any(|q| q.unit.is_some_and(|u| asked.answered_by(u)))
        });
        let clock = CLOCK.is_match(text);
        let open = !self.asks_open()
            || self.days.is_empty()
            || clock
            || CLOSED.iter().any(|p| contains_phrase(text, p));
        count && (!self.asks_time() || clock) && open
    }

    /// Whether it asks a time of day: "what time", "a que horas", "até que horas".
    pub fn asks_time(&self) -> bool {
        !self.time_words.is_empty()
    }

    /// Whether it asks if or when the business opens: "are you open on Sunday?", "abrem
    /// segunda?", "abrís los sábados?".
    pub fn asks_open(&self) -> bool {
        !self.open_words.is_empty()
    }

    /// Whether it asks a kind of answer of its own: a price, a count, a time of day or whether
    /// the business opens.
    pub(super) fn asks_a_kind(&self) -> bool {
        self.asks_price || self.asks_count.is_some() || self.asks_time() || self.asks_open()
    }

    /// This question read as a follow-up of `previous`: its quantities, size and day replace
    /// those of the same kind there, and the earlier terms carry over at half weight. What the
    /// previous one asked for (a price, a count, a time of day, whether they open) carries over
    /// only when this one asks for none of these itself: "and for two?" after a price asks a
    /// price, "e sábado abre?" after one asks whether they open.
    pub fn following(mut self, previous: &Question) -> Self {
        let mine: HashSet<String> = self.terms.iter().map(|t| t.word.clone()).collect();
        for t in &previous.terms {
            if !mine.contains(&t.word) {
                self.terms.push(Term {
                    weight: t.weight * 0.5,
                    carried: true,
                    ..t.clone()
                });
            }
        }
        // A bare number in a follow-up ("y el de 10?" after "4 kg") counts what the previous
        // question's number counted, and replaces it. Where that question gave several, a bare
        // number counts what its one count counted ("and a pack of 10?" after "1 session of 30
        // min" is 10 sessions): a measure is said with its unit.
        let earlier_units: Vec<_> = previous.quantities.iter().filter_map(|q| q.unit).collect();
        let earlier_counts: Vec<_> = earlier_units.iter().filter(|u| u.counts()).collect();
        for q in &mut self.quantities {
            if q.unit.is_none() && earlier_units.len() == 1 {
                q.unit = Some(earlier_units[0]);
            } else if q.unit.is_none() && earlier_counts.len() == 1 {
                q.unit = Some(*earlier_counts[0]);
            }
        }
        for q in &previous.quantities {
            if !self.quantities.iter().any(|m| m.unit == q.unit) {
                self.quantities.push(*q);
            }
        }
        self.size = self.size.or_else(|| previous.size.clone());
        if self.days.is_empty() {
            self.days = previous.days.clone();
        }
        if self.names.is_empty() {
            self.names = previous.names.clone();
        }
        if !self.asks_a_kind() {
            self.asks_price = previous.asks_price;
            self.asks_count = previous.asks_count;
            self.time_words = previous.time_words.clone();
            self.open_words = previous.open_words.clone();
        }
        self.terms.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        self
    }

    /// Whether the question names anything of its own: a content term, a size, a day or a
    /// quantity.
    pub fn has_subject(&self) -> bool {
        self.terms.iter().any(|t| !t.carried)
    }

    /// The total weight of its terms.
    pub fn weight(&self) -> f32 {
        self.terms.iter().map(|t| t.weight).sum()
    }
}

/// The size `text` names: a size word after a size cue ("talla M", "tamanho G"), or an
/// upper-case size alone ("in L?", "XL").
fn size(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    for (i, w) in words.iter().enumerate() {
        let lower = w.to_lowercase();
        if !SIZES.contains(&lower.as_str()) {
            continue;
        }
        let cued = i > 0 && SIZE_CUES.contains(&normalize(words[i - 1]).as_str());
        let upper = w.chars().all(|c| c.is_ascii_uppercase());
        if cued || (upper && w.len() <= 3) {
            return Some(lower.to_uppercase());
        }
    }
    None
}

/// Phrases by which a question asks what something costs, normalised, in the shipped languages.
const PRICE_PHRASES: &[&str] = &[
    "price",
    "prices",
    "cost",
    "costs",
    "charge",
    "fee",
    "fees",
    // "custa" asks a price wherever "quanto" stands ("quanto custa?", "custa quanto?") or
    // without it ("custa caro?"); "fica" and "sai" only next to it.
    "custa",
    "custam",
    "quanto fica",
    "quanto sai",
    "quanto seria",
    "quanto sairia",
    "quanto ficaria",
    "quanto e",
    // Brazilian speech puts "quanto" last ("fica quanto a avaliação?", "sai quanto o frete?").
    "fica quanto",
    "ficam quanto",
    "sai quanto",
    "saem quanto",
    // Asked what someone pays ("quanto paga uma criança?", "pago quanto?").
    "quanto paga",
    "quanto pagam",
    "quanto pago",
    "quanto pagar",
    "quanto pagamos",
    "paga quanto",
    "pagam quanto",
    "pago quanto",
    "qual o valor",
    "qual e o valor",
    "valor",
    "preco",
    "precos",
    "custo",
    "cobram",
    "cuanto cuesta",
    "cuanto cuestan",
    "cuanto vale",
    "cuanto es",
    "cuanto sale",
    // The conditional asks it as plainly ("cuánto sería?", "quanto seria?").
    "cuanto seria",
    "cuanto serian",
    "cuanto saldria",
    "cuanto paga",
    "cuanto pagan",
    "cuanto pago",
    "cuanto pagar",
    "cuanto se paga",
    "cuanto hay que pagar",
    "precio",
    "precios",
    "coste",
    "costo",
    "cuesta",
    "cuestan",
    "cobrais",
    "cobran",
    "combien",
    "prix",
    "cout",
    "coute",
    "kostet",
    "preis",
];

/// The words after which "how much" asks a price: English function words (verbs that ask,
/// pronouns, articles, prepositions) and money itself.
const HOW_MUCH_PRICE_NEXT: &[&str] = &[
    "is",
    "are",
    "was",
    "were",
    "will",
    "would",
    "does",
    "do",
    "did",
    "can",
    "could",
    "should",
    "s",
    "r",
    "d",
    "ll",
    "it",
    "its",
    "they",
    "them",
    "that",
    "this",
    "these",
    "those",
    "you",
    "u",
    "ya",
    "ur",
    "your",
    "i",
    "we",
    "he",
    "she",
    "a",
    "an",
    "the",
    "one",
    "for",
    "to",
    "per",
    "each",
    "in",
    "on",
    "with",
    "if",
    "more",
    "less",
    "extra",
    "altogether",
    "total",
    "roughly",
    "approximately",
    "about",
    "money",
    "then",
    "please",
    "pls",
    "again",
    "now",
];

/// Words that, within two words after the one following "how much", make that word the thing
/// counted: a verb or its subject ("how much notice do I need", "how much time does it take",
/// "how much luggage can I bring"), where "how much haircut?" asks a price.
const QUANTITY_VERBS: &[&str] = &[
    "do", "does", "did", "is", "are", "was", "will", "would", "can", "could", "should", "must",
    "i", "you", "u", "we", "they", "need", "needed", "take", "takes", "left", "remain",
];

/// Words that ask for a count of what the next word or the one after names ("how many days",
/// "cuantas veces", "quantos dias"), normalised.
const HOW_MANY: &[&[&str]] = &[
    &["how", "many"],
    &["cuantos"],
    &["cuantas"],
    &["quantos"],
    &["quantas"],
    &["qntos"],
    &["qntas"],
    &["qnts"],
    &["combien", "de"],
    &["wie", "viele"],
];

/// Words that ask a time of day, normalised.
const WHAT_TIME: &[&str] = &[
    "what time",
    "que horas",
    "que hora",
    "quelle heure",
    "wie viel uhr",
    "wieviel uhr",
];

/// Whether the normalised question asks for the cheapest of what is offered: a superlative
/// ("cheapest", "am günstigsten", "le moins cher"), or in Portuguese and Spanish, where the
/// comparative and the superlative are one word, "mais barato" / "más barato" with the
/// superlative's article before it or before its noun ("o mais barato", "o corte mais
/// barato", "la habitación más barata"). Without the article it is a comparative: "à vista
/// fica mais barato?" asks whether paying at once costs less, not for the cheapest.
fn asks_cheapest(normal: &str) -> bool {
    const SUPERLATIVES: &[&str] = &[
        "cheapest",
        "least expensive",
        "lowest price",
        "am billigsten",
        "am gunstigsten",
        "billigste",
        "billigsten",
        "gunstigste",
        "gunstigsten",
        "le moins cher",
        "la moins chere",
        "les moins chers",
        "les moins cheres",
    ];
    const ARTICLES: &[&str] = &["o", "a", "os", "as", "el", "la", "lo", "los", "las"];
    if SUPERLATIVES.iter().any(|p| contains_phrase(normal, p)) {
        return true;
    }
    let words = words(normal);
    words.windows(2).enumerate().any(|(at, pair)| {
        let cheap = pair[1].starts_with("barat") || pair[1].starts_with("economic");
        let article = |back: usize| {
            at.checked_sub(back)
                .is_some_and(|i| ARTICLES.contains(&words[i].as_str()))
        };
        matches!(pair[0].as_str(), "mais" | "mas") && cheap && (article(1) || article(2))
    })
}

/// Words that ask whether or when the business opens, normalised. Participles ("aberto",
/// "abierto", "opened") are left out: they say more often that a product was opened.
const OPENING: &[&str] = &[
    "open", "opens", "opening", "abre", "abrem", "abren", "abris", "abrimos", "ouvert", "ouvrez",
    "geoffnet", "offen",
];

/// Words that say the business is closed, normalised.
const CLOSED: &[&str] = &[
    "closed",
    "fechado",
    "fechada",
    "fechados",
    "fechamos",
    "encerrado",
    "encerrada",
    "cerrado",
    "cerrada",
    "cerrados",
    "cerramos",
    "ferme",
    "geschlossen",
];

/// A time of day as documents write it: "18:00", "10h", "10h30", "8am", "8.30 pm".
static CLOCK: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)\b\d{1,2}(?:[:.]\d{2})?\s?[ap]\.?m\b|\b\d{1,2}:\d{2}\b|\b\d{1,2}h(?:\d{2})?\b",
    )
    .expect("a valid expression")
});

/// Words that ask how long something lasts or takes, normalised.
const HOW_LONG: &[&[&str]] = &[
    &["how", "long"],
    &["quanto", "tempo"],
    &["qnto", "tempo"],
    &["cuanto", "tiempo"],
    &["combien", "de", "temps"],
    &["wie", "lange"],
];

/// The unit of the quantity `normal` (normalised text) asks for, if it asks for one (see
/// [`Question::asks_count`]).
fn asks_count(normal: &str) -> Option<quantity::Unit> {
    let words = crate::knowledge::text::words(normal);
    let at = |i: usize, phrase: &[&str]| {
        phrase
            .iter()
            .enumerate()
            .all(|(k, p)| words.get(i + k).is_some_and(|w| w == p))
    };
    (0..words.len()).find_map(|i| {
        if HOW_LONG.iter().any(|p| at(i, p)) {
            return Some(quantity::Unit::Days);
        }
        let opener = HOW_MANY.iter().find(|p| at(i, p))?;
        let next = i + opener.len();
        (next..next + 2).find_map(|j| quantity::unit_of(words.get(j)?))
    })
}

/// Whether `normal` (normalised text) asks a price.
fn asks_price(normal: &str) -> bool {
    PRICE_PHRASES.iter().any(|p| contains_phrase(normal, p))
        || how_much_asks_price(normal)
        || how_much_alone(normal)
}

/// Whether a clause of `normal` ends in "how much?" in a language that asks it in one word,
/// after what is priced ("tem tiramisu? quanto?", "suco de uva quanto?", "y el de 14 litros,
/// cuanto?"): like "how much" with nothing after it, it asks a price, unless it follows a verb
/// that measures something else ("demora quanto?", "pesa cuanto?"). With a word after it, it
/// may ask another amount ("cuanto tiempo?").
fn how_much_alone(normal: &str) -> bool {
    normal
        .split(['?', '!', '.', ',', ';', ':', '\n'])
        .any(|clause| {
            let words = crate::knowledge::text::words(clause);
            match words.as_slice() {
                [.., before, last] if HOW_MUCH_ALONE.contains(&last.as_str()) => {
                    !MEASURE_VERBS.contains(&before.as_str())
                }
                [last] => HOW_MUCH_ALONE.contains(&last.as_str()),
                _ => false,
            }
        })
}

/// "How much" in one word, normalised.
const HOW_MUCH_ALONE: &[&str] = &["quanto", "cuanto", "combien"];

/// Verbs after which "how much" asks how long, how heavy or how big, normalised.
const MEASURE_VERBS: &[&str] = &[
    "demora", "demoram", "dura", "duram", "leva", "levam", "pesa", "pesam", "mede", "medem",
    "cabe", "cabem", "falta", "faltam", "tarda", "tardan", "tardas", "lleva", "llevan", "mide",
    "miden", "caben", "queda", "quedan", "faltan", "dure", "mesure", "pese",
];

/// Whether an occurrence of "how much" in `normal` asks a price: unless a word other than those
/// of [`HOW_MUCH_PRICE_NEXT`] follows it and is then the subject of a verb ([`QUANTITY_VERBS`]),
/// a quantity of that thing rather than a price.
fn how_much_asks_price(normal: &str) -> bool {
    let words = crate::knowledge::text::words(normal);
    let is = |i: usize, list: &[&str]| words.get(i).is_some_and(|w| list.contains(&w.as_str()));
    words.windows(2).enumerate().any(|(i, pair)| {
        pair == ["how", "much"]
            && (words.get(i + 2).is_none()
                || is(i + 2, HOW_MUCH_PRICE_NEXT)
                || !(i + 3..i + 5).any(|j| is(j, QUANTITY_VERBS)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::quantity::Unit;

    #[test]
    fn days_are_named_alone_in_ranges_and_as_the_week() {
        assert_eq!(days("estao abertos ao sabado a tarde?", false), [5]);
        assert_eq!(days("monday to friday", false), [0, 1, 2, 3, 4]);
        assert_eq!(days("seg-sex", true), [0, 1, 2, 3, 4]);
        assert_eq!(days("lunes a viernes", false), [0, 1, 2, 3, 4]);
        assert_eq!(
            days("what time do you open during the week?", false),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(days("abrem no fim de semana?", false), [5, 6]);
        assert_eq!(days("vcs atendem no final de semana?", false), [5, 6]);
        assert_eq!(days("domingo y festivos", false), [6]);
        // "2x por semana" is not the working week, and short forms are read in rows only.
        assert!(days("pilates 2x por semana", false).is_empty());
        assert!(days("the sun is out, mar", false).is_empty());
    }

    #[test]
    fn months_are_named_alone_and_in_ranges_over_the_year_end() {
        assert_eq!(months("la familiar en noviembre cuanto es"), [10]);
        assert_eq!(
            months("temporada alta del 1 de julio al 15 de septiembre, semana santa y puentes"),
            [6, 7, 8]
        );
        assert_eq!(
            months("y del 23 de diciembre al 6 de enero"),
            [0, 11],
            "a range over the year's end"
        );
        assert_eq!(months("solo de abril a octubre"), [3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(months("open june-august"), [5, 6, 7]);
        // Two months apart are not a range: "julio" and "diciembre" with words between.
        assert_eq!(
            months("de julio, semana santa y puentes y en diciembre"),
            [6, 11]
        );
        // "may" and "march" are months only where a date is placed.
        assert!(months("may i bring my dog").is_empty());
        assert!(months("we march on").is_empty());
        assert_eq!(months("can i come in may"), [4]);
        assert_eq!(months("from 1 march"), [2]);
    }

    #[test]
    fn a_date_said_as_a_start_is_no_season() {
        let seasons = |text: &str| seasons(&normalize(text));
        assert_eq!(
            seasons("En agosto (del 1 al 31) abrimos solo por las mañanas."),
            [7]
        );
        assert_eq!(
            seasons("From 1 November to 28 February we open at 10:00."),
            [0, 1, 10, 11]
        );
        assert_eq!(seasons("From 15 to 31 August the workshop is closed."), [7]);
        assert_eq!(
            seasons("El 24 y el 31 de diciembre abrimos de 10:00 a 14:00."),
            [11]
        );
        // What holds since a date holds in every month after it.
        assert!(seasons("Our weekly timetable, valid from 1 April 2025.").is_empty());
        assert!(seasons("Preços válidos desde março de 2026.").is_empty());
        assert!(seasons("Tabela em vigor a partir de 1º de fevereiro de 2025.").is_empty());
        assert_eq!(
            months(&normalize("Our weekly timetable, valid from 1 April 2025.")),
            [3]
        );
    }

    #[test]
    fn how_many_and_how_long_ask_for_a_count_of_a_unit() {
        use quantity::Unit;
        for (text, unit) in [
            (
                "cuantos dias tengo para devolver un arnes?",
                Some(Unit::Days),
            ),
            ("How many days do I have to send it back?", Some(Unit::Days)),
            ("posso parcelar em quantas vezes?", Some(Unit::Times)),
            ("How long is a gift card valid?", Some(Unit::Days)),
            ("tem garantia de quanto tempo?", Some(Unit::Days)),
            ("how many people fit in the room?", Some(Unit::People)),
            // No unit named after "how many", and no count asked.
            ("how many of you work there?", None),
            ("how much is a session?", None),
        ] {
            assert_eq!(asks_count(&normalize(text)), unit, "{text}");
        }
        let asked = Question::read("cuantos dias tengo para devolver?", None, None);
        assert!(asked.answer_stated("Tienes 30 días para devolverlo."));
        assert!(asked.answer_stated("You have 2 weeks."));
        assert!(!asked.answer_stated("Por mensajero descontamos 4,50 € del reembolso."));
        assert!(Question::read("cuanto cuesta?", None, None).answer_stated("Nada."));
    }

    #[test]
    fn a_question_asking_a_time_of_day_is_answered_by_a_text_that_states_one() {
        for (text, asks) in [
            ("até que horas vocês atendem durante a semana?", true),
            ("a que hora abris los sabados?", true),
            ("What time do you close on Sunday?", true),
            ("à quelle heure ouvrez-vous ?", true),
            ("do you open on sundays?", false),
            ("how long does a session take?", false),
        ] {
            let asked = Question::read(text, None, None);
            assert_eq!(asked.asks_time(), asks, "{text}");
        }
        let asked = Question::read("what time do you open?", None, None);
        for text in [
            "Monday to Friday — Open: 07:00 to 20:30.",
            "We open at 8am.",
            "Abrimos às 10h e fechamos às 18h30.",
            "Doors open at 8.30 pm.",
        ] {
            assert!(asked.answer_stated(text), "{text}");
        }
        for text in [
            "Health-plan patients are seen from Monday to Friday.",
            "A session costs 9.50 EUR.",
            "Up to 12 hours before.",
        ] {
            assert!(!asked.answer_stated(text), "{text}");
        }
    }

    #[test]
    fn a_question_for_the_cheapest_asks_a_price() {
        for (text, cheapest) in [
            ("cheapest tyres you do for 15 inch wheels?", true),
            ("qual o corte mais barato?", true),
            ("cual es la habitación más barata?", true),
            ("what tyres do you do for 15 inch wheels?", false),
            ("is it cheap?", false),
            ("la habitacion mas barata para dos?", true),
            ("le forfait le moins cher?", true),
            ("welche reifen sind am günstigsten?", true),
            ("se eu pagar à vista fica mais barato?", false),
            ("é mais barato no pix?", false),
            ("c'est moins cher le matin?", false),
        ] {
            let read = Question::read(text, None, None);
            assert_eq!(read.asks_cheapest, cheapest, "{text}");
            assert!(!cheapest || read.asks_price, "{text}");
        }
    }

    #[test]
    fn a_question_whether_they_open_is_answered_by_a_time_or_a_closing() {
        for (text, asks) in [
            ("abrem segunda?", true),
            ("y los sabados abrís?", true),
            ("are you open on sundays?", true),
            ("ya esta abierto, lo puedo devolver?", false),
            ("how much is a session?", false),
        ] {
            assert_eq!(Question::read(text, None, None).asks_open(), asks, "{text}");
        }
        let asked = Question::read("domingo vcs abrem?", None, None);
        for text in [
            "Domingo — Almoço: 11:30 às 16:00.",
            "Segunda-feira fechado o dia todo.",
            "Closed on Sundays.",
        ] {
            assert!(asked.answer_stated(text), "{text}");
        }
        for text in [
            "Entregamos de terça a domingo.",
            "Em feriados abrimos no horário de domingo.",
        ] {
            assert!(!asked.answer_stated(text), "{text}");
        }
        // No day named: a holiday closing may be written in any words.
        let asked = Question::read("are you open in august?", None, None);
        assert!(asked.answer_stated("A clínica encerra para férias de 5 a 16 de agosto."));
    }

    #[test]
    fn how_much_asks_a_price_unless_a_noun_follows_it() {
        for price in [
            "how much is a session?",
            "how much does it cost",
            "how much for two nights",
            "ok how much",
            "how much would a tune-up be?",
            "how much puncture repair?",
            "how much does a child pay?",
            "a sequencia de massas quanto paga uma criança de 8 anos?",
            "e pra duas pessoas pago quanto?",
            "cuanto se paga por un niño?",
            "necesito una sala para 4 personas unas 3 horas, cuanto seria?",
            "quanto ficaria pra duas pessoas?",
            "tem tiramisu? quanto?",
            "suco de uva quanto?",
            "y el de 14 litros, cuanto",
            "e quanto?",
        ] {
            assert!(asks_price(&normalize(price)), "{price}");
        }
        for quantity in [
            "how much notice do i need to give to cancel?",
            "how much time does a repair take?",
            "how much luggage can I bring?",
            "o alongamento demora quanto?",
            "cuanto tiempo tarda?",
            "e quanto tempo leva?",
            "o pacote pesa quanto?",
            "y el envio a sevilla tarda cuanto?",
        ] {
            assert!(!asks_price(&normalize(quantity)), "{quantity}");
        }
    }

    #[test]
    fn a_question_is_read_for_what_it_is_about() {
        let q = Question::read("oi boa tarde, quanto custa a avaliação?", None, Some("pt"));
        let words: Vec<&str> = q.terms.iter().map(|t| t.word.as_str()).collect();
        assert_eq!(words, ["avaliacao"]);
        assert!(q.asks_price);
        let q = Question::read("collar reflectante talla L precio?", None, Some("es"));
        assert_eq!(q.size.as_deref(), Some("L"));
        let q = Question::read("what time is boxfit on tuesday?", None, Some("en"));
        assert_eq!(q.days, [1]);
        assert!(!q.asks_price);
    }

    #[test]
    fn a_number_the_documents_write_in_a_name_is_a_word_of_it_not_a_quantity() {
        let lexicon = Lexicon::build([(
            Some("Precio del envío"),
            "Zona 3 (resto de la península) — Hasta 2 kg: 5,90 €; De 2 a 5 kg: 7,45 €",
        )]);
        let q = Question::read("y a la zona 3?", Some(&lexicon), Some("es"));
        assert!(q.quantities.is_empty());
        assert!(q.terms.iter().any(|t| t.word == "3" && !t.carried));
        // A number the documents write in no name after that word is one to place in bands.
        let q = Question::read("y a la sala 3?", Some(&lexicon), Some("es"));
        assert_eq!(q.quantities.len(), 1);
        assert!(!q.terms.iter().any(|t| t.word == "3"));
    }

    #[test]
    fn a_word_of_its_own_is_not_read_as_a_misspelt_word_of_the_documents() {
        let lexicon = Lexicon::build([(
            Some("Inscrição"),
            "Preencha a ficha de inscrição na receção. Aulas de pilates.",
        )]);
        let known = |spells: &dyn Fn(&str) -> bool, text: &str| -> Vec<Option<String>> {
            Question::read_spelling(text, Some(&lexicon), Some("pt"), spells)
                .terms
                .into_iter()
                .map(|t| t.known)
                .collect()
        };
        // A model that knows "filha" (daughter) as a word: not "ficha" (form) misspelt.
        let words = |w: &str| ["filha", "minha"].contains(&w);
        assert_eq!(known(&words, "minha filha"), [None]);
        assert_eq!(
            known(&|_| false, "minha filha"),
            [Some("ficha".to_string())]
        );
        // A misspelling no vocabulary holds is still read as the documents' word.
        assert_eq!(known(&words, "pilatis"), [Some("pilates".to_string())]);
    }

    #[test]
    fn opening_is_what_an_hours_question_is_about() {
        for (text, language, word) in [
            ("what time do you open in the mornings?", "en", "open"),
            ("q horario tienen los sabados?", "es", "horario"),
            ("a que horas abrem?", "pt", "abrem"),
            ("quels sont vos horaires?", "fr", "horaires"),
            ("vous etes ouvert le soir?", "fr", "ouvert"),
            ("wie sind eure Öffnungszeiten?", "de", "offnungszeiten"),
        ] {
            let q = Question::read(text, None, Some(language));
            let words: Vec<&str> = q.terms.iter().map(|t| t.word.as_str()).collect();
            assert!(words.contains(&word), "{text}: {words:?}");
            assert!(!words.contains(&"time"), "{text}: {words:?}");
        }
    }

    #[test]
    fn asking_how_long_names_no_subject_in_any_language() {
        for (text, subject) in [
            ("how long is the guarantee on an implant?", "guarantee"),
            ("tem garantia de quanto tempo?", "garantia"),
            ("¿cuánto tiempo tarda el envío?", "envio"),
            ("combien de temps dure la garantie ?", "garantie"),
        ] {
            let words: Vec<String> = Question::read(text, None, None)
                .terms
                .into_iter()
                .map(|t| t.word)
                .collect();
            assert!(words.iter().any(|w| w == subject), "{text}: {words:?}");
            for asking in ["long", "tempo", "tiempo", "temps"] {
                assert!(!words.iter().any(|w| w == asking), "{text}: {words:?}");
            }
        }
    }

    #[test]
    fn each_asking_word_is_listed_once() {
        assert_eq!(ASKING.len(), ASKING_WORDS.len());
    }

    #[test]
    fn a_follow_up_replaces_what_it_names_and_keeps_the_rest() {
        let first = Question::read(
            "cuanto cuesta el arnes antitirones talla M",
            None,
            Some("es"),
        );
        let next = Question::read("y en L?", None, Some("es")).following(&first);
        assert_eq!(next.size.as_deref(), Some("L"));
        assert!(next
            .terms
            .iter()
            .any(|t| t.word == "antitirones" && t.carried));
        assert!(next.asks_price);
        let first = Question::read("quanto é o pilates 1x por semana?", None, Some("pt"));
        let next = Question::read("e 3x?", None, Some("pt")).following(&first);
        assert_eq!(next.quantities.len(), 1);
        assert_eq!(next.quantities[0].value, 3.0);
        let first = Question::read("precio del pienso de gato de 4 kg?", None, Some("es"));
        let next = Question::read("y el de 10?", None, Some("es")).following(&first);
        assert_eq!(next.quantities.len(), 1);
        assert_eq!(next.quantities[0].value, 10.0);
        let first = Question::read("how much is 1 pt session of 30 min?", None, Some("en"));
        let next = Question::read("and a pack of 10?", None, Some("en")).following(&first);
        let mut said: Vec<_> = next.quantities.iter().map(|q| (q.value, q.unit)).collect();
        said.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(
            said,
            [(10.0, Some(Unit::Sessions)), (30.0, Some(Unit::Minutes))]
        );
        let first = Question::read("what time is boxfit on tuesday?", None, Some("en"));
        let next = Question::read("and saturday?", None, Some("en")).following(&first);
        assert_eq!(next.days, [5]);
        assert!(next.asks_time());
    }

    #[test]
    fn a_follow_up_asking_its_own_kind_carries_none_of_the_previous() {
        let first = Question::read("quanto é a pedicure?", None, Some("pt"));
        let next = Question::read("e sabado abre?", None, Some("pt")).following(&first);
        assert!(next.asks_open());
        assert!(!next.asks_price);
        let next = Question::read("e quanto tempo demora?", None, Some("pt")).following(&first);
        assert!(next.asks_count.is_some());
        assert!(!next.asks_price);
        let next = Question::read("e no sabado?", None, Some("pt")).following(&first);
        assert!(next.asks_price);
    }
}
