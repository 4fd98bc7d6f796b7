//! Text utilities shared by ingestion, retrieval and the message rules: search normalisation
//! (lowercase, accents removed), keyword terms for full-text search, a sentence splitter that
//! knows about decimals and abbreviations, and whole-word phrase matching.
//!
//! Keyword search stores [`search_text`] of each chunk and queries it with [`terms`]; both split
//! normalised text on every character that is not a letter or a digit, which is exactly where
//! SQLite FTS5 `unicode61` splits. Postgres' `simple` parser would keep `4.50` or an email
//! address as one token, so the stored text must already be split into plain words.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;

pub use crate::language::normalize;

/// Most terms a query produces; longer queries add noise, not recall.
const MAX_TERMS: usize = 32;

/// The normalised words of `text`: runs of letters and digits, everything else a separator.
pub fn words(text: &str) -> Vec<String> {
    normalize(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The words of `text` in lower case with their accents, each with its normalised form (as
/// [`words`] gives it): stemmers need the accents ("avaliação", not "avaliacao"). Each
/// hyphenated word follows, joined ([`compounds`]). Compatibility forms are unfolded in both
/// (full-width letters, ligatures: "ＷＩＤＴＨ" is "width"), as [`normalize`] unfolds them.
pub fn lower_words(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let lower = lower_case(w);
            let normal = normalize(&lower);
            (lower, normal)
        })
        .filter(|(_, n)| !n.is_empty() && n.chars().all(char::is_alphanumeric))
        .collect();
    out.extend(compounds(text));
    out
}

/// The hyphenated words of `text` ("E-bike", "All-Access", "pós-operatório"), joined into one
/// word, lower-case with accents and normalised: ("ebike", "ebike"). Their parts are words of
/// their own too, but a part alone may be a function word of another language ("e") or shared
/// by every variant ("bike"), where the whole tells an e-bike from a city bike. Only letters
/// count: a code or a range ("RR-1007", "9-12") is not a word.
pub fn compounds(text: &str) -> Vec<(String, String)> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .map(|t| t.trim_matches('-'))
        .filter(|t| {
            let mut parts = t.split('-');
            t.contains('-') && parts.all(|p| !p.is_empty() && p.chars().all(char::is_alphabetic))
        })
        .map(|t| {
            let lower = lower_case(&t.replace('-', ""));
            let normal = normalize(&lower);
            (lower, normal)
        })
        .filter(|(_, n)| !n.is_empty() && n.chars().all(char::is_alphanumeric))
        .collect()
}

/// `word` in lower case, its accents kept and its compatibility forms unfolded (NFKC).
fn lower_case(word: &str) -> String {
    if word.is_ascii() {
        word.to_lowercase()
    } else {
        word.nfkc().collect::<String>().to_lowercase()
    }
}

/// The text to store for keyword search: the normalised words of `text` separated by single
/// spaces (`"Preço: 4,50 €"` becomes `"preco 4 50"`). Split the same way as [`terms`].
pub fn search_text(text: &str) -> String {
    words(text).join(" ")
}

/// Keyword-search terms of a query: normalised words, stopwords (en, es, pt, de, fr) removed,
/// duplicates dropped, at most 32. Codes and numbers are split where the index splits them:
/// `"RR-4410"` gives `["rr", "4410"]` and `"4.50"` gives `["4", "50"]`.
pub fn terms(query: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    words(query)
        .into_iter()
        .filter(|w| !STOPWORDS.contains(w.as_str()))
        .filter(|w| seen.insert(w.clone()))
        .take(MAX_TERMS)
        .collect()
}

