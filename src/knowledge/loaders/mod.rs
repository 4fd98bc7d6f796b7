//! Document loaders: read the bytes of a Markdown, plain-text, CSV, HTML or PDF file into a
//! titled list of sections (heading path + plain text) for the chunker, and check uploads
//! before they are accepted ([`sniff`]).
//!
//! Loading is CPU-bound (PDF parsing especially) and synchronous: callers run [`load`] on the
//! blocking pool (`tokio::task::spawn_blocking`), never on an async worker. No input makes
//! these functions panic: parser panics are caught and reported as [`LoadError::Unreadable`].

mod delimited;
mod html;
mod markdown;
mod pdf;

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use delimited::load_csv;
use html::load_html;
use markdown::{load_markdown, load_text};
use pdf::load_pdf;

/// A document format Palaver can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// CommonMark with tables (`.md`).
    Markdown,
    /// Plain text (`.txt`).
    Text,
    /// Comma- or semicolon-separated values with a header row (`.csv`).
    Csv,
    /// A web page (`.html`).
    Html,
    /// PDF with a text layer (`.pdf`).
    Pdf,
}

impl Format {
    /// The format named by a file's extension, if it is one Palaver reads.
    pub fn from_path(p: &Path) -> Option<Format> {
        let ext = p.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "md" | "markdown" | "mdown" | "mkd" => Some(Format::Markdown),
            "txt" | "text" => Some(Format::Text),
            "csv" => Some(Format::Csv),
            "html" | "htm" | "xhtml" => Some(Format::Html),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    /// The format of a MIME type such as `text/csv; charset=utf-8`.
    pub fn from_mime(m: &str) -> Option<Format> {
        match crate::domain::mime_essence(m).as_str() {
            "text/markdown" | "text/x-markdown" => Some(Format::Markdown),
            "text/plain" => Some(Format::Text),
            "text/csv" | "application/csv" | "text/comma-separated-values" => Some(Format::Csv),
            "text/html" | "application/xhtml+xml" => Some(Format::Html),
            "application/pdf" | "application/x-pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    /// The stored name of the format: `markdown`, `text`, `csv`, `html` or `pdf`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Csv => "csv",
            Format::Html => "html",
            Format::Pdf => "pdf",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run of text under one heading path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Headings from the outermost in, e.g. `["Delivery", "Costs"]`; empty before any heading.
    pub heading: Vec<String>,
    /// Plain text: paragraphs separated by blank lines, list items and table rows one a line.
    pub text: String,
    /// A record that must stay whole (a CSV row): never merged with other sections.
    pub atomic: bool,
}

/// A document read into sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedDocument {
    /// The first level-1 heading (or HTML `<title>`), else the file name without extension.
    pub title: String,
    /// The format it was read as.
    pub format: Format,
    /// Its sections in reading order; never empty.
    pub sections: Vec<Section>,
    /// What was read differently from the file's letter, or left out, for whoever uploaded it
    /// (a CSV row repaired, a damaged PDF page skipped).
    pub notes: Vec<String>,
}

/// Why a file could not be read. Each message starts with the file name and is fit to show
/// to whoever uploaded the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The content is of a kind Palaver does not read (an image, an Office file...).
    #[error("{0}")]
    Unsupported(String),
    /// The content is damaged, binary, or not in the encoding or structure claimed.
    #[error("{0}")]
    Unreadable(String),
    /// The file holds no text.
    #[error("{0}")]
    Empty(String),
}

/// Reads `bytes` as a document of `format`; `name` (the file name or path) gives the fallback
/// title and prefixes error messages. CPU-bound: run it on the blocking pool.
pub fn load(name: &str, bytes: &[u8], format: Format) -> Result<LoadedDocument, LoadError> {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| load_unguarded(name, bytes, format)));
    match outcome {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                file = name,
                format = format.as_str(),
                "document parser panicked"
            );
            Err(LoadError::Unreadable(format!(
                "{name}: cannot read this {} file (its structure is damaged or unusual)",
                format.as_str().to_uppercase()
            )))
        }
    }
}

