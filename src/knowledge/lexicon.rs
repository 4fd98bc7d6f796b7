//! A collection's vocabulary: every word its passages (and their headings) use, in how many
//! passages, and under which stem. It lets a customer's words meet the documents' despite the
//! way customers write:
//!
//! - an inflection ("entregas" for "entrega", "cancelling" for "cancel"): words are compared by
//!   their Snowball stem ([`stem`]) in the documents' language and in the customer's;
//! - a typo or a missing accent on a rare word ("pilatis", "transportin"): a word the documents
//!   never use is read as the documents' word one or two letters away ([`Lexicon::canonical`]),
//!   unless it is known to be a word of its own ("filha" is no misspelt "ficha": see
//!   [`crate::embed::Embedder::spells`]);
//! - how much a word says: one that few passages use tells them apart ([`Lexicon::idf`]), one
//!   that all use does not.
//!
//! It is built from the store's passages with the collection's passage mean, and kept while
//! the collection's version stands.

use std::collections::{HashMap, HashSet};

use qdrant_rust_stemmers::{Algorithm, Stemmer};

use super::text;
use crate::language::normalize;

/// The Snowball stemmer of a language, for the languages it has one for.
fn stemmer(language: &str) -> Option<Stemmer> {
    let algorithm = match language {
        "en" => Algorithm::English,
        "pt" => Algorithm::Portuguese,
        "es" => Algorithm::Spanish,
        "fr" => Algorithm::French,
        "de" => Algorithm::German,
        "it" => Algorithm::Italian,
        "nl" => Algorithm::Dutch,
        "da" => Algorithm::Danish,
        "sv" => Algorithm::Swedish,
        "no" | "nb" => Algorithm::Norwegian,
        "ro" => Algorithm::Romanian,
        "fi" => Algorithm::Finnish,
        "hu" => Algorithm::Hungarian,
        "tr" => Algorithm::Turkish,
        "ru" => Algorithm::Russian,
        "el" => Algorithm::Greek,
        "ar" => Algorithm::Arabic,
        _ => return None,
    };
    Some(Stemmer::create(algorithm))
}

/// The stem of a lower-case `word` in `language` ("entregas" → "entreg"), normalised, or the
/// normalised word when the language has no stemmer. Numbers and short words are their own
/// stems. Give the word with its accents where they are known: Snowball reads them
/// ("avaliação" → "avali", "avaliacao" → "avaliaca").
pub fn stem(word: &str, language: &str) -> String {
    if word.chars().count() < STEM_MIN_LETTERS || word.chars().any(|c| c.is_ascii_digit()) {
        return normalize(word);
    }
    match stemmer(language) {
        Some(s) => normalize(&s.stem(word)),
        None => normalize(word),
    }
}

/// Words of at least this many letters may be read as a known word one letter away.
const TYPO_MIN_LETTERS: usize = 5;
/// Words of fewer letters are their own stems.
const STEM_MIN_LETTERS: usize = 4;
/// Words of at least this many letters may be read as a known word two letters away.
const TYPO_TWO_MIN_LETTERS: usize = 9;
/// Words of at least this many letters may be read as a known word they begin ...
const CLIPPED_MIN_LETTERS: usize = 5;
/// ... when it has at least this many letters more: a word cut short, not an inflection.
const CLIPPED_AT_LEAST: usize = 4;

/// Passages read for the documents' language.
const LANGUAGE_SAMPLE: u32 = 300;

/// A collection's words.
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    /// Passages read.
    passages: u32,
    /// Each word and the number of passages that use it.
    frequency: HashMap<String, u32>,
    /// Each stem (in the documents' language) and its words.
    stems: HashMap<String, Vec<String>>,
    /// Each word's most used spelling with its accents, lower-case.
    spelling: HashMap<String, String>,
    /// The language most passages are written in, when one is.
    language: Option<&'static str>,
    /// The numbers the documents write as part of a name, with the word before each ("Zona 3":
    /// see [`text::named_numbers`]).
    named: HashSet<(String, String)>,
    /// The letters the documents' words are written in (normalised).
    letters: HashSet<char>,
}