/// The numbers `text` writes as part of a name, each with the word it follows, normalised:
/// a whole number right after a word (not a function word, a unit or a number word), with
/// nothing but a space between them and no unit after it ("Zona 3 (resto de la península)",
/// "Sala 2", "room 12" give `("zona", "3")`, `("sala", "2")`, `("room", "12")`). A label's value
/// ("Price: 38"), a time or a decimal ("Sábado 9:00", "kg 3,90") and a measure ("hasta 12
/// personas", "de 2 a 5 kg") are no name.
pub fn named_numbers(text: &str) -> Vec<(String, String)> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let plain_word = |token: &str| -> Option<String> {
        let word = normalize(token.trim_start_matches(['(', '[', '"', '\'', '¿', '¡']));
        (word.chars().count() >= 2 && word.chars().all(char::is_alphabetic)).then_some(word)
    };
    let mut out = Vec::new();
    for (i, pair) in tokens.windows(2).enumerate() {
        let Some(word) = plain_word(pair[0]) else {
            continue;
        };
        if is_stopword(&word)
            || super::quantity::is_unit_word(&word)
            || super::quantity::number_word(&word).is_some()
        {
            continue;
        }
        let number = pair[1].trim_end_matches([')', ']', ',', '.', '?', '!', ';', '"', '\'']);
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        // A unit word right after the number, with no mark between them, says what it
        // measures ("hasta 12 personas"); after a mark ("Zona 3 (resto...") it is no unit.
        let measured = tokens
            .get(i + 2)
            .and_then(|next| {
                let next = normalize(next.trim_matches(|c: char| !c.is_alphanumeric()));
                (!next.is_empty()).then_some(next)
            })
            .is_some_and(|next| {
                number.len() == pair[1].len() && super::quantity::is_unit_word(&next)
            });
        if !measured {
            out.push((word, number.to_string()));
        }
    }
    out
}

/// Whether `word` (normalised) is a function word or greeting of the languages customers write
/// in.
pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(word)
}

/// Separators a code may hold between its letters and digits (`RR-1001`, `SKU_22`, `A12/34`).
const CODE_SEPARATORS: [char; 4] = ['-', '_', '.', '/'];

/// Whether `token` is shaped like a code: ASCII letters and digits, holding at least one of
/// each, with [`CODE_SEPARATORS`] between them.
pub(crate) fn is_code_shaped(token: &str) -> bool {
    token.chars().any(|c| c.is_ascii_digit())
        && token.chars().any(|c| c.is_ascii_alphabetic())
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || CODE_SEPARATORS.contains(&c))
}

/// Product and order codes written in `text`: code-shaped tokens ([`is_code_shaped`]) at least
/// four characters long (`CK-223`, `RR1001`), upper-cased.
pub fn codes(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || CODE_SEPARATORS.contains(&c)))
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|t| t.chars().count() >= 4 && is_code_shaped(t))
        .map(str::to_uppercase)
        .collect()
}

/// Function words and greetings in the languages customers write in, in normalised form
/// (accents removed). Small on purpose: a word missing here costs a little ranking noise, a
/// content word wrongly listed here makes a fact unfindable by keyword.
static STOPWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    const EN: &str = "a an the and or but if of to in on at by for with from as is are was were be been being \
        do does did have has had i me my we our us you your he she him her it its they them their this that \
        these those what which who whom how when where why can could would should will shall may might must \
        there here about into than then so any some no not please hi hello hey thanks thank";
    const ES: &str = "el la los las un una unos unas de del al y o en con por para que es son ser se su sus mi mis \
        lo le les me te yo tu usted ustedes como cual cuando donde hay esta estan este esto eso muy mas pero \
        si hola gracias favor tiene tienen";
    const PT: &str = "o os a as um uma uns umas de do da dos das em no na nos nas por para pra com que e ou se seu \
        sua seus suas meu minha voce voces eu ele ela eles elas como qual quando onde tem ha esta estao isso \
        isto muito mais mas ola oi obrigado obrigada favor sao";
    const DE: &str = "der die das den dem des ein eine einen einem einer und oder zu im in am an auf fur mit von \
        vom bei ist sind es ich wir sie du ihr mein meine wie was wann wo gibt haben hat kann konnen auch \
        hallo bitte danke";
    const FR: &str = "le la les un une des du de et ou a au aux en dans sur pour par avec que qui quoi est sont \
        ce cet cette ces je tu il elle nous vous ils elles mon ma mes votre vos comment quand y bonjour merci";
    // NLTK's lists of each language's function words, beside ours (which add greetings and the
    // few words customers write without accents).
    // Negations are kept from them: "pan sin gluten" is not "pan con gluten".
    const NEGATIONS: [&str; 12] = [
        "no", "not", "nor", "sin", "sem", "nao", "ni", "nem", "nicht", "kein", "sans", "pas",
    ];
    static NLTK: LazyLock<Vec<String>> = LazyLock::new(|| {
        ["en", "es", "pt", "de", "fr"]
            .iter()
            .filter_map(|code| stop_words::lookup(code))
            .flatten()
            .map(|w| normalize(w))
            .filter(|w| !w.is_empty() && w.chars().all(char::is_alphanumeric))
            .filter(|w| !NEGATIONS.contains(&w.as_str()))
            .collect()
    });
    [EN, ES, PT, DE, FR]
        .iter()
        .flat_map(|list| list.split_whitespace())
        .chain(NLTK.iter().map(String::as_str))
        .collect()
});

