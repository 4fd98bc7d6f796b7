//! Quantities: the numbers a customer gives about themselves or what they want ("my dog weighs
//! 25 kilos", "uns 12 km", "para 10 personas", "twice a week", "I'm 68", "for the whole day"),
//! and the bands a price list sorts by ("até 8 km", "de 8 a 15 km", "acima de 15 km", "2-3
//! bedrooms", "aged 65 and over", "hasta 2 kg", "media jornada"). A row of a table whose band
//! holds the customer's number is the row that answers; a row whose band excludes it never
//! does, however alike its words.
//!
//! Both sides are read from [`normalize`]d text (lower case, no accents), with number words and
//! unit names in the shipped languages (en, pt, es, fr, de). Times of day ("18:00"), dates and
//! amounts of money are not quantities here: they are what answers say, not what sorts rows.

use crate::language::normalize;

/// What a quantity counts or measures. Units of one kind compare; different kinds never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Distance, in kilometres.
    Km,
    /// Weight, in kilograms (grams are converted).
    Kg,
    /// Length, in centimetres.
    Cm,
    /// Wheel, screen and pipe sizes, in inches: kept apart from centimetres, as a size said
    /// without its unit ("aro 16") is in the unit its list is written in.
    Inches,
    /// Floor area, in square metres.
    SquareMetres,
    /// Age or duration in years.
    Years,
    /// Duration in months.
    Months,
    /// Duration in weeks.
    Weeks,
    /// Duration in days.
    Days,
    /// Nights of a stay.
    Nights,
    /// Duration in hours.
    Hours,
    /// Duration in minutes.
    Minutes,
    /// People in a group.
    People,
    /// Sessions, classes or visits.
    Sessions,
    /// Times (a week, a month): "2x", "twice", "duas vezes".
    Times,
    /// Rooms or bedrooms.
    Rooms,
    /// Items in a pack or an order.
    Items,
    /// Volume, in litres.
    Litres,
}

/// Unit names, normalised, each with its unit and the factor to that unit's measure. Longer
/// names come first where one is the start of another.
const UNIT_WORDS: &[(&str, Unit, f64)] = &[
    // Distance.
    ("km", Unit::Km, 1.0),
    ("kms", Unit::Km, 1.0),
    ("quilometros", Unit::Km, 1.0),
    ("quilometro", Unit::Km, 1.0),
    ("kilometros", Unit::Km, 1.0),
    ("kilometro", Unit::Km, 1.0),
    ("kilometres", Unit::Km, 1.0),
    ("kilometre", Unit::Km, 1.0),
    ("kilometers", Unit::Km, 1.0),
    ("kilometer", Unit::Km, 1.0),
    ("miles", Unit::Km, 1.609),
    ("mile", Unit::Km, 1.609),
    ("milhas", Unit::Km, 1.609),
    ("milha", Unit::Km, 1.609),
    ("millas", Unit::Km, 1.609),
    ("milla", Unit::Km, 1.609),
    ("milles", Unit::Km, 1.609),
    ("meilen", Unit::Km, 1.609),
    ("meile", Unit::Km, 1.609),
    // Weight.
    ("kg", Unit::Kg, 1.0),
    ("kgs", Unit::Kg, 1.0),
    ("kilos", Unit::Kg, 1.0),
    ("kilo", Unit::Kg, 1.0),
    ("quilos", Unit::Kg, 1.0),
    ("quilo", Unit::Kg, 1.0),
    ("kilogramos", Unit::Kg, 1.0),
    ("kilogramo", Unit::Kg, 1.0),
    ("quilogramas", Unit::Kg, 1.0),
    ("quilograma", Unit::Kg, 1.0),
    ("kilograms", Unit::Kg, 1.0),
    ("kilogram", Unit::Kg, 1.0),
    ("kilogramm", Unit::Kg, 1.0),
    ("g", Unit::Kg, 0.001),
    ("gr", Unit::Kg, 0.001),
    ("gramas", Unit::Kg, 0.001),
    ("gramos", Unit::Kg, 0.001),
    ("grams", Unit::Kg, 0.001),
    ("gramm", Unit::Kg, 0.001),
    ("grammes", Unit::Kg, 0.001),
    // Length.
    ("cm", Unit::Cm, 1.0),
    ("cms", Unit::Cm, 1.0),
    ("centimetros", Unit::Cm, 1.0),
    ("centimetres", Unit::Cm, 1.0),
    ("centimeters", Unit::Cm, 1.0),
    ("zentimeter", Unit::Cm, 1.0),
    // Wheel, screen and pipe sizes.
    ("inches", Unit::Inches, 1.0),
    ("inch", Unit::Inches, 1.0),
    ("polegadas", Unit::Inches, 1.0),
    ("polegada", Unit::Inches, 1.0),
    ("pulgadas", Unit::Inches, 1.0),
    ("pulgada", Unit::Inches, 1.0),
    ("pouces", Unit::Inches, 1.0),
    ("pouce", Unit::Inches, 1.0),
    ("zoll", Unit::Inches, 1.0),
    // Area.
    ("m2", Unit::SquareMetres, 1.0),
    ("sqm", Unit::SquareMetres, 1.0),
    // Time.
    ("anos", Unit::Years, 1.0),
    ("ano", Unit::Years, 1.0),
    ("years", Unit::Years, 1.0),
    ("year", Unit::Years, 1.0),
    ("yrs", Unit::Years, 1.0),
    ("yo", Unit::Years, 1.0),
    ("ans", Unit::Years, 1.0),
    ("jahre", Unit::Years, 1.0),
    ("jahren", Unit::Years, 1.0),
    ("jahr", Unit::Years, 1.0),
    ("meses", Unit::Months, 1.0),
    ("mes", Unit::Months, 1.0),
    ("months", Unit::Months, 1.0),
    ("month", Unit::Months, 1.0),
    ("mois", Unit::Months, 1.0),
    ("monate", Unit::Months, 1.0),
    ("monat", Unit::Months, 1.0),
    ("semanas", Unit::Weeks, 1.0),
    ("semana", Unit::Weeks, 1.0),
    ("weeks", Unit::Weeks, 1.0),
    ("week", Unit::Weeks, 1.0),
    ("semaines", Unit::Weeks, 1.0),
    ("semaine", Unit::Weeks, 1.0),
    ("wochen", Unit::Weeks, 1.0),
    ("woche", Unit::Weeks, 1.0),
    ("dias", Unit::Days, 1.0),
    ("dia", Unit::Days, 1.0),
    ("days", Unit::Days, 1.0),
    ("day", Unit::Days, 1.0),
    ("jours", Unit::Days, 1.0),
    ("jour", Unit::Days, 1.0),
    ("tage", Unit::Days, 1.0),
    ("tag", Unit::Days, 1.0),
    ("noites", Unit::Nights, 1.0),
    ("noite", Unit::Nights, 1.0),
    ("noches", Unit::Nights, 1.0),
    ("noche", Unit::Nights, 1.0),
    ("nights", Unit::Nights, 1.0),
    ("night", Unit::Nights, 1.0),
    ("nuits", Unit::Nights, 1.0),
    ("nuit", Unit::Nights, 1.0),
    ("nachte", Unit::Nights, 1.0),
    ("nacht", Unit::Nights, 1.0),
    ("horas", Unit::Hours, 1.0),
    ("hora", Unit::Hours, 1.0),
    ("hours", Unit::Hours, 1.0),
    ("hour", Unit::Hours, 1.0),
    ("hrs", Unit::Hours, 1.0),
    ("h", Unit::Hours, 1.0),
    ("heures", Unit::Hours, 1.0),
    ("heure", Unit::Hours, 1.0),
    ("stunden", Unit::Hours, 1.0),
    ("stunde", Unit::Hours, 1.0),
    ("minutos", Unit::Minutes, 1.0),
    ("minuto", Unit::Minutes, 1.0),
    ("minutes", Unit::Minutes, 1.0),
    ("minute", Unit::Minutes, 1.0),
    ("minuten", Unit::Minutes, 1.0),
    ("mins", Unit::Minutes, 1.0),
    ("min", Unit::Minutes, 1.0),
    // Counts.
    ("pessoas", Unit::People, 1.0),
    ("pessoa", Unit::People, 1.0),
    ("personas", Unit::People, 1.0),
    ("persona", Unit::People, 1.0),
    ("people", Unit::People, 1.0),
    ("persons", Unit::People, 1.0),
    ("person", Unit::People, 1.0),
    ("personnes", Unit::People, 1.0),
    ("personen", Unit::People, 1.0),
    ("pax", Unit::People, 1.0),
    ("comensales", Unit::People, 1.0),
    ("convidados", Unit::People, 1.0),
    ("invitados", Unit::People, 1.0),
    ("guests", Unit::People, 1.0),
    ("adultos", Unit::People, 1.0),
    ("adults", Unit::People, 1.0),
    ("sessoes", Unit::Sessions, 1.0),
    ("sessao", Unit::Sessions, 1.0),
    ("sesiones", Unit::Sessions, 1.0),
    ("sesion", Unit::Sessions, 1.0),
    ("sessions", Unit::Sessions, 1.0),
    ("session", Unit::Sessions, 1.0),
    ("seances", Unit::Sessions, 1.0),
    ("aulas", Unit::Sessions, 1.0),
    ("aula", Unit::Sessions, 1.0),
    ("clases", Unit::Sessions, 1.0),
    ("clase", Unit::Sessions, 1.0),
    ("classes", Unit::Sessions, 1.0),
    ("class", Unit::Sessions, 1.0),
    ("lessons", Unit::Sessions, 1.0),
    ("lesson", Unit::Sessions, 1.0),
    ("visits", Unit::Sessions, 1.0),
    ("visitas", Unit::Sessions, 1.0),
    ("x", Unit::Times, 1.0),
    ("vezes", Unit::Times, 1.0),
    ("vez", Unit::Times, 1.0),
    ("veces", Unit::Times, 1.0),
    ("times", Unit::Times, 1.0),
    ("fois", Unit::Times, 1.0),
    ("mal", Unit::Times, 1.0),
    ("quartos", Unit::Rooms, 1.0),
    ("quarto", Unit::Rooms, 1.0),
    ("dormitorios", Unit::Rooms, 1.0),
    ("dormitorio", Unit::Rooms, 1.0),
    ("habitaciones", Unit::Rooms, 1.0),
    ("habitacion", Unit::Rooms, 1.0),
    ("bedrooms", Unit::Rooms, 1.0),
    ("bedroom", Unit::Rooms, 1.0),
    ("bed", Unit::Rooms, 1.0),
    ("beds", Unit::Rooms, 1.0),
    ("rooms", Unit::Rooms, 1.0),
    ("room", Unit::Rooms, 1.0),
    ("chambres", Unit::Rooms, 1.0),
    ("zimmer", Unit::Rooms, 1.0),
    ("litros", Unit::Litres, 1.0),
    ("litro", Unit::Litres, 1.0),
    ("litres", Unit::Litres, 1.0),
    ("litre", Unit::Litres, 1.0),
    ("liters", Unit::Litres, 1.0),
    ("liter", Unit::Litres, 1.0),
    ("ml", Unit::Litres, 0.001),
    ("unidades", Unit::Items, 1.0),
    ("unidad", Unit::Items, 1.0),
    ("unidade", Unit::Items, 1.0),
    ("units", Unit::Items, 1.0),
    ("items", Unit::Items, 1.0),
    ("pecas", Unit::Items, 1.0),
    ("piezas", Unit::Items, 1.0),
];

