//! Relevance: how well a passage answers a question, on one scale for every embedder and every
//! business. Raw cosine similarity does not give one: multilingual-e5 puts nearly every pair
//! between 0.7 and 0.9 and all-MiniLM between 0 and 0.7, and each collection sits somewhere of
//! its own in that range (a bakery's passages all look alike to the embedder).
//!
//! Relevance is the cosine of the two vectors once each is centred: the passage on the mean of
//! its collection's documents (each document's passages averaged first, so that a catalogue of
//! 150 rows does not outweigh the FAQ beside it), and the question on the mean of
//! [`TYPICAL_QUESTIONS`], questions any customer asks any business. What is left is what this
//! passage says that the others do not, against what this question asks that questions in
//! general do not.
//!
//! Measured over the four shipped businesses (119 answerable questions, 20 that their documents
//! do not answer; multilingual-e5-small), as a test of "escalate when below a threshold":
//! the area under the ROC curve is 0.88 with relevance against 0.82 with the raw cosine and 0.75
//! with the earlier sentence score, and the best threshold is near 0.23 whichever business it is
//! chosen on. It cannot separate on-topic questions that the documents leave open (bitcoin against
//! the payments FAQ) from answered ones; no similarity between two vectors can.
//!
//! Measured again over seven businesses in three languages (the shipped suites and the
//! development split of `eval/dev`: 224 answerable turns, 34 that should go to a person), each
//! rule fitted on all businesses but one and scored on the one left out:
//!
//! | signal | area under the ROC curve |
//! |---|---|
//! | relevance | 0.85 |
//! | relevance and the share of the question's words the answer holds | 0.85 |
//! | every signal the extractive answerer logs (margin, lead, coverage, row fit...) | 0.81 |
//! | relevance minus its mean over all the collection's passages | 0.83 |
//! | the same in standard deviations of that distribution (a z-score) | 0.75 |
//!
//! Standing out from the collection's own score distribution transfers worse than relevance:
//! off-topic questions have narrow distributions too, so dividing by the spread lifts them. At
//! the threshold 0.22, 18 answerable turns escalate and 15 of the 34 go unescalated; no
//! threshold gets both precision and recall to 0.9. Six of those 18 are questions in another
//! language than the documents': the small multilingual model barely relates words across
//! languages ("teeth whitening" finds nothing near "Branqueamento em consultório").
//!
//! A question in another language than the documents' carries that language in its vector as
//! much as what it asks. It is moved into the documents' language before centring: by the
//! difference between the means of the same typical questions asked in the two languages
//! ([`TYPICAL_QUESTIONS_BY_LANGUAGE`]). A question in the documents' language is centred as
//! before. Measured on the development split of `eval/dev` and the shipped suites together
//! (multilingual-e5-small): the area under the ROC curve of answered questions in another
//! language against the questions that should go to a person went from 0.81 to 0.83, and two
//! questions in another language that went to a person are answered right.
//!
//! The typical questions also say how like a customer's question to a business a question is
//! at all ([`Typical::typicality`]): a question with words in common with a passage but about
//! something no business is asked ("Will it rain tomorrow?" beside the address) is far from
//! them. The extractive answerer weighs its confidence by it (see
//! `crate::llm::extractive`).

use std::sync::Arc;

use super::lexicon::Lexicon;
use super::{Knowledge, KnowledgeError};
use crate::embed::{cosine, EmbedError};

