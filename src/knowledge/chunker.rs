//! The chunker: packs a loaded document's sections into passages of at most `chunk_tokens`
//! cl100k tokens for embedding and retrieval.
//!
//! Whole paragraphs are packed first; a paragraph too long for one chunk is split at sentence
//! boundaries, and a sentence too long for one chunk at token boundaries. Consecutive chunks of
//! one section share `overlap` tokens (whole sentences where they fit) so a fact cut by a chunk
//! boundary is still found whole. Sections under different headings are never mixed, and
//! atomic sections (CSV rows) always get chunks of their own. Output is deterministic.

use tiktoken_rs::CoreBPE;

use super::loaders::{is_row_sentence, LoadedDocument, Section};
use super::text::sentence_spans;

/// How big chunks are and how much consecutive chunks share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerConfig {
    /// Most tokens (cl100k) in one chunk; at least 1.
    pub chunk_tokens: usize,
    /// Tokens of a chunk repeated at the start of the next chunk of the same section; capped
    /// at half of `chunk_tokens` so that every chunk brings new text.
    pub overlap: usize,
}

/// A passage ready to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChunk {
    /// Heading path of its section, e.g. `Delivery > Costs`; `None` outside any heading.
    pub heading: Option<String>,
    /// The passage.
    pub text: String,
    /// Tokens (cl100k) in `text`.
    pub token_count: usize,
}

/// The cl100k_base encoder, built once on first use (building it takes a while).
fn bpe() -> &'static CoreBPE {
    tiktoken_rs::cl100k_base_singleton()
}

/// Number of cl100k_base tokens in `text` (special-token markers count as plain text).
pub fn count_tokens(text: &str) -> usize {
    bpe().encode_ordinary(text).len()
}

/// Splits a document into chunks of at most `cfg.chunk_tokens` tokens each. A chunk exceeds
/// the limit only when a single character needs more tokens than the limit allows.
pub fn chunk(doc: &LoadedDocument, cfg: &ChunkerConfig) -> Vec<TextChunk> {
    let limit = cfg.chunk_tokens.max(1);
    let packer = Packer {
        limit,
        overlap: cfg.overlap.min(limit / 2),
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < doc.sections.len() {
        let first = &doc.sections[i];
        // A run of non-atomic sections under the same heading reads as one stream.
        let mut end = i + 1;
        if !first.atomic {
            while end < doc.sections.len()
                && !doc.sections[end].atomic
                && doc.sections[end].heading == first.heading
            {
                end += 1;
            }
        }
        packer.pack(&doc.sections[i..end], &mut out);
        i = end;
    }
    out
}

/// How a piece attaches to the piece before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    Paragraph,
    Line,
    Space,
    /// A token-boundary cut inside a sentence: no separator was there.
    Glue,
}

impl Sep {
    fn as_str(self) -> &'static str {
        match self {
            Sep::Paragraph => "\n\n",
            Sep::Line => "\n",
            Sep::Space => " ",
            Sep::Glue => "",
        }
    }
}

/// A sentence, or part of one, with how it joins the text before it.
#[derive(Debug, Clone)]
struct Piece {
    sep: Sep,
    text: String,
}

fn render(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            out.push_str(piece.sep.as_str());
        }
        out.push_str(&piece.text);
    }
    out.trim().to_owned()
}

struct Packer {
    limit: usize,
    overlap: usize,
}

/// The chunk being filled: `pieces[..carried]` were repeated from the previous chunk.
#[derive(Default)]
struct Current {
    pieces: Vec<Piece>,
    carried: usize,
}

impl Current {
    fn has_new_text(&self) -> bool {
        self.pieces.len() > self.carried
    }
}

impl Packer {
    fn fits(&self, pieces: &[Piece], more: &[Piece]) -> bool {
        let mut all = pieces.to_vec();
        all.extend_from_slice(more);
        count_tokens(&render(&all)) <= self.limit
    }