/// Units that count things, which may follow their number after a word ("20 pt sessions").
const COUNTS: &[Unit] = &[
    Unit::Sessions,
    Unit::People,
    Unit::Items,
    Unit::Rooms,
    Unit::Nights,
];

/// Multi-word unit names, normalised.
const UNIT_PHRASES: &[(&[&str], Unit, f64)] = &[
    (&["metros", "quadrados"], Unit::SquareMetres, 1.0),
    (&["metros", "cuadrados"], Unit::SquareMetres, 1.0),
    (&["square", "metres"], Unit::SquareMetres, 1.0),
    (&["square", "meters"], Unit::SquareMetres, 1.0),
    (&["metres", "carres"], Unit::SquareMetres, 1.0),
    (&["m", "2"], Unit::SquareMetres, 1.0),
];

/// Words that make a day a whole one ("full day", "el día entero", "jornada completa", "ganzer
/// Tag"): one day.
const WHOLE: &[&str] = &[
    "full", "whole", "entire", "completo", "completa", "entero", "entera", "inteiro", "inteira",
    "complete", "entiere", "ganzer", "ganzen", "ganze", "ganzes",
];

/// Words that make a day half of one ("half day", "media jornada", "demi-journée").
/// Not the Portuguese "meio" nor the Spanish "medio": "meio dia" and "a medio día" are noon.
const HALF: &[&str] = &[
    "half", "media", "meia", "demi", "halber", "halben", "halbe", "halbes",
];

/// Words for a working day, which a whole or half one is said of ("jornada completa",
/// "demi-journée") besides the day's own name.
const WORKING_DAY: &[&str] = &["jornada", "journee"];