/// Questions any customer asks any business, in the languages of the shipped templates: their
/// mean is what "a customer question" looks like to the embedder. The first
/// [`ENGLISH_TYPICAL`] are the English ones of [`TYPICAL_QUESTIONS_BY_LANGUAGE`].
pub const TYPICAL_QUESTIONS: &[&str] = &[
    "What are your opening hours?",
    "Are you open on Sundays?",
    "How much does it cost?",
    "What is the price?",
    "Do you deliver?",
    "How long does delivery take?",
    "Can I pay by card?",
    "Which payment methods do you accept?",
    "Where are you located?",
    "How can I contact you?",
    "Can I cancel my order?",
    "Can I get a refund?",
    "Do you have any discounts?",
    "Is it available today?",
    "How long does it take?",
    "Do I need to book in advance?",
    "Is there parking nearby?",
    "Can I change my booking?",
    "What happens if I am late?",
    "Do you offer gift cards?",
    "How do I return something?",
    "What do you recommend?",
    "Is it suitable for children?",
    "How do I make an appointment?",
    "Do you have a phone number?",
    "Is there a warranty?",
    "Do you ship abroad?",
    "Qual é o horário de funcionamento?",
    "Quanto custa?",
    "Aceitam cartão?",
    "Onde ficam?",
    "Posso cancelar?",
    "Fazem entregas?",
    "Quanto tempo demora?",
    "Preciso de marcar?",
    "Têm estacionamento?",
    "Posso pedir reembolso?",
    "¿Cuál es el horario?",
    "¿Cuánto cuesta?",
    "¿Hacéis envíos?",
    "¿Puedo pagar con tarjeta?",
    "¿Dónde estáis?",
    "¿Puedo cancelar mi pedido?",
    "¿Cuánto tarda?",
    "¿Tengo que reservar?",
    "¿Hay descuentos?",
    "¿Cómo os contacto?",
    "Wann haben Sie geöffnet?",
    "Was kostet das?",
    "Kann ich mit Karte zahlen?",
    "Liefern Sie auch?",
    "Wo sind Sie?",
    "Quels sont vos horaires?",
    "Combien ça coûte?",
    "Puis-je payer par carte?",
    "Livrez-vous?",
    "Où êtes-vous?",
    "Do you have it in stock?",
    "Can I speak English with you?",
    "Do you have vegan options?",
];

/// The first this many of [`TYPICAL_QUESTIONS`] are the English questions of
/// [`TYPICAL_QUESTIONS_BY_LANGUAGE`], which its other languages ask too.
const ENGLISH_TYPICAL: usize = 24;

