//! Languages: codes, detecting the language a customer writes in, and the folded form in which
//! texts are compared whatever their case and accents ([`normalize`]).

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Lowercases, removes accents and collapses whitespace: `"  Atenção,  São Paulo "` becomes
/// `"atencao, sao paulo"`. Punctuation, digits and emoji are kept.
///
/// Every passage and question goes through it many times a turn, so ASCII, most of any text,
/// skips the Unicode tables: only other characters are decomposed, one at a time (the marks
/// a decomposition yields are dropped, so their order, which NFKD of the whole text would
/// settle, does not matter), and only a result that is not ASCII is recomposed.
pub fn normalize(text: &str) -> String {
    let mut folded = Folded {
        out: String::with_capacity(text.len()),
        pending_space: false,
    };
    for c in text.chars() {
        if c.is_ascii() {
            folded.push(c);
        } else {
            // NFKD also unfolds compatibility forms (ligatures, full-width letters) so they
            // match their plain spelling.
            unicode_normalization::char::decompose_compatible(c, |d| folded.push(d));
        }
    }
    let out = folded.out;
    if out.is_ascii() {
        return out;
    }
    // Recompose what NFKD split but marks did not cover (Hangul syllables).
    out.nfc().collect()
}

/// [`normalize`]'s output as it is written.
struct Folded {
    out: String,
    pending_space: bool,
}

impl Folded {
    fn push(&mut self, c: char) {
        if c.is_ascii() {
            if c.is_whitespace() {
                self.pending_space = !self.out.is_empty();
                return;
            }
            self.space();
            self.out.push(c.to_ascii_lowercase());
            return;
        }
        if is_combining_mark(c) {
            return;
        }
        if c.is_whitespace() {
            self.pending_space = !self.out.is_empty();
            return;
        }
        self.space();
        for lower in c.to_lowercase() {
            push_folded(&mut self.out, lower);
        }
    }

    fn space(&mut self) {
        if self.pending_space {
            self.out.push(' ');
            self.pending_space = false;
        }
    }
}

/// Latin letters that do not decompose into base + mark (`ß`, `ø`, `æ`, `ł`, ...) are written
/// in ASCII, so "Straße" and "strasse" match.
fn push_folded(out: &mut String, c: char) {
    if !c.is_ascii() && c.is_alphabetic() && is_latin(c) {
        if let Some(ascii) = deunicode::deunicode_char(c)
            .filter(|s| !s.is_empty() && s.chars().all(|a| a.is_ascii_alphanumeric()))
        {
            out.push_str(&ascii.to_ascii_lowercase());
            return;
        }
    }
    out.push(c);
}

fn is_latin(c: char) -> bool {
    matches!(c as u32, 0x00C0..=0x024F | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF)
}

/// ISO 639-1 codes of the languages `whatlang` detects, with their ISO 639-3 codes.
const LANGUAGES: &[(&str, &str)] = &[
    ("af", "afr"),
    ("ak", "aka"),
    ("am", "amh"),
    ("ar", "ara"),
    ("az", "aze"),
    ("be", "bel"),
    ("bg", "bul"),
    ("bn", "ben"),
    ("ca", "cat"),
    ("cs", "ces"),
    ("da", "dan"),
    ("de", "deu"),
    ("el", "ell"),
    ("en", "eng"),
    ("eo", "epo"),
    ("es", "spa"),
    ("et", "est"),
    ("fa", "pes"),
    ("fi", "fin"),
    ("fr", "fra"),
    ("gu", "guj"),
    ("he", "heb"),
    ("hi", "hin"),
    ("hr", "hrv"),
    ("hu", "hun"),
    ("hy", "hye"),
    ("id", "ind"),
    ("it", "ita"),
    ("ja", "jpn"),
    ("jv", "jav"),
    ("ka", "kat"),
    ("km", "khm"),
    ("kn", "kan"),
    ("ko", "kor"),
    ("la", "lat"),
    ("lt", "lit"),
    ("lv", "lav"),
    ("mk", "mkd"),
    ("ml", "mal"),
    ("mr", "mar"),
    ("my", "mya"),
    ("nb", "nob"),
    ("ne", "nep"),
    ("nl", "nld"),
    ("no", "nob"),
    ("or", "ori"),
    ("pa", "pan"),
    ("pl", "pol"),
    ("pt", "por"),
    ("ro", "ron"),
    ("ru", "rus"),
    ("si", "sin"),
    ("sk", "slk"),
    ("sl", "slv"),
    ("sn", "sna"),
    ("sr", "srp"),
    ("sv", "swe"),
    ("ta", "tam"),
    ("te", "tel"),
    ("th", "tha"),
    ("tk", "tuk"),
    ("tl", "tgl"),
    ("tr", "tur"),
    ("uk", "ukr"),
    ("ur", "urd"),
    ("uz", "uzb"),
    ("vi", "vie"),
    ("yi", "yid"),
    ("zh", "cmn"),
    ("zu", "zul"),
];

