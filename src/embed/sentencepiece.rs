//! A SentencePiece unigram tokenizer (XLM-RoBERTa's): each character is normalised through a
//! per-character map, runs of spaces collapse, spaces become the metaspace `▁` (one is prepended
//! unless the text starts with a space), and the segmentation with the highest total piece score
//! is found by dynamic programming over character boundaries. A character no piece covers
//! becomes the unknown token, scored below every piece.

use std::collections::HashMap;

/// SentencePiece's word-boundary marker, U+2581.
const METASPACE: char = '\u{2581}';

/// The vocabulary and normalisation of a unigram model.
pub struct Unigram {
    pieces: HashMap<Box<[u8]>, u32>,
    scores: Vec<f32>,
    unknown: u32,
    unknown_score: f32,
    longest_piece: usize,
    normalise: HashMap<char, Box<[char]>>,
}

impl Unigram {
    /// A tokenizer from its pieces (with their log-probability scores, in id order), the id of
    /// the unknown piece, and the character normalisation map (a character absent from the map
    /// stays as it is; one mapped to nothing is dropped).
    pub fn new(
        pieces: Vec<(String, f32)>,
        unknown: u32,
        normalise: HashMap<char, Box<[char]>>,
    ) -> Self {
        let lowest = pieces.iter().map(|(_, s)| *s).fold(f32::INFINITY, f32::min);
        let longest_piece = pieces.iter().map(|(p, _)| p.len()).max().unwrap_or(1);
        let mut map = HashMap::with_capacity(pieces.len());
        let mut scores = Vec::with_capacity(pieces.len());
        for (id, (piece, score)) in pieces.into_iter().enumerate() {
            scores.push(score);
            if !piece.is_empty() {
                // The first of two equal pieces keeps the id, as a lookup table built in order
                // would.
                map.entry(piece.into_bytes().into_boxed_slice())
                    .or_insert(id as u32);
            }
        }
        Self {
            pieces: map,
            scores,
            unknown,
            unknown_score: if lowest.is_finite() {
                lowest - 10.0
            } else {
                -10.0
            },
            longest_piece,
            normalise,
        }
    }

    /// Number of pieces.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// True when there are no pieces.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The normalised text the pieces are matched against.
    fn normalised(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 3);
        let push = |c: char, out: &mut String| {
            // Runs of spaces collapse into one.
            if c == ' ' && out.ends_with(' ') {
                return;
            }
            out.push(c);
        };
        for c in text.chars() {
            match self.normalise.get(&c) {
                Some(mapped) => mapped.iter().for_each(|&m| push(m, &mut out)),
                None => push(c, &mut out),
            }
        }
        let mut spaced = String::with_capacity(out.len() + 3);
        if !out.starts_with(' ') {
            spaced.push(METASPACE);
        }
        spaced.extend(out.chars().map(|c| if c == ' ' { METASPACE } else { c }));
        spaced
    }

    /// The piece ids of `text`, without the sequence's start and end tokens.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let text = self.normalised(text);
        let bytes = text.as_bytes();
        let bounds: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect();
        let chars = bounds.len() - 1;
        // best[i]: the highest score of a segmentation of the first i characters, reached by
        // piece `via[i]` (None: the unknown token) starting at character `from[i]`.
        let mut best = vec![f32::NEG_INFINITY; chars + 1];
        let mut via: Vec<Option<u32>> = vec![None; chars + 1];
        let mut from = vec![0usize; chars + 1];
        best[0] = 0.0;
        for i in 0..chars {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            for e in i + 1..=chars {
                let span = &bytes[bounds[i]..bounds[e]];
                if span.len() > self.longest_piece {
                    break;
                }
                if let Some(&id) = self.pieces.get(span) {
                    if id == self.unknown {
                        continue;
                    }
                    let score = best[i] + self.scores[id as usize];
                    if score > best[e] {
                        (best[e], via[e], from[e]) = (score, Some(id), i);
                    }
                }
            }
            let score = best[i] + self.unknown_score;
            if score > best[i + 1] {
                (best[i + 1], via[i + 1], from[i + 1]) = (score, None, i);
            }
        }
        let mut ids = Vec::new();
        let mut at = chars;
        while at > 0 {
            ids.push(via[at].unwrap_or(self.unknown));
            at = from[at];
        }
        ids.reverse();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Unigram {
        let pieces = [
            ("<unk>", 0.0),
            ("▁", -3.0),
            ("▁h", -4.0),
            ("▁hello", -5.0),
            ("hell", -4.0),
            ("o", -3.0),
            ("▁world", -6.0),
            ("▁wor", -3.0),
            ("ld", -3.0),
            ("é", -4.0),
        ];
        let normalise = HashMap::from([
            ('\t', vec![' '].into_boxed_slice()),
            ('\u{7}', Vec::new().into_boxed_slice()),
            ('ﬁ', vec!['f', 'i'].into_boxed_slice()),
        ]);
        Unigram::new(
            pieces.iter().map(|(p, s)| (p.to_string(), *s)).collect(),
            0,
            normalise,
        )
    }

    #[test]
    fn the_best_scoring_segmentation_wins() {
        let t = tokenizer();
        // `▁hello` (-5) beats `▁h` + `ell`... and `▁` + `hell` + `o` (-10); `▁wor` + `ld` (-6)
        // ties `▁world` (-6) and the first found, the longer piece, is kept.
        assert_eq!(t.encode("hello world"), [3, 6]);
        assert_eq!(t.encode("hello"), t.encode(" hello"));
    }

    #[test]
    fn normalisation_collapses_spaces_and_drops_controls() {
        let t = tokenizer();
        assert_eq!(t.normalised("a\t\t b\u{7}"), "▁a▁b");
        assert_eq!(t.normalised("ﬁ"), "▁fi");
        assert_eq!(t.normalised(""), "▁");
        assert_eq!(t.normalised("  x  "), "▁x▁");
    }

    #[test]
    fn uncovered_characters_are_unknown() {
        let t = tokenizer();
        // `q` has no piece: one unknown per character, and the known parts still match.
        assert_eq!(t.encode("hello qq"), [3, 1, 0, 0]);
        assert_eq!(t.encode("é"), [1, 9]);
        assert_eq!(t.encode(""), [1]);
    }
}
