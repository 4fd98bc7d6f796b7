//! Hybrid retrieval over one collection: dense search in the vector index and keyword search in
//! the SQL store's full-text index, fused by reciprocal rank fusion. This is the one retrieval
//! path used by the pipeline, `palaver search`, the API and the eval runner.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use super::text;
use super::{Centre, Knowledge, KnowledgeError};
use crate::domain::{ChunkId, DocumentId};
use crate::embed::{cosine, Embedded};

/// One retrieved passage with its provenance and scores.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Retrieved {
    /// The chunk.
    pub chunk_id: ChunkId,
    /// Its document.
    pub document_id: DocumentId,
    /// Document source (path or file name).
    pub source: String,
    /// Document title.
    pub title: String,
    /// Position of the chunk in its document.
    pub position: i64,
    /// Heading path.
    pub heading: Option<String>,
    /// Passage text.
    pub text: String,
    /// Fused score (reciprocal rank fusion); orders the results.
    pub score: f32,
    /// Cosine similarity of the passage to the question.
    pub similarity: f32,
    /// Similarity with the question and the passage each centred (see
    /// [`super::relevance`]): one scale for every embedder and collection, on which the
    /// confidence threshold is set.
    pub relevance: f32,
    /// Rank in the dense search (1-based), if it was found there.
    pub dense_rank: Option<usize>,
    /// Rank in the keyword search (1-based), if it was found there.
    pub keyword_rank: Option<usize>,
}

impl Retrieved {
    /// Passage `p` as a result, its relevance not yet measured.
    fn of(
        p: &crate::store::Passage,
        score: f32,
        similarity: f32,
        dense_rank: Option<usize>,
        keyword_rank: Option<usize>,
    ) -> Self {
        Self {
            chunk_id: p.chunk_id,
            document_id: p.document_id,
            source: p.source.clone(),
            title: p.title.clone(),
            position: p.position,
            heading: p.heading.clone(),
            text: p.text.clone(),
            score,
            similarity,
            relevance: 0.0,
            dense_rank,
            keyword_rank,
        }
    }
}

/// A retrieval request.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// Collection to search.
    pub collection: &'a str,
    /// The question.
    pub text: &'a str,
    /// Results wanted.
    pub top_k: usize,
    /// Passages below this cosine similarity are dropped unless the keyword search ranked them
    /// among its best (codes and names that embeddings miss) or none is more similar.
    pub min_score: f32,
}

/// Keyword hits ranked this high are kept whatever their similarity.
const KEYWORD_KEEP_RANK: usize = 3;

/// The embedder's passages ranked this high are among the results whatever the fusion makes
/// of them: a keyword search that matches the question's everyday words ("bike", "charge",
/// "fix") in passages about something else outvotes, in the fusion, a passage the embedder
/// ranks second that shares no word with the question ("Puncture repair" for "a flat tyre").
/// Measured with EmbeddingGemma-300M: `palaver eval` on the development split answered 106 of
/// 129 facts (104 without), escalation precision / recall 0.74 / 0.70 (0.68 / 0.75); the shipped
/// suites 135 of 148 (133), 0.93 / 0.83 (0.89 / 0.83). Keeping only the first: 105 of 129.
const DENSE_KEEP_RANK: usize = 2;

/// Where one of the embedder's best passages goes among the passages `placed` (of at most
/// `top_k`, the last `reserved` of them the rare word's): a free place, else the last one before
/// those not held by one of the embedder's best (`keep`, which may be among them already), never
/// the first; `None` when there is none.
fn kept_place(
    placed: &[ChunkId],
    top_k: usize,
    reserved: usize,
    keep: &[ChunkId],
) -> Option<usize> {
    if placed.len() < top_k {
        return Some(placed.len());
    }
    (1..placed.len().saturating_sub(reserved))
        .rev()
        .find(|&i| !keep.contains(&placed[i]))
}

