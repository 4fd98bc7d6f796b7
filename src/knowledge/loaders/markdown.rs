//! Markdown and plain text: headings make the sections' paths; a Markdown table's rows read as
//! sentences, as a CSV file's do.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use super::delimited::ColumnKinds;
use super::html::html_fragment_text;
use super::{collapse_whitespace, tidy, Section, SectionBuilder};

/// Deepest list indentation written out; deeper items are indented like this level so that
/// pathological nesting cannot blow up the text.
pub(super) const MAX_LIST_INDENT: usize = 8;

#[derive(Default)]
pub(super) struct MarkdownState {
    out: SectionBuilder,
    heading: Option<String>,
    lists: Vec<Option<u64>>,
    table: Option<TableState>,
    html: Option<String>,
    in_metadata: bool,
}

#[derive(Default)]
pub(super) struct TableState {
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

pub(super) fn load_markdown(stem: &str, text: &str) -> (String, Vec<Section>) {
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
pub(super) fn paragraphs(text: &str) -> Vec<String> {
    tidy(text)
        .split("\n\n")
        .map(str::to_owned)
        .filter(|p| !p.is_empty())
        .collect()
}

pub(super) fn load_text(stem: &str, text: &str) -> (String, Vec<Section>) {
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

#[cfg(test)]
mod tests {
    use super::super::*;

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
            // A band's figures in a column's header are not words of prose.
            "Zona 1 (Zaragoza) — De 2 a 5 kg: 3,90 €.",
            "Day pass — 16 to 17 years old: 7 EUR.",
        ] {
            assert!(is_row_sentence(row), "{row}");
        }
        for prose in [
            "We open at nine — and close at six.",
            "Note: bring your receipt.",
            "Bun.",
            "Prices: see below; thanks",
            "Heads up — we close at 2 pm on the 24th: plan ahead.",
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
}
