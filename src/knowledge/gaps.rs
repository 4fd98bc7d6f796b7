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
/// Paraphrases of one question sit well above it with all-MiniLM, multilingual-e5 and the test
/// embedder; two different questions about one business sit below (see the tests).
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
    let mut out: Vec<f32> = v.iter().zip(centre).map(|(a, b)| a - b).collect();
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
        let proposals = self.proposals_by_message(ws).await?;
        // Newest first: a group's first question, its seed, is its latest wording.
        let asked: Vec<&GapQuestion> = found.iter().rev().collect();
        let vectors = if asked.is_empty() {
            Vec::new()
        } else {
            let texts: Vec<String> = asked.iter().map(|q| q.text.clone()).collect();
            let mean = self.typical_question_mean().await?;
            let mut vectors = Vec::with_capacity(texts.len());
            for batch in texts.chunks(64) {
                for v in self.embedder.embed_queries(batch).await? {
                    vectors.push(centred(&v, &mean));
                }
            }
            vectors
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
    use crate::embed::Embedder;

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

    /// Paraphrases of one question meet, different questions of one business do not, with the
    /// test embedder as with the real ones the tests of `tests/it` load.
    #[tokio::test]
    async fn paraphrases_group_and_other_questions_do_not_with_the_test_embedder() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::testing::store(dir.path()).await;
        let knowledge = super::super::testing::knowledge(store);
        let questions = [
            "Do you deliver on Sundays?",
            "Can you deliver my order on a Sunday?",
            "Is there parking for bicycles?",
            "Where can I park my bicycle?",
            "Do you sell vegan croissants?",
        ];
        let texts: Vec<String> = questions.iter().map(|q| q.to_string()).collect();
        let mean = knowledge.typical_question_mean().await.unwrap();
        let vectors: Vec<Vec<f32>> = knowledge
            .embedder()
            .embed_queries(&texts)
            .await
            .unwrap()
            .iter()
            .map(|v| centred(v, &mean))
            .collect();
        assert_eq!(
            group(&vectors, SAME_QUESTION),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
    }
}