/// A word of the question used by at most this share of a collection's passages is rare: the
/// passages holding it are what the question is about, or a near neighbour of it (see
/// [`Knowledge::rare_word_passage`]). Measured with multilingual-e5-small: `palaver eval` on
/// the development split answered one more fact right (103 of 129, from 102) and the shipped
/// suites none fewer (131 of 148), with 0.02 as with 0.05.
const RARE_SHARE: f32 = 0.05;

/// Keyword hits read for the rare word's passage.
const RARE_CANDIDATES: usize = 10;

/// Weighted reciprocal rank fusion of several rankings: each list contributes
/// `weight / (k + rank)`.
pub fn rrf<I: Eq + std::hash::Hash + Copy>(rankings: &[(&[I], f32)], k: f32) -> Vec<(I, f32)> {
    let mut scores: HashMap<I, f32> = HashMap::new();
    let mut order: Vec<I> = Vec::new();
    for (ranking, weight) in rankings {
        for (i, id) in ranking.iter().enumerate() {
            let entry = scores.entry(*id).or_insert_with(|| {
                order.push(*id);
                0.0
            });
            *entry += weight / (k + (i + 1) as f32);
        }
    }
    let mut fused: Vec<(I, f32)> = order.into_iter().map(|id| (id, scores[&id])).collect();
    // Stable sort keeps first-seen order on ties, so results are deterministic.
    fused.sort_by(|a, b| b.1.total_cmp(&a.1));
    fused
}

/// What [`Knowledge::retrieve_centred`] found, with what it measured it by.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// The passages, best first.
    pub passages: Vec<Retrieved>,
    /// The centre their relevance was measured on (none when nothing was found).
    pub centre: Option<Centre>,
    /// The question as embedded for the search (none for an empty one).
    pub question: Option<Embedded>,
}