/// The same questions asked in each language the question reader knows (English, Portuguese,
/// Spanish, French, German): their mean in one language is what a customer's question in that
/// language has besides what it asks.
pub const TYPICAL_QUESTIONS_BY_LANGUAGE: &[(&str, &[&str])] = &[
    ("en", TYPICAL_QUESTIONS.split_at(ENGLISH_TYPICAL).0),
    (
        "pt",
        &[
            "Qual é o horário de funcionamento?",
            "Vocês abrem aos domingos?",
            "Quanto custa?",
            "Qual é o preço?",
            "Fazem entregas?",
            "Quanto tempo demora a entrega?",
            "Posso pagar com cartão?",
            "Que formas de pagamento aceitam?",
            "Onde ficam?",
            "Como posso entrar em contato?",
            "Posso cancelar o meu pedido?",
            "Posso pedir reembolso?",
            "Vocês têm algum desconto?",
            "Está disponível hoje?",
            "Quanto tempo demora?",
            "Preciso de marcar com antecedência?",
            "Há estacionamento perto?",
            "Posso mudar a minha reserva?",
            "O que acontece se eu me atrasar?",
            "Vocês têm vale-presente?",
            "Como faço para devolver alguma coisa?",
            "O que vocês recomendam?",
            "É adequado para crianças?",
            "Como faço para marcar uma consulta?",
        ],
    ),
    (
        "es",
        &[
            "¿Cuál es vuestro horario?",
            "¿Abrís los domingos?",
            "¿Cuánto cuesta?",
            "¿Cuál es el precio?",
            "¿Hacéis envíos a domicilio?",
            "¿Cuánto tarda la entrega?",
            "¿Puedo pagar con tarjeta?",
            "¿Qué formas de pago aceptáis?",
            "¿Dónde estáis?",
            "¿Cómo puedo contactaros?",
            "¿Puedo cancelar mi pedido?",
            "¿Me podéis devolver el dinero?",
            "¿Tenéis algún descuento?",
            "¿Está disponible hoy?",
            "¿Cuánto tiempo tarda?",
            "¿Tengo que reservar con antelación?",
            "¿Hay aparcamiento cerca?",
            "¿Puedo cambiar mi reserva?",
            "¿Qué pasa si llego tarde?",
            "¿Tenéis tarjetas regalo?",
            "¿Cómo devuelvo algo?",
            "¿Qué me recomendáis?",
            "¿Es adecuado para niños?",
            "¿Cómo pido una cita?",
        ],
    ),
    (
        "fr",
        &[
            "Quels sont vos horaires d'ouverture ?",
            "Êtes-vous ouverts le dimanche ?",
            "Combien ça coûte ?",
            "Quel est le prix ?",
            "Livrez-vous ?",
            "Combien de temps prend la livraison ?",
            "Puis-je payer par carte ?",
            "Quels moyens de paiement acceptez-vous ?",
            "Où êtes-vous situés ?",
            "Comment puis-je vous contacter ?",
            "Puis-je annuler ma commande ?",
            "Puis-je être remboursé ?",
            "Avez-vous des réductions ?",
            "Est-ce disponible aujourd'hui ?",
            "Combien de temps ça prend ?",
            "Dois-je réserver à l'avance ?",
            "Y a-t-il un parking à proximité ?",
            "Puis-je modifier ma réservation ?",
            "Que se passe-t-il si je suis en retard ?",
            "Proposez-vous des cartes cadeaux ?",
            "Comment retourner un article ?",
            "Que me conseillez-vous ?",
            "Est-ce adapté aux enfants ?",
            "Comment prendre rendez-vous ?",
        ],
    ),
    (
        "de",
        &[
            "Wann haben Sie geöffnet?",
            "Haben Sie sonntags geöffnet?",
            "Was kostet das?",
            "Wie hoch ist der Preis?",
            "Liefern Sie auch?",
            "Wie lange dauert die Lieferung?",
            "Kann ich mit Karte zahlen?",
            "Welche Zahlungsarten akzeptieren Sie?",
            "Wo sind Sie?",
            "Wie kann ich Sie erreichen?",
            "Kann ich meine Bestellung stornieren?",
            "Bekomme ich mein Geld zurück?",
            "Gibt es Rabatte?",
            "Ist es heute verfügbar?",
            "Wie lange dauert es?",
            "Muss ich vorher reservieren?",
            "Gibt es Parkplätze in der Nähe?",
            "Kann ich meine Buchung ändern?",
            "Was passiert, wenn ich zu spät komme?",
            "Haben Sie Gutscheine?",
            "Wie kann ich etwas zurückgeben?",
            "Was empfehlen Sie?",
            "Ist es für Kinder geeignet?",
            "Wie vereinbare ich einen Termin?",
        ],
    ),
];

/// What is computed once per collection version from all its passages: their mean (the centre
/// of [`Centre::passage`]) and their words ([`Lexicon`]).
#[derive(Debug, Clone)]
pub(super) struct Profile {
    version: i64,
    mean: Arc<Vec<f32>>,
    pub(super) lexicon: Arc<Lexicon>,
}

/// Each collection's profile, with the collection version it was computed at.
pub(super) type PassageMeans = std::collections::HashMap<String, Profile>;

/// Chunks read per page when averaging a collection.
const PAGE: usize = 1000;

/// The means a question and a collection's passages are centred on.
#[derive(Debug, Clone)]
pub struct Centre {
    /// Mean of [`TYPICAL_QUESTIONS`] embedded as questions, moved into the documents' language
    /// for a question in another ([`QuestionMeans::for_languages`]).
    pub question: Arc<Vec<f32>>,
    /// Mean of the collection's passages (zero for an empty collection).
    pub passage: Arc<Vec<f32>>,
    /// The embedder's [`crate::embed::Embedder::relevance_scale`].
    pub scale: f32,
    /// What a customer's question to a business looks like, to tell how like one a question
    /// is ([`Typical::typicality`]); `None` when the embedder cannot tell
    /// ([`crate::embed::Embedder::reads_meaning`]).
    pub typical: Option<Typical>,
}

