//! The extractive answerer, Palaver's embedded default: no language model. It reads the
//! retrieved passages (with their neighbours in the document), scores every sentence against
//! the question by embedding similarity and word overlap, and answers with the best sentence
//! (and the next ones when they belong to it), citing the source. Below the agent's confidence
//! threshold it returns no text: it does not guess.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{ChatModel, ChatRequest, Completion, FinishReason, LlmError};
use crate::embed::{cosine, Embedder};
use crate::knowledge::chunker::count_tokens;
use crate::knowledge::text::{normalize, sentences, terms};

/// Sentence embeddings kept between questions (the same passages come back often).
const CACHE_ENTRIES: usize = 20_000;
/// Weight of embedding similarity against word overlap in a sentence's score.
const SIMILARITY_WEIGHT: f32 = 0.8;
/// Longest reply, in characters (a chat message, not an essay).
const MAX_REPLY_CHARS: usize = 480;
/// A following sentence joins the reply when it scores at least this share of the best one.
const FOLLOW_SHARE: f32 = 0.8;
/// Sentences from a passage's neighbours count a little less than the passage's own.
const NEIGHBOUR_PENALTY: f32 = 0.03;

/// A bounded map from sentence to its embedding, oldest evicted first.
#[derive(Default)]
struct Cache {
    vectors: HashMap<String, Arc<Vec<f32>>>,
    order: VecDeque<String>,
}

impl Cache {
    fn get(&self, key: &str) -> Option<Arc<Vec<f32>>> {
        self.vectors.get(key).cloned()
    }

    fn put(&mut self, key: String, vector: Vec<f32>) {
        if self.vectors.contains_key(&key) {
            return;
        }
        if self.order.len() >= CACHE_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.vectors.remove(&old);
            }
        }
        self.order.push_back(key.clone());
        self.vectors.insert(key, Arc::new(vector));
    }
}

/// Answers with sentences taken from the sources.
pub struct Extractive {
    embedder: Arc<dyn Embedder>,
    cache: Mutex<Cache>,
}

/// One candidate sentence.
#[derive(Debug, Clone)]
struct Candidate {
    /// Source number.
    n: usize,
    /// Order within its source's context.
    index: usize,
    /// The sentence.
    text: String,
    /// Embedded form: heading + sentence.
    key: String,
    /// From the passage itself (not a neighbour).
    own: bool,
    score: f32,
    similarity: f32,
}