impl Knowledge {
    /// The passage that brings a rare word of the question to the answerer when none of
    /// `results` holds it: the best keyword hit among the passages holding one of the question's
    /// `terms` that the documents use in at most [`RARE_SHARE`] of their passages (or in one,
    /// in a collection of fewer than 1 / [`RARE_SHARE`] passages). A term is
    /// read as the documents write it ([`super::lexicon::Lexicon::canonical`]: "taquillas" for
    /// their "Taquilla", a typo of theirs in their language): the keyword search matches
    /// whole words.
    ///
    /// The fusion cannot bring it: with the dense ranking weighing twice the keyword one, a
    /// passage that only the keyword search finds ranks below every passage the embedder ranks
    /// in its first 60, however telling the word it shares with the question ("envío a
    /// Huesca?" against the zones list that names Huesca, which a multilingual-e5-small ranks
    /// past its 40th place).
    async fn rare_word_passage(
        &self,
        collection: &str,
        version: i64,
        terms: &[String],
        language: Option<&str>,
        results: &[Retrieved],
        candidates: usize,
    ) -> Result<Option<crate::store::Passage>, KnowledgeError> {
        let lexicon = self.profile(collection, version).await?.lexicon;
        // In a collection of fewer than 1 / RARE_SHARE passages, a word that one passage
        // uses is as rare as a word can be.
        let rare_idf = lexicon
            .idf_at_share(RARE_SHARE)
            .min(lexicon.idf_at_count(1.0));
        let words_of = |heading: Option<&str>, body: &str| -> HashSet<String> {
            text::words(heading.unwrap_or_default())
                .into_iter()
                .chain(text::words(body))
                .collect()
        };
        let held: HashSet<String> = results
            .iter()
            .flat_map(|r| words_of(r.heading.as_deref(), &r.text))
            .collect();
        let mut missing: Vec<String> = terms
            .iter()
            .filter(|t| t.chars().count() >= 3 && !t.chars().all(|c| c.is_ascii_digit()))
            .filter_map(|t| lexicon.canonical(t, language, self.embedder.spells(t)))
            .filter(|t| lexicon.idf(t) >= rare_idf)
            .filter(|t| !held.contains(t))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(None);
        }
        let hits = self
            .store
            .keyword_search(collection, &missing, candidates)
            .await?;
        let ids: Vec<ChunkId> = hits
            .iter()
            .map(|h| h.chunk_id)
            .filter(|id| !results.iter().any(|r| r.chunk_id == *id))
            .take(RARE_CANDIDATES)
            .collect();
        let found = self.store.passages(&ids).await?.into_iter().find(|p| {
            let words = words_of(p.heading.as_deref(), &p.text);
            missing.iter().any(|w| words.contains(w))
        });
        tracing::debug!(target: "palaver::retrieval", ?missing, added = ?found.as_ref().map(|p| &p.heading), "rare words");
        Ok(found)
    }

    /// The vector of `question` asked of `collection`: kept from an earlier asking, or embedded.
    async fn question_vector(
        &self,
        collection: &str,
        question: &str,
    ) -> Result<Arc<Vec<f32>>, KnowledgeError> {
        let (mut vectors, kept) = self
            .question_vectors(
                super::Asker::Collection(collection.to_string()),
                &[question.to_string()],
            )
            .await?;
        let cache = if kept == 1 { "hit" } else { "miss" };
        metrics::counter!("palaver_question_vectors_total", "cache" => cache).increment(1);
        Ok(vectors.pop().expect("one vector for one question"))
    }

    /// Finds the passages that best answer `query.text`.
    pub async fn retrieve(&self, query: &Query<'_>) -> Result<Vec<Retrieved>, KnowledgeError> {
        Ok(self.retrieve_centred(query).await?.passages)
    }

    /// [`Knowledge::retrieve`], with the centre the passages' relevance was measured on (none
    /// when nothing was found), for answerers that measure single sentences on the same scale,
    /// and the question as embedded for the search (none for an empty one), for answerers that
    /// would embed it again.
    #[tracing::instrument(skip_all, fields(collection = query.collection, top_k = query.top_k))]
    pub async fn retrieve_centred(&self, query: &Query<'_>) -> Result<Found, KnowledgeError> {
        let question = query.text.trim();
        if question.is_empty() || query.top_k == 0 {
            return Ok(Found::default());
        }
        let vector = self.question_vector(query.collection, question).await?;
        let embedded = Embedded {
            model: self.embedder.model_id().to_string(),
            text: question.to_string(),
            vector: vector.clone(),
        };
        // Read once: it tells whether this process's index is behind, and which passage mean
        // relevance is centred on.
        let version = self.store.collection_version(query.collection).await?;
        self.follow_store(query.collection, version).await?;
        let candidates = self.retrieval.candidates.max(query.top_k);
        let terms = text::terms(question);
        let (dense, keyword) = tokio::join!(
            self.vectors.search(query.collection, &vector, candidates),
            self.store
                .keyword_search(query.collection, &terms, candidates),
        );
        let dense = match dense {
            Ok(hits) => hits,
            // A collection with nothing ingested yet has no vector collection: no results.
            Err(crate::vectors::VectorError::MissingCollection(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let keyword = keyword?;
        let dense_ids: Vec<ChunkId> = dense.iter().map(|h| ChunkId(h.id)).collect();
        let keyword_ids: Vec<ChunkId> = keyword.iter().map(|h| h.chunk_id).collect();
        let fused = rrf(
            &[
                (
                    &dense_ids,
                    self.retrieval
                        .dense_weight
                        .unwrap_or_else(|| self.embedder.fusion_weight()),
                ),
                (&keyword_ids, 1.0),
            ],
            self.retrieval.rrf_k,
        );

        let dense_rank: HashMap<ChunkId, usize> = dense_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i + 1))
            .collect();
        let dense_score: HashMap<ChunkId, f32> =
            dense.iter().map(|h| (ChunkId(h.id), h.score)).collect();
        let keyword_rank: HashMap<ChunkId, usize> = keyword_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i + 1))
            .collect();

        // Keyword-only hits have no similarity from the index: take it from the stored embedding.
        let missing: Vec<ChunkId> = fused
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !dense_score.contains_key(id))
            .collect();
        let stored = self.store.embeddings(&missing).await?;
        let ids: Vec<ChunkId> = fused.iter().map(|(id, _)| *id).collect();
        let passages = self.store.passages(&ids).await?;
        let by_id: HashMap<ChunkId, _> = passages.into_iter().map(|p| (p.chunk_id, p)).collect();

        let strong_keyword = |id: &ChunkId| {
            keyword_rank
                .get(id)
                .is_some_and(|r| *r <= KEYWORD_KEEP_RANK)
        };
        // The floor keeps weak passages from competing with strong ones; it never leaves the
        // answerer with nothing: when no passage reaches it, the most similar one is kept.
        // Raw cosines do not mean the same for every question: short ones and ones in another
        // language than the documents sit low against every passage ("where are you exactly"
        // and "alguem ai fala portugues?" reach 0.18 and 0.19 with the address and the
        // languages the staff speak, under the default 0.25), and whether such a question is
        // answered is the answerer's confidence to say (`knowledge::relevance`), not the
        // floor's.
        let similarities: HashMap<ChunkId, f32> = fused
            .iter()
            .filter(|(id, _)| by_id.contains_key(id))
            .map(|(id, _)| {
                let similarity = match dense_score.get(id) {
                    Some(s) => *s,
                    None => stored.get(id).map(|e| cosine(e, &vector)).unwrap_or(0.0),
                };
                (*id, similarity)
            })
            .collect();
        let floor = if similarities
            .iter()
            .any(|(id, s)| *s >= query.min_score || strong_keyword(id))
        {
            query.min_score
        } else {
            similarities.values().copied().fold(f32::MIN, f32::max)
        };
        let mut results = Vec::with_capacity(query.top_k);
        for (id, score) in fused {
            let (Some(p), Some(&similarity)) = (by_id.get(&id), similarities.get(&id)) else {
                continue;
            };
            let k_rank = keyword_rank.get(&id).copied();
            if similarity < floor && !strong_keyword(&id) {
                continue;
            }
            results.push(Retrieved::of(
                p,
                score,
                similarity,
                dense_rank.get(&id).copied(),
                k_rank,
            ));
            if results.len() == query.top_k {
                break;
            }
        }
        if results.is_empty() {
            return Ok(Found {
                passages: results,
                centre: None,
                question: Some(embedded),
            });
        }
        let language = crate::language::detect(question);
        let mut reserved = 0;
        let rare = self
            .rare_word_passage(
                query.collection,
                version.unwrap_or(0),
                &terms,
                language,
                &results,
                candidates,
            )
            .await?;
        // Else a table row the question names wholly, when no passage found holds one: a
        // customer asks for a row by its name, and a long table shares less with a short
        // question than a paragraph that mentions the name does ("precio de la familiar en
        // noviembre": the rooms' prices, not the dogs' supplement "en la Familiar").
        let named_row = || {
            let asked: HashSet<&str> = terms.iter().map(String::as_str).collect();
            if results.iter().any(|r| names_a_row(&r.text, &asked)) {
                return None;
            }
            ids.iter()
                .filter(|id| !results.iter().any(|r| r.chunk_id == **id))
                .filter_map(|id| by_id.get(id))
                .find(|p| names_a_row(&p.text, &asked))
                .cloned()
        };
        if let Some(p) = rare.or_else(named_row) {
            // Measured already when the fusion brought it; else from its stored embedding.
            let similarity = match similarities.get(&p.chunk_id) {
                Some(s) => *s,
                None => self
                    .store
                    .embeddings(&[p.chunk_id])
                    .await?
                    .get(&p.chunk_id)
                    .map_or(0.0, |e| cosine(e, &vector)),
            };
            let added = Retrieved::of(
                &p,
                results.last().map_or(0.0, |r| r.score),
                similarity,
                dense_rank.get(&p.chunk_id).copied(),
                keyword_rank.get(&p.chunk_id).copied(),
            );
            // It takes the last place, or a free one; the best passage keeps the first.
            if results.len() < query.top_k || results.len() == 1 {
                results.push(added);
            } else if let Some(last) = results.last_mut() {
                *last = added;
            }
            reserved = 1;
        }
        // The embedder's best passages take the last places before the rare word's, the best
        // passage keeping the first; one the similarity floor drops stays out. Each takes the
        // last place not held by one of them, so its best ends after its second. Placed in its
        // order instead, `palaver eval` (EmbeddingGemma-300M) gave the same replies and a lower
        // retrieval MRR: 0.975 to 0.974 on the development split of `eval/dev`, 0.959 to 0.956
        // on the shipped suites.
        let keep: Vec<ChunkId> = dense
            .iter()
            .zip(&dense_ids)
            .take(DENSE_KEEP_RANK)
            .filter(|(hit, _)| hit.score >= floor)
            .map(|(_, id)| *id)
            .collect();
        for id in &keep {
            if results.iter().any(|r| r.chunk_id == *id) {
                continue;
            }
            let Some(p) = by_id.get(id) else { continue };
            let placed: Vec<ChunkId> = results.iter().map(|r| r.chunk_id).collect();
            let Some(at) = kept_place(&placed, query.top_k, reserved, &keep) else {
                continue;
            };
            let added = Retrieved::of(
                p,
                results.last().map_or(0.0, |r| r.score),
                dense_score.get(id).copied().unwrap_or_default(),
                dense_rank.get(id).copied(),
                keyword_rank.get(id).copied(),
            );
            if at == results.len() {
                results.push(added);
            } else {
                results[at] = added;
            }
        }
        let centre = self
            .centre(query.collection, version.unwrap_or(0), language)
            .await?;
        let need: Vec<ChunkId> = results
            .iter()
            .map(|r| r.chunk_id)
            .filter(|id| !stored.contains_key(id))
            .collect();
        let more = self.store.embeddings(&need).await?;
        // A code the customer wrote ("What is CK-223?") found in a passage names what it is
        // about as surely as anything can; embeddings barely see codes.
        let codes = text::codes(question);
        for r in &mut results {
            if let Some(e) = stored.get(&r.chunk_id).or_else(|| more.get(&r.chunk_id)) {
                r.relevance = centre.relevance(&vector, e);
            }
            if !codes.is_empty() && text::codes(&r.text).iter().any(|c| codes.contains(c)) {
                r.relevance = 1.0;
            }
        }
        Ok(Found {
            passages: results,
            centre: Some(centre),
            question: Some(embedded),
        })
    }
}