/// The typical questions' mean (all languages together) and how close the typical questions
/// themselves are to it: the mean and standard deviation of their cosines with it.
#[derive(Debug, Clone)]
pub struct Typical {
    pub mean: Arc<Vec<f32>>,
    pub cosine_mean: f32,
    pub cosine_sd: f32,
}

impl Typical {
    /// How like a customer's question to a business `question` is: its cosine with the typical
    /// questions' mean, in standard deviations of the typical questions' own cosines from
    /// theirs (0 is as typical as they are on average; below 0 is less like them). `None` for
    /// a vector of another size (another embedder's), or when the spread is unknown.
    ///
    /// The scale is each embedder's own: measured on the 503 turns of the shipped suites and
    /// both splits of `eval/dev` and `eval/unseen`, EmbeddingGemma-300M puts their questions at
    /// -3.3 on average (standard deviation 1.4) and multilingual-e5-small at -2.8 (1.5).
    pub fn typicality(&self, question: &[f32]) -> Option<f32> {
        (question.len() == self.mean.len() && self.cosine_sd > f32::EPSILON)
            .then(|| (cosine(question, &self.mean) - self.cosine_mean) / self.cosine_sd)
    }
}

impl Centre {
    /// The relevance of a passage vector to a question vector.
    pub fn relevance(&self, question: &[f32], passage: &[f32]) -> f32 {
        let q: Vec<f32> = minus(question, &self.question);
        let p: Vec<f32> = minus(passage, &self.passage);
        cosine(&q, &p) * self.scale
    }
}

/// `a - b`, `b` read as zeros past its end.
pub(super) fn minus(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter()
        .zip(b.iter().chain(std::iter::repeat(&0.0)))
        .map(|(x, y)| x - y)
        .collect()
}

/// A running sum of vectors of one size; vectors of another size are skipped (a passage
/// embedded by another model, before a reindex).
struct Sum {
    total: Vec<f32>,
    count: usize,
}

impl Sum {
    fn new(dimensions: usize) -> Self {
        Self {
            total: vec![0.0; dimensions],
            count: 0,
        }
    }

    fn add(&mut self, vector: &[f32]) {
        if vector.len() == self.total.len() {
            self.total.iter_mut().zip(vector).for_each(|(s, x)| *s += x);
            self.count += 1;
        }
    }

    /// The mean (zero when nothing was added), and how many vectors it is of.
    fn mean(mut self) -> (Vec<f32>, usize) {
        if self.count > 0 {
            let n = self.count as f32;
            self.total.iter_mut().for_each(|s| *s /= n);
        }
        (self.total, self.count)
    }
}

/// The mean of `values` and their (population) standard deviation; zeros for none.
pub fn mean_and_sd(values: &[f32]) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    (mean, sd)
}

/// The mean of the vectors of `dimensions`, and how many there were (see [`Sum`]).
fn mean<'a>(vectors: impl Iterator<Item = &'a [f32]>, dimensions: usize) -> (Vec<f32>, usize) {
    let mut sum = Sum::new(dimensions);
    vectors.for_each(|v| sum.add(v));
    sum.mean()
}