/// Widely used languages (ISO 639-3) that detection chooses among: over all 70 languages
/// `whatlang` knows, short chat messages are often mistaken for a rare neighbour (English
/// for Afrikaans).
pub const COMMON: &[&str] = &[
    "eng", "spa", "por", "fra", "deu", "ita", "nld", "pol", "ron", "tur", "rus", "ukr", "ara",
    "cmn", "jpn", "kor", "hin", "ind", "vie", "tha", "ell", "heb", "swe", "ces", "hun",
];

/// The ISO 639-3 code for a 639-1 or 639-3 code `whatlang` knows.
pub fn iso639_3(code: &str) -> Option<&'static str> {
    let code = code.trim().to_ascii_lowercase();
    LANGUAGES
        .iter()
        .find(|(two, three)| *two == code || *three == code)
        .map(|(_, three)| *three)
}

/// Whether `code` is an ISO 639-1 code of a language `whatlang` knows, such as `pt`.
pub fn is_iso639_1(code: &str) -> bool {
    code.len() == 2 && iso639_3(code).is_some()
}

/// The English name of the language with ISO 639-1 or 639-3 code `code` ("Portuguese").
pub fn name(code: &str) -> Option<&'static str> {
    whatlang::Lang::from_code(iso639_3(code)?).map(whatlang::Lang::eng_name)
}

/// The ISO 639-1 code for a 639-3 code.
pub fn iso639_1(code: &str) -> Option<&'static str> {
    LANGUAGES
        .iter()
        .find(|(_, three)| *three == code)
        .map(|(two, _)| *two)
}

/// Words that mark a language in short chat messages, where letter statistics say little:
/// function words, greetings and the verbs customers use (Portuguese `quero`, Spanish `quiero`).
/// A word common to two languages is listed under both ("no", "está"), so that it decides
/// neither.
const MARKERS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "the", "is", "are", "you", "your", "what", "how", "much", "when", "where", "can", "do",
            "does", "i", "my", "to", "and", "with", "have", "want", "please", "thanks", "hello",
            "hi", "open", "price", "need", "would", "like", "talk", "person",
        ],
    ),
    (
        "pt",
        &[
            "não",
            "você",
            "vocês",
            "obrigado",
            "obrigada",
            "quero",
            "um",
            "uma",
            "com",
            "olá",
            "quanto",
            "custa",
            "têm",
            "tem",
            "posso",
            "pode",
            "qual",
            "quando",
            "onde",
            "meu",
            "minha",
            "está",
            "são",
            "também",
            "falar",
            "atendente",
            "pessoa",
            "isso",
            "ao",
            "do",
            "da",
            "no",
            "na",
            "dos",
            "das",
            "os",
            "as",
            "é",
            "e",
            "fazer",
            "preciso",
            "fazem",
            "vendem",
            "aceitam",
            "estão",
            "hoje",
            "amanhã",
            "ainda",
            "boa",
            "bom",
            "muito",
        ],
    ),
    (
        "es",
        &[
            "quiero", "un", "una", "con", "hola", "cuánto", "cuanto", "cuesta", "tienen", "tiene",
            "puedo", "puede", "cuál", "cuándo", "dónde", "mi", "está", "son", "también", "hablar",
            "persona", "eso", "el", "la", "los", "las", "del", "al", "es", "y", "gracias", "hacer",
            "necesito", "usted", "abrís", "abren", "hay", "no", "ni", "lo", "muy", "pero",
            "tenemos",
        ],
    ),
    (
        "fr",
        &[
            "je",
            "vous",
            "est",
            "les",
            "des",
            "une",
            "avec",
            "bonjour",
            "merci",
            "combien",
            "quand",
            "où",
            "pouvez",
            "puis",
            "voudrais",
            "veux",
            "parler",
            "êtes",
            "sont",
            "le",
            "la",
            "du",
            "et",
            "pas",
            "ouvert",
            "ouverture",
            "horaires",
        ],
    ),
    (
        "de",
        &[
            "ich",
            "sie",
            "ist",
            "sind",
            "die",
            "der",
            "das",
            "und",
            "mit",
            "ein",
            "eine",
            "hallo",
            "danke",
            "bitte",
            "wie",
            "viel",
            "kostet",
            "wann",
            "wo",
            "können",
            "kann",
            "möchte",
            "mein",
            "meine",
            "nicht",
            "sprechen",
            "geöffnet",
            "haben",
        ],
    ),
];