/// Splits text into sentences at `.`, `!`, `?` and line breaks, but not inside decimals
/// (`4.50`), after abbreviations (`e.g.`, `Mr.`, `Sra.`) or in times (`9 a.m.`). Sentences are
/// trimmed; empty ones are dropped.
pub fn sentences(text: &str) -> Vec<String> {
    sentence_spans(text)
        .into_iter()
        .map(|r| text[r].to_owned())
        .collect()
}

/// Byte ranges of the sentences of `text` (trimmed, non-empty), in order.
pub(crate) fn sentence_spans(text: &str) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut spans = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if is_line_break(c) {
            push_trimmed(text, start..at, &mut spans);
            start = at + c.len_utf8();
            i += 1;
            continue;
        }
        if !is_terminator(c) {
            i += 1;
            continue;
        }
        // The whole run of terminators ("?!", "...") and any closing quotes or brackets after
        // it belong to the sentence they end.
        let mut last = i;
        while last + 1 < chars.len() && is_terminator(chars[last + 1].1) {
            last += 1;
        }
        while last + 1 < chars.len() && is_closing(chars[last + 1].1) {
            last += 1;
        }
        let end = chars[last].0 + chars[last].1.len_utf8();
        let next = chars.get(last + 1).map(|&(_, c)| c);
        let run: Vec<char> = chars[i..=last]
            .iter()
            .map(|&(_, c)| c)
            .filter(|c| is_terminator(*c))
            .collect();
        let at_boundary = match next {
            None => true,
            Some(n) if n.is_whitespace() => true,
            // Scripts without spaces between sentences.
            Some(_) => run.iter().any(|c| matches!(c, '。' | '！' | '？')),
        };
        let split = at_boundary
            && (!run.iter().all(|&c| c == '.') || period_ends_sentence(text, &chars, i, last));
        if split {
            push_trimmed(text, start..end, &mut spans);
            start = end;
        }
        i = last + 1;
    }
    push_trimmed(text, start..text.len(), &mut spans);
    spans
}

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}' | '\u{85}')
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？')
}

fn is_closing(c: char) -> bool {
    matches!(c, ')' | ']' | '"' | '\'' | '”' | '’' | '»')
}

/// Whether a run of periods (`chars[first..=last]`, followed by whitespace) ends a sentence.
fn period_ends_sentence(text: &str, chars: &[(usize, char)], first: usize, last: usize) -> bool {
    // A sentence never continues in lowercase after a real full stop.
    let next_word = chars[last + 1..]
        .iter()
        .map(|&(_, c)| c)
        .find(|c| !c.is_whitespace());
    if next_word.is_some_and(char::is_lowercase) {
        return false;
    }
    let single = chars[first..=last]
        .iter()
        .filter(|&&(_, c)| c == '.')
        .count()
        == 1;
    if !single {
        return true;
    }
    // The word the period is attached to.
    let word_end = chars[first].0;
    let word_start = text[..word_end]
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace() || matches!(c, '(' | '[' | '"' | '“' | '«' | '¿' | '¡'))
        .map_or(0, |(at, c)| at + c.len_utf8());
    !is_abbreviation(&text[word_start..word_end])
}

/// Titles and short forms that take a period without ending a sentence, plus dotted
/// initialisms (`e.g`, `a.m`, `z.B`) and single letters (initials).
fn is_abbreviation(word: &str) -> bool {
    const KNOWN: &[&str] = &[
        "mr", "mrs", "ms", "dr", "dra", "prof", "profa", "sr", "sra", "srta", "jr", "st", "vs",
        "av", "approx", "ca", "bzw", "vgl", "nr", "tel", "fig", "mme", "mlle", "cf", "dept", "nº",
        "n.º",
    ];
    let lower = word.to_lowercase();
    if KNOWN.contains(&lower.as_str()) {
        return true;
    }
    let segments: Vec<&str> = lower.split('.').collect();
    segments.iter().all(|s| {
        (1..=3).contains(&s.chars().count()) && s.chars().all(|c| c.is_alphabetic() || c == 'º')
    }) && (segments.len() > 1 || lower.chars().count() == 1)
}

fn push_trimmed(text: &str, range: Range<usize>, spans: &mut Vec<Range<usize>>) {
    let slice = &text[range.clone()];
    let trimmed = slice.trim();
    if trimmed.is_empty() {
        return;
    }
    let start = range.start + (slice.len() - slice.trim_start().len());
    spans.push(start..start + trimmed.len());
}