/// Number words in the shipped languages, normalised. The articles that are the number one
/// as well ("um dia", "un día", "un jour", "ein Tag") count one as "one day" does; English
/// "a" and "an" are articles only ("a day pass" names a thing).
const NUMBER_WORDS: &[(&str, f64)] = &[
    ("one", 1.0),
    ("two", 2.0),
    ("three", 3.0),
    ("four", 4.0),
    ("five", 5.0),
    ("six", 6.0),
    ("seven", 7.0),
    ("eight", 8.0),
    ("nine", 9.0),
    ("ten", 10.0),
    ("eleven", 11.0),
    ("twelve", 12.0),
    ("twenty", 20.0),
    ("um", 1.0),
    ("uma", 1.0),
    ("dois", 2.0),
    ("duas", 2.0),
    ("tres", 3.0),
    ("quatro", 4.0),
    ("cinco", 5.0),
    ("seis", 6.0),
    ("sete", 7.0),
    ("oito", 8.0),
    ("nove", 9.0),
    ("dez", 10.0),
    ("onze", 11.0),
    ("doze", 12.0),
    ("vinte", 20.0),
    ("uno", 1.0),
    ("una", 1.0),
    ("un", 1.0),
    ("dos", 2.0),
    ("cuatro", 4.0),
    ("siete", 7.0),
    ("ocho", 8.0),
    ("nueve", 9.0),
    ("diez", 10.0),
    ("doce", 12.0),
    ("veinte", 20.0),
    ("une", 1.0),
    ("deux", 2.0),
    ("quatre", 4.0),
    ("sept", 7.0),
    ("huit", 8.0),
    ("neuf", 9.0),
    ("dix", 10.0),
    ("ein", 1.0),
    ("eine", 1.0),
    ("einen", 1.0),
    ("eins", 1.0),
    ("zwei", 2.0),
    ("drei", 3.0),
    ("vier", 4.0),
    ("funf", 5.0),
    ("sechs", 6.0),
    ("sieben", 7.0),
    ("acht", 8.0),
    ("neun", 9.0),
    ("zehn", 10.0),
];

/// Words for "so many times": "twice a week" counts 2.
const TIMES_WORDS: &[(&str, f64)] = &[("once", 1.0), ("twice", 2.0), ("thrice", 3.0)];

/// Words that a number of one's own age follows: "I'm 68", "tenho 40", "tengo 70", "aged 65".
const AGE_CUES: &[&[&str]] = &[
    &["ages"],
    &["i", "m"],
    &["im"],
    &["i", "am"],
    &["aged"],
    &["age"],
    &["tenho"],
    &["tengo"],
    &["idade", "de"],
    &["edad", "de"],
];

/// Words that open a lower bound its own value is not in: "more than 5 kg" (after "2 to 5
/// kg"), "acima de 25 kg" (after "de 10,1 a 25 kg"). A customer's round number often falls on
/// such a bound, which the band before holds.
const MORE_THAN: &[&[&str]] = &[
    &["acima", "de"],
    &["mais", "de"],
    &["mas", "de"],
    &["above"],
    &["more", "than"],
    &["plus", "de"],
];

/// Words that open an upper bound its own value is not in: "less than 2 hours", "menos de 7
/// días" (before "de 7 a 14 días").
const LESS_THAN: &[&[&str]] = &[
    &["menos", "de"],
    &["abaixo", "de"],
    &["below"],
    &["less", "than"],
    &["fewer", "than"],
    &["moins", "de"],
];

/// Words that open a lower bound ("a partir de 8 personas", "over 100 m²").
const AT_LEAST: &[&[&str]] = &[
    &["a", "partir", "de"],
    &["a", "partir", "dos"],
    &["a", "partir", "das"],
    &["maiores", "de"],
    &["desde"],
    &["mayores", "de"],
    &["over"],
    &["from"],
    &["after"],
    &["depois", "de"],
    &["despues", "de"],
    &["starting", "at"],
    &["at", "least"],
    &["minimum"],
    &["min"],
    &["des"],
    &["ab"],
    &["uber"],
    &["mindestens"],
];

/// Words that open an upper bound ("até 8 km", "hasta 2 kg", "up to 50 m²", "menores de 12").
const AT_MOST: &[&[&str]] = &[
    &["ate"],
    &["no", "maximo"],
    &["menores", "de"],
    &["hasta"],
    &["como", "maximo"],
    &["up", "to"],
    &["upto"],
    &["under"],
    &["before"],
    &["antes", "de"],
    &["maximum"],
    &["max"],
    &["jusqu", "a"],
    &["bis"],
    &["unter"],
    &["hochstens"],
];

/// Words after a number that make it a lower bound ("65 and over", "4 ou mais", "16+").
const OR_MORE: &[&[&str]] = &[
    &["and", "over"],
    &["and", "above"],
    &["and", "up"],
    &["or", "more"],
    &["plus"],
    &["ou", "mais"],
    &["e", "acima"],
    &["o", "mas"],
    &["y", "mas"],
    &["en", "adelante"],
    &["em", "diante"],
    &["ou", "plus"],
    &["et", "plus"],
    &["und", "mehr"],
];

/// Words that join the two ends of a range ("de 8 a 15", "between 2 and 5", "2-3").
const RANGE_JOINS: &[&str] = &[
    "a", "e", "y", "and", "to", "ate", "hasta", "et", "bis", "und", "-",
];

/// Words that open a range ("de 8 a 15", "entre 2 e 5", "between 2 and 5").
const RANGE_OPENS: &[&str] = &[
    "de", "entre", "between", "from", "des", "von", "zwischen", "del",
];

/// Whether `word` (normalised) names a unit ("km", "kg", "anos", "x", "sessions").
pub fn is_unit_word(word: &str) -> bool {
    unit_of(word).is_some()
}

/// The number `word` (normalised) is, if it is a number word ("one", "uma", "dos").
pub fn number_word(word: &str) -> Option<f64> {
    NUMBER_WORDS
        .iter()
        .find(|(w, _)| *w == word)
        .map(|(_, value)| *value)
}

/// The unit `word` (normalised) names, if any ("dias": days).
pub fn unit_of(word: &str) -> Option<Unit> {
    UNIT_WORDS
        .iter()
        .find(|(w, _, _)| *w == word)
        .map(|(_, unit, _)| *unit)
}

impl Unit {
    /// Whether it measures time (years to minutes, nights): an answer to "how long?" may give
    /// it in any of them.
    pub fn is_duration(self) -> bool {
        matches!(
            self,
            Unit::Years
                | Unit::Months
                | Unit::Weeks
                | Unit::Days
                | Unit::Nights
                | Unit::Hours
                | Unit::Minutes
        )
    }

    /// Whether a quantity in `other` answers a question asking for this unit: the same unit,
    /// or both durations ("how many days?" answered in weeks).
    pub fn answered_by(self, other: Unit) -> bool {
        self == other || (self.is_duration() && other.is_duration())
    }

    /// Whether it counts things (sessions, people, items, rooms, nights) rather than measuring
    /// them: a number said bare is a count far more often than a measure without its unit.
    pub fn counts(self) -> bool {
        COUNTS.contains(&self)
    }
}