/// Whether a table row of `text` (a line as [`super::loaders::is_row_sentence`] reads one) is
/// named wholly by `asked`, a question's keyword terms: every word of the row's name but its
/// function words and what it says in brackets ("Familiar" of "Familiar — Personas: hasta 4;
/// Temporada baja: 120 €", "Sala Turia" of "Sala Turia (hasta 4 personas) — ...").
fn names_a_row(text: &str, asked: &HashSet<&str>) -> bool {
    text.lines()
        .filter(|line| super::loaders::is_row_sentence(line))
        .filter_map(|line| line.trim().split_once(" — "))
        .any(|(name, _)| {
            let name = name.split('(').next().unwrap_or_default();
            let words = text::terms(name);
            words
                .iter()
                .any(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 3)
                && words.iter().all(|w| asked.contains(w.as_str()))
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{kept_place, names_a_row, rrf, ChunkId};

    #[test]
    fn a_row_is_named_by_every_word_of_its_name_outside_brackets() {
        let rooms = "Doble estándar — Personas: 2; Temporada baja: 75 €.\n\
                     Familiar — Personas: hasta 4; Temporada baja: 120 €.";
        let asked = |q: &'static str| -> HashSet<&'static str> { q.split(' ').collect() };
        assert!(names_a_row(rooms, &asked("precio familiar noviembre")));
        assert!(names_a_row(rooms, &asked("doble estandar julio")));
        // Part of a name is not the row: "doble" alone is half of "Doble estándar".
        assert!(!names_a_row(rooms, &asked("doble julio")));
        // A name in a sentence is no row.
        let pets = "Admitimos perros de hasta 25 kg en la Familiar y en el apartamento.";
        assert!(!names_a_row(pets, &asked("precio familiar")));
        // What a name says in brackets need not be asked; a name of figures alone names nothing.
        let rooms = "Sala Turia (hasta 4 personas) — Hasta 2 horas: 15 € la hora.\n\
                     12 — Precio: 5 €.";
        assert!(names_a_row(rooms, &asked("sala turia 3 horas")));
        assert!(!names_a_row(rooms, &asked("12 horas")));
    }

    #[test]
    fn rrf_rewards_agreement_and_keeps_singletons() {
        let dense = [1, 2, 3];
        let keyword = [3, 4];
        let fused = rrf(&[(&dense, 1.0), (&keyword, 1.0)], 60.0);
        let order: Vec<i32> = fused.iter().map(|(id, _)| *id).collect();
        // 3 is in both lists, so it beats 1 (first in one list only).
        assert_eq!(order[0], 3);
        assert_eq!(order.len(), 4);
        assert!(order.contains(&4));
        let s1 = fused.iter().find(|(id, _)| *id == 1).unwrap().1;
        assert!((s1 - 1.0 / 61.0).abs() < 1e-6);
    }

    #[test]
    fn rrf_of_nothing_is_empty() {
        let empty: [u8; 0] = [];
        assert!(rrf(&[(&empty, 1.0), (&empty, 2.0)], 60.0).is_empty());
    }

    #[test]
    fn the_embedders_best_passages_take_the_last_places_and_keep_them() {
        let ids = |ns: &[u128]| {
            ns.iter()
                .map(|n| ChunkId(uuid::Uuid::from_u128(*n)))
                .collect::<Vec<_>>()
        };
        // A free place first.
        assert_eq!(kept_place(&ids(&[1, 2]), 3, 0, &ids(&[9])), Some(2));
        // Then the last place, before the rare word's; never the first.
        assert_eq!(kept_place(&ids(&[1, 2, 3]), 3, 0, &ids(&[8, 9])), Some(2));
        assert_eq!(kept_place(&ids(&[1, 2, 3]), 3, 1, &ids(&[8, 9])), Some(1));
        assert_eq!(kept_place(&ids(&[1, 2]), 2, 1, &ids(&[9])), None);
        // The embedder's second takes the place before its best, which it does not displace,
        // whether its best was placed before it or was there already.
        assert_eq!(
            kept_place(&ids(&[1, 2, 3, 8]), 4, 0, &ids(&[8, 9])),
            Some(2)
        );
        assert_eq!(kept_place(&ids(&[1, 8, 3]), 3, 1, &ids(&[8, 9])), None);
    }

    #[test]
    fn rrf_ties_keep_first_seen_order() {
        let a = [7, 8];
        let b = [8, 7];
        let fused = rrf(&[(&a, 1.0), (&b, 1.0)], 60.0);
        assert_eq!(fused[0].0, 7);
    }

    #[test]
    fn a_heavier_ranking_decides_between_disagreeing_lists() {
        let dense = [1, 2];
        let keyword = [2, 1];
        let fused = rrf(&[(&dense, 2.0), (&keyword, 1.0)], 60.0);
        assert_eq!(fused[0].0, 1);
        assert!((fused[0].1 - (2.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-6);
        let fused = rrf(&[(&dense, 1.0), (&keyword, 2.0)], 60.0);
        assert_eq!(fused[0].0, 2);
    }

    /// A bag-of-words embedder that reads one word otherwise: not at all (a place name, a
    /// product a small model never saw), or as another word (as a model relates words the
    /// keyword search cannot: "located" and "address").
    struct Reading {
        inner: crate::testing::HashEmbedder,
        word: &'static str,
        as_word: Option<&'static str>,
    }

    #[async_trait::async_trait]
    impl crate::embed::Embedder for Reading {
        fn model_id(&self) -> &str {
            "reading"
        }
        fn dimensions(&self) -> usize {
            self.inner.dimensions()
        }
        fn fusion_weight(&self) -> f32 {
            2.0
        }
        async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, crate::embed::EmbedError> {
            let read: Vec<String> = texts
                .iter()
                .map(|t| {
                    crate::knowledge::text::words(t)
                        .into_iter()
                        .filter_map(|w| match (w == self.word, self.as_word) {
                            (false, _) => Some(w),
                            (true, other) => other.map(str::to_string),
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            self.inner.embed(&read).await
        }
    }

    /// A knowledge whose embedder reads `word` otherwise (see [`Reading`]), with the Markdown
    /// `doc` ingested into `collection`; the directory holds its store.
    async fn reading(
        word: &'static str,
        as_word: Option<&'static str>,
        collection: &str,
        doc: String,
    ) -> (tempfile::TempDir, super::Knowledge) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::knowledge::testing::store(dir.path()).await;
        let knowledge = crate::knowledge::testing::knowledge_with(
            store,
            std::sync::Arc::new(Reading {
                inner: crate::testing::HashEmbedder::default(),
                word,
                as_word,
            }),
        );
        knowledge
            .ingest_bytes(
                collection,
                "doc.md",
                doc.into_bytes(),
                crate::knowledge::loaders::Format::Markdown,
            )
            .await
            .unwrap();
        (dir, knowledge)
    }

    /// The three passages `knowledge` finds in `collection` for `text` over `min_score`.
    async fn ask(
        knowledge: &super::Knowledge,
        collection: &str,
        text: &str,
        min_score: f32,
    ) -> Vec<super::Retrieved> {
        let query = super::Query {
            collection,
            text,
            top_k: 3,
            min_score,
        };
        knowledge.retrieve(&query).await.unwrap()
    }

    #[tokio::test]
    async fn the_most_similar_passage_is_found_under_the_floor() {
        let doc =
            "# Finding us\n\nOur address: Rua Augusta 10, Lisbon.\n\n# Hours\n\nOpen 8 to 20.";
        let (_dir, knowledge) = reading("located", Some("address"), "shop", doc.into()).await;
        let found = ask(&knowledge, "shop", "where are you located", 0.9).await;
        // No word of the question is in a passage, and no passage reaches the floor: the most
        // similar one is found, and it alone.
        let headings: Vec<_> = found.iter().map(|r| r.heading.as_deref()).collect();
        assert_eq!(headings, [Some("Finding us")], "{found:?}");
        assert!(found[0].similarity < 0.9, "{found:?}");
    }

    #[tokio::test]
    async fn a_rare_word_of_the_question_reaches_the_answer_in_a_passage() {
        let mut doc = String::from(
            "# Zonas\n\nZona 2: resto de Aragón (Huesca y Teruel), Navarra y La Rioja.\n\n",
        );
        for i in 1..=24 {
            doc.push_str(&format!(
                "# Envío {i}\n\nEl envío del paquete tipo {i} cuesta {i},90 € por paquete.\n\n"
            ));
        }
        let (_dir, knowledge) = reading("huesca", None, "shop", doc).await;
        let question = "cuanto cuesta el envío de un paquete a huesca?";
        let found = ask(&knowledge, "shop", question, 0.0).await;
        let headings: Vec<&str> = found.iter().filter_map(|r| r.heading.as_deref()).collect();
        assert_eq!(found.len(), 3, "{headings:?}");
        assert!(headings.contains(&"Zonas"), "{headings:?}");
        assert_ne!(
            headings[0], "Zonas",
            "the best passage keeps the first place"
        );
        // Words every passage uses bring nothing in.
        let found = ask(
            &knowledge,
            "shop",
            "cuanto cuesta el envío de un paquete?",
            0.0,
        )
        .await;
        assert!(
            found.iter().all(|r| r.heading.as_deref() != Some("Zonas")),
            "{found:?}"
        );
    }

    #[tokio::test]
    async fn a_row_the_question_names_reaches_the_answer_in_its_table() {
        let mut doc = String::new();
        for i in 1..=8 {
            doc.push_str(&format!(
                "# Nota {i}\n\nEl precio de la nota {i} vale para la Familiar y la cuna.\n\n"
            ));
        }
        doc.push_str(
            "# Habitaciones\n\n| Habitación | Personas | Temporada baja | Temporada alta |\n\
             |---|---|---|---|\n| Doble estándar | 2 | 75 € | 95 € |\n\
             | Familiar | hasta 4 | 120 € | 150 € |\n| Individual | 1 | 55 € | 70 € |\n",
        );
        let (_dir, knowledge) = reading("familiar", None, "casa", doc).await;
        let found = ask(
            &knowledge,
            "casa",
            "precio de la familiar en noviembre",
            0.0,
        )
        .await;
        let headings: Vec<&str> = found.iter().filter_map(|r| r.heading.as_deref()).collect();
        assert!(headings.contains(&"Habitaciones"), "{headings:?}");
    }

    #[tokio::test]
    async fn a_rare_word_in_another_form_than_the_documents_is_theirs() {
        // In a large collection and in one of fewer than 1 / RARE_SHARE passages, where a word
        // one passage uses is as rare as a word can be.
        for plans in [24, 5] {
            let mut doc = String::new();
            for i in 1..=plans {
                doc.push_str(&format!(
                    "# Plan {i}\n\nEl plan número {i} cuesta {i}0 € al mes con café.\n\n"
                ));
            }
            doc.push_str("# Extras\n\nTaquilla con llave: 12 € al mes.\n\n");
            let (_dir, knowledge) = reading("taquillas", None, "cowork", doc).await;
            // The keyword search matches whole words: the plural is read as the documents'
            // singular, whose passage the embedder does not find.
            let found = ask(&knowledge, "cowork", "hay taquillas?", 0.0).await;
            assert!(
                found.iter().any(|r| r.heading.as_deref() == Some("Extras")),
                "{plans} plans: {found:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_question_asked_again_of_a_collection_is_embedded_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::knowledge::testing::store(dir.path()).await;
        let embedder = std::sync::Arc::new(crate::testing::CountingEmbedder::default());
        let knowledge = crate::knowledge::testing::knowledge_with(store, embedder.clone());
        for collection in ["bakery", "florist"] {
            knowledge
                .ingest_bytes(
                    collection,
                    "faq.md",
                    b"# Delivery\n\nWe deliver in Lisbon for 3 EUR.\n\n# Hours\n\nOpen 8 to 20."
                        .to_vec(),
                    crate::knowledge::loaders::Format::Markdown,
                )
                .await
                .unwrap();
        }
        let ask = |collection: &'static str| {
            let knowledge = &knowledge;
            async move {
                let query = super::Query {
                    collection,
                    text: "Do you deliver?",
                    top_k: 2,
                    min_score: 0.0,
                };
                knowledge.retrieve(&query).await
            }
        };
        // The first question also embeds the typical questions relevance is centred on.
        let first = ask("bakery").await.unwrap();
        let embedded = embedder.questions();
        assert!(!first.is_empty());
        let again = ask("bakery").await.unwrap();
        assert_eq!(embedder.questions(), embedded, "kept");
        assert_eq!(first, again);
        // Another business's customers asking the same words: its own entry.
        ask("florist").await.unwrap();
        assert_eq!(embedder.questions(), embedded + 1);
    }
}