fn load_unguarded(name: &str, bytes: &[u8], format: Format) -> Result<LoadedDocument, LoadError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(LoadError::Empty(format!("{name}: the file is empty")));
    }
    let stem = file_stem(name);
    let plain = |(title, sections)| (title, sections, Vec::new());
    let (title, sections, notes) = match format {
        Format::Pdf => load_pdf(name, &stem, bytes)?,
        Format::Markdown => plain(load_markdown(&stem, &decode_text(name, bytes)?)),
        Format::Text => plain(load_text(&stem, &decode_text(name, bytes)?)),
        Format::Csv => load_csv(name, &stem, &decode_text(name, bytes)?)?,
        Format::Html => plain(load_html(name, &stem, &decode_text(name, bytes)?)?),
    };
    if sections.is_empty() {
        return Err(LoadError::Empty(format!("{name}: no text found")));
    }
    Ok(LoadedDocument {
        title,
        format,
        sections,
        notes,
    })
}

/// Checks an upload's content against its claimed format without parsing it fully: a PDF must
/// carry the `%PDF-` header, text formats must be text (UTF-8, UTF-16 with a byte-order mark,
/// or Windows-1252) rather than binary data, an image or an Office file.
pub fn sniff(name: &str, bytes: &[u8], claimed: Format) -> Result<(), LoadError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(LoadError::Empty(format!("{name}: the file is empty")));
    }
    match claimed {
        Format::Pdf => {
            let head = &bytes[..bytes.len().min(1024)];
            if head.windows(5).any(|w| w == b"%PDF-") {
                return Ok(());
            }
            Err(match magic_kind(bytes) {
                Some(kind) => LoadError::Unsupported(format!("{name}: this is {kind}, not a PDF")),
                None => LoadError::Unreadable(format!(
                    "{name}: not a PDF file (it lacks the %PDF- header)"
                )),
            })
        }
        Format::Markdown | Format::Text | Format::Csv | Format::Html => {
            decode_text(name, bytes).map(|_| ())
        }
    }
}

fn file_stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(name)
        .trim()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Recognisable non-text content, by its leading bytes.
fn magic_kind(bytes: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"%PDF-", "a PDF file"),
        (
            b"PK\x03\x04",
            "a ZIP archive (or a Word, Excel or PowerPoint file)",
        ),
        (
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
            "an old Office document",
        ),
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"\x1F\x8B", "a gzip archive"),
        (b"OggS", "an audio file"),
        (b"ID3", "an audio file"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|&(_, kind)| kind)
}

/// Decodes a text file: UTF-8 (lossily when only a few bytes are broken), UTF-16 with a
/// byte-order mark, or Windows-1252 when the bytes look like a single-byte Latin encoding.
fn decode_text(name: &str, bytes: &[u8]) -> Result<String, LoadError> {
    if let Some(kind) = magic_kind(bytes) {
        return Err(LoadError::Unsupported(format!(
            "{name}: this is {kind}, not text"
        )));
    }
    let text = if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        decode_utf16(name, rest, u16::from_le_bytes)?
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        decode_utf16(name, rest, u16::from_be_bytes)?
    } else {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if looks_binary(bytes) {
            return Err(LoadError::Unreadable(format!(
                "{name}: binary data, not text"
            )));
        }
        decode_8bit(name, bytes)?
    };
    if text.trim().is_empty() {
        return Err(LoadError::Empty(format!("{name}: the file is empty")));
    }
    Ok(text)
}

