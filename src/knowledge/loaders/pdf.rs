//! PDF: text page by page, titles told by their lines, an unreadable page skipped and reported.

use std::panic::{self, AssertUnwindSafe};

use super::{LoadError, Section};

/// A PDF: one section per page with text. A page whose content cannot be read is skipped
/// (and noted), not the whole file.
pub(super) fn load_pdf(
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
pub(super) fn pdf_page_text(page: &str) -> String {
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
pub(super) fn wraps_into(previous: &str, line: &str, widest: usize) -> bool {
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
pub(super) fn is_title_like(line: &str, widest: usize) -> bool {
    let chars = line.chars().count();
    chars <= 60
        && chars * 10 < widest * 7
        && line.split_whitespace().count() <= 8
        && line.chars().next().is_some_and(char::is_uppercase)
        && !line.ends_with(['.', '!', '?', ':', ',', ';'])
}

#[cfg(test)]
mod tests {
    use super::super::*;

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
}
