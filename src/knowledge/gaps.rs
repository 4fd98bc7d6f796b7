//! Knowledge gaps: the customer questions that escalated, or that a person answered, grouped
//! by what they ask, with how many came each week. A group a person keeps answering is an
//! answer missing from the knowledge; [`super::faq`] turns a person's reply into one.
//!
//! Questions are compared with the installation's own embedder, each vector centred on the
//! mean of the typical questions ([`super::relevance`]): what every customer question shares
//! ("do you…", "can I…") is taken away, and what is left is what this one asks. Groups form in
//! one pass, newest question first: a question joins the group whose centre it is nearest, when
//! near enough, and starts a group of its own otherwise.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Knowledge, KnowledgeError};
use crate::domain::{AgentId, ConversationId, FaqProposalId, FaqStatus, MessageId, UserId};
use crate::embed::cosine;
use crate::store::{FaqFilter, GapQuestion, StoreError};

/// How near (cosine of the centred vectors) a question must be to a group's centre to join it.
/// Measured on a bakery's questions with all-MiniLM and multilingual-e5: close paraphrases
/// ("Do you deliver on Sundays?", "Can you deliver my order on a Sunday?") sit at 0.79-0.86,
/// different questions on neighbouring topics (parking a bicycle, charging an electric car) at
/// most 0.43; freer paraphrases ("Do you donate leftover bread to charity?", "What happens to
/// unsold loaves at closing time?", 0.26-0.43) stay apart, which costs a group, not an answer.
pub const SAME_QUESTION: f32 = 0.5;

/// The most questions one report reads (the newest).
pub const MAX_QUESTIONS: u32 = 5000;

/// The examples kept per group.
const EXAMPLES: usize = 5;

/// The longest period a report covers, in weeks.
pub const MAX_WEEKS: u32 = 26;

/// A knowledge-gap report over the last `weeks` weeks.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GapReport {
    /// The start of the period.
    pub since: DateTime<Utc>,
    /// When the report was made (the end of the period).
    pub until: DateTime<Utc>,
    /// The weeks the trend counts cover, oldest first: each the start of a 7-day span ending
    /// at `until`.
    pub weeks: Vec<DateTime<Utc>>,
    /// How many questions were read.
    pub questions: usize,
    /// The groups, the most asked first.
    pub groups: Vec<GapGroup>,
}

/// Questions that ask the same thing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GapGroup {
    /// The question that says it best (the nearest to the group's centre).
    pub question: String,
    /// How many questions.
    pub count: usize,
    /// How many escalated.
    pub escalated: usize,
    /// How many a person answered.
    pub answered_by_person: usize,
    /// Questions in the last 7 days.
    pub last_7_days: usize,
    /// Questions in the 7 days before those.
    pub previous_7_days: usize,
    /// Questions per week, oldest first (as [`GapReport::weeks`]).
    pub weekly: Vec<usize>,
    /// The newest questions of the group.
    pub examples: Vec<GapExample>,
    /// The FAQ entry already proposed for one of its questions, if any.
    pub proposal: Option<GapProposal>,
}

/// One question of a group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GapExample {
    /// The customer's message.
    pub message_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// The agent answering it.
    pub agent_id: Option<AgentId>,
    /// What the customer said.
    pub text: String,
    /// When.
    pub asked_at: DateTime<Utc>,
    /// Whether it escalated.
    pub escalated: bool,
    /// A person's reply to it.
    pub reply: Option<GapExampleReply>,
}

/// A person's reply to a question.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GapExampleReply {
    /// The reply.
    pub message_id: MessageId,
    /// What the person said.
    pub text: String,
    /// Who, when sent from the inbox.
    pub sent_by: Option<UserId>,
}

/// An FAQ entry proposed from one of a group's questions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GapProposal {
    /// The proposal.
    pub id: FaqProposalId,
    /// Where it stands.
    pub status: FaqStatus,
}