/// How customers shorten words in chat, per language, normalised: each short form and the
/// words it stands for. Only forms that mean one thing in their language; a form shared by
/// the languages with the same meaning ("q") is in each.
const SHORTHAND: &[(&str, &[(&str, &str)])] = &[
    (
        "pt",
        &[
            ("vc", "voce"),
            ("vcs", "voces"),
            ("voce", "voce"),
            ("pra", "para"),
            ("x", "por"),
            ("pro", "para o"),
            ("pras", "para as"),
            ("pros", "para os"),
            ("q", "que"),
            ("oq", "o que"),
            ("tb", "tambem"),
            ("tbm", "tambem"),
            ("tmb", "tambem"),
            ("qnto", "quanto"),
            ("qnta", "quanta"),
            ("qntos", "quantos"),
            ("qntas", "quantas"),
            ("qto", "quanto"),
            ("qta", "quanta"),
            ("qtos", "quantos"),
            ("qnt", "quanto"),
            ("qdo", "quando"),
            ("qndo", "quando"),
            ("hj", "hoje"),
            ("amnh", "amanha"),
            ("obg", "obrigado"),
            ("obgd", "obrigado"),
            ("obgda", "obrigada"),
            ("pq", "porque"),
            ("ta", "esta"),
            ("tao", "estao"),
            ("to", "estou"),
            ("tava", "estava"),
            ("td", "tudo"),
            ("tds", "todos"),
            ("msm", "mesmo"),
            ("n", "nao"),
            ("nd", "nada"),
            ("cmg", "comigo"),
            ("dps", "depois"),
            ("fds", "fim de semana"),
            ("mt", "muito"),
            ("mto", "muito"),
            ("mta", "muita"),
            ("mts", "muitos"),
            ("agr", "agora"),
            ("aki", "aqui"),
            ("blz", "beleza"),
            ("vlw", "valeu"),
            ("pfv", "por favor"),
            ("pfvr", "por favor"),
            ("qq", "qualquer"),
            ("qlq", "qualquer"),
            ("ngm", "ninguem"),
            ("alg", "alguem"),
            ("dnv", "de novo"),
            ("hr", "hora"),
            ("hrs", "horas"),
            ("tel", "telefone"),
            ("end", "endereco"),
            ("info", "informacao"),
            ("infos", "informacoes"),
            ("zap", "whatsapp"),
        ],
    ),
    (
        "es",
        &[
            ("q", "que"),
            ("k", "que"),
            ("ke", "que"),
            ("xq", "porque"),
            ("xk", "porque"),
            ("pq", "porque"),
            ("porq", "porque"),
            ("x", "por"),
            ("tb", "tambien"),
            ("tmb", "tambien"),
            ("tbn", "tambien"),
            ("tmbn", "tambien"),
            ("dnd", "donde"),
            ("d", "de"),
            ("xfa", "por favor"),
            ("porfa", "por favor"),
            ("grax", "gracias"),
            ("msj", "mensaje"),
            ("cdo", "cuando"),
            ("kiero", "quiero"),
            ("bn", "bien"),
            ("finde", "fin de semana"),
            ("mñn", "manana"),
            ("xo", "pero"),
            ("pa", "para"),
            ("pal", "para el"),
            ("toy", "estoy"),
            ("ta", "esta"),
            ("tan", "estan"),
            ("hr", "hora"),
            ("hrs", "horas"),
            ("tel", "telefono"),
            ("info", "informacion"),
        ],
    ),
    (
        "en",
        &[
            ("u", "you"),
            ("ur", "your"),
            ("r", "are"),
            ("pls", "please"),
            ("plz", "please"),
            ("thx", "thanks"),
            ("ty", "thank you"),
            ("bc", "because"),
            ("cuz", "because"),
            ("abt", "about"),
            ("wknd", "weekend"),
            ("tmrw", "tomorrow"),
            ("tmr", "tomorrow"),
            ("tonite", "tonight"),
            ("im", "i am"),
            ("ive", "i have"),
            ("dont", "do not"),
            ("doesnt", "does not"),
            ("cant", "cannot"),
            ("wont", "will not"),
            ("whats", "what is"),
            ("hows", "how is"),
            ("wheres", "where is"),
            ("yr", "your"),
            ("hrs", "hours"),
            ("hr", "hour"),
            ("appt", "appointment"),
            ("info", "information"),
            ("gonna", "going to"),
            ("wanna", "want to"),
        ],
    ),
];