    fn pack(&self, sections: &[Section], out: &mut Vec<TextChunk>) {
        let Some(first) = sections.first() else {
            return;
        };
        let heading = (!first.heading.is_empty()).then(|| first.heading.join(" > "));
        let mut current = Current::default();
        for paragraph in sections.iter().flat_map(|s| s.text.split("\n\n")) {
            let pieces = self.paragraph_pieces(paragraph);
            if pieces.is_empty() {
                continue;
            }
            if count_tokens(&render(&pieces)) <= self.limit {
                // Keep a paragraph that fits in one chunk whole: start a new chunk for it
                // rather than spreading it over two.
                if current.has_new_text() && self.fits(&current.pieces, &pieces) {
                    current.pieces.extend(pieces);
                } else {
                    self.start_next(&mut current, &pieces, &heading, out);
                    current.pieces.extend(pieces);
                }
                continue;
            }
            for piece in pieces {
                let one = std::slice::from_ref(&piece);
                if !self.fits(&current.pieces, one) {
                    self.start_next(&mut current, one, &heading, out);
                }
                current.pieces.push(piece);
            }
        }
        if current.has_new_text() {
            self.emit(&current.pieces, &heading, out);
        }
    }

    /// Emits the current chunk if it has new text and starts the next with the overlap, keeping
    /// only as much of the overlap as leaves room for `next`.
    fn start_next(
        &self,
        current: &mut Current,
        next: &[Piece],
        heading: &Option<String>,
        out: &mut Vec<TextChunk>,
    ) {
        if current.has_new_text() {
            self.emit(&current.pieces, heading, out);
            current.pieces = self.overlap_of(&current.pieces);
        }
        while !current.pieces.is_empty() && !self.fits(&current.pieces, next) {
            current.pieces.remove(0);
        }
        current.carried = current.pieces.len();
    }

    fn emit(&self, pieces: &[Piece], heading: &Option<String>, out: &mut Vec<TextChunk>) {
        let text = render(pieces);
        if text.is_empty() {
            return;
        }
        out.push(TextChunk {
            heading: heading.clone(),
            token_count: count_tokens(&text),
            text,
        });
    }

    /// The end of a chunk to repeat at the start of the next: the last whole sentences that fit
    /// in `overlap` tokens, or the last `overlap` tokens when even the last sentence is longer
    /// (but for a table row).
    fn overlap_of(&self, pieces: &[Piece]) -> Vec<Piece> {
        if self.overlap == 0 {
            return Vec::new();
        }
        let mut start = pieces.len();
        while start > 0 && count_tokens(&render(&pieces[start - 1..])) <= self.overlap {
            start -= 1;
        }
        if start < pieces.len() {
            return pieces[start..].to_vec();
        }
        let Some(last) = pieces.last() else {
            return Vec::new();
        };
        // The end of a table row is no fact ("90 €; free from: 60 €"): rows are whole, so the
        // next chunk starts with the next row.
        if is_row_sentence(&last.text) {
            return Vec::new();
        }
        let tail = token_tail(&last.text, self.overlap);
        if tail.trim().is_empty() {
            return Vec::new();
        }
        vec![Piece {
            sep: Sep::Paragraph,
            text: tail.trim_start().to_owned(),
        }]
    }

    /// A paragraph as sentence pieces, each within the limit (sentences over it are cut at
    /// token boundaries).
    fn paragraph_pieces(&self, paragraph: &str) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let mut previous_end = None;
        for span in sentence_spans(paragraph) {
            let sep = match previous_end {
                None => Sep::Paragraph,
                Some(end) if paragraph[end..span.start].contains('\n') => Sep::Line,
                Some(_) => Sep::Space,
            };
            previous_end = Some(span.end);
            let sentence = &paragraph[span];
            if count_tokens(sentence) <= self.limit {
                pieces.push(Piece {
                    sep,
                    text: sentence.to_owned(),
                });
                continue;
            }
            // Leave room for the overlap in front of each part.
            let part_limit = self.limit - self.overlap;
            for (i, part) in split_by_tokens(sentence, part_limit)
                .into_iter()
                .enumerate()
            {
                pieces.push(Piece {
                    sep: if i == 0 { sep } else { Sep::Glue },
                    text: part,
                });
            }
        }
        pieces
    }
}