impl Lexicon {
    /// The lexicon of `passages` (heading and text each).
    pub fn build<'a>(passages: impl IntoIterator<Item = (Option<&'a str>, &'a str)>) -> Self {
        let mut frequency: HashMap<String, u32> = HashMap::new();
        let mut spellings: HashMap<String, HashMap<String, u32>> = HashMap::new();
        let mut languages: HashMap<&'static str, u32> = HashMap::new();
        let mut named: HashSet<(String, String)> = HashSet::new();
        let mut count = 0u32;
        for (heading, body) in passages {
            count += 1;
            // The documents' language shows in their first passages; reading every one of a
            // large catalogue would only cost time.
            let language = (count <= LANGUAGE_SAMPLE)
                .then(|| crate::language::detect(body))
                .flatten();
            if let Some(language) = language {
                *languages.entry(language).or_default() += 1;
            }
            named.extend(text::named_numbers(heading.unwrap_or_default()));
            named.extend(text::named_numbers(body));
            let mut seen: Vec<(String, String)> = text::lower_words(heading.unwrap_or_default());
            seen.extend(text::lower_words(body));
            for (lower, normal) in &seen {
                *spellings
                    .entry(normal.clone())
                    .or_default()
                    .entry(lower.clone())
                    .or_default() += 1;
            }
            let mut normals: Vec<String> = seen.into_iter().map(|(_, n)| n).collect();
            normals.sort();
            normals.dedup();
            for w in normals {
                *frequency.entry(w).or_default() += 1;
            }
        }
        let language = languages
            .into_iter()
            .max_by_key(|(l, n)| (*n, std::cmp::Reverse(*l)))
            .map(|(l, _)| l);
        let spelling: HashMap<String, String> = spellings
            .into_iter()
            .map(|(normal, forms)| {
                let best = forms
                    .into_iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                    .map(|(form, _)| form)
                    .unwrap_or_else(|| normal.clone());
                (normal, best)
            })
            .collect();
        let mut stems: HashMap<String, Vec<String>> = HashMap::new();
        for w in frequency.keys() {
            let spelt = spelling.get(w).map(String::as_str).unwrap_or(w);
            stems
                .entry(stem(spelt, language.unwrap_or("en")))
                .or_default()
                .push(w.clone());
        }
        for words in stems.values_mut() {
            words.sort();
        }
        let letters = frequency
            .keys()
            .flat_map(|w| w.chars())
            .filter(|c| c.is_alphabetic())
            .collect();
        Lexicon {
            passages: count,
            frequency,
            stems,
            spelling,
            language,
            named,
            letters,
        }
    }

    /// The language most of the passages are written in, when one is.
    pub fn language(&self) -> Option<&'static str> {
        self.language
    }

    /// How the documents spell `word` (normalised), with its accents, lower-case; the word
    /// itself when they do not use it.
    pub fn spelling<'a>(&'a self, word: &'a str) -> &'a str {
        self.spelling.get(word).map(String::as_str).unwrap_or(word)
    }

    /// Whether the documents write `number` as part of a name after `word` (normalised: "zona"
    /// and "3" for "Zona 3 (resto de la península)").
    pub fn names_number(&self, word: &str, number: &str) -> bool {
        self.named.contains(&(word.to_string(), number.to_string()))
    }

    /// Whether `text` is written in letters the documents use: one of its letters at least is
    /// one of theirs, or it has none ("2", "👍"). A question in another alphabet than the
    /// documents' ("Сколько стоит стрижка?" to a business writing in Latin letters) shares no
    /// word with them, nor the start of one, nor a name.
    pub fn shares_letters(&self, text: &str) -> bool {
        let normal = text::normalize(text);
        let mut letters = normal.chars().filter(|c| c.is_alphabetic()).peekable();
        letters.peek().is_none() || letters.any(|c| self.letters.contains(&c))
    }

    /// Whether the documents use `word` (normalised).
    pub fn knows(&self, word: &str) -> bool {
        self.frequency.contains_key(word)
    }

    /// How much `word` tells passages apart: `ln(1 + N / df)`, highest for a word no passage
    /// uses (it then says what the documents do not).
    pub fn idf(&self, word: &str) -> f32 {
        let df = self.frequency.get(word).copied().unwrap_or(0) as f32;
        (1.0 + (self.passages.max(1) as f32) / (df + 0.5)).ln()
    }

    /// The [`Lexicon::idf`] of a word used by `share` (0-1) of the passages.
    pub fn idf_at_share(&self, share: f32) -> f32 {
        self.idf_at_count(share * self.passages.max(1) as f32)
    }

    /// The [`Lexicon::idf`] of a word used by `count` passages.
    pub fn idf_at_count(&self, count: f32) -> f32 {
        let n = self.passages.max(1) as f32;
        (1.0 + n / (count + 0.5)).ln()
    }

    /// The documents' form (normalised) of a customer's `written` word (lower-case, with the
    /// accents they typed): the word itself when the documents use it, else the most used word
    /// sharing its stem (in the documents' language or the customer's, `language`), else, for a
    /// word long enough, in the documents' language and not known to be a word of its own
    /// (`a_word`: "filha" is no misspelt "ficha"), the most used word one letter away (two for
    /// long words) that starts alike, else `None`.
    pub fn canonical(&self, written: &str, language: Option<&str>, a_word: bool) -> Option<String> {
        let normal = normalize(written);
        let word = normal.as_str();
        if self.knows(word) {
            return Some(word.to_string());
        }
        if word.chars().any(|c| c.is_ascii_digit()) {
            return None;
        }
        let letters = word.chars().count();
        let same_language = match (language, self.language) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        // A word too short to stem meets a stem of the documents' in another language by
        // chance, not as a form of it (English "men" and Portuguese "menos", stem "men").
        if letters < STEM_MIN_LETTERS && !same_language {
            return None;
        }
        let mut tried: Vec<&str> = Vec::new();
        for lang in [self.language, language].into_iter().flatten() {
            if tried.contains(&lang) {
                continue;
            }
            tried.push(lang);
            let key = stem(written, self.language.unwrap_or(lang));
            let own = stem(written, lang);
            for k in [key, own] {
                if let Some(words) = self.stems.get(&k) {
                    if let Some(best) = words.iter().max_by_key(|w| self.frequency[*w]) {
                        return Some(best.clone());
                    }
                }
            }
        }
        // A word one letter off the documents' is a typo only in their language: across
        // languages it is another word ("Lisbon" is not a misspelt "Lisboa" to read as the
        // documents' street names).
        if letters < TYPO_MIN_LETTERS || !same_language {
            return None;
        }
        if a_word {
            return self.unclipped(word);
        }
        let most = if letters >= TYPO_TWO_MIN_LETTERS {
            2
        } else {
            1
        };
        let first = word.chars().next();
        self.frequency
            .iter()
            .filter(|(w, _)| w.chars().next() == first)
            .filter(|(w, _)| w.chars().count().abs_diff(letters) <= most)
            .map(|(w, n)| (strsim::damerau_levenshtein(word, w), *n, w))
            .filter(|(d, _, _)| *d <= most)
            .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)))
            .map(|(_, _, w)| w.clone())
            .or_else(|| self.unclipped(word))
    }

    /// The documents' word that `word` (normalised, unknown to them) is cut from ("fisio" for
    /// "fisioterapia", "promo" for "promocao"): the most used one it begins that is at least
    /// [`CLIPPED_AT_LEAST`] letters longer, for a word of [`CLIPPED_MIN_LETTERS`] or more.
    fn unclipped(&self, word: &str) -> Option<String> {
        let letters = word.chars().count();
        if letters < CLIPPED_MIN_LETTERS {
            return None;
        }
        self.frequency
            .iter()
            .filter(|(w, _)| w.starts_with(word) && w.chars().count() >= letters + CLIPPED_AT_LEAST)
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(w, _)| w.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lexicon() -> Lexicon {
        Lexicon::build([
            (Some("Entregas"), "Fazemos entregas em Lisboa e no Porto."),
            (
                Some("Pilates"),
                "Aulas de pilates em aparelhos, 1x por semana.",
            ),
            (
                Some("Preços"),
                "A avaliação custa R$ 180. As entregas são grátis.",
            ),
            (None, "O transportín rígido serve para animais até 6 kg."),
        ])
    }

    #[test]
    fn a_text_in_another_alphabet_shares_no_letter_with_the_documents() {
        let l = lexicon();
        for other in [
            "Сколько стоит стрижка?",
            "كم سعر القص؟",
            "剪发多少钱？",
            "प्रिय",
        ] {
            assert!(!l.shares_letters(other), "{other}");
        }
        // Any word in the documents' letters, a word they never use or another language's.
        for shared in [
            "how much is the haircut?",
            "Сколько стоит pilates?",
            "ÁGUA",
            "ｐｉｌａｔｅｓ",
            "2",
            "👍",
            "",
        ] {
            assert!(l.shares_letters(shared), "{shared}");
        }
        let russian = Lexicon::build([(None, "Стрижка стоит 900 рублей.")]);
        assert!(russian.shares_letters("Сколько стоит стрижка?"));
        assert!(!russian.shares_letters("hm"));
    }

    #[test]
    fn stems_are_the_languages_own() {
        assert_eq!(stem("entregas", "pt"), stem("entrega", "pt"));
        assert_eq!(stem("avaliação", "pt"), "avali");
        assert_eq!(stem("cancelling", "en"), stem("cancel", "en"));
        assert_eq!(stem("envios", "es"), stem("envio", "es"));
        assert_eq!(stem("pix", "pt"), "pix");
        assert_eq!(stem("2x", "pt"), "2x");
    }

    #[test]
    fn a_word_cut_short_is_read_as_the_word_it_begins() {
        let l = Lexicon::build([(
            Some("Fisioterapia"),
            "Sessões de fisioterapia ortopédica e promoções de verão.",
        )]);
        assert_eq!(
            l.canonical("fisio", Some("pt"), false).as_deref(),
            Some("fisioterapia")
        );
        assert_eq!(
            l.canonical("promo", Some("pt"), false).as_deref(),
            Some("promocoes")
        );
        // Too short to tell, or only an ending away: not a word cut short.
        assert_eq!(l.canonical("orto", Some("pt"), false), None);
        assert_eq!(
            l.canonical("ortopedic", Some("pt"), false).as_deref(),
            Some("ortopedica")
        );
    }

    #[test]
    fn a_customers_word_is_read_as_the_documents() {
        let l = lexicon();
        assert_eq!(l.language(), Some("pt"));
        assert_eq!(
            l.canonical("entregas", Some("pt"), false).as_deref(),
            Some("entregas")
        );
        // An inflection the documents do not use.
        assert_eq!(
            l.canonical("entrega", Some("pt"), false).as_deref(),
            Some("entregas")
        );
        // A typo on a rare word, and a missing accent (normalised away already).
        assert_eq!(
            l.canonical("pilatis", Some("pt"), false).as_deref(),
            Some("pilates")
        );
        assert_eq!(
            l.canonical("transportin", Some("es"), false).as_deref(),
            Some("transportin")
        );
        // Short or unknown words are left alone.
        assert_eq!(l.canonical("pix", Some("pt"), false), None);
        assert_eq!(l.canonical("bitcoin", Some("en"), false), None);
        // A word of its own one letter away from the documents' is not their word misspelt.
        let forms = Lexicon::build([(None, "Preencha a ficha na receção.")]);
        assert_eq!(
            forms.canonical("filha", Some("pt"), false).as_deref(),
            Some("ficha")
        );
        assert_eq!(forms.canonical("filha", Some("pt"), true), None);
        // A short word of another language is not a form of the documents' word whose stem it
        // happens to spell; in their own language it may be.
        let less = Lexicon::build([(None, "Pagando no Pix você paga menos.")]);
        assert_eq!(less.canonical("men", Some("en"), false), None);
        assert_eq!(
            less.canonical("men", Some("pt"), false).as_deref(),
            Some("menos")
        );
    }

    #[test]
    fn rare_words_weigh_more_than_common_ones() {
        let l = lexicon();
        assert!(l.idf("pilates") > l.idf("entregas"));
        assert!(l.idf("bitcoin") > l.idf("pilates"));
    }
}