/// A number a customer gave, with what it counts when they said, or a whole or half day they
/// named in words.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantity {
    /// The value, in its unit's measure.
    pub value: f64,
    /// What it counts, when said.
    pub unit: Option<Unit>,
    /// Said as a whole or half day in words ("for the whole day"), not as a number: it sorts a
    /// list's bands, but an answer that states a band in days is not thereby about it.
    pub worded: bool,
}

/// A band of values: `low..=high`, either end open; a band with one bound leaves that bound's
/// own value out when [`Band::strict`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Lowest value in the band.
    pub low: Option<f64>,
    /// Highest value in the band.
    pub high: Option<f64>,
    /// What it counts, when said.
    pub unit: Option<Unit>,
    /// Whether its one bound leaves its own value out ("more than 5 kg", "menos de 7 días").
    pub strict: bool,
}

impl Band {
    /// Whether `q` falls in the band, when the two can be compared (`None` when their units
    /// differ).
    pub fn holds(&self, q: &Quantity) -> Option<bool> {
        match (self.unit, q.unit) {
            (Some(a), Some(b)) if a != b => return None,
            // A band that says not what it counts ("16 and over") is no measure of a number
            // that does ("one day"), but a row named by a count ("Pack of 20") is of "20
            // sessions".
            (None, Some(_)) if !self.is_exact() => return None,
            _ => {}
        }
        let on_bound = |bound: f64| (q.value - bound).abs() <= 1e-9;
        let above = self.low.is_none_or(|low| q.value >= low - 1e-9);
        let below = self.high.is_none_or(|high| q.value <= high + 1e-9);
        let left_out = self.strict && self.low.or(self.high).is_some_and(on_bound);
        Some(above && below && !left_out)
    }

    /// Whether the band is a single value ("pack of 5", "10 sessões").
    pub fn is_exact(&self) -> bool {
        self.low.is_some() && self.low == self.high
    }
}

/// A token of normalised text: a word, a number, or a hyphen or plus sign.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Number(f64),
    Dash,
    Plus,
}

/// Tokens of `text`: numbers with a decimal comma or point ("12,5", "1.5"), words, and the
/// signs that make ranges ("2-3", "4+"). A number glued to a unit ("25kg", "2x") is split.
/// Times ("18:00"), percentages and amounts of money are dropped, as are the words of a time.
fn tokens(text: &str) -> Vec<Token> {
    let normal = normalize(text);
    let chars: Vec<char> = normal.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (matches!(chars[i], ',' | '.')
                        && i + 1 < chars.len()
                        && chars[i + 1].is_ascii_digit()))
            {
                i += 1;
            }
            let raw: String = chars[start..i].iter().collect();
            // "18:00", "18h30": a time of day. "20%": a share. "R$ 150", "€9", "9 €": money.
            let next = chars.get(i).copied();
            let before = start
                .checked_sub(1)
                .and_then(|j| chars[..=j].iter().rev().find(|c| **c != ' '))
                .copied();
            let is_time = next == Some(':') && chars.get(i + 1).is_some_and(char::is_ascii_digit);
            let is_money = matches!(before, Some('€' | '$' | '£'))
                || chars[i..]
                    .iter()
                    .find(|c| **c != ' ')
                    .is_some_and(|c| matches!(c, '€' | '$' | '£' | '%'));
            if is_time {
                // Skip the minutes too.
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                continue;
            }
            if is_money {
                continue;
            }
            if let Some(v) = parse_number(&raw) {
                out.push(Token::Number(v));
            }
            continue;
        }
        if c.is_alphanumeric() {
            let start = i;
            while i < chars.len() && chars[i].is_alphanumeric() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // "m²" is normalised to "m2", one word.
            out.push(Token::Word(word));
            continue;
        }
        match c {
            '-' | '–' | '—' => out.push(Token::Dash),
            '+' => out.push(Token::Plus),
            _ => {}
        }
        i += 1;
    }
    out
}

/// "12,5" and "12.5" are 12.5; "1.200" (three digits after a point) is 1200, as prices and
/// counts are written in pt and es.
fn parse_number(raw: &str) -> Option<f64> {
    let sep = raw.find([',', '.']);
    match sep {
        Some(i)
            if raw.len() - i - 1 == 3
                && raw[..i].len() <= 3
                && raw.matches([',', '.']).count() == 1 =>
        {
            // Thousands separator.
            raw.replace([',', '.'], "").parse().ok()
        }
        Some(_) => raw.replace(',', ".").parse().ok(),
        None => raw.parse().ok(),
    }
}

fn word_at(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    }
}

/// Whether `phrase` starts at token `i`.
fn phrase_at(tokens: &[Token], i: usize, phrase: &[&str]) -> bool {
    phrase
        .iter()
        .enumerate()
        .all(|(k, p)| word_at(tokens, i + k) == Some(*p))
}

/// The first of `phrases` that ends right before token `i`, with its length.
fn phrase_before(tokens: &[Token], i: usize, phrases: &[&[&str]]) -> Option<usize> {
    phrases
        .iter()
        .filter(|p| p.len() <= i && phrase_at(tokens, i - p.len(), p))
        .map(|p| p.len())
        .max()
}

/// The first of `phrases` that starts at token `i`, with its length.
fn phrase_from(tokens: &[Token], i: usize, phrases: &[&[&str]]) -> Option<usize> {
    phrases
        .iter()
        .filter(|p| phrase_at(tokens, i, p))
        .map(|p| p.len())
        .max()
}

/// A whole or half day named from token `i` ([`WHOLE`], [`HALF`]: "full day", "half-day", "el
/// día entero"), with how many tokens it takes (a hyphen between its two words is one). "All
/// day" and "o dia todo" are not lengths: they say when ("closed all day"), not for how long.
/// Nor is a whole week, month or year read: a price list seldom sorts by them, and a year is
/// also an age ("a full year" is not a child "até 10 anos").
fn length_at(tokens: &[Token], i: usize) -> Option<(Quantity, usize)> {
    let first = word_at(tokens, i)?;
    let dashed = matches!(tokens.get(i + 1), Some(Token::Dash));
    let second_at = if dashed { i + 2 } else { i + 1 };
    let second = word_at(tokens, second_at)?;
    let day = |word: &str| WORKING_DAY.contains(&word) || unit_of(word) == Some(Unit::Days);
    let share = |word: &str| {
        if WHOLE.contains(&word) {
            Some(1.0)
        } else if HALF.contains(&word) {
            Some(0.5)
        } else {
            None
        }
    };
    let value = match (share(first), share(second)) {
        (Some(value), _) if day(second) => value,
        (_, Some(value)) if day(first) => value,
        _ => return None,
    };
    Some((
        Quantity {
            value,
            unit: Some(Unit::Days),
            worded: true,
        },
        second_at + 1 - i,
    ))
}