impl Extractive {
    /// An extractive answerer using `embedder` for sentence similarity.
    pub fn new(embedder: Arc<dyn Embedder>) -> Self {
        Self {
            embedder,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Embeddings for these texts (questions when `query`, else sentences), from the cache
    /// where possible.
    async fn vectors(&self, texts: &[String], query: bool) -> Result<Vec<Arc<Vec<f32>>>, LlmError> {
        // A question and a sentence with the same words have different vectors (E5).
        let keys: Vec<String> = texts
            .iter()
            .map(|t| if query { format!("\0{t}") } else { t.clone() })
            .collect();
        let mut out: Vec<Option<Arc<Vec<f32>>>> = {
            let cache = self
                .cache
                .lock()
                .map_err(|_| LlmError::Permanent("sentence cache poisoned".into()))?;
            keys.iter().map(|k| cache.get(k)).collect()
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let inputs: Vec<String> = missing.iter().map(|&i| texts[i].clone()).collect();
            let fresh = if query {
                self.embedder.embed_queries(&inputs).await
            } else {
                self.embedder.embed(&inputs).await
            }
            .map_err(|e| LlmError::Transient(format!("embedding sentences: {e}")))?;
            if fresh.len() != inputs.len() {
                return Err(LlmError::Permanent(
                    "embedder returned too few vectors".into(),
                ));
            }
            let mut cache = self
                .cache
                .lock()
                .map_err(|_| LlmError::Permanent("sentence cache poisoned".into()))?;
            for (i, vector) in missing.into_iter().zip(fresh) {
                cache.put(keys[i].clone(), vector.clone());
                out[i] = Some(Arc::new(vector));
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

/// Share of the question's terms found in `text` (0-1).
fn overlap(question_terms: &[String], text: &str) -> f32 {
    if question_terms.is_empty() {
        return 0.0;
    }
    let words: std::collections::HashSet<String> = terms(text).into_iter().collect();
    question_terms.iter().filter(|t| words.contains(*t)).count() as f32
        / question_terms.len() as f32
}

#[async_trait]
impl ChatModel for Extractive {
    fn name(&self) -> &str {
        "extractive"
    }

    async fn complete(&self, request: &ChatRequest<'_>) -> Result<Completion, LlmError> {
        let question = request.question.trim();
        let tokens_in = count_tokens(question) as u32;
        let mut candidates = Vec::new();
        for source in request.sources {
            let prefix = source
                .heading
                .as_deref()
                .map(|h| format!("{h}: "))
                .unwrap_or_default();
            let own: std::collections::HashSet<String> =
                sentences(&source.text).into_iter().collect();
            for (index, sentence) in sentences(&source.context).into_iter().enumerate() {
                // Headings alone and fragments are not answers.
                if sentence.chars().filter(|c| c.is_alphanumeric()).count() < 8 {
                    continue;
                }
                candidates.push(Candidate {
                    n: source.n,
                    index,
                    key: format!("{prefix}{sentence}"),
                    own: own.contains(&sentence),
                    text: sentence,
                    score: 0.0,
                    similarity: 0.0,
                });
            }
        }
        if question.is_empty() || candidates.is_empty() {
            return Ok(declined(tokens_in));
        }
        let keys: Vec<String> = candidates.iter().map(|c| c.key.clone()).collect();
        let vectors = self.vectors(&keys, false).await?;
        let question_vector = self.vectors(&[question.to_string()], true).await?;
        let question_vector = &question_vector[0];
        let question_terms = terms(question);
        for (c, v) in candidates.iter_mut().zip(&vectors) {
            c.similarity = cosine(question_vector, v);
            let lexical = overlap(&question_terms, &normalize(&c.key));
            c.score = SIMILARITY_WEIGHT * c.similarity + (1.0 - SIMILARITY_WEIGHT) * lexical
                - if c.own { 0.0 } else { NEIGHBOUR_PENALTY };
        }
        let best = candidates
            .iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .cloned()
            .expect("candidates is not empty");
        let confidence = best.score.clamp(0.0, 1.0);

        // The best sentence, and the sentences right after it in the same source while they
        // still score close to it (answers often run over two sentences).
        let mut reply = best.text.clone();
        let mut next = best.index + 1;
        while let Some(c) = candidates.iter().find(|c| c.n == best.n && c.index == next) {
            if c.score < best.score * FOLLOW_SHARE
                || reply.len() + c.text.len() + 1 > MAX_REPLY_CHARS
            {
                break;
            }
            reply.push(' ');
            reply.push_str(&c.text);
            next += 1;
        }
        if reply.chars().count() > MAX_REPLY_CHARS {
            reply = reply.chars().take(MAX_REPLY_CHARS - 1).collect::<String>() + "…";
        }
        let title = request
            .sources
            .iter()
            .find(|s| s.n == best.n)
            .map(|s| s.title.clone())
            .unwrap_or_default();
        let text = format!("{reply}\n\n(Source: {title})");
        Ok(Completion {
            tokens_out: count_tokens(&text) as u32,
            text,
            model: "extractive".into(),
            tokens_in,
            finish: FinishReason::Stop,
            confidence: Some(confidence),
            cited: vec![best.n],
        })
    }
}

fn declined(tokens_in: u32) -> Completion {
    Completion {
        text: String::new(),
        model: "extractive".into(),
        tokens_in,
        tokens_out: 0,
        finish: FinishReason::Stop,
        confidence: Some(0.0),
        cited: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::EmbedError;
    use crate::llm::Source;

    /// Bag-of-words vectors over a hashed vocabulary: similar words, similar vectors.
    struct Words;

    #[async_trait]
    impl Embedder for Words {
        fn model_id(&self) -> &str {
            "words"
        }
        fn dimensions(&self) -> usize {
            4096
        }
        async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0f32; 4096];
                    for w in terms(t) {
                        let h = w
                            .bytes()
                            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
                        v[(h % 4096) as usize] += 1.0;
                    }
                    v
                })
                .collect())
        }
    }

    fn source(n: usize, title: &str, heading: &str, text: &str) -> Source {
        Source {
            n,
            source: format!("{title}.md"),
            title: title.into(),
            heading: Some(heading.into()),
            text: text.into(),
            similarity: 0.5,
            context: text.into(),
        }
    }

    fn request<'a>(question: &'a str, sources: &'a [Source]) -> ChatRequest<'a> {
        ChatRequest {
            messages: &[],
            question,
            sources,
            model: None,
            temperature: 0.0,
            max_tokens: 200,
        }
    }

    #[tokio::test]
    async fn picks_the_sentence_that_answers_and_cites_it() {
        let sources = [
            source(1, "FAQ", "Payments", "We accept cards and cash. Gift cards are sold at the counter."),
            source(
                2,
                "Opening hours",
                "Saturday",
                "On Saturday the shop opens at eight. It closes at two in the afternoon. Sunday is closed.",
            ),
        ];
        let answer = Extractive::new(Arc::new(Words))
            .complete(&request("When does the shop open on Saturday?", &sources))
            .await
            .unwrap();
        assert!(
            answer
                .text
                .starts_with("On Saturday the shop opens at eight."),
            "{}",
            answer.text
        );
        assert!(
            answer.text.ends_with("(Source: Opening hours)"),
            "{}",
            answer.text
        );
        assert!(!answer.text.contains("cards"));
        assert_eq!(answer.cited, vec![2]);
        assert!(answer.confidence.unwrap() > 0.3);
    }

    #[tokio::test]
    async fn unrelated_questions_get_low_confidence() {
        let sources = [source(1, "FAQ", "Payments", "We accept cards and cash.")];
        let model = Extractive::new(Arc::new(Words));
        let good = model
            .complete(&request("Do you accept cards?", &sources))
            .await
            .unwrap();
        let bad = model
            .complete(&request("Who won the football match yesterday?", &sources))
            .await
            .unwrap();
        assert!(bad.confidence.unwrap() < good.confidence.unwrap());
        assert!(bad.confidence.unwrap() < 0.2, "{:?}", bad.confidence);
    }

    #[tokio::test]
    async fn nothing_to_read_declines() {
        let model = Extractive::new(Arc::new(Words));
        let answer = model.complete(&request("Anything?", &[])).await.unwrap();
        assert!(answer.text.is_empty());
        assert_eq!(answer.confidence, Some(0.0));
    }

    #[tokio::test]
    async fn long_replies_are_capped() {
        let long = format!("Our cakes {}.", "are lovely and ".repeat(100));
        let sources = [source(1, "Cakes", "About", &long)];
        let answer = Extractive::new(Arc::new(Words))
            .complete(&request("Tell me about your cakes", &sources))
            .await
            .unwrap();
        let reply = answer.text.split("\n\n(Source").next().unwrap();
        assert!(reply.chars().count() <= MAX_REPLY_CHARS);
    }

    #[tokio::test]
    async fn cache_is_used_for_repeated_sentences() {
        struct Counting(std::sync::atomic::AtomicUsize);
        #[async_trait]
        impl Embedder for Counting {
            fn model_id(&self) -> &str {
                "counting"
            }
            fn dimensions(&self) -> usize {
                4096
            }
            async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
                self.0
                    .fetch_add(texts.len(), std::sync::atomic::Ordering::SeqCst);
                Words.embed(texts).await
            }
        }
        let counter = Arc::new(Counting(Default::default()));
        let model = Extractive::new(counter.clone());
        let sources = [source(
            1,
            "FAQ",
            "Payments",
            "We accept cards and cash. Gift cards are sold here.",
        )];
        model.complete(&request("cards?", &sources)).await.unwrap();
        let first = counter.0.load(std::sync::atomic::Ordering::SeqCst);
        model.complete(&request("cards?", &sources)).await.unwrap();
        assert_eq!(
            counter.0.load(std::sync::atomic::Ordering::SeqCst),
            first,
            "second call fully cached"
        );
    }
}