fn decode_utf16(name: &str, bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, LoadError> {
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    let text: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if looks_binary(text.as_bytes()) || mostly_replaced(&text) {
        return Err(LoadError::Unreadable(format!(
            "{name}: damaged UTF-16 text"
        )));
    }
    Ok(text)
}

fn decode_8bit(name: &str, bytes: &[u8]) -> Result<String, LoadError> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_owned());
    }
    let lossy = String::from_utf8_lossy(bytes);
    let broken = lossy
        .chars()
        .filter(|&c| c == char::REPLACEMENT_CHARACTER)
        .count();
    let multibyte = lossy
        .chars()
        .filter(|&c| !c.is_ascii() && c != char::REPLACEMENT_CHARACTER)
        .count();
    // Real UTF-8 with a few damaged bytes (a truncated download, one bad paste) is worth
    // keeping; text with no valid multi-byte sequence at all is in another encoding.
    if multibyte >= broken && broken * 100 <= lossy.chars().count() {
        return Ok(lossy.into_owned());
    }
    let undefined_in_cp1252 = bytes
        .iter()
        .any(|b| matches!(b, 0x81 | 0x8D | 0x8F | 0x90 | 0x9D));
    let ascii = bytes.iter().filter(|b| b.is_ascii()).count();
    // Latin-script text is mostly ASCII; random high bytes are not.
    if !undefined_in_cp1252 && ascii * 10 >= bytes.len() * 7 {
        return Ok(bytes.iter().map(|&b| cp1252(b)).collect());
    }
    Err(LoadError::Unreadable(format!(
        "{name}: not valid UTF-8 text"
    )))
}

fn mostly_replaced(text: &str) -> bool {
    let broken = text
        .chars()
        .filter(|&c| c == char::REPLACEMENT_CHARACTER)
        .count();
    broken * 100 > text.chars().count()
}

/// NUL bytes or many control characters in the first 8 KiB.
fn looks_binary(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(8192)];
    if sample.contains(&0) {
        return true;
    }
    let controls = sample
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C | 0x1B)) || b == 0x7F)
        .count();
    controls * 50 > sample.len()
}

/// Windows-1252 (a superset of Latin-1 in 0xA0..=0xFF) to Unicode.
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž',
        '\u{8F}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared shaping

/// Trims line ends and leading/trailing blank lines, and folds runs of blank lines into one.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `line` reads as a table row as [`ColumnKinds::sentence`] renders it: `Name —
/// label: value; label: value.`, or labelled cells alone when no column names the row. A label
/// is a column's header: a few words, and the figures of a band ("De 2 a 5 kg") besides.
pub fn is_row_sentence(line: &str) -> bool {
    let labelled = |part: &str| {
        part.split_once(": ").is_some_and(|(label, value)| {
            let words = label.split_whitespace().filter(|w| {
                !w.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, ',' | '.'))
            });
            !label.trim().is_empty() && words.count() <= 4 && !value.trim().is_empty()
        })
    };
    let line = line.trim().trim_end_matches('.');
    match line.split_once(" — ") {
        Some((name, cells)) => {
            !name.trim().is_empty() && cells.split("; ").next().is_some_and(labelled)
        }
        None => {
            let parts: Vec<&str> = line.split("; ").collect();
            parts.len() >= 2 && parts.iter().all(|p| labelled(p))
        }
    }
}

/// Builds sections from a stream of headings and body text.
#[derive(Default)]
struct SectionBuilder {
    path: Vec<(usize, String)>,
    body: String,
    sections: Vec<Section>,
    first_h1: Option<String>,
}

impl SectionBuilder {
    fn heading(&mut self, level: usize, text: &str) {
        self.flush();
        let text = collapse_whitespace(text);
        self.path.retain(|(l, _)| *l < level);
        if text.is_empty() {
            return;
        }
        if level == 1 && self.first_h1.is_none() {
            self.first_h1 = Some(text.clone());
        }
        self.path.push((level, text));
    }

    fn flush(&mut self) {
        let text = tidy(&self.body);
        self.body.clear();
        if !text.is_empty() {
            self.sections.push(Section {
                heading: self.path.iter().map(|(_, h)| h.clone()).collect(),
                text,
                atomic: false,
            });
        }
    }

    fn line_break(&mut self) {
        if !self.body.is_empty() && !self.body.ends_with('\n') {
            self.body.push('\n');
        }
    }