/// Groups of question vectors: the index of each group's questions, in the order given.
/// `vectors` are unit-length and already centred.
pub fn group(vectors: &[Vec<f32>], threshold: f32) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Vec<f32>, Vec<usize>)> = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        let best = groups
            .iter()
            .enumerate()
            .map(|(g, (sum, _))| (g, cosine(v, sum)))
            .filter(|(_, score)| *score >= threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((g, _)) => {
                let (sum, members) = &mut groups[g];
                for (s, x) in sum.iter_mut().zip(v) {
                    *s += x;
                }
                members.push(i);
            }
            None => groups.push((v.clone(), vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// `v` minus `centre`, made unit-length again (left as it is when nothing is left).
fn centred(v: &[f32], centre: &[f32]) -> Vec<f32> {
    let mut out = super::relevance::minus(v, centre);
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm <= f32::EPSILON {
        return v.to_vec();
    }
    for x in &mut out {
        *x /= norm;
    }
    out
}

impl Knowledge {
    /// The knowledge-gap report of workspace `ws` over the last `weeks` weeks (1 to
    /// [`MAX_WEEKS`]), for one agent's conversations or all of them.
    pub async fn knowledge_gaps(
        &self,
        ws: crate::domain::WorkspaceId,
        weeks: u32,
        agent: Option<AgentId>,
    ) -> Result<GapReport, KnowledgeError> {
        let weeks = weeks.clamp(1, MAX_WEEKS);
        let until = Utc::now();
        let since = until - Duration::days(7 * i64::from(weeks));
        let found = self
            .store
            .gap_questions(ws, since, agent, MAX_QUESTIONS)
            .await?;
        let found: Vec<GapQuestion> = found
            .into_iter()
            .filter(|q| !is_courtesy(&q.text))
            .collect();
        let proposals = self.proposals_by_message(ws).await?;
        // Newest first: a group's first question, its seed, is its latest wording.
        let asked: Vec<&GapQuestion> = found.iter().rev().collect();
        let vectors = if asked.is_empty() {
            Vec::new()
        } else {
            let texts: Vec<String> = asked.iter().map(|q| q.text.clone()).collect();
            let mean = self.typical_question_mean().await?;
            self.question_vectors(super::Asker::Workspace(ws), &texts)
                .await?
                .0
                .iter()
                .map(|v| centred(v, &mean))
                .collect()
        };
        let week_starts: Vec<DateTime<Utc>> = (0..weeks)
            .rev()
            .map(|w| until - Duration::days(7 * (i64::from(w) + 1)))
            .collect();
        let mut groups: Vec<GapGroup> = group(&vectors, SAME_QUESTION)
            .into_iter()
            .map(|members| {
                let mut centre = vec![0f32; vectors[members[0]].len()];
                for &i in &members {
                    for (c, x) in centre.iter_mut().zip(&vectors[i]) {
                        *c += x;
                    }
                }
                let best = members
                    .iter()
                    .copied()
                    .max_by(|&a, &b| {
                        cosine(&vectors[a], &centre).total_cmp(&cosine(&vectors[b], &centre))
                    })
                    .unwrap_or(members[0]);
                let mut weekly = vec![0usize; weeks as usize];
                for &i in &members {
                    let age = (until - asked[i].asked_at).num_days().max(0) / 7;
                    let slot = (weeks as i64 - 1 - age).clamp(0, weeks as i64 - 1) as usize;
                    weekly[slot] += 1;
                }
                let proposal = members.iter().find_map(|&i| {
                    let q = asked[i];
                    proposals
                        .get(&q.message_id)
                        .or_else(|| q.reply.as_ref().and_then(|r| proposals.get(&r.message_id)))
                        .cloned()
                });
                GapGroup {
                    question: asked[best].text.clone(),
                    count: members.len(),
                    escalated: members.iter().filter(|&&i| asked[i].escalated).count(),
                    answered_by_person: members
                        .iter()
                        .filter(|&&i| asked[i].reply.is_some())
                        .count(),
                    last_7_days: weekly.last().copied().unwrap_or(0),
                    previous_7_days: if weekly.len() > 1 {
                        weekly[weekly.len() - 2]
                    } else {
                        0
                    },
                    weekly,
                    examples: members
                        .iter()
                        .take(EXAMPLES)
                        .map(|&i| example(asked[i]))
                        .collect(),
                    proposal,
                }
            })
            .collect();
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(b.examples[0].asked_at.cmp(&a.examples[0].asked_at))
        });
        Ok(GapReport {
            since,
            until,
            weeks: week_starts,
            questions: asked.len(),
            groups,
        })
    }

    /// The workspace's proposals by the customer message and the reply they were made from.
    async fn proposals_by_message(
        &self,
        ws: crate::domain::WorkspaceId,
    ) -> Result<HashMap<MessageId, GapProposal>, StoreError> {
        let mut by_message = HashMap::new();
        for p in self.store.faq_proposals(ws, FaqFilter::default()).await? {
            let shown = GapProposal {
                id: p.id,
                status: p.status,
            };
            for m in [p.question_message_id, p.answer_message_id]
                .into_iter()
                .flatten()
            {
                by_message.insert(m, shown.clone());
            }
        }
        Ok(by_message)
    }
}

/// Words that open a message asking nothing: thanks, goodbyes, acknowledgements.
const COURTESIES: &[&str] = &[
    "thanks", "thank", "thx", "ty", "ok", "okay", "great", "perfect", "bye", "goodbye", "cheers",
    "obrigado", "obrigada", "obg", "valeu", "tchau", "adeus", "perfeito", "gracias", "vale",
    "adiós", "adios", "perfecto", "merci", "danke",
];

/// Whether a customer's message is courtesy, not a question ("Thanks, that was all I
/// needed"): it opens with a word of [`COURTESIES`] and asks nothing (no `?`). Such a message
/// may escalate (the bot found nothing to say to it) but no knowledge is missing.
pub fn is_courtesy(text: &str) -> bool {
    if text.contains('?') || text.contains('¿') {
        return false;
    }
    let first = text
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .map(str::to_lowercase);
    first.is_some_and(|w| COURTESIES.contains(&w.as_str()))
}

fn example(q: &GapQuestion) -> GapExample {
    GapExample {
        message_id: q.message_id,
        conversation_id: q.conversation_id,
        agent_id: q.agent_id,
        text: q.text.clone(),
        asked_at: q.asked_at,
        escalated: q.escalated,
        reply: q.reply.as_ref().map(|r| GapExampleReply {
            message_id: r.message_id,
            text: r.text.clone(),
            sent_by: r.sent_by,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn near_vectors_group_and_far_ones_stay_apart() {
        let vectors = vec![
            unit(&[1.0, 0.0, 0.0]),
            unit(&[0.0, 1.0, 0.0]),
            unit(&[0.9, 0.1, 0.0]),
            unit(&[0.0, 0.0, 1.0]),
            unit(&[0.1, 0.95, 0.0]),
        ];
        assert_eq!(group(&vectors, 0.8), vec![vec![0, 2], vec![1, 4], vec![3]]);
        // Nothing is near enough at a threshold above every pair.
        assert_eq!(group(&vectors, 1.01).len(), 5);
        assert!(group(&[], 0.5).is_empty());
    }

    #[test]
    fn courtesy_is_no_question() {
        for text in [
            "Thanks, that was all I needed",
            "ok",
            "Obrigada! Até amanhã",
            "Gracias, vale.",
            "👍 thanks",
        ] {
            assert!(is_courtesy(text), "{text}");
        }
        for text in [
            "Thanks! And do you deliver on Sundays?",
            "I need an invoice with my tax number",
            "Where do I park, ok",
            "",
        ] {
            assert!(!is_courtesy(text), "{text}");
        }
    }

    #[test]
    fn centring_takes_the_shared_part_away() {
        let a = unit(&[1.0, 1.0, 0.0]);
        let b = unit(&[1.0, 0.0, 1.0]);
        let centre = unit(&[1.0, 0.0, 0.0]);
        let before = cosine(&a, &b);
        let after = cosine(&centred(&a, &centre), &centred(&b, &centre));
        assert!(after < before, "{after} < {before}");
        // A vector equal to the centre is left as it is rather than made of nothing.
        assert_eq!(centred(&centre, &centre), centre);
    }

    #[tokio::test]
    async fn a_workspaces_questions_are_embedded_once_while_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::testing::store(dir.path()).await;
        let embedder = std::sync::Arc::new(crate::testing::CountingEmbedder::default());
        let knowledge = super::super::testing::knowledge_with(store, embedder.clone());
        let ws = crate::domain::WorkspaceId::new();
        let asked: Vec<String> = ["Do you deliver?", "Is there parking?"]
            .iter()
            .map(|q| q.to_string())
            .collect();
        let mine = || super::super::Asker::Workspace(ws);
        let (first, _) = knowledge.question_vectors(mine(), &asked).await.unwrap();
        assert_eq!(embedder.questions(), 2);
        // Opened again with one question more: only that one is embedded, and every vector
        // is the one of its own text, in order.
        let more: Vec<String> = [
            "Do you deliver?",
            "Do you sell gift cards?",
            "Is there parking?",
        ]
        .iter()
        .map(|q| q.to_string())
        .collect();
        let (again, kept) = knowledge.question_vectors(mine(), &more).await.unwrap();
        assert_eq!(kept, 2);
        assert_eq!(embedder.questions(), 3);
        assert_eq!(again.len(), 3);
        assert_eq!(again[0], first[0]);
        assert_eq!(again[2], first[1]);
        assert_eq!(
            *again[1],
            crate::testing::HashEmbedder::default().vector("Do you sell gift cards?")
        );
        // Another workspace's report: its own entries.
        let other = super::super::Asker::Workspace(crate::domain::WorkspaceId::new());
        knowledge.question_vectors(other, &asked).await.unwrap();
        assert_eq!(embedder.questions(), 5);
    }

    /// Paraphrases of one question meet, different questions of one business do not, with each
    /// local model there is (the bag-of-words test embedder relates words, not meanings).
    #[tokio::test]
    async fn paraphrases_group_and_other_questions_do_not_with_the_local_models() {
        let questions = [
            "Do you deliver on Sundays?",
            "Can you deliver my order on a Sunday?",
            "Is there parking for bicycles?",
            "Where can I park my bicycle?",
            "Do you sell vegan croissants?",
            "Is there a charging station for electric vehicles?",
        ];
        let texts: Vec<String> = questions.iter().map(|q| q.to_string()).collect();
        let settings = crate::config::EmbeddingSettings::default();
        for name in crate::embed::LOCAL_MODELS {
            if crate::testing::test_model(name).await.is_none() {
                continue;
            }
            let embedder =
                crate::embed::load_local(name, &crate::testing::test_model_store(), &settings)
                    .await
                    .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let store = super::super::testing::store(dir.path()).await;
            let knowledge = super::super::testing::knowledge_with(store, embedder.clone());
            let mean = knowledge.typical_question_mean().await.unwrap();
            let vectors: Vec<Vec<f32>> = embedder
                .embed_queries(&texts)
                .await
                .unwrap()
                .iter()
                .map(|v| centred(v, &mean))
                .collect();
            assert_eq!(
                group(&vectors, SAME_QUESTION),
                vec![vec![0, 1], vec![2, 3], vec![4], vec![5]],
                "{name}"
            );
        }
    }
}