/// The unit named at token `i` (with how many tokens it takes and its factor).
fn unit_at(tokens: &[Token], i: usize) -> Option<(Unit, f64, usize)> {
    for (phrase, unit, factor) in UNIT_PHRASES {
        if phrase
            .iter()
            .enumerate()
            .all(|(k, p)| match tokens.get(i + k) {
                Some(Token::Word(w)) => w == p,
                Some(Token::Number(n)) => p.parse::<f64>().ok() == Some(*n),
                _ => false,
            })
        {
            return Some((*unit, *factor, phrase.len()));
        }
    }
    let word = word_at(tokens, i)?;
    UNIT_WORDS
        .iter()
        .find(|(w, _, _)| *w == word)
        .map(|(_, unit, factor)| (*unit, *factor, 1))
}

/// The number at token `i`: digits or a number word.
fn number_at(tokens: &[Token], i: usize) -> Option<f64> {
    match tokens.get(i) {
        Some(Token::Number(n)) => Some(*n),
        Some(Token::Word(w)) => number_word(w),
        _ => None,
    }
}

/// The quantities a customer's message gives: numbers with their unit ("12 km", "25kg", "2x por
/// semana", "twice a week", "10 personas"), an age after "I'm" or "tenho", and bare numbers
/// (unit unknown), which still pick a row when only one kind of band could hold them.
pub fn quantities(text: &str) -> Vec<Quantity> {
    quantities_in(&tokens(text))
}

/// The quantities `tokens` give (see [`quantities`]).
fn quantities_in(tokens: &[Token]) -> Vec<Quantity> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some((length, len)) = length_at(tokens, i) {
            out.push(length);
            i += len;
            continue;
        }
        if let Some(Token::Word(w)) = tokens.get(i) {
            if let Some((_, v)) = TIMES_WORDS.iter().find(|(name, _)| name == w) {
                out.push(Quantity {
                    value: *v,
                    unit: Some(Unit::Times),
                    worded: false,
                });
                i += 1;
                continue;
            }
        }
        let Some(value) = number_at(tokens, i) else {
            i += 1;
            continue;
        };
        // A number word alone ("uma dúvida", "one question") is not a quantity; digits are.
        let digits = matches!(tokens[i], Token::Number(_));
        if let Some((unit, factor, len)) = unit_at(tokens, i + 1) {
            out.push(Quantity {
                value: value * factor,
                unit: Some(unit),
                worded: false,
            });
            i += 1 + len;
            continue;
        }
        // A count whose unit comes after a word or two ("20 pt sessions", "4 adult people").
        let counted = (2..=3).find_map(|gap| {
            let between = (i + 1..i + gap).all(|k| matches!(tokens.get(k), Some(Token::Word(_))));
            unit_at(tokens, i + gap)
                .filter(|(u, _, _)| between && u.counts())
                .map(|found| (gap, found))
        });
        // A length of time whose unit follows one word that says which days count ("3
        // working days", "10 business days", "2 full weeks"). More than one is said in the
        // plural, so "3 kids per day" is no length of time.
        let plural = |w: &str| value == 1.0 || w.ends_with('s');
        let described = match (tokens.get(i + 1), word_at(tokens, i + 2)) {
            (Some(Token::Word(_)), Some(unit)) if plural(unit) => unit_at(tokens, i + 2)
                .filter(|(u, _, _)| u.is_duration())
                .map(|found| (2, found)),
            _ => None,
        };
        if let (true, Some((gap, (unit, factor, len)))) = (digits, counted.or(described)) {
            out.push(Quantity {
                value: value * factor,
                unit: Some(unit),
                worded: false,
            });
            i += gap + len;
            continue;
        }
        if digits {
            let unit = phrase_before(tokens, i, AGE_CUES).map(|_| Unit::Years);
            out.push(Quantity {
                value,
                unit,
                worded: false,
            });
        }
        i += 1;
    }
    out
}

/// Indefinite articles, which say one of a length of time in an answer ("it takes about an
/// hour", "tarda una semana", "leva um dia").
const ONE_OF: &[&str] = &[
    "a", "an", "un", "una", "um", "uma", "une", "ein", "eine", "einen",
];

/// The lengths of time `text` states: those [`quantities`] reads, and one of a unit of time said
/// with an indefinite article ("about an hour": one hour). Not for questions, where "a day
/// pass" names a thing rather than asks about its length.
pub fn durations(text: &str) -> Vec<Quantity> {
    let tokens = tokens(text);
    let mut out: Vec<Quantity> = quantities_in(&tokens)
        .into_iter()
        .filter(|q| q.unit.is_some_and(Unit::is_duration))
        .collect();
    // The articles that are number words too ("una", "uma") are read by `quantities`.
    let article = |w: &str| ONE_OF.contains(&w) && number_word(w).is_none();
    for i in 0..tokens.len() {
        if word_at(&tokens, i).is_some_and(article) {
            if let Some((unit, factor, _)) = unit_at(&tokens, i + 1).filter(|u| u.0.is_duration()) {
                out.push(Quantity {
                    value: factor,
                    unit: Some(unit),
                    worded: true,
                });
            }
        }
    }
    out
}

/// The bands a passage's text states ("de 8 a 15 km", "até 8 km", "acima de 15 km", "2-3
/// bedrooms", "4+ bedrooms", "aged 65 and over", "pack of 5", "10 sessões"), in order.
pub fn bands(text: &str) -> Vec<Band> {
    bands_in(&tokens(text))
}