/// Whether `phrase` occurs in `haystack` as whole words, ignoring case, accents and
/// punctuation: `"humano"` matches `"Quero falar com um HUMANO!"`, `"agent"` does not match
/// `"agenda"`. A phrase without any letter or digit matches nothing.
pub fn contains_phrase(haystack: &str, phrase: &str) -> bool {
    let needle = words(phrase);
    if needle.is_empty() {
        return false;
    }
    let hay = words(haystack);
    hay.windows(needle.len()).any(|w| w == needle.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_after_a_word_with_no_unit_is_part_of_a_name() {
        let pair = |w: &str, n: &str| (w.to_string(), n.to_string());
        assert_eq!(
            named_numbers("Zona 3 (resto de la península) — Hasta 2 kg: 5,90 €"),
            [pair("zona", "3")]
        );
        assert_eq!(named_numbers("y a la Sala 2?"), [pair("sala", "2")]);
        // A label's value, a time, a decimal, a measure and a range are not.
        for text in [
            "Price: 38 EUR",
            "Sábado 9:00 a 14:00",
            "De 2 a 5 kg: 3,90 €",
            "Sala Albufera (hasta 12 personas)",
            "pesa unos 8 kilos",
            "Pack of 10",
            "Quarto 2 pessoas",
            "Lisboa 20 km",
        ] {
            assert_eq!(named_numbers(text), [], "{text}");
        }
    }

    #[test]
    fn codes_are_found_whole() {
        assert_eq!(
            codes("What is CK-223? And rr1001, or order #A12/34."),
            ["CK-223", "RR1001", "A12/34"]
        );
        assert!(codes("Open 9 to 18, 4.50 EUR, 2nd floor, COVID").is_empty());
    }

    #[test]
    fn normalize_lowercases_strips_accents_and_collapses_whitespace() {
        let cases = [
            ("Atenção", "atencao"),
            ("  São   Paulo\n\tÉ  ", "sao paulo e"),
            ("¿Dónde está el baño?", "¿donde esta el bano?"),
            ("Größe Straße", "grosse strasse"),
            ("Ærø Øl", "aero ol"),
            ("Crème brûlée 🍰 4,50 €", "creme brulee 🍰 4,50 €"),
            ("ﬁne ＡＢＣ", "fine abc"),
            ("İstanbul", "istanbul"),
            ("Ελληνικά", "ελληνικα"),
            ("한국어", "한국어"),
            ("", ""),
            ("   ", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn terms_are_normalised_deduped_and_free_of_stopwords() {
        let cases: &[(&str, &[&str])] = &[
            ("What is the price of RR-4410?", &["price", "rr", "4410"]),
            ("Costs 4.50 EUR", &["costs", "4", "50", "eur"]),
            ("Qual é o horário de sábado?", &["horario", "sabado"]),
            ("¿Tienen pan sin gluten?", &["pan", "sin", "gluten"]),
            (
                "Haben Sie glutenfreies Brot für Kinder?",
                &["glutenfreies", "brot", "kinder"],
            ),
            ("Est-ce que vous livrez à Porto ?", &["livrez", "porto"]),
            ("Bread bread BREAD bréad", &["bread"]),
            ("Olá 👋 quero um bolo 🎂", &["quero", "bolo"]),
            ("order CN-12345 please", &["order", "cn", "12345"]),
            ("", &[]),
            ("the and of", &[]),
        ];
        for (query, expected) in cases {
            assert_eq!(terms(query), *expected, "query {query:?}");
        }
    }

    #[test]
    fn hyphenated_words_are_joined() {
        assert_eq!(
            compounds("E-bike rental, All-Access; pós-operatório"),
            [
                ("ebike".to_string(), "ebike".to_string()),
                ("allaccess".to_string(), "allaccess".to_string()),
                ("pósoperatório".to_string(), "posoperatorio".to_string()),
            ]
        );
        // Codes, ranges and dashes between words are not words.
        assert!(compounds("RR-1007, 9-12 kg, open - closed, -x-").is_empty());
        assert!(lower_words("an e-bike").contains(&("ebike".into(), "ebike".into())));
    }

    #[test]
    fn words_in_full_width_letters_or_ligatures_are_their_plain_spelling() {
        assert_eq!(
            lower_words("ＷＩＤＴＨ of the ﬁnal Atenção"),
            [
                ("width".to_string(), "width".to_string()),
                ("of".to_string(), "of".to_string()),
                ("the".to_string(), "the".to_string()),
                ("final".to_string(), "final".to_string()),
                ("atenção".to_string(), "atencao".to_string()),
            ]
        );
    }

    #[test]
    fn terms_are_capped() {
        let query: String = (0..100).map(|i| format!("word{i} ")).collect();
        let t = terms(&query);
        assert_eq!(t.len(), MAX_TERMS);
        assert_eq!(t[0], "word0");
    }

    #[test]
    fn search_text_splits_like_terms() {
        let cases = [
            ("Preço: 4,50 € (SKU BR-101)", "preco 4 50 sku br 101"),
            ("Write to ola@casanube.pt!", "write to ola casanube pt"),
            ("Pão de Açúcar — 🍞", "pao de acucar"),
        ];
        for (input, expected) in cases {
            assert_eq!(search_text(input), expected, "input {input:?}");
        }
        // Every query term of a text occurs among the stored words of the same text.
        let text = "Custom cakes start at 45 EUR; order 72 hours ahead (Atenção: RR-4410).";
        let stored_text = search_text(text);
        let stored: Vec<&str> = stored_text.split(' ').collect();
        for term in terms(text) {
            assert!(
                stored.contains(&term.as_str()),
                "{term} missing from {stored:?}"
            );
        }
    }

    #[test]
    fn sentences_split_at_terminators_and_line_breaks_only() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Hello there. How are you? Fine!",
                &["Hello there.", "How are you?", "Fine!"],
            ),
            (
                "The loaf costs 4.50 EUR. Buy two.",
                &["The loaf costs 4.50 EUR.", "Buy two."],
            ),
            (
                "We open at 9 a.m. Saturday hours differ.",
                &["We open at 9 a.m. Saturday hours differ."],
            ),
            (
                "Bring something, e.g. Cake or bread. Thanks.",
                &["Bring something, e.g. Cake or bread.", "Thanks."],
            ),
            (
                "Mr. Silva called. Dr. Costa too.",
                &["Mr. Silva called.", "Dr. Costa too."],
            ),
            (
                "La Sra. Pérez llamó. ¿Está abierto? ¡Sí!",
                &["La Sra. Pérez llamó.", "¿Está abierto?", "¡Sí!"],
            ),
            ("Wait... Really?! Yes.", &["Wait...", "Really?!", "Yes."]),
            (
                "He said \"stop.\" Then left.",
                &["He said \"stop.\"", "Then left."],
            ),
            (
                "Line one\nLine two\r\n\r\nLine three",
                &["Line one", "Line two", "Line three"],
            ),
            (
                "Visit casanube.pt today. Or call.",
                &["Visit casanube.pt today.", "Or call."],
            ),
            ("Total: 4.50. Next item", &["Total: 4.50.", "Next item"]),
            (
                "Das kostet z.B. Geld. Ja.",
                &["Das kostet z.B. Geld.", "Ja."],
            ),
            (
                "Ótimo 👍. Até já 😀! Obrigado",
                &["Ótimo 👍.", "Até já 😀!", "Obrigado"],
            ),
            ("no terminator", &["no terminator"]),
            ("  \n \n ", &[]),
            ("", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(sentences(text), *expected, "text {text:?}");
        }
    }

    #[test]
    fn sentence_spans_point_into_the_text() {
        let text = "  Uno. Dos!\n Tres ";
        let spans = sentence_spans(text);
        let got: Vec<&str> = spans.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(got, ["Uno.", "Dos!", "Tres"]);
    }

    #[test]
    fn contains_phrase_matches_whole_words_ignoring_case_and_accents() {
        let cases = [
            ("Quero falar com um HUMANO!", "humano", true),
            ("I need to check my agenda", "agent", false),
            ("Can I talk to an agent?", "agent", true),
            ("Quiero hablar con una persona", "una persona", true),
            ("Quiero hablar con una persona", "persona una", false),
            ("Ich möchte einen Menschen sprechen", "MÖCHTE", true),
            ("Je veux parler à un conseiller", "a un conseiller", true),
            ("atendente humano, por favor 🙏", "atendente humano", true),
            ("REEMBOLSO já!", "reembolso ja", true),
            ("humanoid robots", "humano", false),
            ("anything", "", false),
            ("anything", "!!", false),
            ("", "humano", false),
        ];
        for (haystack, phrase, expected) in cases {
            assert_eq!(
                contains_phrase(haystack, phrase),
                expected,
                "{phrase:?} in {haystack:?}"
            );
        }
    }
}