    fn paragraph_break(&mut self) {
        self.line_break();
        if !self.body.is_empty() && !self.body.ends_with("\n\n") {
            self.body.push('\n');
        }
    }

    fn finish(mut self) -> (Option<String>, Vec<Section>) {
        self.flush();
        (self.first_h1, self.sections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sample(file: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("knowledge")
            .join(file);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
    pub(super) fn section<'a>(doc: &'a LoadedDocument, heading: &[&str]) -> &'a Section {
        doc.sections
            .iter()
            .find(|s| s.heading == heading)
            .unwrap_or_else(|| panic!("no section {heading:?} in {:#?}", doc.sections))
    }
    #[test]
    fn formats_from_extension_and_mime_type() {
        let paths = [
            ("faq.md", Some(Format::Markdown)),
            ("docs/Guide.MARKDOWN", Some(Format::Markdown)),
            ("notes.txt", Some(Format::Text)),
            ("products.CSV", Some(Format::Csv)),
            ("page.htm", Some(Format::Html)),
            ("menu.pdf", Some(Format::Pdf)),
            ("sheet.xlsx", None),
            ("README", None),
        ];
        for (path, expected) in paths {
            assert_eq!(Format::from_path(Path::new(path)), expected, "{path}");
        }
        let mimes = [
            ("text/markdown", Some(Format::Markdown)),
            ("text/plain; charset=utf-8", Some(Format::Text)),
            ("Text/CSV", Some(Format::Csv)),
            ("text/html;charset=ISO-8859-1", Some(Format::Html)),
            ("application/pdf", Some(Format::Pdf)),
            ("image/png", None),
            ("", None),
        ];
        for (mime, expected) in mimes {
            assert_eq!(Format::from_mime(mime), expected, "{mime}");
        }
        let names: Vec<&str> = [
            Format::Markdown,
            Format::Text,
            Format::Csv,
            Format::Html,
            Format::Pdf,
        ]
        .iter()
        .map(Format::as_str)
        .collect();
        assert_eq!(names, ["markdown", "text", "csv", "html", "pdf"]);
    }
    #[test]
    fn sample_knowledge_base_loads() {
        let faq = load("faq.md", &sample("faq.md"), Format::Markdown).unwrap();
        assert_eq!(faq.title, "Frequently asked questions");
        assert!(
            (10..=15).contains(&faq.sections.len()),
            "{} FAQ sections",
            faq.sections.len()
        );
        let wifi = section(&faq, &["Frequently asked questions", "Do you have Wi-Fi?"]);
        assert!(wifi.text.contains("paoquente2024"));

        let hours = load(
            "opening-hours.md",
            &sample("opening-hours.md"),
            Format::Markdown,
        )
        .unwrap();
        let weekly = section(&hours, &["Opening hours and location", "Weekly hours"]);
        assert!(
            weekly
                .text
                .contains("Saturday — Opening hours: 08:00 – 15:00."),
            "{}",
            weekly.text
        );
        assert!(weekly.text.contains("Monday — Opening hours: Closed."));

        let delivery = load(
            "delivery-and-refunds.md",
            &sample("delivery-and-refunds.md"),
            Format::Markdown,
        )
        .unwrap();
        let zones = section(
            &delivery,
            &["Delivery and refunds", "Delivery", "Zones and fees"],
        );
        assert!(zones.text.contains(
            "Zone 2 — Area: Oeiras, Amadora, Odivelas, Loures and Almada; Delivery fee: 6.90 EUR;"
        ));

        let products = load("products.csv", &sample("products.csv"), Format::Csv).unwrap();
        assert_eq!(products.title, "products");
        assert!(products.sections.len() >= 20);
        assert_eq!(
            products.sections[0].text,
            "Sourdough loaf — Category: Bread; Price: 4.50 EUR; Allergens: gluten (wheat); Vegan: yes; \
             Ships nationwide: no; SKU: BR-101."
        );

        let bytes = sample("catering-menu.pdf");
        assert!(bytes.len() < 50 * 1024);
        let menu = load("catering-menu.pdf", &bytes, Format::Pdf).unwrap();
        assert_eq!(menu.title, "catering-menu");
        assert_eq!(menu.sections.len(), 2, "one section per page");
        let text: Vec<&str> = menu.sections.iter().map(|s| s.text.as_str()).collect();
        let text = text.join("\n\n");
        assert!(
            text.contains(
                "Morning Meeting\nMini butter croissants, pastel de nata, seasonal fruit, fresh orange juice \
                 and filter coffee. Price: 9.50 EUR per guest. Minimum 10 guests.\n\nOffice Lunch\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Price: 24.00 EUR per guest. Minimum 40 guests."),
            "{text}"
        );
        assert!(text.contains("at least 7 days before the event"), "{text}");
    }
    #[test]
    fn damaged_or_binary_input_is_an_error_not_a_panic() {
        let pdf = sample("catering-menu.pdf");
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let high_bytes: Vec<u8> = (0..2048u32).map(|i| 0x80 + (i % 0x7F) as u8).collect();
        let mut fake_pdf = b"%PDF-1.7\n".to_vec();
        fake_pdf.extend_from_slice(&garbage);
        let cases: Vec<(&str, Vec<u8>, Format)> = vec![
            ("truncated.pdf", pdf[..pdf.len() / 2].to_vec(), Format::Pdf),
            ("header-only.pdf", b"%PDF-1.4\n".to_vec(), Format::Pdf),
            ("fake.pdf", fake_pdf, Format::Pdf),
            ("text.pdf", b"just some text".to_vec(), Format::Pdf),
            ("binary.md", garbage.clone(), Format::Markdown),
            ("binary.csv", garbage.clone(), Format::Csv),
            ("high.txt", high_bytes, Format::Text),
            (
                "zip.md",
                b"PK\x03\x04rest of a docx".to_vec(),
                Format::Markdown,
            ),
            ("pdf-as.md", pdf.clone(), Format::Markdown),
            (
                "utf16.txt",
                vec![0xFF, 0xFE, 0x00, 0xD8, 0x00, 0xD8, 0x00, 0xD8],
                Format::Text,
            ),
        ];
        for (name, bytes, format) in cases {
            match load(name, &bytes, format) {
                Err(LoadError::Unreadable(m) | LoadError::Unsupported(m) | LoadError::Empty(m)) => {
                    assert!(m.starts_with(&format!("{name}: ")), "{m}")
                }
                Ok(doc) => panic!("{name} loaded: {doc:?}"),
            }
        }
    }
    #[test]
    fn empty_documents_are_reported_as_empty() {
        let cases: &[(&str, &[u8], Format)] = &[
            ("a.md", b"", Format::Markdown),
            ("b.md", b"  \n\n ", Format::Markdown),
            ("c.md", b"# Title only\n## Sub\n", Format::Markdown),
            ("d.txt", b"\xEF\xBB\xBF\n", Format::Text),
            (
                "e.html",
                b"<html><head><title>T</title><script>x()</script></head><body></body></html>",
                Format::Html,
            ),
            ("f.pdf", b"", Format::Pdf),
        ];
        for (name, bytes, format) in cases {
            let err = load(name, bytes, *format).unwrap_err();
            assert!(
                matches!(err, LoadError::Empty(ref m) if m.starts_with(name)),
                "{name}: {err:?}"
            );
        }
    }
    #[test]
    fn pathological_nesting_loads_without_overflowing_the_stack() {
        let nested = |depth: usize| {
            format!(
                "{}<p>deep text</p>{}",
                "<div>".repeat(depth),
                "</div>".repeat(depth)
            )
        };
        let doc = load("deep.html", nested(900).as_bytes(), Format::Html).unwrap();
        assert!(doc.sections.iter().any(|s| s.text.contains("deep text")));
        let started = std::time::Instant::now();
        let err = load("deeper.html", nested(200_000).as_bytes(), Format::Html).unwrap_err();
        assert!(
            matches!(&err, LoadError::Unreadable(m) if m.starts_with("deeper.html: elements are nested more than")),
            "{err:?}"
        );
        assert!(
            started.elapsed().as_secs() < 5,
            "refusing took {:?}",
            started.elapsed()
        );
        // Loose HTML with implied ends and markup inside scripts is not mistaken for depth.
        let loose = format!(
            "{}<script>{}</script><!-- {} -->",
            "<p>item".repeat(5_000),
            "document.write('<div>');".repeat(2_000),
            "<div>".repeat(2_000)
        );
        let doc = load("loose.html", loose.as_bytes(), Format::Html).unwrap();
        assert!(doc.sections[0].text.starts_with("item"));

        let md = format!("{}quoted", "> ".repeat(20_000));
        let doc = load("deep.md", md.as_bytes(), Format::Markdown).unwrap();
        assert_eq!(doc.sections[0].text, "quoted");

        let md: String = (0..2_000)
            .map(|i| format!("{}- item {i}\n", "  ".repeat(i)))
            .collect();
        let doc = load("list.md", md.as_bytes(), Format::Markdown).unwrap();
        assert!(doc.sections[0].text.contains("item 1999"));
        assert!(doc.sections[0].text.len() < 100_000);
    }
    #[test]
    fn text_encodings_are_decoded_or_refused() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain ascii", "plain ascii"),
            (b"\xEF\xBB\xBFwith BOM", "with BOM"),
            // Windows-1252: "Café – 4,50 €".
            (b"Caf\xE9 \x96 4,50 \x80", "Café – 4,50 €"),
            (&[0xFF, 0xFE, b'O', 0, b'l', 0, 0xE1, 0], "Olá"),
            (&[0xFE, 0xFF, 0, b'O', 0, b'k'], "Ok"),
        ];
        for (bytes, expected) in cases {
            let doc = load("t.txt", bytes, Format::Text).unwrap();
            assert_eq!(doc.sections[0].text, *expected);
        }
        let mut damaged = "Atenção: pão de açúcar e café ".repeat(20).into_bytes();
        damaged[3] = 0xFF;
        let doc = load("t.txt", &damaged, Format::Text).unwrap();
        assert!(doc.sections[0].text.starts_with("Ate\u{FFFD}"));
        assert!(doc.sections[0].text.contains("pão de açúcar"));
    }
    #[test]
    fn sniff_checks_content_against_the_claimed_format() {
        let pdf = sample("catering-menu.pdf");
        let ok: &[(&[u8], Format)] = &[
            (&pdf, Format::Pdf),
            (b"# Title\ntext", Format::Markdown),
            (b"a;b\n1;2", Format::Csv),
            (b"Caf\xE9", Format::Text),
            (b"<p>x</p>", Format::Html),
        ];
        for (bytes, format) in ok {
            assert_eq!(sniff("f", bytes, *format), Ok(()), "{format}");
        }
        let bad: &[(&[u8], Format, &str)] = &[
            (b"", Format::Pdf, "Empty"),
            (b" \n", Format::Markdown, "Empty"),
            (b"<html>not a pdf</html>", Format::Pdf, "Unreadable"),
            (b"\x89PNG\r\n\x1a\n....", Format::Pdf, "Unsupported"),
            (b"PK\x03\x04....", Format::Csv, "Unsupported"),
            (&pdf, Format::Markdown, "Unsupported"),
            (b"text\0with\0nuls", Format::Text, "Unreadable"),
        ];
        for (bytes, format, kind) in bad {
            let err = sniff("upload.bin", bytes, *format).unwrap_err();
            let (got, message) = match &err {
                LoadError::Empty(m) => ("Empty", m),
                LoadError::Unreadable(m) => ("Unreadable", m),
                LoadError::Unsupported(m) => ("Unsupported", m),
            };
            assert_eq!(got, *kind, "{format}: {err:?}");
            assert!(message.starts_with("upload.bin: "), "{message}");
        }
    }
}
