//! Table rows, as the loaders write them ("Name — label: value; label: value."): what a row is
//! about (its name and its text cells), the bands it sorts by ("de 8 a 15 km", "Pack of 5"),
//! the size or day it names, and its cells, so a question can pick a row by what it names and a
//! cell by the column it asks about ("12-month contract" of the All-Access row).

use std::collections::HashSet;

use crate::knowledge::quantity::{bands, Band};

/// A table row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The whole line.
    pub text: String,
    /// The name column's value, when a column names rows.
    pub name: Option<String>,
    /// The other cells: label (empty when the column has none) and value.
    pub cells: Vec<(String, String)>,
}

impl Row {
    /// Reads a row line; `None` when `line` is not one.
    pub fn parse(line: &str) -> Option<Row> {
        if !crate::knowledge::loaders::is_row_sentence(line) {
            return None;
        }
        let body = line.trim().trim_end_matches('.');
        let (name, rest) = match body.split_once(" — ") {
            Some((name, rest)) => (Some(name.trim().to_string()), rest),
            None => (None, body),
        };
        let cells = rest
            .split("; ")
            .map(|part| match part.split_once(": ") {
                Some((label, value)) => (label.trim().to_string(), value.trim().to_string()),
                None => (String::new(), part.trim().to_string()),
            })
            .collect();
        Some(Row {
            text: line.trim().to_string(),
            name,
            cells,
        })
    }

    /// Whether a cell's value is an amount, a number or a time rather than words: mostly
    /// digits, or an amount of money with the words that say what it is for ("15 € la hora",
    /// "from £95").
    pub fn is_value(value: &str) -> bool {
        let letters = value.chars().filter(|c| c.is_alphabetic()).count();
        let digits = value.chars().filter(|c| c.is_ascii_digit()).count();
        (digits > 0 && digits >= letters) || !super::parts::amount_starts(value).is_empty()
    }

    /// What the row is about: its name and its cells that are words rather than amounts
    /// ("variante: M (pecho de 55 a 75 cm)", "category: dog - walking"), as written: stemmers
    /// need the accents ("Desvitalização", not "desvitalizacao").
    pub fn subject(&self) -> String {
        self.subject_but(&HashSet::new())
    }

    /// [`Row::subject`] without the cells of the columns labelled in `values`, the columns that
    /// hold each row's value rather than what the row is.
    pub fn subject_but(&self, values: &HashSet<&str>) -> String {
        self.name
            .iter()
            .map(String::as_str)
            .chain(
                self.cells
                    .iter()
                    .filter(|(label, value)| {
                        !Self::is_value(value) && !values.contains(label.as_str())
                    })
                    .map(|(_, value)| value.as_str()),
            )
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The bands the row's name and word cells state, the name's first, and how many of them
    /// its name states.
    pub fn bands(&self) -> (Vec<Band>, usize) {
        let mut out: Vec<Band> = self.name.iter().flat_map(|n| bands(n)).collect();
        let named = out.len();
        for (_, value) in &self.cells {
            if !Self::is_value(value) || value.chars().any(char::is_alphabetic) {
                out.extend(bands(value));
            }
        }
        (out, named)
    }

    /// The sizes the row names as whole words ("M (pecho de 55 a 75 cm)", "Talla L").
    pub fn sizes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let texts = self.name.iter().chain(
            self.cells
                .iter()
                .filter(|(_, v)| !Self::is_value(v))
                .map(|(_, v)| v),
        );
        for text in texts {
            for w in text.split(|c: char| !c.is_alphanumeric()) {
                if !w.is_empty()
                    && w.chars().all(|c| c.is_ascii_uppercase())
                    && ["XXS", "XS", "S", "M", "L", "XL", "XXL", "XXXL"].contains(&w)
                {
                    out.push(w.to_string());
                }
            }
        }
        out
    }