/// Byte offsets where each token of `text` ends, or `None` if the tokens do not map back onto
/// the text byte for byte.
fn token_ends(text: &str) -> Option<Vec<usize>> {
    let bpe = bpe();
    let mut ends = Vec::new();
    let mut at = 0;
    for token in bpe.encode_ordinary(text) {
        at += bpe.decode_bytes(&[token]).ok()?.len();
        ends.push(at);
    }
    (at == text.len()).then_some(ends)
}

/// Cuts `text` into consecutive parts of at most `limit` tokens, at token boundaries that are
/// also character boundaries. A part is longer only when one character alone needs more than
/// `limit` tokens.
fn split_by_tokens(text: &str, limit: usize) -> Vec<String> {
    let Some(ends) = token_ends(text) else {
        return vec![text.to_owned()];
    };
    let mut parts = Vec::new();
    let mut start = 0;
    let mut first_token = 0;
    while first_token < ends.len() {
        let furthest = (first_token + limit).min(ends.len());
        // Largest cut within the limit on a character boundary whose text, encoded alone, is
        // still within the limit (re-encoding a cut can merge tokens differently).
        let within = (first_token + 1..=furthest).rev().find(|&k| {
            text.is_char_boundary(ends[k - 1])
                && count_tokens(text[start..ends[k - 1]].trim()) <= limit
        });
        let cut = within.unwrap_or_else(|| {
            // One character spans more tokens than the limit: take it whole.
            (furthest..=ends.len())
                .find(|&k| text.is_char_boundary(ends[k - 1]))
                .unwrap_or(ends.len())
        });
        let end = ends[cut - 1];
        parts.push(text[start..end].to_owned());
        start = end;
        first_token = cut;
    }
    parts
}

