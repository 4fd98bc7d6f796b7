//! Questions asked at the same time embedded together. A local model runs one call at a time
//! (`embedding.max_concurrent`), and a call for one short question leaves most of its work in
//! fixed costs (a hand-off to the blocking pool, small matrix products). [`QueryBatches`] sends
//! the questions that arrived while the model was busy as one call when it is free again: no
//! wait is added when nothing else is asked, and a burst of customers shares the passes.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::{EmbedError, Embedder};

/// Most questions embedded in one call.
const MAX_BATCH: usize = 32;

/// One caller's questions and where their vectors go.
struct Pending {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
}

/// An embedder whose question calls (`embed_queries`) are merged while the model is busy;
/// passages go straight through.
pub struct QueryBatches {
    inner: Arc<dyn Embedder>,
    queue: mpsc::UnboundedSender<Pending>,
}

impl QueryBatches {
    /// Batches `inner`'s questions. Needs a Tokio runtime: a task of its own makes the calls.
    pub fn new(inner: Arc<dyn Embedder>) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(work(inner.clone(), waiting));
        Self { inner, queue }
    }
}

/// Takes what is waiting, up to [`MAX_BATCH`] questions, embeds it in one call and hands each
/// caller its vectors; ends when the embedder is dropped.
async fn work(inner: Arc<dyn Embedder>, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        let mut texts: usize = batch[0].texts.len();
        while texts < MAX_BATCH {
            match waiting.try_recv() {
                Ok(next) => {
                    texts += next.texts.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let all: Vec<String> = batch.iter().flat_map(|p| p.texts.clone()).collect();
        match inner.embed_queries(&all).await {
            Ok(vectors) if vectors.len() == all.len() => {
                let mut vectors = vectors.into_iter();
                for p in batch {
                    let own: Vec<Vec<f32>> = vectors.by_ref().take(p.texts.len()).collect();
                    // A caller that gave up (its turn timed out) no longer listens.
                    let _ = p.reply.send(Ok(own));
                }
            }
            Ok(vectors) => {
                let why = format!("{} vectors for {} questions", vectors.len(), all.len());
                for p in batch {
                    let _ = p.reply.send(Err(EmbedError::Inference(why.clone())));
                }
            }
            Err(e) => {
                for p in batch {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[async_trait]
impl Embedder for QueryBatches {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed(texts).await
    }

    async fn embed_queries(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, vectors) = oneshot::channel();
        let pending = Pending {
            texts: texts.to_vec(),
            reply,
        };
        if self.queue.send(pending).is_ok() {
            if let Ok(result) = vectors.await {
                return result;
            }
        }
        // The batching task is gone (the runtime that started it has shut down): the model
        // is still here.
        self.inner.embed_queries(texts).await
    }

    fn fusion_weight(&self) -> f32 {
        self.inner.fusion_weight()
    }

    fn relevance_scale(&self) -> f32 {
        self.inner.relevance_scale()
    }

    fn reads_meaning(&self) -> bool {
        self.inner.reads_meaning()
    }

    fn spells(&self, word: &str) -> bool {
        self.inner.spells(word)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::testing::HashEmbedder;

    /// Counts its calls; each takes a while, as a model's does.
    struct Slow {
        inner: HashEmbedder,
        calls: AtomicUsize,
        fail: bool,
    }

    #[async_trait]
    impl Embedder for Slow {
        fn model_id(&self) -> &str {
            "slow"
        }
        fn dimensions(&self) -> usize {
            self.inner.dimensions()
        }
        async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.fail {
                return Err(EmbedError::Inference("out of memory".into()));
            }
            self.inner.embed(texts).await
        }
    }

    fn slow(fail: bool) -> Arc<Slow> {
        Arc::new(Slow {
            inner: HashEmbedder::default(),
            calls: AtomicUsize::new(0),
            fail,
        })
    }

    #[tokio::test]
    async fn questions_asked_together_share_calls_and_each_gets_its_own_vectors() {
        let model = slow(false);
        let batches = QueryBatches::new(model.clone());
        let questions: Vec<String> = (0..12).map(|i| format!("question number {i}")).collect();
        let answers = futures::future::join_all(
            questions
                .iter()
                .map(|q| batches.embed_queries(std::slice::from_ref(q))),
        )
        .await;
        for (q, got) in questions.iter().zip(answers) {
            assert_eq!(got.unwrap(), vec![HashEmbedder::default().vector(q)], "{q}");
        }
        // All twelve were waiting when the model was free: one call.
        assert_eq!(model.calls.load(Ordering::SeqCst), 1);
        // Passages are not batched.
        batches.embed(&["a passage".into()]).await.unwrap();
        assert_eq!(model.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_call_fails_every_question_in_it() {
        let batches = QueryBatches::new(slow(true));
        let questions: Vec<String> = ["one", "two", "three"].map(String::from).to_vec();
        let answers = futures::future::join_all(
            questions
                .iter()
                .map(|q| batches.embed_queries(std::slice::from_ref(q))),
        )
        .await;
        for got in answers {
            assert!(matches!(got, Err(EmbedError::Inference(m)) if m == "out of memory"));
        }
        assert!(batches.embed_queries(&[]).await.unwrap().is_empty());
    }

    /// A batcher made under one runtime and used under another (a test's, a command's) still
    /// answers: the model is asked directly once the batching task is gone.
    #[test]
    fn a_batcher_outliving_the_runtime_that_started_it_still_answers() {
        let model = slow(false);
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let batches = first.block_on(async { QueryBatches::new(model.clone()) });
        drop(first);
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = second
            .block_on(batches.embed_queries(&["still there?".to_string()]))
            .unwrap();
        assert_eq!(got, vec![HashEmbedder::default().vector("still there?")]);
    }
}
