//! Document loaders: read the bytes of a Markdown, plain-text, CSV, HTML or PDF file into a
//! titled list of sections (heading path + plain text) for the chunker, and check uploads
//! before they are accepted ([`sniff`]).
//!
//! Loading is CPU-bound (PDF parsing especially) and synchronous: callers run [`load`] on the
//! blocking pool (`tokio::task::spawn_blocking`), never on an async worker. No input makes
//! these functions panic: parser panics are caught and reported as [`LoadError::Unreadable`].

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use html2text::render::TextDecorator;
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

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
/// label: value; label: value.`, or labelled cells alone when no column names the row.
pub fn is_row_sentence(line: &str) -> bool {
    let labelled = |part: &str| {
        part.split_once(": ").is_some_and(|(label, value)| {
            !label.trim().is_empty()
                && label.split_whitespace().count() <= 4
                && !value.trim().is_empty()
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

// ---------------------------------------------------------------------------------------------
// Markdown

/// Deepest list indentation written out; deeper items are indented like this level so that
/// pathological nesting cannot blow up the text.
const MAX_LIST_INDENT: usize = 8;

#[derive(Default)]
struct MarkdownState {
    out: SectionBuilder,
    heading: Option<String>,
    lists: Vec<Option<u64>>,
    table: Option<TableState>,
    html: Option<String>,
    in_metadata: bool,
}

#[derive(Default)]
struct TableState {
    header: Vec<String>,
    row: Vec<String>,
    cell: String,
    /// The body rows, rendered once the whole table is read (a column's kind is learnt from
    /// all of its cells).
    rows: Vec<Vec<String>>,
}

impl MarkdownState {
    fn text(&mut self, s: &str) {
        if self.in_metadata {
            return;
        }
        if let Some(heading) = &mut self.heading {
            heading.push_str(s);
        } else if let Some(table) = &mut self.table {
            table.cell.push_str(s);
        } else {
            self.out.body.push_str(s);
        }
    }

    fn hard_break(&mut self) {
        if self.heading.is_some() || self.table.is_some() {
            self.text(" ");
        } else {
            self.out.line_break();
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(s) | Event::Code(s) | Event::InlineMath(s) | Event::DisplayMath(s) => {
                self.text(&s)
            }
            Event::Html(s) | Event::InlineHtml(s) => match &mut self.html {
                Some(html) => html.push_str(&s),
                None if s.trim().to_ascii_lowercase().starts_with("<br") => self.hard_break(),
                None => {}
            },
            Event::SoftBreak => self.text(" "),
            Event::HardBreak => self.hard_break(),
            Event::Rule => self.out.paragraph_break(),
            Event::TaskListMarker(done) => self.text(if done { "[x] " } else { "[ ] " }),
            Event::FootnoteReference(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { .. } => self.heading = Some(String::new()),
            Tag::List(first) => {
                self.out.line_break();
                self.lists.push(first);
            }
            Tag::Item => {
                self.out.line_break();
                let indent = "  ".repeat(self.lists.len().saturating_sub(1).min(MAX_LIST_INDENT));
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let marker = format!("{n}. ");
                        *n = n.saturating_add(1);
                        marker
                    }
                    _ => "- ".to_owned(),
                };
                self.out.body.push_str(&indent);
                self.out.body.push_str(&marker);
            }
            Tag::Table(_) => {
                self.out.paragraph_break();
                self.table = Some(TableState::default());
            }
            Tag::TableRow => {
                if let Some(t) = &mut self.table {
                    t.row.clear();
                }
            }
            Tag::TableCell => {
                if let Some(t) = &mut self.table {
                    t.cell.clear();
                }
            }
            Tag::HtmlBlock => self.html = Some(String::new()),
            Tag::MetadataBlock(_) => self.in_metadata = true,
            Tag::CodeBlock(_)
            | Tag::BlockQuote(_)
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList => self.out.paragraph_break(),
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(level) => {
                let text = self.heading.take().unwrap_or_default();
                self.out.heading(level as usize, &text);
            }
            TagEnd::Paragraph => {
                if self.lists.is_empty() {
                    self.out.paragraph_break();
                } else {
                    self.out.line_break();
                }
            }
            TagEnd::Item | TagEnd::DefinitionListTitle => self.out.line_break(),
            TagEnd::List(_) => {
                self.lists.pop();
                if self.lists.is_empty() {
                    self.out.paragraph_break();
                } else {
                    self.out.line_break();
                }
            }
            TagEnd::TableCell => {
                if let Some(t) = &mut self.table {
                    let cell = collapse_whitespace(&t.cell);
                    t.row.push(cell);
                }
            }
            TagEnd::TableHead => {
                if let Some(t) = &mut self.table {
                    t.header = std::mem::take(&mut t.row);
                }
            }
            TagEnd::TableRow => {
                if let Some(t) = &mut self.table {
                    let row = std::mem::take(&mut t.row);
                    if row.iter().any(|c| !c.is_empty()) {
                        t.rows.push(row);
                    }
                }
            }
            TagEnd::Table => {
                if let Some(t) = self.table.take() {
                    // Each row one line, read as a sentence like a CSV row (`Cleaning —
                    // Price: 55 €.`), so a passage still reads right without its table.
                    let columns = ColumnKinds::learn(
                        t.header.len(),
                        t.rows
                            .iter()
                            .filter(|r| r.len() <= t.header.len())
                            .map(Vec::as_slice),
                    );
                    for row in &t.rows {
                        self.out.body.push_str(&columns.sentence(&t.header, row));
                        self.out.body.push('\n');
                    }
                    if t.rows.is_empty() {
                        let header = t
                            .header
                            .iter()
                            .filter(|h| !h.is_empty())
                            .cloned()
                            .collect::<Vec<_>>();
                        self.out.body.push_str(&header.join(" | "));
                    }
                }
                self.out.paragraph_break();
            }
            TagEnd::HtmlBlock => {
                if let Some(html) = self.html.take() {
                    let text = html_fragment_text(&html);
                    if !text.is_empty() {
                        self.out.paragraph_break();
                        self.out.body.push_str(&text);
                        self.out.paragraph_break();
                    }
                }
            }
            TagEnd::MetadataBlock(_) => self.in_metadata = false,
            TagEnd::CodeBlock
            | TagEnd::BlockQuote(_)
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListDefinition => self.out.paragraph_break(),
            _ => {}
        }
    }
}

fn load_markdown(stem: &str, text: &str) -> (String, Vec<Section>) {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_DEFINITION_LIST;
    let mut state = MarkdownState::default();
    for event in Parser::new_ext(text, options) {
        state.event(event);
    }
    let (h1, sections) = state.out.finish();
    (h1.unwrap_or_else(|| stem.to_owned()), sections)
}

// ---------------------------------------------------------------------------------------------
// Plain text

/// Splits text into paragraphs at blank lines; line breaks inside a paragraph are kept.
fn paragraphs(text: &str) -> Vec<String> {
    tidy(text)
        .split("\n\n")
        .map(str::to_owned)
        .filter(|p| !p.is_empty())
        .collect()
}

fn load_text(stem: &str, text: &str) -> (String, Vec<Section>) {
    let sections = paragraphs(text)
        .into_iter()
        .map(|text| Section {
            heading: Vec::new(),
            text,
            atomic: false,
        })
        .collect();
    (stem.to_owned(), sections)
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Bad rows quoted in an error message.
const MAX_REPORTED_ROWS: usize = 5;

/// The delimiter used most in the header line, outside quotes: `,`, `;` or tab.
fn sniff_delimiter(text: &str) -> u8 {
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
fn load_csv(
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
struct ColumnKinds {
    numeric: Vec<f32>,
    /// Share of cells that read as codes (`RR-1001`, `BR-101`).
    code: Vec<f32>,
    mean_chars: Vec<f32>,
}

/// A cell that reads as a code: one word of letters and digits with at least one digit and
/// one letter, and no lower-case run (`RR-1001`, `SKU_22`, `A4`; not `1kg`... `250 g`).
fn is_code_cell(cell: &str) -> bool {
    cell.len() <= 24 && super::text::is_code_shaped(cell) && !cell.chars().any(char::is_lowercase)
}

/// Currency codes that a column name may end with (`price_eur`): the unit of its amounts.
const CURRENCY_SUFFIXES: [&str; 5] = ["eur", "usd", "gbp", "brl", "chf"];

/// A column name for reading: `service_or_part` reads `service or part`; a trailing
/// currency code (`price_eur`) becomes the unit of its amounts.
fn column_label(header: &str) -> (String, Option<String>) {
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
fn is_numeric_cell(cell: &str) -> bool {
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
    fn learn<'a>(columns: usize, rows: impl Iterator<Item = &'a [String]>) -> Self {
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
    fn sentence(&self, header: &[String], cells: &[String]) -> String {
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

// ---------------------------------------------------------------------------------------------
// HTML

/// Marks heading lines in rendered HTML; a private-use character that is removed from the
/// input first, so it cannot occur otherwise.
const HEADING_MARK: char = '\u{E000}';
/// Rendering width: wide enough that html2text never wraps a paragraph.
const HTML_WIDTH: usize = 100_000;
/// Deepest element nesting accepted. Parsing time grows with the square of the depth (20,000
/// nested `<div>`s take seconds), and real pages stay far below this.
const MAX_HTML_DEPTH: usize = 1_000;
/// Elements that a page closes explicitly; elements with implied ends (`p`, `li`, `td`...)
/// are left out so that loose but valid HTML does not look deep.
const CONTAINER_TAGS: &[&str] = &[
    "a",
    "article",
    "aside",
    "b",
    "blockquote",
    "center",
    "div",
    "dl",
    "em",
    "fieldset",
    "font",
    "footer",
    "form",
    "header",
    "i",
    "main",
    "nav",
    "ol",
    "section",
    "small",
    "span",
    "strong",
    "table",
    "u",
    "ul",
];

/// An estimate of the deepest nesting of container elements, ignoring comments, scripts and
/// styles. Cheap and linear, so it can run before the real parser.
fn html_depth(html: &str) -> usize {
    let lower = html.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while let Some(offset) = lower[i..].find('<') {
        i += offset + 1;
        let rest = &lower[i..];
        if rest.starts_with("!--") {
            i += rest.find("-->").map_or(rest.len(), |end| end + 3);
            continue;
        }
        let closing = rest.starts_with('/');
        let name_start = i + usize::from(closing);
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let name = &lower[name_start..name_start + name_len];
        if !closing && (name == "script" || name == "style") {
            let end_tag = format!("</{name}");
            i += rest.find(&end_tag).unwrap_or(rest.len());
            continue;
        }
        if !CONTAINER_TAGS.contains(&name) {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
        } else if !rest.split('>').next().unwrap_or_default().ends_with('/') {
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    deepest
}

/// Renders HTML as plain text: links as their text, images as their alt text, list items as
/// `- ` lines, headings as lines starting with [`HEADING_MARK`] once per level.
#[derive(Clone, Default)]
struct MarkedDecorator;

impl TextDecorator for MarkedDecorator {
    type Annotation = ();

    fn decorate_link_start(&mut self, _url: &str) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_link_end(&mut self) -> String {
        String::new()
    }
    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_em_end(&self) -> String {
        String::new()
    }
    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strong_end(&self) -> String {
        String::new()
    }
    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }
    fn decorate_code_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_code_end(&self) -> String {
        String::new()
    }
    fn decorate_preformat_first(&self) {}
    fn decorate_preformat_cont(&self) {}
    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, ()) {
        (title.to_owned(), ())
    }
    fn header_prefix(&self, level: usize) -> String {
        let mut prefix: String = std::iter::repeat_n(HEADING_MARK, level).collect();
        prefix.push(' ');
        prefix
    }
    fn quote_prefix(&self) -> String {
        "  ".to_owned()
    }
    fn unordered_item_prefix(&self) -> String {
        "- ".to_owned()
    }
    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }
    fn make_subblock_decorator(&self) -> Self {
        MarkedDecorator
    }
    fn decorate_superscript_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_superscript_end(&self) -> String {
        String::new()
    }
    fn finalise(&mut self, _urls: Vec<String>) -> Vec<html2text::render::TaggedLine<()>> {
        Vec::new()
    }
}

fn render_html(html: &str) -> Result<String, html2text::Error> {
    let html = html.replace(HEADING_MARK, "");
    html2text::config::with_decorator(MarkedDecorator)
        .no_table_borders()
        .string_from_read(html.as_bytes(), HTML_WIDTH)
}

/// Plain text of an HTML fragment (headings included as plain lines).
fn html_fragment_text(html: &str) -> String {
    render_html(html)
        .map(|text| tidy(&text.replace(HEADING_MARK, "")))
        .unwrap_or_default()
}

/// The text of the document's `<title>` element, if it has a non-empty one.
fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let title = collapse_whitespace(&html_fragment_text(&format!(
        "<p>{}</p>",
        &html[start..end]
    )));
    (!title.is_empty()).then_some(title)
}

fn load_html(name: &str, stem: &str, html: &str) -> Result<(String, Vec<Section>), LoadError> {
    if html_depth(html) > MAX_HTML_DEPTH {
        return Err(LoadError::Unreadable(format!(
            "{name}: elements are nested more than {MAX_HTML_DEPTH} levels deep"
        )));
    }
    let rendered = render_html(html)
        .map_err(|e| LoadError::Unreadable(format!("{name}: cannot read this HTML ({e})")))?;
    let mut out = SectionBuilder::default();
    for line in rendered.lines() {
        let level = line.chars().take_while(|&c| c == HEADING_MARK).count();
        if level > 0 {
            out.heading(level, &line.replace(HEADING_MARK, ""));
        } else {
            out.body.push_str(line.trim_end());
            out.body.push('\n');
        }
    }
    let (h1, sections) = out.finish();
    let title = html_title(html).or(h1).unwrap_or_else(|| stem.to_owned());
    Ok((title, sections))
}

// ---------------------------------------------------------------------------------------------
// PDF

/// A PDF: one section per page with text. A page whose content cannot be read is skipped
/// (and noted), not the whole file.
fn load_pdf(
    name: &str,
    stem: &str,
    bytes: &[u8],
) -> Result<(String, Vec<Section>, Vec<String>), LoadError> {
    let head = &bytes[..bytes.len().min(1024)];
    if !head.windows(5).any(|w| w == b"%PDF-") {
        return Err(LoadError::Unreadable(format!(
            "{name}: not a PDF file (it lacks the %PDF- header)"
        )));
    }
    let unreadable = |e: &dyn std::fmt::Display| {
        LoadError::Unreadable(format!("{name}: cannot read this PDF ({e})"))
    };
    let mut doc = pdf_extract::Document::load_mem(bytes).map_err(|e| unreadable(&e))?;
    if doc.is_encrypted() {
        // Many PDFs are encrypted with an empty password, only to restrict editing.
        doc.decrypt("").map_err(|e| unreadable(&e))?;
    }
    let mut sections = Vec::new();
    let mut skipped = Vec::new();
    for page in doc.get_pages().into_keys() {
        let text = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut text = String::new();
            pdf_extract::output_doc_page(
                &doc,
                &mut pdf_extract::PlainTextOutput::new(&mut text),
                page,
            )
            .map(|()| text)
        }));
        match text {
            Ok(Ok(text)) => {
                let text = pdf_page_text(&text);
                if !text.is_empty() {
                    sections.push(Section {
                        heading: Vec::new(),
                        text,
                        atomic: false,
                    });
                }
            }
            Ok(Err(_)) | Err(_) => skipped.push(page),
        }
    }
    if sections.is_empty() {
        if !skipped.is_empty() {
            return Err(LoadError::Unreadable(format!(
                "{name}: cannot read this PDF (no page could be read)"
            )));
        }
        return Err(LoadError::Empty(format!(
            "{name}: no text found (a scanned PDF needs a text layer; OCR is not supported)"
        )));
    }
    let notes = match skipped.as_slice() {
        [] => Vec::new(),
        pages => {
            tracing::warn!(file = name, pages = ?pages, "skipped unreadable PDF pages");
            let list: Vec<String> = pages.iter().map(u32::to_string).collect();
            vec![format!(
                "page{} {} could not be read and {} skipped",
                if pages.len() == 1 { "" } else { "s" },
                list.join(", "),
                if pages.len() == 1 { "was" } else { "were" }
            )]
        }
    };
    Ok((stem.to_owned(), sections, notes))
}

/// A page's text rebuilt from its lines. PDF text comes one visual line at a time (blank lines
/// between them carry no meaning), so lines that wrap mid-sentence are joined again, and a
/// short title-like line starts a new paragraph that keeps the title with its text.
fn pdf_page_text(page: &str) -> String {
    let lines: Vec<&str> = page
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut paragraphs = Vec::new();
    let mut current = String::new();
    let mut previous: Option<&str> = None;
    for (i, &line) in lines.iter().enumerate() {
        let wrapped = previous.is_some_and(|p| wraps_into(p, line, widest));
        if !wrapped && i + 1 < lines.len() && is_title_like(line, widest) && !current.is_empty() {
            paragraphs.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            match previous {
                Some(p) if wrapped && p.ends_with('-') => {}
                _ if wrapped => current.push(' '),
                _ => current.push('\n'),
            }
        }
        current.push_str(line);
        previous = Some(line);
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs.join("\n\n")
}

/// Whether `line` continues the sentence `previous` broke off: `previous` does not end a
/// sentence and either fills most of the width or is followed by lowercase or a digit.
fn wraps_into(previous: &str, line: &str, widest: usize) -> bool {
    if previous.ends_with(['.', '!', '?']) {
        return false;
    }
    let continues = line
        .chars()
        .next()
        .is_some_and(|c| c.is_lowercase() || c.is_ascii_digit() || ",;)".contains(c));
    continues || previous.chars().count() * 10 >= widest * 7
}

/// A short line that reads like a heading: capitalised, no closing punctuation.
fn is_title_like(line: &str, widest: usize) -> bool {
    let chars = line.chars().count();
    chars <= 60
        && chars * 10 < widest * 7
        && line.split_whitespace().count() <= 8
        && line.chars().next().is_some_and(char::is_uppercase)
        && !line.ends_with(['.', '!', '?', ':', ',', ';'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(file: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("knowledge")
            .join(file);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn section<'a>(doc: &'a LoadedDocument, heading: &[&str]) -> &'a Section {
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
    fn markdown_keeps_heading_paths_and_writes_plain_text() {
        let md = "---\nauthor: x\n---\n\nIntro line.\n\n# Shop guide\n\nWelcome to the [shop](https://example.com) \
                  and **enjoy**.\n\n## Delivery\n\n### Costs\n\n- Zone 1: *3.50 EUR*\n- Zone 2\n  1. nested\n  2. more\n\n\
                  | Zone | Fee |\n|---|---|\n| A | 1 EUR |\n| B |  |\n\n```\nlet x = 1;\n```\n\n## Returns\nWithin\n14 days.<br>Call us.\n";
        let doc = load("guide.md", md.as_bytes(), Format::Markdown).unwrap();
        assert_eq!(doc.title, "Shop guide");
        assert_eq!(doc.format, Format::Markdown);
        let headings: Vec<Vec<String>> = doc.sections.iter().map(|s| s.heading.clone()).collect();
        assert_eq!(
            headings,
            [
                vec![],
                vec!["Shop guide".to_owned()],
                vec!["Shop guide".into(), "Delivery".into(), "Costs".into()],
                vec!["Shop guide".into(), "Returns".into()]
            ]
        );
        assert_eq!(doc.sections[0].text, "Intro line.");
        assert_eq!(doc.sections[1].text, "Welcome to the shop and enjoy.");
        assert_eq!(
            doc.sections[2].text,
            "- Zone 1: 3.50 EUR\n- Zone 2\n  1. nested\n  2. more\n\nZone: A; Fee: 1 EUR.\nZone: B.\n\nlet x = 1;"
        );
        assert_eq!(doc.sections[3].text, "Within 14 days.\nCall us.");
        assert!(doc.sections.iter().all(|s| !s.atomic));
    }

    #[test]
    fn markdown_table_rows_read_as_sentences_like_csv_rows() {
        let md = "# Prices\n\n## Hygiene\n\n| Service | Price |\n|---|---|\n\
                  | Scaling and polishing (cleaning) | 55 € |\n| Fluoride (children) | 20 € |\n";
        let doc = load("prices.md", md.as_bytes(), Format::Markdown).unwrap();
        let rows: Vec<&str> = doc.sections[0].text.lines().collect();
        assert_eq!(
            rows,
            [
                "Scaling and polishing (cleaning) — Price: 55 €.",
                "Fluoride (children) — Price: 20 €."
            ]
        );
        assert!(rows.iter().all(|r| is_row_sentence(r)));
    }

    #[test]
    fn row_sentences_are_told_from_prose() {
        for row in [
            "Puncture repair — price: 9.50 EUR; turnaround: same day; sku: RR-1001.",
            "Zone: A; Fee: 1 EUR.",
            "Kenia — precio: 15,80 EUR.",
        ] {
            assert!(is_row_sentence(row), "{row}");
        }
        for prose in [
            "We open at nine — and close at six.",
            "Note: bring your receipt.",
            "Bun.",
            "Prices: see below; thanks",
        ] {
            assert!(!is_row_sentence(prose), "{prose}");
        }
    }

    #[test]
    fn markdown_without_h1_is_titled_by_file_name() {
        let doc = load(
            "docs/shipping-notes.md",
            b"## Only\n\nText here.",
            Format::Markdown,
        )
        .unwrap();
        assert_eq!(doc.title, "shipping-notes");
        assert_eq!(doc.sections[0].heading, ["Only"]);
    }

    #[test]
    fn text_is_split_into_paragraphs() {
        let doc = load(
            "notes.txt",
            b"First line\nsame paragraph.\r\n\r\n\r\nSecond one.\n",
            Format::Text,
        )
        .unwrap();
        assert_eq!(doc.title, "notes");
        let texts: Vec<&str> = doc.sections.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["First line\nsame paragraph.", "Second one."]);
        assert!(doc.sections.iter().all(|s| s.heading.is_empty()));
    }

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

    #[test]
    fn html_keeps_text_and_headings_and_drops_scripts() {
        let html = r#"<!DOCTYPE html><html><head><title>Casa &amp; Nube</title><style>p { color: red }</style>
            <script>alert("x")</script></head><body><nav><a href="/">Home</a></nav>
            <h1>Welcome</h1><p>Fresh <a href="/bread">bread</a> &euro;4.50 daily.</p>
            <h2>Hours</h2><ul><li>Tue&ndash;Fri 7:30</li><li>Sat 8:00</li></ul>
            <script>var hidden = 1;</script><p>Closed <b>Mondays</b>.</p></body></html>"#;
        let doc = load("index.html", html.as_bytes(), Format::Html).unwrap();
        assert_eq!(doc.title, "Casa & Nube");
        let welcome = section(&doc, &["Welcome"]);
        assert_eq!(welcome.text, "Fresh bread €4.50 daily.");
        let hours = section(&doc, &["Welcome", "Hours"]);
        assert_eq!(hours.text, "- Tue–Fri 7:30\n- Sat 8:00\n\nClosed Mondays.");
        let all: String = doc.sections.iter().map(|s| s.text.as_str()).collect();
        assert!(
            !all.contains("alert") && !all.contains("hidden") && !all.contains("color"),
            "{all}"
        );
    }

    #[test]
    fn html_title_falls_back_to_h1_then_file_name() {
        let doc = load("a.html", b"<h1>Big  news</h1><p>x</p>", Format::Html).unwrap();
        assert_eq!(doc.title, "Big news");
        let doc = load("about-us.html", b"<p>Just text</p>", Format::Html).unwrap();
        assert_eq!(doc.title, "about-us");
        assert_eq!(doc.sections[0].heading, Vec::<String>::new());
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

    /// A PDF of one page per text, in Helvetica; page `damaged` (from 1), if any, lacks its
    /// page size and fonts (the extractor gives up on such a page).
    fn pdf_of_pages(texts: &[&str], damaged: Option<usize>) -> Vec<u8> {
        use pdf_extract::{Dictionary, Document, Object, Stream};
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let mut font = Dictionary::new();
        font.set("Type", Object::Name(b"Font".to_vec()));
        font.set("Subtype", Object::Name(b"Type1".to_vec()));
        font.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
        font.set("Encoding", Object::Name(b"WinAnsiEncoding".to_vec()));
        let font_id = doc.add_object(font);
        let mut fonts = Dictionary::new();
        fonts.set("F1", Object::Reference(font_id));
        let mut resources = Dictionary::new();
        resources.set("Font", Object::Dictionary(fonts));
        let resources_id = doc.add_object(resources);
        let mut kids = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let ops = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
            let content_id = doc.add_object(Stream::new(Dictionary::new(), ops.into_bytes()));
            let mut page = Dictionary::new();
            page.set("Type", Object::Name(b"Page".to_vec()));
            page.set("Parent", Object::Reference(pages_id));
            page.set("Contents", Object::Reference(content_id));
            if damaged != Some(i + 1) {
                page.set("Resources", Object::Reference(resources_id));
                page.set(
                    "MediaBox",
                    Object::Array(vec![0.into(), 0.into(), 612.into(), 792.into()]),
                );
            }
            kids.push(Object::Reference(doc.add_object(page)));
        }
        let mut pages = Dictionary::new();
        pages.set("Type", Object::Name(b"Pages".to_vec()));
        pages.set("Count", Object::Integer(kids.len() as i64));
        pages.set("Kids", Object::Array(kids));
        doc.objects.insert(pages_id, Object::Dictionary(pages));
        let mut catalog = Dictionary::new();
        catalog.set("Type", Object::Name(b"Catalog".to_vec()));
        catalog.set("Pages", Object::Reference(pages_id));
        let catalog_id = doc.add_object(catalog);
        doc.trailer.set("Root", Object::Reference(catalog_id));
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_damaged_pdf_page_is_skipped_and_reported_and_the_others_kept() {
        let texts = [
            "Canapes for twenty guests cost 90 EUR.",
            "This page cannot be read.",
            "Orders need seven days of notice.",
        ];
        let whole = load("menu.pdf", &pdf_of_pages(&texts, None), Format::Pdf).unwrap();
        assert!(whole.notes.is_empty(), "{:?}", whole.notes);
        let all: String = whole.sections.iter().map(|s| s.text.as_str()).collect();
        assert!(all.contains("This page cannot be read."), "{all}");

        let doc = load("menu.pdf", &pdf_of_pages(&texts, Some(2)), Format::Pdf).unwrap();
        let kept: String = doc.sections.iter().map(|s| s.text.as_str()).collect();
        assert!(
            kept.contains("Canapes for twenty guests cost 90 EUR."),
            "{kept}"
        );
        assert!(kept.contains("Orders need seven days of notice."), "{kept}");
        assert!(!kept.contains("cannot be read"), "{kept}");
        assert_eq!(doc.notes.len(), 1, "{:?}", doc.notes);
        assert!(doc.notes[0].contains("page 2 "), "{:?}", doc.notes);

        // Nothing readable at all is an error, not an empty document.
        let err = load("menu.pdf", &pdf_of_pages(&texts[..1], Some(1)), Format::Pdf).unwrap_err();
        assert!(err.to_string().contains("no page could be read"), "{err}");
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