/// The means questions are centred on: [`TYPICAL_QUESTIONS`]'s, and
/// [`TYPICAL_QUESTIONS_BY_LANGUAGE`]'s in each of its languages.
#[derive(Debug)]
pub(super) struct QuestionMeans {
    typical: Typical,
    by_language: Vec<(&'static str, Vec<f32>)>,
}

impl QuestionMeans {
    /// What a question in `asked` (its language, when known) is centred on, for passages in
    /// `documents`: the typical questions' mean, moved by the difference between the same
    /// questions in the two languages when they differ. What the embedder puts in every question
    /// of one language and not the other is taken away, so that an English question and the
    /// Portuguese passage that answers it meet on what they say.
    fn for_languages(&self, asked: Option<&str>, documents: Option<&str>) -> Arc<Vec<f32>> {
        let mean = |language: Option<&str>| {
            language.and_then(|l| self.by_language.iter().find(|(m, _)| *m == l))
        };
        match (mean(asked), mean(documents)) {
            (Some((a, asked)), Some((d, documents))) if a != d => Arc::new(
                self.typical
                    .mean
                    .iter()
                    .zip(asked.iter().zip(documents))
                    .map(|(t, (a, d))| t + a - d)
                    .collect(),
            ),
            _ => self.typical.mean.clone(),
        }
    }
}

impl Knowledge {
    /// The centre for a question in `language` (when known) to `collection`, whose version in
    /// the store is `version`: the typical questions' mean (embedded once; see
    /// [`QuestionMeans::for_languages`]) and the collection's passage mean (computed again when
    /// the version changes).
    pub(crate) async fn centre(
        &self,
        collection: &str,
        version: i64,
        language: Option<&str>,
    ) -> Result<Centre, KnowledgeError> {
        let means = self.question_means().await?;
        let profile = self.profile(collection, version).await?;
        let question = means.for_languages(language, profile.lexicon.language());
        Ok(Centre {
            question,
            passage: profile.mean,
            scale: self.embedder.relevance_scale(),
            typical: self.embedder.reads_meaning().then(|| means.typical.clone()),
        })
    }

    /// The mean of the typical questions' vectors: what "a customer question" looks like to
    /// this embedder, for comparing questions with each other on what they ask (see
    /// [`super::gaps`]).
    pub(crate) async fn typical_question_mean(&self) -> Result<Arc<Vec<f32>>, KnowledgeError> {
        Ok(self.question_means().await?.typical.mean.clone())
    }

    /// The typical questions' means, all together and in each language, embedded once.
    async fn question_means(&self) -> Result<Arc<QuestionMeans>, KnowledgeError> {
        let dimensions = self.embedder.dimensions();
        let means = self
            .question_mean
            .get_or_try_init(|| async {
                // Every question embedded once, in one call: a language's set that is the
                // first of the typical questions (English) is read from their vectors.
                let mut texts: Vec<String> =
                    TYPICAL_QUESTIONS.iter().map(|q| q.to_string()).collect();
                let mut spans = Vec::new();
                for (language, questions) in TYPICAL_QUESTIONS_BY_LANGUAGE {
                    if TYPICAL_QUESTIONS.starts_with(questions) {
                        spans.push((*language, 0..questions.len()));
                    } else {
                        spans.push((*language, texts.len()..texts.len() + questions.len()));
                        texts.extend(questions.iter().map(|q| q.to_string()));
                    }
                }
                let vectors = self.embedder.embed_queries(&texts).await?;
                let mean_of = |range: std::ops::Range<usize>| {
                    let (m, n) = mean(
                        vectors
                            .get(range)
                            .unwrap_or_default()
                            .iter()
                            .map(Vec::as_slice),
                        dimensions,
                    );
                    if n == 0 {
                        return Err(EmbedError::Inference(
                            "no vectors for the typical questions".into(),
                        ));
                    }
                    Ok(m)
                };
                let mean = mean_of(0..TYPICAL_QUESTIONS.len())?;
                let cosines: Vec<f32> = vectors
                    .iter()
                    .take(TYPICAL_QUESTIONS.len())
                    .map(|v| cosine(v, &mean))
                    .collect();
                let (cosine_mean, cosine_sd) = mean_and_sd(&cosines);
                let typical = Typical {
                    mean: Arc::new(mean),
                    cosine_mean,
                    cosine_sd,
                };
                let by_language = spans
                    .into_iter()
                    .map(|(language, range)| Ok((language, mean_of(range)?)))
                    .collect::<Result<Vec<_>, EmbedError>>()?;
                Ok::<_, EmbedError>(Arc::new(QuestionMeans {
                    typical,
                    by_language,
                }))
            })
            .await?
            .clone();
        Ok(means)
    }

