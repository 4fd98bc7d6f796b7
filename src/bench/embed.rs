//! Embedding throughput: sentences per second on generated English sentences, compared with
//! sentence-transformers (PyTorch) measured on the same kind of machine.

use std::fmt;
use std::time::Instant;

use crate::embed::{EmbedError, Embedder};

/// sentence-transformers (PyTorch) on 512 sentences of ~20 words, batch 32, 2 threads.
pub const SENTENCE_TRANSFORMERS_PER_SEC: f64 = 413.0;

/// Sentences embedded before timing starts (loads caches, spins up threads).
const WARM_UP: usize = 32;

/// Result of one benchmark run.
#[derive(Debug, Clone)]
pub struct EmbedReport {
    /// The embedder's model id.
    pub model: String,
    /// Sentences embedded in the timed run.
    pub sentences: usize,
    /// Mean words per sentence.
    pub mean_words: f64,
    /// Wall-clock time of the timed run, in seconds.
    pub seconds: f64,
    /// Throughput of the timed run.
    pub sentences_per_sec: f64,
}

impl EmbedReport {
    /// Throughput relative to sentence-transformers.
    pub fn ratio(&self) -> f64 {
        self.sentences_per_sec / SENTENCE_TRANSFORMERS_PER_SEC
    }
}

impl fmt::Display for EmbedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "embedding throughput ({})", self.model)?;
        writeln!(
            f,
            "  sentences              {:>10} ({:.1} words on average)",
            self.sentences, self.mean_words
        )?;
        writeln!(f, "  total                  {:>10.3} s", self.seconds)?;
        writeln!(
            f,
            "  throughput             {:>10.1} sentences/s",
            self.sentences_per_sec
        )?;
        writeln!(
            f,
            "  sentence-transformers  {:>10.1} sentences/s (PyTorch, 2 threads)",
            SENTENCE_TRANSFORMERS_PER_SEC
        )?;
        write!(f, "  ratio                  {:>10.2}x", self.ratio())
    }
}

/// Embeds `sentences` generated sentences of about `words` words (±5) after one warm-up batch,
/// and reports the throughput.
pub async fn run(
    embedder: &dyn Embedder,
    sentences: usize,
    words: usize,
) -> Result<EmbedReport, EmbedError> {
    let texts = generate_sentences(sentences, words);
    let warm_up: Vec<String> = generate_sentences(WARM_UP, words)
        .into_iter()
        .rev()
        .collect();
    embedder.embed(&warm_up).await?;

    let started = Instant::now();
    let vectors = embedder.embed(&texts).await?;
    let seconds = started.elapsed().as_secs_f64();
    if vectors.len() != texts.len() {
        return Err(EmbedError::Inference(format!(
            "{} vectors for {} sentences",
            vectors.len(),
            texts.len()
        )));
    }
    let total_words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    Ok(EmbedReport {
        model: embedder.model_id().to_string(),
        sentences: texts.len(),
        mean_words: total_words as f64 / texts.len().max(1) as f64,
        seconds,
        sentences_per_sec: texts.len() as f64 / seconds.max(f64::EPSILON),
    })
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "our",
    "your",
    "this",
    "that",
    "every",
    "some",
    "order",
    "delivery",
    "cake",
    "bread",
    "shop",
    "store",
    "customer",
    "price",
    "refund",
    "receipt",
    "payment",
    "card",
    "address",
    "week",
    "morning",
    "evening",
    "weekend",
    "holiday",
    "menu",
    "table",
    "booking",
    "reservation",
    "service",
    "question",
    "answer",
    "problem",
    "account",
    "password",
    "email",
    "phone",
    "message",
    "parcel",
    "box",
    "size",
    "colour",
    "fresh",
    "warm",
    "late",
    "early",
    "quick",
    "friendly",
    "small",
    "large",
    "new",
    "old",
    "open",
    "closed",
    "available",
    "ready",
    "free",
    "extra",
    "special",
    "usual",
    "is",
    "are",
    "was",
    "will",
    "can",
    "could",
    "would",
    "should",
    "have",
    "has",
    "had",
    "need",
    "want",
    "like",
    "ask",
    "send",
    "bring",
    "pick",
    "collect",
    "deliver",
    "arrive",
    "change",
    "cancel",
    "return",
    "pay",
    "book",
    "call",
    "check",
    "find",
    "help",
    "know",
    "make",
    "take",
    "give",
    "keep",
    "leave",
    "wait",
    "try",
    "use",
    "and",
    "or",
    "but",
    "because",
    "if",
    "when",
    "before",
    "after",
    "until",
    "with",
    "without",
    "for",
    "from",
    "to",
    "in",
    "on",
    "at",
    "by",
    "about",
    "of",
    "near",
    "today",
    "tomorrow",
    "yesterday",
    "soon",
    "again",
    "still",
    "already",
    "please",
    "thanks",
    "very",
    "really",
    "quite",
    "only",
    "also",
    "just",
    "more",
    "less",
    "two",
    "three",
    "twelve",
    "hours",
    "minutes",
    "days",
    "kitchen",
    "birthday",
    "wedding",
    "chocolate",
    "vanilla",
    "lemon",
    "gluten",
    "allergy",
    "ingredients",
    "counter",
    "street",
    "parking",
    "station",
    "team",
    "staff",
    "manager",
    "owner",
    "policy",
    "discount",
    "voucher",
    "gift",
    "sample",
    "tasting",
    "recipe",
];

/// Deterministic pseudo-random sentences: the same arguments always give the same texts.
pub fn generate_sentences(count: usize, words: usize) -> Vec<String> {
    // splitmix64: tiny, fixed, and independent of any crate's RNG algorithm choices.
    let mut state: u64 = 0x5eed_1234_abcd_0042;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let low = words.saturating_sub(5).max(1);
    let high = words + 5;
    (0..count)
        .map(|_| {
            let n = low + (next() % (high - low + 1) as u64) as usize;
            let mut sentence = String::new();
            for i in 0..n {
                let word = WORDS[(next() % WORDS.len() as u64) as usize];
                if i == 0 {
                    let mut chars = word.chars();
                    if let Some(first) = chars.next() {
                        sentence.extend(first.to_uppercase());
                        sentence.push_str(chars.as_str());
                    }
                } else {
                    sentence.push(' ');
                    sentence.push_str(word);
                }
            }
            sentence.push('.');
            sentence
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_deterministic_and_sized() {
        let a = generate_sentences(200, 20);
        assert_eq!(a, generate_sentences(200, 20));
        let counts: Vec<usize> = a.iter().map(|s| s.split_whitespace().count()).collect();
        assert!(counts.iter().all(|&n| (15..=25).contains(&n)), "{counts:?}");
        assert!(
            counts.iter().any(|&n| n <= 16) && counts.iter().any(|&n| n >= 24),
            "lengths must vary"
        );
        let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
        assert!((18.5..=21.5).contains(&mean), "{mean}");
        assert!(a
            .iter()
            .all(|s| s.ends_with('.') && s.chars().next().is_some_and(char::is_uppercase)));
    }

    #[test]
    fn report_shows_ratio_to_reference() {
        let r = EmbedReport {
            model: "m".into(),
            sentences: 512,
            mean_words: 20.0,
            seconds: 1.0,
            sentences_per_sec: 826.0,
        };
        let text = r.to_string();
        assert!(text.contains("2.00x"), "{text}");
        assert!(text.contains("413.0"), "{text}");
    }
}