/// `text` with the chat shorthand of `language` written out ("qnto custa pra 2?" becomes
/// "quanto custa para 2?"): whole words only, compared without case or accents; everything
/// else is kept as written. Without a language, only forms that every shipped language reads
/// alike are written out.
pub fn expand_shorthand(text: &str, language: Option<&str>) -> String {
    let table: Vec<(&str, &str)> = match language {
        Some(l) => SHORTHAND
            .iter()
            .find(|(lang, _)| *lang == l)
            .map(|(_, forms)| forms.to_vec())
            .unwrap_or_default(),
        None => {
            let all: Vec<&(&str, &str)> = SHORTHAND.iter().flat_map(|(_, f)| f.iter()).collect();
            all.iter()
                .filter(|(form, long)| {
                    all.iter()
                        .filter(|(f, _)| f == form)
                        .all(|(_, l)| l == long)
                        && SHORTHAND
                            .iter()
                            .filter(|(_, forms)| forms.iter().any(|(f, _)| f == form))
                            .count()
                            > 1
                })
                .map(|pair| **pair)
                .collect()
        }
    };
    if table.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        let key = normalize(word);
        match table.iter().find(|(form, _)| *form == key) {
            Some((_, long)) => out.push_str(long),
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Whether `word` (normalised) is a chat short form of `language`.
fn is_shorthand(word: &str, language: &str) -> bool {
    SHORTHAND
        .iter()
        .find(|(l, _)| *l == language)
        .is_some_and(|(_, forms)| forms.iter().any(|(f, _)| *f == word))
}

/// Lowest `whatlang` confidence trusted when the marker words do not decide.
const MIN_CONFIDENCE: f64 = 0.5;
/// Fewest letters a message needs before its letter statistics are trusted.
const MIN_LETTERS: usize = 12;

/// The language (ISO 639-1) `text` is written in, when it says so clearly enough: a greeting
/// alone, a product code or an emoji says nothing. Short messages are judged by their marker
/// words (for the languages the bot ships messages in), longer ones by `whatlang` among
/// [`COMMON`] languages.
pub fn detect(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .collect();
    // Customers drop accents ("nao", "voce", "amanha") and shorten words ("vcs", "qnto"):
    // markers count when the folded word matches, and a short form of one language alone marks
    // it as a marker does.
    let folded: Vec<String> = words.iter().map(|w| normalize(w)).collect();
    let mut scores: Vec<(&'static str, usize)> = MARKERS
        .iter()
        .map(|(lang, markers)| {
            let marked = words
                .iter()
                .zip(&folded)
                .filter(|(w, f)| {
                    markers.contains(w)
                        || markers
                            .iter()
                            .any(|m| m.chars().count() > 2 && normalize(m) == **f)
                        || (f.len() >= 2
                            && is_shorthand(f, lang)
                            && !MARKERS
                                .iter()
                                .filter(|(other, _)| other != lang)
                                .any(|(other, _)| is_shorthand(f, other)))
                })
                .count();
            let extra = if *lang == "es" {
                spanish_marks(&lower, &words)
            } else {
                0
            };
            (*lang, marked + extra)
        })
        .collect();
    scores.sort_by_key(|s| std::cmp::Reverse(s.1));
    let (best, runner_up) = (scores[0], scores[1]);
    if best.1 >= 2 && best.1 >= runner_up.1 + 2 {
        return Some(best.0);
    }
    if text.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return None;
    }
    let allowed: Vec<whatlang::Lang> = COMMON
        .iter()
        .filter_map(|c| whatlang::Lang::from_code(*c))
        .collect();
    let info = whatlang::Detector::with_allowlist(allowed).detect(text)?;
    let found = iso639_1(info.lang().code())?;
    // Letter statistics must not contradict the words: the language found has as many marker
    // words as any.
    let agrees = scores
        .iter()
        .any(|(lang, n)| *lang == found && *n == best.1);
    // Marker words that lead, and letter statistics that agree, are two weak signals that
    // together suffice ("Vendem escovas de dentes na clínica?").
    let leads = best.0 == found && best.1 > runner_up.1;
    (agrees && (info.confidence() >= MIN_CONFIDENCE || leads)).then_some(found)
}

/// Spanish writes what no other language does: an opening `¿` or `¡` (two markers' worth), and
/// the vosotros verb endings `-áis`/`-éis` ("¿Vendéis...?", "¿Tenéis...?").
fn spanish_marks(lower: &str, words: &[&str]) -> usize {
    let opening = if lower.contains(['¿', '¡']) { 2 } else { 0 };
    opening
        + words
            .iter()
            .filter(|w| w.chars().count() > 4 && (w.ends_with("áis") || w.ends_with("éis")))
            .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn la_is_as_spanish_as_it_is_french() {
        // A Spanish customer's "la de la peninsula" was French by its marker words alone; its
        // words tell neither, and the conversation's earlier language stands.
        assert_eq!(detect("la de la peninsula"), None);
        assert_eq!(detect("Bonjour, je voudrais la chambre double"), Some("fr"));
    }

    /// The definition [`normalize`] computes faster: NFKD of the whole text, marks dropped,
    /// whitespace collapsed, each character lowercased and folded, NFC of the result.
    fn normalize_by_definition(text: &str) -> String {
        let mut out = String::new();
        let mut pending_space = false;
        for c in text.nfkd() {
            if is_combining_mark(c) {
                continue;
            }
            if c.is_whitespace() {
                pending_space = !out.is_empty();
                continue;
            }
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            for lower in c.to_lowercase() {
                push_folded(&mut out, lower);
            }
        }
        out.nfc().collect()
    }

    #[test]
    fn normalizing_matches_its_definition() {
        for text in [
            "",
            "   ",
            "  Atenção,  São Paulo ",
            "Straße, Øresund, Æsir, Łódź, façade",
            "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ and ligature ﬁ, ½, ²",
            "e\u{0301}\u{0323} a\u{0308}\u{0301} combining marks in any order",
            "한국어 텍스트 그리고 ᄒᆞᆫ",
            "tabs\tand\nnewlines\u{000B}vertical\u{000C}feed\u{00A0}nbsp\u{2003}em",
            "İstanbul ΣΟΦΊΑ ὈΔΥΣΣΕΎΣ",
            "🚲🔧 Emoji 👍🏽 and ZWJ 👨‍👩‍👧",
            "营业时间是几点？ Привет, Ёжик! مرحبا",
            "qnto custa pra 2? vc tem vaga hj? R$ 140,00",
        ] {
            assert_eq!(normalize(text), normalize_by_definition(text), "{text:?}");
        }
    }

    #[test]
    fn customers_languages_are_told_apart() {
        for (text, want) in [
            ("Quero falar com um atendente, por favor.", "pt"),
            ("Quanto custa a reparação de um furo?", "pt"),
            ("¿A qué hora abrís el sábado por la mañana?", "es"),
            ("Por favor, quiero hablar con un humano.", "es"),
            ("How much is a puncture repair?", "en"),
            ("Quels sont vos horaires d'ouverture le samedi ?", "fr"),
            ("Ich möchte meinen Termin für morgen absagen.", "de"),
            ("Vocês abrem no domingo?", "pt"),
            ("olá, quanto custa?", "pt"),
            ("hola, ¿cuánto cuesta?", "es"),
            ("can I talk to a person please", "en"),
            ("¿Vendéis cacao o chocolate a la taza?", "es"),
            ("Vendem escovas de dentes elétricas na clínica?", "pt"),
            (
                "Vocês fazem pintura personalizada de quadros de bicicleta?",
                "pt",
            ),
            (
                "Bonjour, je voudrais savoir si vous êtes ouverts dimanche.",
                "fr",
            ),
            // As customers type in chat: no accents, short forms.
            ("vcs abrem sabado? ate q horas", "pt"),
            ("qnto custa a avaliacao?", "pt"),
            ("oi, vc sabe se tem estacionamento aí?", "pt"),
            ("dnd estan ubicados?", "es"),
            ("xq no abris el domingo", "es"),
            ("hi how much r ur prices", "en"),
            // "no" is Portuguese "in the" and Spanish "not": it marks neither alone.
            (
                "Lo que no tenemos. No vendemos animales vivos: ni cachorros, ni gatitos. \
                 No tenemos peluquería canina ni servicio veterinario.",
                "es",
            ),
        ] {
            assert_eq!(detect(text), Some(want), "{text}");
        }
    }

    #[test]
    fn chat_shorthand_is_written_out() {
        assert_eq!(
            expand_shorthand("qnto custa pra 2 pessoas? vcs aceitam pix?", Some("pt")),
            "quanto custa para 2 pessoas? voces aceitam pix?"
        );
        assert_eq!(
            expand_shorthand("xq no abris? dnd estan", Some("es")),
            "porque no abris? donde estan"
        );
        assert_eq!(
            expand_shorthand("la familiar cuanto es x noche?", Some("es")),
            "la familiar cuanto es por noche?"
        );
        assert_eq!(
            expand_shorthand("qnto é x pessoa?", Some("pt")),
            "quanto é por pessoa?"
        );
        // Case and accents of other words are kept; a form is a whole word only.
        assert_eq!(
            expand_shorthand("Talla L, q precio tiene?", Some("es")),
            "Talla L, que precio tiene?"
        );
        assert_eq!(expand_shorthand("Quanto é?", Some("pt")), "Quanto é?");
        // Without a language, only what every language reads alike.
        assert_eq!(expand_shorthand("q horario?", None), "que horario?");
        assert_eq!(expand_shorthand("tb abre?", None), "tb abre?");
    }

    #[test]
    fn short_messages_say_nothing() {
        for text in ["ok", "obrigado", "RR-1007", "👍", "", "hola"] {
            assert_eq!(detect(text), None, "{text}");
        }
    }

    #[test]
    fn codes_convert_both_ways() {
        assert_eq!(iso639_3("pt"), Some("por"));
        assert_eq!(iso639_3("POR"), Some("por"));
        assert_eq!(iso639_1("spa"), Some("es"));
        assert_eq!(iso639_3("xx"), None);
    }

    #[test]
    fn languages_have_english_names() {
        assert_eq!(name("pt"), Some("Portuguese"));
        assert_eq!(name("deu"), Some("German"));
        assert_eq!(name("xx"), None);
    }
}
