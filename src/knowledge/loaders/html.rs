//! HTML: the page's text with its headings, scripts and styles dropped, bounded in depth so no
//! page can overflow the stack.

use html2text::render::TextDecorator;

use super::{collapse_whitespace, tidy, LoadError, Section, SectionBuilder};

/// Marks heading lines in rendered HTML; a private-use character that is removed from the
/// input first, so it cannot occur otherwise.
pub(super) const HEADING_MARK: char = '\u{E000}';
/// Rendering width: wide enough that html2text never wraps a paragraph.
pub(super) const HTML_WIDTH: usize = 100_000;
/// Deepest element nesting accepted. Parsing time grows with the square of the depth (20,000
/// nested `<div>`s take seconds), and real pages stay far below this.
pub(super) const MAX_HTML_DEPTH: usize = 1_000;
/// Elements that a page closes explicitly; elements with implied ends (`p`, `li`, `td`...)
/// are left out so that loose but valid HTML does not look deep.
pub(super) const CONTAINER_TAGS: &[&str] = &[
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
pub(super) fn html_depth(html: &str) -> usize {
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
pub(super) struct MarkedDecorator;

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

pub(super) fn render_html(html: &str) -> Result<String, html2text::Error> {
    let html = html.replace(HEADING_MARK, "");
    html2text::config::with_decorator(MarkedDecorator)
        .no_table_borders()
        .string_from_read(html.as_bytes(), HTML_WIDTH)
}

/// Plain text of an HTML fragment (headings included as plain lines).
pub(super) fn html_fragment_text(html: &str) -> String {
    render_html(html)
        .map(|text| tidy(&text.replace(HEADING_MARK, "")))
        .unwrap_or_default()
}

/// The text of the document's `<title>` element, if it has a non-empty one.
pub(super) fn html_title(html: &str) -> Option<String> {
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

pub(super) fn load_html(
    name: &str,
    stem: &str,
    html: &str,
) -> Result<(String, Vec<Section>), LoadError> {
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

#[cfg(test)]
mod tests {
    use super::super::tests::section;
    use super::super::*;

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
}
