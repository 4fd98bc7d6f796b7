//! CSV and other delimited text: one passage per row, read as a sentence (the row's name, then
//! each cell labelled by its column), with rows that do not fit the header kept and reported.

use super::{collapse_whitespace, LoadError, Section};

/// Bad rows quoted in an error message.
pub(super) const MAX_REPORTED_ROWS: usize = 5;

/// The delimiter used most in the header line, outside quotes: `,`, `;` or tab.
pub(super) fn sniff_delimiter(text: &str) -> u8 {
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for b in text.bytes() {
        if b == b'\n' && !quoted {
            break;
        }
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(entry) = counts.iter_mut().find(|(d, _)| *d == b) {
                entry.1 += 1;
            }
        }
    }
    // Ties go to the comma, which comes first.
    counts
        .iter()
        .fold((b',', 0), |best, &c| if c.1 > best.1 { c } else { best })
        .0
}

/// A CSV file: one atomic section per row, read as a sentence: the row's name, then each cell
/// labelled with its column. A row with more
/// fields than the header (a separator left unquoted in a description) is kept, its surplus
/// joined into the column it fits; what was repaired or skipped comes back as notes.
pub(super) fn load_csv(
    name: &str,
    stem: &str,
    text: &str,
) -> Result<(String, Vec<Section>, Vec<String>), LoadError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(sniff_delimiter(text))
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| LoadError::Unreadable(format!("{name}: cannot read the header row ({e})")))?
        .iter()
        .enumerate()
        .map(|(i, h)| match collapse_whitespace(h) {
            h if h.is_empty() => format!("Column {}", i + 1),
            h => h,
        })
        .collect();
    // Rows that fit the header first: they show what each column holds, which places the
    // surplus fields of rows with unquoted separators.
    let mut rows: Vec<(u64, Vec<String>)> = Vec::new();
    let mut bad = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                bad.push(e.to_string());
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        let line = record.position().map_or(0, |p| p.line());
        rows.push((line, record.iter().map(collapse_whitespace).collect()));
    }
    let columns = ColumnKinds::learn(
        header.len(),
        rows.iter()
            .filter(|(_, cells)| cells.len() <= header.len())
            .map(|(_, cells)| cells.as_slice()),
    );
    let mut notes = Vec::new();
    let mut sections = Vec::with_capacity(rows.len());
    for (line, mut cells) in rows {
        if cells.len() > header.len() {
            let surplus = cells.len() - header.len();
            let (column, merged) = columns.merge_surplus(&cells, header.len());
            notes.push(format!(
                "line {line} has {} fields for {} columns (an unquoted separator?): kept, with {} joined into \"{}\"",
                header.len() + surplus,
                header.len(),
                if surplus == 1 { "the extra field".to_string() } else { format!("the {surplus} extra fields") },
                header[column]
            ));
            cells = merged;
        }
        sections.push(Section {
            heading: vec![stem.to_owned()],
            text: columns.sentence(&header, &cells),
            atomic: true,
        });
    }
    if sections.is_empty() {
        if bad.is_empty() {
            return Err(LoadError::Empty(format!(
                "{name}: no rows below the header"
            )));
        }
        let shown = bad
            .iter()
            .take(MAX_REPORTED_ROWS)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        return Err(LoadError::Unreadable(format!(
            "{name}: no readable rows ({shown})"
        )));
    }
    if !bad.is_empty() {
        tracing::warn!(file = name, skipped = bad.len(), first = %bad[0], "skipped unreadable CSV rows");
        notes.push(format!(
            "{} unreadable row{} skipped ({})",
            bad.len(),
            if bad.len() == 1 { "" } else { "s" },
            bad.iter()
                .take(MAX_REPORTED_ROWS)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok((stem.to_owned(), sections, notes))
}

/// What the cells of each CSV column look like in the rows that fit the header: how many are
/// numbers (prices, quantities), and how long they are.
pub(super) struct ColumnKinds {
    numeric: Vec<f32>,
    /// Share of cells that read as codes (`RR-1001`, `BR-101`).
    code: Vec<f32>,
    mean_chars: Vec<f32>,
}

/// A cell that reads as a code: one word of letters and digits with at least one digit and
/// one letter, and no lower-case run (`RR-1001`, `SKU_22`, `A4`; not `1kg`... `250 g`).
pub(super) fn is_code_cell(cell: &str) -> bool {
    cell.len() <= 24
        && crate::knowledge::text::is_code_shaped(cell)
        && !cell.chars().any(char::is_lowercase)
}

/// Currency codes that a column name may end with (`price_eur`): the unit of its amounts.
pub(super) const CURRENCY_SUFFIXES: [&str; 5] = ["eur", "usd", "gbp", "brl", "chf"];

/// A column name for reading: `service_or_part` reads `service or part`; a trailing
/// currency code (`price_eur`) becomes the unit of its amounts.
pub(super) fn column_label(header: &str) -> (String, Option<String>) {
    let words: Vec<&str> = header
        .split(|c: char| c == '_' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    match words.split_last() {
        Some((last, rest))
            if !rest.is_empty() && CURRENCY_SUFFIXES.contains(&last.to_lowercase().as_str()) =>
        {
            (rest.join(" "), Some(last.to_uppercase()))
        }
        _ => (words.join(" "), None),
    }
}

/// A cell that reads as an amount: digits and separators, with at most a sign, a currency
/// symbol or code, or a percent sign (`9.50`, `12,90 €`, `EUR 45`, `-10%`).
pub(super) fn is_numeric_cell(cell: &str) -> bool {
    let mut core = cell.trim();
    for code in ["EUR", "USD", "GBP", "BRL", "R$", "€", "$", "£", "%"] {
        core = core.trim_start_matches(code).trim_end_matches(code).trim();
    }
    let core = core.trim_start_matches(['+', '-']);
    core.chars().any(|c| c.is_ascii_digit())
        && core
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
}

impl ColumnKinds {
    pub(super) fn learn<'a>(columns: usize, rows: impl Iterator<Item = &'a [String]>) -> Self {
        let mut numeric = vec![0f32; columns];
        let mut code = vec![0f32; columns];
        let mut chars = vec![0f32; columns];
        let mut counts = vec![0f32; columns];
        for row in rows {
            for (i, cell) in row.iter().enumerate().filter(|(_, c)| !c.is_empty()) {
                counts[i] += 1.0;
                chars[i] += cell.chars().count() as f32;
                if is_numeric_cell(cell) {
                    numeric[i] += 1.0;
                } else if is_code_cell(cell) {
                    code[i] += 1.0;
                }
            }
        }
        for i in 0..columns {
            let n = counts[i].max(1.0);
            numeric[i] /= n;
            code[i] /= n;
            chars[i] /= n;
        }
        Self {
            numeric,
            code,
            mean_chars: chars,
        }
    }

    /// The column that names a row: the first one holding text, not amounts or codes.
    fn name_column(&self) -> Option<usize> {
        (0..self.numeric.len())
            .find(|&i| self.numeric[i] < 0.5 && self.code[i] < 0.5 && self.mean_chars[i] >= 2.0)
    }

    /// A row as one sentence that reads well on its own and as a reply: its name first, then
    /// the other cells labelled by their columns, codes last (`Puncture repair — price:
    /// 9.50 EUR; turnaround: same day; sku: RR-1001.`).
    pub(super) fn sentence(&self, header: &[String], cells: &[String]) -> String {
        let name = self
            .name_column()
            .filter(|&i| cells.get(i).is_some_and(|c| !c.is_empty()));
        let mut order: Vec<usize> = (0..cells.len()).filter(|&i| Some(i) != name).collect();
        // Stable: codes move to the end, everything else keeps the file's order.
        order.sort_by_key(|&i| self.code.get(i).is_some_and(|&share| share >= 0.5));
        let parts: Vec<String> = order
            .into_iter()
            .filter(|&i| !cells[i].is_empty())
            .map(|i| {
                let cell = &cells[i];
                let Some(header) = header.get(i) else {
                    return cell.clone();
                };
                let (label, unit) = column_label(header);
                let value = match unit {
                    Some(unit) if is_numeric_cell(cell) && !cell.contains(unit.as_str()) => {
                        format!("{cell} {unit}")
                    }
                    _ => cell.clone(),
                };
                if label.is_empty() {
                    value
                } else {
                    format!("{label}: {value}")
                }
            })
            .collect();
        let mut out = match name {
            Some(i) if parts.is_empty() => cells[i].clone(),
            Some(i) => format!("{} — {}", cells[i], parts.join("; ")),
            None => parts.join("; "),
        };
        if !out.ends_with(['.', '!', '?']) {
            out.push('.');
        }
        out
    }

    /// Joins the surplus fields of a row into the column where they fit best: the placement
    /// whose cells look most like their columns (numbers where numbers are), and among equals
    /// the column with the longest text. Returns that column and the repaired cells.
    fn merge_surplus(&self, cells: &[String], columns: usize) -> (usize, Vec<String>) {
        let surplus = cells.len() - columns;
        let placed = |column: usize| -> Vec<String> {
            let mut out: Vec<String> = cells[..column].to_vec();
            out.push(
                cells[column..=column + surplus]
                    .iter()
                    .filter(|c| !c.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            out.extend_from_slice(&cells[column + surplus + 1..]);
            out
        };
        let fit = |row: &[String]| -> f32 {
            row.iter()
                .zip(&self.numeric)
                .map(|(cell, &share)| match is_numeric_cell(cell) {
                    true => share,
                    false => 1.0 - share,
                })
                .sum()
        };
        let best = (0..columns)
            .max_by(|&a, &b| {
                fit(&placed(a))
                    .total_cmp(&fit(&placed(b)))
                    .then(self.mean_chars[a].total_cmp(&self.mean_chars[b]))
            })
            .unwrap_or(0);
        (best, placed(best))
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn csv_rows_become_atomic_sentences_named_by_their_text_column() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Product,SKU,Price\nSourdough loaf,BR-101,4.50 EUR\n",
                &["Sourdough loaf — Price: 4.50 EUR; SKU: BR-101."],
            ),
            (
                "Product;Price\n\"Cake; large\";30,00 EUR\nBun;\n",
                &["Cake; large — Price: 30,00 EUR.", "Bun."],
            ),
            ("Name\tAge\nAna\t31\n", &["Ana — Age: 31."]),
            (
                "ref,producto,precio_eur,notas\nCF-01,Etiopía,\"13,90\",\"jazmín, té\"\nCF-02,Kenia,\"15,80 EUR\",\n",
                &[
                    "Etiopía — precio: 13,90 EUR; notas: jazmín, té; ref: CF-01.",
                    "Kenia — precio: 15,80 EUR; ref: CF-02.",
                ],
            ),
            (
                "A,,C\n1,2,3\n\n,,\n4\n",
                &["A: 1; Column 2: 2; C: 3.", "A: 4."],
            ),
        ];
        for (csv, expected) in cases {
            let doc = load("list.csv", csv.as_bytes(), Format::Csv).unwrap();
            let texts: Vec<&str> = doc.sections.iter().map(|s| s.text.as_str()).collect();
            assert_eq!(texts, *expected, "{csv:?}");
            assert!(doc
                .sections
                .iter()
                .all(|s| s.atomic && s.heading == ["list"]));
        }
    }
    #[test]
    fn csv_rows_with_unquoted_commas_are_kept_and_reported() {
        let csv = "sku,service_or_part,price_eur,turnaround,notes\n\
                   RR-1001,Puncture repair,9.50,same day,inner tube included\n\
                   RR-1002,Chain replacement,24,same day,chain not included\n\
                   RR-1007,Brake bleed, front and rear,45,2 days,hydraulic brakes only\n\
                   RR-1010,Spoke replacement,6.50,1 day,per spoke, wheel truing included\n\
                   RR-1012,E-bike check,27,1 day,brakes, tyres, lights checked\n";
        let doc = load("prices.csv", csv.as_bytes(), Format::Csv).unwrap();
        let texts: Vec<&str> = doc.sections.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts.len(), 5, "no row is dropped: {texts:#?}");
        assert_eq!(
            texts[0],
            "Puncture repair — price: 9.50 EUR; turnaround: same day; \
             notes: inner tube included; sku: RR-1001."
        );
        assert_eq!(
            texts[2],
            "Brake bleed, front and rear — price: 45 EUR; turnaround: 2 days; \
             notes: hydraulic brakes only; sku: RR-1007."
        );
        assert_eq!(
            texts[3],
            "Spoke replacement — price: 6.50 EUR; turnaround: 1 day; \
             notes: per spoke, wheel truing included; sku: RR-1010."
        );
        assert!(
            texts[4].ends_with("notes: brakes, tyres, lights checked; sku: RR-1012."),
            "{}",
            texts[4]
        );
        assert_eq!(doc.notes.len(), 3, "{:?}", doc.notes);
        assert!(
            doc.notes[0].starts_with("line 4 has 6 fields for 5 columns")
                && doc.notes[0].contains("\"service_or_part\""),
            "{:?}",
            doc.notes
        );
        assert!(
            doc.notes[2].contains("the 2 extra fields"),
            "{:?}",
            doc.notes
        );
    }
    #[test]
    fn csv_without_rows_is_refused() {
        for empty in ["", "a,b\n", "a,b\n,\n\n"] {
            let err = load("e.csv", empty.as_bytes(), Format::Csv).unwrap_err();
            assert!(
                matches!(err, LoadError::Empty(ref m) if m.starts_with("e.csv: ")),
                "{empty:?}: {err:?}"
            );
        }
    }
}