/// The bands `tokens` state (see [`bands`]).
fn bands_in(tokens: &[Token]) -> Vec<Band> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if let Some((length, len)) = length_at(tokens, i) {
            out.push(Band {
                low: Some(length.value),
                high: Some(length.value),
                unit: length.unit,
                strict: false,
            });
            i += len;
            continue;
        }
        let Some(first) = number_at(tokens, i).filter(|_| matches!(tokens[i], Token::Number(_)))
        else {
            i += 1;
            continue;
        };
        // "2 a 3", "2-3", "2 kg a 5 kg", "de 2 a 5".
        let mut j = i + 1;
        let mut first_unit = None;
        if let Some((unit, factor, len)) = unit_at(tokens, j) {
            first_unit = Some((unit, factor));
            j += len;
        }
        let join = match tokens.get(j) {
            Some(Token::Dash) => true,
            Some(Token::Word(w)) => RANGE_JOINS.contains(&w.as_str()),
            _ => false,
        };
        if join {
            if let Some(second) =
                number_at(tokens, j + 1).filter(|_| matches!(tokens[j + 1], Token::Number(_)))
            {
                let after = unit_at(tokens, j + 2);
                // "aged 14 and 15": the ages of a band are often said before its numbers.
                let aged = phrase_before(tokens, i, AGE_CUES).is_some();
                let (unit, factor) = match (after, first_unit) {
                    (Some((u, f, _)), _) => (Some(u), f),
                    (None, Some((u, f))) => (Some(u), f),
                    (None, None) if aged => (Some(Unit::Years), 1.0),
                    (None, None) => (None, 1.0),
                };
                // "2 e 3" in running text could be anything; a range needs its opener, a dash or
                // a unit.
                let opened =
                    i > 0 && word_at(tokens, i - 1).is_some_and(|w| RANGE_OPENS.contains(&w));
                let dashed = matches!(tokens.get(j), Some(Token::Dash));
                if (opened || dashed || unit.is_some()) && second >= first {
                    out.push(Band {
                        low: Some(first * factor),
                        high: Some(second * factor),
                        unit,
                        strict: false,
                    });
                    i = j + 2 + after.map_or(0, |(_, _, len)| len);
                    continue;
                }
            }
        }
        let (unit, factor, unit_len) = match first_unit {
            Some((u, f)) => (Some(u), f, unit_at(tokens, i + 1).map_or(0, |(_, _, l)| l)),
            None => (None, 1.0, 0),
        };
        let value = first * factor;
        let after = i + 1 + unit_len;
        // "4+", "65 and over", "4 ou mais".
        let or_more = matches!(tokens.get(i + 1), Some(Token::Plus))
            || phrase_from(tokens, after, OR_MORE).is_some();
        let plus_unit = if matches!(tokens.get(i + 1), Some(Token::Plus)) {
            unit_at(tokens, i + 2).map(|(u, f, _)| (u, f))
        } else {
            None
        };
        let (unit, value) = match plus_unit {
            Some((u, f)) => (Some(u), first * f),
            None => (unit, value),
        };
        // An age band's unit is often said before ("aged 65 and over", "idade de 65").
        let unit = unit.or_else(|| phrase_before(tokens, i, AGE_CUES).map(|_| Unit::Years));
        let more_than = phrase_before(tokens, i, MORE_THAN).is_some();
        let less_than = phrase_before(tokens, i, LESS_THAN).is_some();
        if or_more || more_than || phrase_before(tokens, i, AT_LEAST).is_some() {
            out.push(Band {
                low: Some(value),
                high: None,
                unit,
                strict: more_than && !or_more,
            });
        } else if less_than || phrase_before(tokens, i, AT_MOST).is_some() {
            out.push(Band {
                low: None,
                high: Some(value),
                unit,
                strict: less_than,
            });
        } else if unit.is_some()
            || phrase_before(
                tokens,
                i,
                &[
                    &["pack", "of"],
                    &["pacote", "de"],
                    &["bono", "de"],
                    &["pack", "de"],
                ],
            )
            .is_some()
        {
            out.push(Band {
                low: Some(value),
                high: Some(value),
                unit,
                strict: false,
            });
        }
        i += 1;
    }
    out
}

/// The one band `text` states when it says nothing else ("até 8 km", "de 8 a 15 km", "Over 100
/// m²", "65 and over"): the name of a row of a price list by measure, where the row is chosen by
/// the customer's number and no word of theirs can name it. `None` when `text` holds a word
/// that is not its band's: "Pack of 10" names a pack, "E-bike 2 hours" a thing and its band.
pub fn band_only(text: &str) -> Option<Band> {
    let tokens = tokens(text);
    let found = bands_in(&tokens);
    let [band] = found.as_slice() else {
        return None;
    };
    let mut i = 0;
    while i < tokens.len() {
        let Token::Word(word) = &tokens[i] else {
            i += 1;
            continue;
        };
        if let Some((_, _, len)) = unit_at(&tokens, i) {
            i += len;
        } else if let Some((_, len)) = length_at(&tokens, i) {
            i += len;
        } else if let Some(len) = phrase_from(&tokens, i, AT_LEAST)
            .or_else(|| phrase_from(&tokens, i, MORE_THAN))
            .or_else(|| phrase_from(&tokens, i, LESS_THAN))
            .or_else(|| phrase_from(&tokens, i, AT_MOST))
            .or_else(|| phrase_from(&tokens, i, OR_MORE))
        {
            i += len;
        } else if RANGE_JOINS.contains(&word.as_str())
            || RANGE_OPENS.contains(&word.as_str())
            || number_word(word).is_some()
        {
            i += 1;
        } else {
            return None;
        }
    }
    Some(*band)
}

/// How the customer's `asked` quantities fit a row's `bands`: `Some(true)` when every quantity
/// that can be compared with a band of the row falls in one (and one at least can), `Some(false)`
/// when one falls outside every band of its kind, `None` when nothing compares.
pub fn fits(asked: &[Quantity], bands: &[Band]) -> Option<bool> {
    fits_named(asked, bands, &[])
}