    /// The cells that state a value (an amount, a number, a time), by position.
    pub fn value_cells(&self) -> Vec<usize> {
        (0..self.cells.len())
            .filter(|&i| Self::is_value(&self.cells[i].1))
            .collect()
    }

    /// The row with only its name, its word cells and cell `keep` ("All-Access — 12-month
    /// contract: £44.").
    pub fn with_cell(&self, keep: usize) -> String {
        let parts: Vec<String> = self
            .cells
            .iter()
            .enumerate()
            .filter(|(i, (_, v))| *i == keep || !Self::is_value(v))
            .map(|(_, (label, value))| {
                if label.is_empty() {
                    value.clone()
                } else {
                    format!("{label}: {value}")
                }
            })
            .collect();
        match &self.name {
            Some(name) => format!("{name} — {}.", parts.join("; ")),
            None => format!("{}.", parts.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::quantity::{fits, quantities};

    #[test]
    fn a_row_is_read_back_into_its_name_and_cells() {
        let row = Row::parse(
            "Arnés antitirones — categoria: perro - paseo; variante: M (pecho de 55 a 75 cm); precio: 22,50 €; sku: PC-432.",
        )
        .unwrap();
        assert_eq!(row.name.as_deref(), Some("Arnés antitirones"));
        assert_eq!(row.cells.len(), 4);
        assert_eq!(row.sizes(), ["M"]);
        assert!(row.subject().contains("antitirones"));
        assert!(!row.subject().contains("22"));
        // As written, accents and all: stemmers need them.
        let accented =
            Row::parse("Desvitalização (tratamento de canal) de molar — Preço: 280 €.").unwrap();
        assert!(
            accented.subject().contains("Desvitalização"),
            "{}",
            accented.subject()
        );
        assert_eq!(
            fits(&quantities("pecho de 60 cm"), &row.bands().0),
            Some(true)
        );
        assert_eq!(
            fits(&quantities("pecho de 80 cm"), &row.bands().0),
            Some(false)
        );
        assert!(Row::parse("We deliver on Saturdays.").is_none());
    }

    #[test]
    fn an_amount_with_words_of_its_own_is_a_value() {
        let row = Row::parse(
            "Sala Turia (hasta 4 personas) — Hasta 2 horas: 15 € la hora; De 2 a 4 horas (media jornada): 50 €.",
        )
        .unwrap();
        assert_eq!(row.value_cells(), [0, 1]);
        // Said with one column, the other amount goes with the other columns.
        assert_eq!(
            row.with_cell(1),
            "Sala Turia (hasta 4 personas) — De 2 a 4 horas (media jornada): 50 €."
        );
        assert!(!row.subject().contains("15"));
    }

    #[test]
    fn bands_are_read_from_word_cells() {
        let row = Row::parse(
            "Junior — Who can have it: aged 14 and 15, Junior Gym sessions only; Price per month: £19.",
        )
        .unwrap();
        let junior = Band {
            low: Some(14.0),
            high: Some(15.0),
            unit: Some(crate::knowledge::quantity::Unit::Years),
            strict: false,
        };
        assert_eq!(row.bands(), (vec![junior], 0));
        // A band in the name comes first, and is counted as the name's.
        let named =
            Row::parse("Aged 14 and 15 — Price per month: £19; Note: up to 3 visits a week.")
                .unwrap();
        assert_eq!(named.bands().0.first(), Some(&junior));
        assert_eq!(named.bands().1, 1);
    }

    #[test]
    fn a_cell_can_be_quoted_alone() {
        let row = Row::parse(
            "All-Access — What's included: Gym floor at any time, unlimited classes; Rolling monthly (no contract): £54; 6-month contract: £49; 12-month contract: £44.",
        )
        .unwrap();
        assert_eq!(row.value_cells(), [1, 2, 3]);
        assert_eq!(
            row.with_cell(3),
            "All-Access — What's included: Gym floor at any time, unlimited classes; 12-month contract: £44."
        );
    }
}