    /// The words of `collection`'s passages (see [`Lexicon`]), read again when its version
    /// changes.
    pub async fn lexicon(&self, collection: &str) -> Result<Arc<Lexicon>, KnowledgeError> {
        let version = self
            .store
            .collection_version(collection)
            .await?
            .unwrap_or(0);
        Ok(self.profile(collection, version).await?.lexicon)
    }

    /// The profile of `collection` at `version`: kept, or read from every passage in pages.
    pub(super) async fn profile(
        &self,
        collection: &str,
        version: i64,
    ) -> Result<Profile, KnowledgeError> {
        let cached = {
            let profiles = self.passage_means.lock().unwrap_or_else(|e| e.into_inner());
            profiles
                .get(collection)
                .filter(|p| p.version == version)
                .cloned()
        };
        if let Some(profile) = cached {
            return Ok(profile);
        }
        let dimensions = self.embedder.dimensions();
        let mut documents: std::collections::HashMap<crate::domain::DocumentId, Sum> =
            std::collections::HashMap::new();
        let mut texts: Vec<(Option<String>, String)> = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.chunk_page(collection, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for c in page {
                documents
                    .entry(c.document_id)
                    .or_insert_with(|| Sum::new(dimensions))
                    .add(&c.embedding);
                texts.push((c.heading, c.text));
            }
        }
        let mut sum = Sum::new(dimensions);
        for document in documents.into_values() {
            let (mean, n) = document.mean();
            if n > 0 {
                sum.add(&mean);
            }
        }
        let lexicon = Lexicon::build(texts.iter().map(|(h, t)| (h.as_deref(), t.as_str())));
        let profile = Profile {
            version,
            mean: Arc::new(sum.mean().0),
            lexicon: Arc::new(lexicon),
        };
        let mut profiles = self.passage_means.lock().unwrap_or_else(|e| e.into_inner());
        profiles.insert(collection.to_string(), profile.clone());
        Ok(profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centring_removes_what_every_vector_shares() {
        // Both vectors lean the same way as everything else does: raw cosine is high, but
        // what is left after centring points apart.
        let centre = Centre {
            question: Arc::new(vec![0.9, 0.0, 0.0]),
            passage: Arc::new(vec![0.9, 0.0, 0.0]),
            scale: 1.0,
            typical: None,
        };
        let q = [0.95, 0.3, 0.0];
        let p = [0.95, -0.3, 0.0];
        assert!(cosine(&q, &p) > 0.8);
        assert!(centre.relevance(&q, &p) < -0.9);
        let same = [0.95, 0.0, 0.3];
        assert!((centre.relevance(&same, &same) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn typicality_is_in_the_typical_questions_own_spread() {
        let typical = Typical {
            mean: Arc::new(vec![1.0, 0.0]),
            cosine_mean: 0.9,
            cosine_sd: 0.05,
        };
        // Along the mean: two standard deviations above the typical questions' 0.9.
        assert!((typical.typicality(&[1.0, 0.0]).unwrap() - 2.0).abs() < 1e-4);
        // At 60 degrees from it (cosine 0.5): eight below.
        let far = [0.5, 3f32.sqrt() / 2.0];
        assert!((typical.typicality(&far).unwrap() + 8.0).abs() < 1e-3);
        // Another embedder's vector says nothing.
        assert_eq!(typical.typicality(&[1.0, 0.0, 0.0]), None);
    }

    /// With the default embedder, customers' questions to a business are more like the typical
    /// questions than questions no business is asked.
    #[tokio::test]
    async fn a_question_to_a_business_is_more_typical_than_one_to_nobody() {
        let settings = crate::Settings::default().embedding;
        if crate::testing::test_model(&settings.local_model)
            .await
            .is_none()
        {
            return;
        }
        let embedder = crate::embed::load_local(
            &settings.local_model,
            &crate::testing::test_model_store(),
            &settings,
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = crate::knowledge::testing::store(dir.path()).await;
        let knowledge = crate::knowledge::testing::knowledge_with(store, embedder);
        let typical = knowledge.question_means().await.unwrap().typical.clone();
        let questions: Vec<String> = [
            "do you have gluten free bread?",
            "vcs entregam no sabado?",
            "what is the integral of x squared?",
            "quem descobriu o brasil?",
        ]
        .iter()
        .map(|q| q.to_string())
        .collect();
        let vectors = knowledge
            .embedder()
            .embed_queries(&questions)
            .await
            .unwrap();
        let t: Vec<f32> = vectors
            .iter()
            .map(|v| typical.typicality(v).unwrap())
            .collect();
        // The least typical of the business's questions against the most typical of the others.
        let (business, nobody) = (t[0].min(t[1]), t[2].max(t[3]));
        assert!(business > nobody, "{business} against {nobody}");
    }

    #[test]
    fn every_language_asks_the_same_typical_questions() {
        for (language, questions) in TYPICAL_QUESTIONS_BY_LANGUAGE {
            assert_eq!(questions.len(), ENGLISH_TYPICAL, "{language}");
        }
    }

    #[test]
    fn a_question_in_another_language_than_the_documents_is_moved_into_theirs() {
        let means = QuestionMeans {
            typical: Typical {
                mean: Arc::new(vec![1.0, 0.0, 0.0]),
                cosine_mean: 0.9,
                cosine_sd: 0.05,
            },
            by_language: vec![("en", vec![0.0, 1.0, 0.0]), ("pt", vec![0.0, 0.0, 1.0])],
        };
        assert_eq!(
            *means.for_languages(Some("en"), Some("pt")),
            [1.0, 1.0, -1.0]
        );
        // The same language, or a language without typical questions: the typical mean.
        for (asked, documents) in [
            (Some("pt"), Some("pt")),
            (None, Some("pt")),
            (Some("en"), None),
            (Some("it"), Some("pt")),
        ] {
            assert_eq!(*means.for_languages(asked, documents), [1.0, 0.0, 0.0]);
        }
    }

    /// The shipped bakery's documents: the passage that answers a question about them is more
    /// relevant than anything is to a question they do not touch.
    #[tokio::test]
    async fn answered_questions_are_more_relevant_than_unrelated_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::knowledge::testing::store(dir.path()).await;
        let knowledge = crate::knowledge::testing::knowledge(store);
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("knowledge");
        knowledge.ingest_paths("bakery", &[root]).await.unwrap();
        let best = |q: &'static str| {
            let knowledge = &knowledge;
            async move {
                let found = knowledge
                    .retrieve(&crate::knowledge::Query {
                        collection: "bakery",
                        text: q,
                        top_k: 4,
                        min_score: 0.0,
                    })
                    .await
                    .unwrap();
                found.iter().map(|r| r.relevance).fold(f32::MIN, f32::max)
            }
        };
        let mut answered = Vec::new();
        for q in [
            "What time do you open?",
            "Which payment methods do you accept? MB WAY?",
            "What is the minimum order for delivery?",
        ] {
            answered.push(best(q).await);
        }
        let mut unrelated = Vec::new();
        for q in [
            "Will it rain in Lisbon tomorrow?",
            "Who won the football match yesterday?",
        ] {
            unrelated.push(best(q).await);
        }
        let lowest_answered = answered.iter().copied().fold(f32::MAX, f32::min);
        let highest_unrelated = unrelated.iter().copied().fold(f32::MIN, f32::max);
        // Clearly apart: the least relevant answer leads the most relevant unrelated passage
        // by a tenth of the scale.
        assert!(
            lowest_answered - highest_unrelated > 0.1,
            "answered {answered:?}, unrelated {unrelated:?}"
        );
    }

    #[test]
    fn the_mean_skips_vectors_of_another_size() {
        let a = [1.0, 0.0];
        let b = [0.0, 1.0];
        let c = [1.0, 1.0, 1.0];
        let (m, n) = mean([&a[..], &b[..], &c[..]].into_iter(), 2);
        assert_eq!((m, n), (vec![0.5, 0.5], 2));
        assert_eq!(mean(std::iter::empty(), 2), (vec![0.0, 0.0], 0));
    }
}