/// [`fits`], where `named` are the bands of the row's name (among its `bands`): a bare number
/// that compares with them is the row's own measure, whatever else its other cells measure
/// ("el pacote de 10" and "10 sessões — Valor total: R$ 1.200; Validade: 90 dias").
pub fn fits_named(asked: &[Quantity], bands: &[Band], named: &[Band]) -> Option<bool> {
    let said: Vec<Unit> = asked.iter().filter_map(|q| q.unit).collect();
    // A bare number compares with bands that do not say their unit either ("Pack of 10" for
    // "the 10 pack"), else with bands of one kind, unless the customer gave another number in
    // that kind: the bare one counts something else ("2 tyres, 17 inch" against "16 and 17
    // inch").
    let bare_verdicts = |q: &Quantity, bands: &[Band]| -> Vec<bool> {
        let bare: Vec<bool> = bands
            .iter()
            .filter(|b| b.unit.is_none())
            .filter_map(|b| b.holds(q))
            .collect();
        let kinds: std::collections::HashSet<Option<Unit>> = bands.iter().map(|b| b.unit).collect();
        if !bare.is_empty() {
            bare
        } else if kinds.len() == 1 && !kinds.iter().flatten().any(|u| said.contains(u)) {
            bands.iter().filter_map(|b| b.holds(q)).collect()
        } else {
            Vec::new()
        }
    };
    let mut compared = false;
    for q in asked {
        let verdicts: Vec<bool> = if q.unit.is_none() {
            let own = bare_verdicts(q, named);
            if own.is_empty() {
                bare_verdicts(q, bands)
            } else {
                own
            }
        } else {
            bands.iter().filter_map(|b| b.holds(q)).collect()
        };
        if verdicts.is_empty() {
            continue;
        }
        compared = true;
        if !verdicts.iter().any(|v| *v) {
            return Some(false);
        }
    }
    compared.then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(value: f64, unit: Option<Unit>) -> Quantity {
        Quantity {
            value,
            unit,
            worded: false,
        }
    }

    #[test]
    fn customers_quantities_are_read_with_their_units() {
        let cases: &[(&str, Vec<Quantity>)] = &[
            (
                "moramos a uns 12 km da clinica",
                vec![q(12.0, Some(Unit::Km))],
            ),
            ("mi perro pesa 25 kilos", vec![q(25.0, Some(Unit::Kg))]),
            ("un paquete de 1kg", vec![q(1.0, Some(Unit::Kg))]),
            (
                "quero fazer pilates 2x na semana",
                vec![q(2.0, Some(Unit::Times))],
            ),
            ("twice a week", vec![q(2.0, Some(Unit::Times))]),
            ("somos 10 personas", vec![q(10.0, Some(Unit::People))]),
            ("I'm 68 and retired", vec![q(68.0, Some(Unit::Years))]),
            ("minha filha tem 8 anos", vec![q(8.0, Some(Unit::Years))]),
            ("a 3 bedroom house", vec![q(3.0, Some(Unit::Rooms))]),
            (
                "um apartamento de 75 m²",
                vec![q(75.0, Some(Unit::SquareMetres))],
            ),
            ("500 g de ração", vec![q(0.5, Some(Unit::Kg))]),
            (
                "tyres for 17 inch alloys",
                vec![q(17.0, Some(Unit::Inches))],
            ),
            ("the 10 pack", vec![q(10.0, None)]),
            (
                "if i buy 20 pt sessions",
                vec![q(20.0, Some(Unit::Sessions))],
            ),
            (
                "Standard is ready in 3 working days.",
                vec![q(3.0, Some(Unit::Days))],
            ),
            ("it takes 2 full weeks", vec![q(2.0, Some(Unit::Weeks))]),
            ("3 kids per day", vec![q(3.0, None)]),
        ];
        for (text, want) in cases {
            assert_eq!(&quantities(text), want, "{text}");
        }
    }

    #[test]
    fn a_unit_reads_alike_in_every_language_it_is_named_in() {
        let read = |text: &str| quantities(text).first().map(|q| (q.value, q.unit));
        let miles = read("8 miles");
        assert_eq!(miles.map(|m| m.1), Some(Some(Unit::Km)));
        for text in ["8 milhas", "8 millas", "8 milles", "8 Meilen"] {
            assert_eq!(read(text), miles, "{text}");
        }
        for (one, unit) in [
            ("1 nuit", Unit::Nights),
            ("1 Woche", Unit::Weeks),
            ("1 minuto", Unit::Minutes),
            ("1 minute", Unit::Minutes),
        ] {
            assert_eq!(quantities(one), vec![q(1.0, Some(unit))], "{one}");
        }
    }

    #[test]
    fn an_answer_states_one_of_a_unit_of_time_with_an_article() {
        let one = |unit| Quantity {
            value: 1.0,
            unit: Some(unit),
            worded: true,
        };
        assert_eq!(durations("These take about an hour."), [one(Unit::Hours)]);
        assert_eq!(
            durations("El envío tarda un día."),
            [q(1.0, Some(Unit::Days))]
        );
        assert_eq!(
            durations("O envio leva uma semana."),
            [q(1.0, Some(Unit::Weeks))]
        );
        assert_eq!(
            durations("Ready in 3 working days, or a day for express."),
            [q(3.0, Some(Unit::Days)), one(Unit::Days)]
        );
        assert_eq!(durations("A visit for 12 people costs £40."), []);
        // Customers' questions read no English article as one; one that is the number one as
        // well is read as it is in every language that has such articles.
        assert_eq!(quantities("how much is a day pass?"), []);
        for text in [
            "quanto custa um dia avulso?",
            "cuanto cuesta venir un dia suelto?",
            "combien coûte un jour?",
            "was kostet ein Tag?",
        ] {
            assert_eq!(quantities(text), [q(1.0, Some(Unit::Days))], "{text}");
        }
    }

    #[test]
    fn times_prices_and_lone_number_words_are_not_quantities() {
        for text in [
            "vcs abrem às 18:00?",
            "custa R$ 150?",
            "is it 9 €?",
            "20% off?",
            "tenho uma dúvida",
            "one question",
        ] {
            assert!(
                quantities(text).is_empty(),
                "{text}: {:?}",
                quantities(text)
            );
        }
    }

    fn band(low: Option<f64>, high: Option<f64>, unit: Option<Unit>) -> Band {
        Band {
            low,
            high,
            unit,
            strict: false,
        }
    }

    /// A band whose one bound leaves its own value out.
    fn strict(low: Option<f64>, high: Option<f64>, unit: Option<Unit>) -> Band {
        Band {
            strict: true,
            ..band(low, high, unit)
        }
    }

    #[test]
    fn a_bound_said_as_more_or_less_than_leaves_its_own_value_to_the_band_beside_it() {
        let kilos = |value: f64| Quantity {
            value,
            unit: Some(Unit::Kg),
            worded: false,
        };
        let schedule = bands("Hasta 2 kg: 5,90 €; De 2 a 5 kg: 7,45 €; Más de 5 kg: 9,95 €.");
        let holding = |value: f64| -> Vec<bool> {
            schedule
                .iter()
                .map(|b| b.holds(&kilos(value)) == Some(true))
                .collect()
        };
        assert_eq!(holding(5.0), [false, true, false]);
        assert_eq!(holding(5.5), [false, false, true]);
        // "Hasta" holds its own value, as "a partir de" and "over" do.
        assert_eq!(holding(2.0), [true, true, false]);
        let under = bands("less than 7 days: no refund; from 7 days: 50 %");
        let days = Quantity {
            value: 7.0,
            unit: Some(Unit::Days),
            worded: false,
        };
        assert_eq!(under[0].holds(&days), Some(false));
        assert_eq!(under[1].holds(&days), Some(true));
        // "5 kg or more" holds 5 kg, whatever opened it.
        assert_eq!(
            bands("mais de 5 kg ou mais")[0].holds(&kilos(5.0)),
            Some(true)
        );
    }

    #[test]
    fn bands_are_read_as_price_lists_write_them() {
        let cases: &[(&str, Vec<Band>)] = &[
            (
                "até 8 km — Valor por sessão: R$ 240.",
                vec![band(None, Some(8.0), Some(Unit::Km))],
            ),
            (
                "16 and 17 inch — Budget: £70; Premium: £130.",
                vec![band(Some(16.0), Some(17.0), Some(Unit::Inches))],
            ),
            (
                "de 8 a 15 km — Valor por sessão: R$ 280.",
                vec![band(Some(8.0), Some(15.0), Some(Unit::Km))],
            ),
            (
                "acima de 15 km — não atendemos",
                vec![strict(Some(15.0), None, Some(Unit::Km))],
            ),
            (
                "Hasta 2 kg: 5,90 €; De 2 a 5 kg: 7,45 €; Más de 5 kg: 9,95 €.",
                vec![
                    band(None, Some(2.0), Some(Unit::Kg)),
                    band(Some(2.0), Some(5.0), Some(Unit::Kg)),
                    strict(Some(5.0), None, Some(Unit::Kg)),
                ],
            ),
            (
                "2-3 bedrooms — €140",
                vec![band(Some(2.0), Some(3.0), Some(Unit::Rooms))],
            ),
            (
                "4+ bedrooms — €190",
                vec![band(Some(4.0), None, Some(Unit::Rooms))],
            ),
            (
                "Senior — aged 65 and over; £36",
                vec![band(Some(65.0), None, Some(Unit::Years))],
            ),
            (
                "aged 14 and 15, Junior Gym sessions only",
                vec![band(Some(14.0), Some(15.0), Some(Unit::Years))],
            ),
            (
                "acuarios de hasta 60 litros",
                vec![band(None, Some(60.0), Some(Unit::Litres))],
            ),
            (
                "Pack of 5 — Price: £210",
                vec![band(Some(5.0), Some(5.0), None)],
            ),
            (
                "10 sessões — Valor total: R$ 1.200",
                vec![band(Some(10.0), Some(10.0), Some(Unit::Sessions))],
            ),
            (
                "variante: M (pecho de 55 a 75 cm); precio: 22,50 €",
                vec![band(Some(55.0), Some(75.0), Some(Unit::Cm))],
            ),
            (
                "crianças de 6 a 10 anos",
                vec![band(Some(6.0), Some(10.0), Some(Unit::Years))],
            ),
            (
                "up to 50 m²",
                vec![band(None, Some(50.0), Some(Unit::SquareMetres))],
            ),
            (
                "a partir de 8 personas",
                vec![band(Some(8.0), None, Some(Unit::People))],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&bands(text), want, "{text}");
        }
    }

    #[test]
    fn a_whole_or_half_day_said_in_words_is_a_length_of_days() {
        let day = |days: f64| {
            vec![Quantity {
                value: days,
                unit: Some(Unit::Days),
                worded: true,
            }]
        };
        for (text, want) in [
            ("how much is an electric bike for the whole day?", day(1.0)),
            ("and for a full-day?", day(1.0)),
            ("cuanto cuesta la sala el dia entero?", day(1.0)),
            ("quanto fica o dia inteiro?", day(1.0)),
            ("y la media jornada?", day(0.5)),
            ("halber Tag", day(0.5)),
        ] {
            assert_eq!(quantities(text), want, "{text}");
        }
        // Saying when, not how long; "meio dia" and "medio día" are noon.
        for text in [
            "are you open all day on saturday?",
            "segunda fechado o dia todo",
            "estoy todo el día en la oficina",
            "abrem ao meio dia?",
            "cerrais a medio dia?",
            "what does a full year cost?",
            "a whole week of classes",
        ] {
            assert_eq!(quantities(text), vec![], "{text}");
        }
        let days = |d: f64| band(Some(d), Some(d), Some(Unit::Days));
        assert_eq!(
            bands("Alquiler de bicicletas: 15 € medio día y 25 € el día completo."),
            vec![days(1.0)]
        );
        assert_eq!(
            bands("De 2 a 4 horas (media jornada): 100 €"),
            vec![band(Some(2.0), Some(4.0), Some(Unit::Hours)), days(0.5)]
        );
        assert_eq!(
            bands("E-bike rental half-day (4 hours)"),
            vec![days(0.5), band(Some(4.0), Some(4.0), Some(Unit::Hours))]
        );
        assert_eq!(band_only("Full day"), Some(days(1.0)));
        assert_eq!(band_only("E-bike rental full day"), None);
        assert_eq!(fits(&day(1.0), &bands("half day (4 hours)")), Some(false));
    }

    #[test]
    fn a_name_that_is_its_band_alone_is_read_as_one() {
        for name in [
            "até 8 km",
            "de 8 a 15 km",
            "acima de 15 km",
            "Up to 50 m²",
            "65 and over",
        ] {
            assert!(band_only(name).is_some(), "{name}");
        }
        let band = band_only("de 8 a 15 km").unwrap();
        assert_eq!(
            (band.low, band.high, band.unit),
            (Some(8.0), Some(15.0), Some(Unit::Km))
        );
        for name in [
            "E-bike rental 2 hours",
            "Pack of 10 sessions plus towel",
            "Consulta",
            "Zona 2 (hasta 2 kg)",
        ] {
            assert!(band_only(name).is_none(), "{name}");
        }
    }

    #[test]
    fn a_row_fits_when_its_band_holds_the_number() {
        let near = bands("até 8 km");
        let middle = bands("de 8 a 15 km");
        let far = bands("acima de 15 km");
        let asked = quantities("moramos a uns 12 km");
        assert_eq!(fits(&asked, &near), Some(false));
        assert_eq!(fits(&asked, &middle), Some(true));
        assert_eq!(fits(&asked, &far), Some(false));
        // Nothing to compare: a weight against a distance, a day against a bare band.
        assert_eq!(fits(&quantities("25 kg"), &middle), None);
        assert_eq!(
            fits(&quantities("one day"), &bands("Day pass (16 and over)")),
            None
        );
        // A bare number against a row with one kind of band.
        assert_eq!(
            fits(&quantities("the 10 pack"), &bands("Pack of 10 — £395")),
            Some(true)
        );
        assert_eq!(
            fits(&quantities("the 10 pack"), &bands("Pack of 5 — £210")),
            Some(false)
        );
        // A bare size in the unit its list is written in; a bare count beside a size.
        let wheels = bands("16 and 17 inch — Budget: £70");
        assert_eq!(fits(&quantities("um pneu aro 16"), &wheels), Some(true));
        assert_eq!(fits(&quantities("aro 18"), &wheels), Some(false));
        assert_eq!(fits(&quantities("2 tyres 17 inch"), &wheels), Some(true));
    }

    #[test]
    fn a_bare_number_is_the_measure_a_rows_name_gives() {
        // The row's cells measure other things too (days), so its bands are of two kinds; its
        // name's are of one.
        let ten = "10 sessões — Valor total: R$ 1.200; Validade: 90 dias";
        let five = "5 sessões — Valor total: R$ 650; Validade: 45 dias";
        let asked = quantities("quanto é o pacote de 10");
        assert_eq!(fits(&asked, &bands(ten)), None);
        let named = |row: &str| {
            fits_named(
                &asked,
                &bands(row),
                &bands(row.split(" — ").next().unwrap()),
            )
        };
        assert_eq!(named(ten), Some(true));
        assert_eq!(named(five), Some(false));
        // A measure said with its unit compares with every band, as it did.
        let days = quantities("10 sessões por 60 dias");
        assert_eq!(
            fits_named(&days, &bands(five), &bands("5 sessões")),
            Some(false)
        );
    }
}