/// The last `n` tokens of `text`, starting on a character boundary.
fn token_tail(text: &str, n: usize) -> String {
    let Some(ends) = token_ends(text) else {
        return String::new();
    };
    if ends.len() <= n {
        return text.to_owned();
    }
    let first = ends.len() - n;
    let start = (first..ends.len())
        .map(|k| ends[k - 1])
        .find(|&at| text.is_char_boundary(at))
        .unwrap_or(text.len());
    text[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::knowledge::loaders::{load, Format};
    use crate::knowledge::text::sentences;

    fn sample(file: &str, format: Format) -> LoadedDocument {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("knowledge")
            .join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        load(file, &bytes, format).unwrap()
    }

    fn doc(sections: &[(&[&str], &str, bool)]) -> LoadedDocument {
        LoadedDocument {
            title: "t".into(),
            format: Format::Markdown,
            notes: Vec::new(),
            sections: sections
                .iter()
                .map(|(heading, text, atomic)| Section {
                    heading: heading.iter().map(|h| h.to_string()).collect(),
                    text: text.to_string(),
                    atomic: *atomic,
                })
                .collect(),
        }
    }

    fn cfg(chunk_tokens: usize, overlap: usize) -> ChunkerConfig {
        ChunkerConfig {
            chunk_tokens,
            overlap,
        }
    }

    /// Twenty numbered sentences of about ten tokens each, in one paragraph.
    fn long_paragraph() -> String {
        (1..=20)
            .map(|i| format!("Sentence number {i} says the bakery opens early."))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn collapse(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn count_tokens_uses_cl100k() {
        let cases = [
            ("", 0),
            ("hello world", 2),
            ("tiktoken is great!", 6),
            ("<|endoftext|>", 7),
        ];
        for (text, expected) in cases {
            assert_eq!(count_tokens(text), expected, "{text:?}");
        }
    }

    #[test]
    fn chunks_never_exceed_the_limit() {
        let docs = [
            sample("faq.md", Format::Markdown),
            sample("delivery-and-refunds.md", Format::Markdown),
            sample("opening-hours.md", Format::Markdown),
            sample("products.csv", Format::Csv),
            sample("catering-menu.pdf", Format::Pdf),
            doc(&[(&["Long"], &long_paragraph(), false)]),
            doc(&[(
                &[],
                &format!(
                    "{}\n\n{}",
                    "x".repeat(3000),
                    "https://example.com/".repeat(60)
                ),
                false,
            )]),
        ];
        let configs = [
            cfg(16, 4),
            cfg(40, 8),
            cfg(64, 16),
            cfg(128, 0),
            cfg(256, 64),
            cfg(512, 300),
        ];
        for config in configs {
            for d in &docs {
                let chunks = chunk(d, &config);
                assert!(!chunks.is_empty());
                for c in &chunks {
                    assert!(
                        c.token_count <= config.chunk_tokens,
                        "{config:?}: {} tokens in {:?}",
                        c.token_count,
                        c.text
                    );
                    assert_eq!(c.token_count, count_tokens(&c.text));
                    assert!(!c.text.trim().is_empty() && c.text == c.text.trim());
                }
            }
        }
    }

    #[test]
    fn consecutive_chunks_of_a_section_overlap_by_whole_sentences() {
        let d = doc(&[(&["Hours"], &long_paragraph(), false)]);
        let chunks = chunk(&d, &cfg(60, 15));
        assert!(chunks.len() > 3, "{chunks:#?}");
        for pair in chunks.windows(2) {
            let last_sentence = sentences(&pair[0].text).pop().unwrap();
            assert!(
                pair[1].text.starts_with(&last_sentence),
                "{:?} does not start with {last_sentence:?}",
                pair[1].text
            );
        }
        // Without overlap the chunks put back together are the paragraph, each sentence once.
        let chunks = chunk(&d, &cfg(60, 0));
        let joined = chunks
            .iter()
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(joined, long_paragraph());
    }

    #[test]
    fn a_table_row_is_never_cut_into_the_next_chunk() {
        let rows = (1..=12)
            .map(|i| format!("Zone {i} — Delivery fee: {i},90 €; Free from: {i}0,00 €; Delivery time: 2 to 4 working days."))
            .collect::<Vec<_>>()
            .join("\n");
        let chunks = chunk(&doc(&[(&["Shipping"], &rows, false)]), &cfg(60, 20));
        assert!(chunks.len() > 2);
        for c in &chunks {
            for line in c.text.lines() {
                assert!(is_row_sentence(line), "{line:?} in {:?}", c.text);
            }
        }
    }

    #[test]
    fn overlap_falls_back_to_tokens_when_a_sentence_is_too_long() {
        let text = (1..=60)
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let chunks = chunk(&doc(&[(&[], &text, false)]), &cfg(30, 6));
        assert!(chunks.len() > 2);
        for pair in chunks.windows(2) {
            // The next chunk opens with the last few tokens of the previous one.
            let (previous, next) = (&pair[0].text, &pair[1].text);
            let shared = (1..=next.len())
                .filter(|&n| next.is_char_boundary(n) && previous.ends_with(&next[..n]))
                .max()
                .unwrap_or(0);
            assert!(shared >= 8, "{previous:?} then {next:?}");
            assert!(
                count_tokens(&next[..shared]) <= 6 + 1,
                "{:?}",
                &next[..shared]
            );
        }
        let all: String = chunks
            .iter()
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(all.contains("word1 ") && all.ends_with("word60"));
    }

    #[test]
    fn headings_are_kept_and_sections_never_merged() {
        let d = doc(&[
            (&["Delivery", "Costs"], "Zone 1 costs 3.50 EUR.", false),
            (&["Delivery", "Times"], "Same day before 11:00.", false),
            (&["Delivery", "Times"], "No deliveries on Mondays.", false),
            (&[], "Untitled note.", false),
        ]);
        let chunks = chunk(&d, &cfg(200, 20));
        let got: Vec<(Option<&str>, &str)> = chunks
            .iter()
            .map(|c| (c.heading.as_deref(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("Delivery > Costs"), "Zone 1 costs 3.50 EUR."),
                (
                    Some("Delivery > Times"),
                    "Same day before 11:00.\n\nNo deliveries on Mondays."
                ),
                (None, "Untitled note."),
            ]
        );
    }

    #[test]
    fn paragraphs_that_fit_are_not_split_across_chunks() {
        let p1 = "The shop opens at 07:30 from Tuesday to Friday. Saturdays it opens at 08:00.";
        let p2 =
            "Sunday hours are shorter and end at 13:00. On Mondays the shop is closed all day.";
        // Room for the first paragraph and the first sentence of the second, not for both.
        let limit =
            count_tokens(p1) + count_tokens("Sunday hours are shorter and end at 13:00.") + 3;
        assert!(limit < count_tokens(&format!("{p1}\n\n{p2}")));
        let chunks = chunk(
            &doc(&[(&["Hours"], &format!("{p1}\n\n{p2}"), false)]),
            &cfg(limit, 0),
        );
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, [p1, p2]);
    }

    #[test]
    fn csv_rows_get_one_chunk_each() {
        let products = sample("products.csv", Format::Csv);
        let chunks = chunk(&products, &cfg(256, 32));
        assert_eq!(chunks.len(), products.sections.len());
        for (c, row) in chunks.iter().zip(&products.sections) {
            assert_eq!(c.text, row.text);
            assert_eq!(c.heading.as_deref(), Some("products"));
        }
    }

    #[test]
    fn oversize_atomic_rows_are_split_but_never_merged() {
        let long_row = format!(
            "Product: Party box; Contents: {}",
            "mini pastry, ".repeat(80)
        );
        let d = doc(&[
            (&["list"], "Product: Bun; Price: 1 EUR", true),
            (&["list"], &long_row, true),
            (&["list"], "Product: Tart", true),
        ]);
        let chunks = chunk(&d, &cfg(50, 10));
        assert_eq!(
            chunks.first().map(|c| c.text.as_str()),
            Some("Product: Bun; Price: 1 EUR")
        );
        assert_eq!(
            chunks.last().map(|c| c.text.as_str()),
            Some("Product: Tart")
        );
        let middle = &chunks[1..chunks.len() - 1];
        assert!(middle.len() >= 2, "{chunks:#?}");
        assert!(middle
            .iter()
            .all(|c| c.token_count <= 50 && !c.text.contains("Bun") && !c.text.contains("Tart")));
        assert!(middle[0].text.starts_with("Product: Party box"));
    }

    #[test]
    fn unsplittable_runs_are_cut_at_token_and_character_boundaries() {
        let emoji = "🥐🍰🥖🍞🧁";
        let chunks = chunk(&doc(&[(&[], emoji, false)]), &cfg(1, 0));
        let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(joined, emoji);
        // Each of these emoji needs more than one token: one character per chunk, over the limit.
        assert!(
            chunks.iter().all(|c| c.text.chars().count() == 1),
            "{chunks:#?}"
        );

        let word = "Donaudampfschifffahrtsgesellschaftskapitän".repeat(10);
        let chunks = chunk(&doc(&[(&[], &word, false)]), &cfg(8, 0));
        assert!(chunks.iter().all(|c| c.token_count <= 8));
        let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(joined, word);
    }

    #[test]
    fn output_is_deterministic_and_keeps_all_text() {
        for (file, format) in [
            ("faq.md", Format::Markdown),
            ("delivery-and-refunds.md", Format::Markdown),
            ("catering-menu.pdf", Format::Pdf),
        ] {
            let d = sample(file, format);
            let config = cfg(64, 0);
            let first = chunk(&d, &config);
            assert_eq!(first, chunk(&d, &config), "{file}");
            let chunked = collapse(
                &first
                    .iter()
                    .map(|c| c.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            let original = collapse(
                &d.sections
                    .iter()
                    .map(|s| s.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            assert_eq!(chunked, original, "{file}");
        }
    }

    #[test]
    fn degenerate_configs_still_make_progress() {
        let d = doc(&[(&["A"], &long_paragraph(), false)]);
        for config in [cfg(0, 0), cfg(1, 5), cfg(10, 10), cfg(20, 1000)] {
            let chunks = chunk(&d, &config);
            assert!(!chunks.is_empty());
            assert!(
                chunks.len() < 2_000,
                "{config:?} made {} chunks",
                chunks.len()
            );
        }
    }
}
