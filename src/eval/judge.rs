//! The LLM judge behind `judge` assertions: an OpenAI-compatible chat model given the rubric,
//! the conversation, the passages and the reply (prompt `prompts/eval_judge.md.j2`), whose
//! answer is read robustly — a JSON object, or a score in prose — and normalised to 0-1.

use std::sync::Arc;

use crate::config::Settings;
use crate::llm::{ChatMessage, ChatModel, ChatRequest, ChatRole, LlmError};
use crate::prompts::{PromptError, Prompts};

/// Why the judge could not grade.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The judge prompt is broken.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The model server failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The answer had no score in it.
    #[error("no score in the judge's answer: {0}")]
    Unreadable(String),
}

/// A grade, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Grade {
    /// 0 (fails the rubric) to 1 (fully meets it).
    pub score: f64,
    /// The judge's reason, when it gave one.
    pub reason: String,
}

/// Grades replies against rubrics.
pub struct Judge {
    model: Arc<dyn ChatModel>,
    prompts: Arc<Prompts>,
}

/// Longest judge answer kept in an error.
const MAX_SHOWN: usize = 200;

impl Judge {
    /// A judge over `model`, with the judge prompt from `prompts`.
    pub fn new(model: Arc<dyn ChatModel>, prompts: Arc<Prompts>) -> Self {
        Self { model, prompts }
    }

    /// The configured judge: `eval.judge`, else the `llm.openai` server when one is set up;
    /// `None` when neither is.
    pub fn from_settings(
        settings: &Settings,
        prompts: Arc<Prompts>,
    ) -> Result<Option<Self>, LlmError> {
        let server = match &settings.eval.judge {
            Some(judge) => judge,
            None if settings.llm.openai_configured() => &settings.llm.openai,
            None => return Ok(None),
        };
        let model = crate::llm::openai::OpenAiChat::new(server)?;
        Ok(Some(Self::new(Arc::new(model), prompts)))
    }

    /// The model's name, for reports.
    pub fn name(&self) -> &str {
        self.model.name()
    }

    /// Grades `reply` against `rubric`.
    pub async fn grade(
        &self,
        rubric: &str,
        conversation: &[(&str, &str)],
        sources: &[String],
        reply: &str,
    ) -> Result<Grade, JudgeError> {
        let prompt = self
            .prompts
            .eval_judge(rubric, conversation, sources, reply)?;
        let messages = [ChatMessage::new(ChatRole::User, prompt)];
        let completion = self
            .model
            .complete(&ChatRequest {
                messages: &messages,
                question: reply,
                previous: None,
                sources: &[],
                lexicon: None,
                centre: None,
                embedded: None,
                model: None,
                // Grading should not vary from run to run.
                temperature: 0.0,
                max_tokens: 200,
            })
            .await?;
        parse_grade(&completion.text).ok_or_else(|| {
            JudgeError::Unreadable(completion.text.chars().take(MAX_SHOWN).collect())
        })
    }
}

/// Maps a raw score to 0-1: integers 1-5 are the asked-for scale; decimals within 0-1 are taken
/// as they are; `n/m` is read on a 1-m scale.
fn normalise(value: f64, out_of: Option<f64>, had_point: bool) -> Option<f64> {
    if !value.is_finite() {
        return None;
    }
    let score = match out_of {
        Some(m) if m > 1.0 => (value - 1.0) / (m - 1.0),
        Some(_) => return None,
        None if had_point && (0.0..=1.0).contains(&value) => value,
        None if (1.0..=5.0).contains(&value) => (value - 1.0) / 4.0,
        None if value == 0.0 => 0.0,
        None => return None,
    };
    Some(score.clamp(0.0, 1.0))
}

/// Reads a grade from a judge's answer: a JSON object `{"score": .., "reason": ..}` anywhere in
/// it (code fences and chatter around it are tolerated), or failing that a "score: 4",
/// "4/5" or "Score 0.8" in prose.
pub fn parse_grade(text: &str) -> Option<Grade> {
    // JSON objects, from each opening brace to the first closing brace that parses.
    for (start, _) in text.match_indices('{') {
        for (end, _) in text[start..].match_indices('}') {
            let candidate = &text[start..start + end + 1];
            let Ok(value) = serde_json::from_str::<serde_json::Value>(candidate) else {
                continue;
            };
            let score = match value.get("score") {
                Some(serde_json::Value::Number(n)) => n
                    .as_f64()
                    .map(|v| (v, n.is_f64() && !n.is_i64() && !n.is_u64())),
                Some(serde_json::Value::String(s)) => {
                    s.trim().parse::<f64>().ok().map(|v| (v, s.contains('.')))
                }
                _ => None,
            };
            if let Some((raw, had_point)) = score {
                let reason = value
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                return normalise(raw, None, had_point).map(|score| Grade { score, reason });
            }
            break;
        }
    }
    static PROSE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let prose = PROSE.get_or_init(|| {
        regex::Regex::new(
            r"(?i)(?:score|rating|grade)\W{0,3}(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+))?|(\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+)",
        )
        .expect("static pattern compiles")
    });
    let caps = prose.captures(text)?;
    let (value, out_of) = match (caps.get(1), caps.get(3)) {
        (Some(v), _) => (v, caps.get(2)),
        (None, Some(v)) => (v, caps.get(4)),
        (None, None) => return None,
    };
    let had_point = value.as_str().contains('.');
    let value: f64 = value.as_str().parse().ok()?;
    let out_of = out_of.and_then(|m| m.as_str().parse::<f64>().ok());
    normalise(value, out_of, had_point).map(|score| Grade {
        score,
        reason: text.trim().chars().take(MAX_SHOWN).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grades_in_every_shape_judges_answer_in() {
        let cases: &[(&str, Option<f64>)] = &[
            (r#"{"score": 5, "reason": "complete"}"#, Some(1.0)),
            (r#"{"score": 1, "reason": "wrong"}"#, Some(0.0)),
            (r#"{"score": 4}"#, Some(0.75)),
            (r#"{"score": "3"}"#, Some(0.5)),
            (r#"{"score": 0.8, "reason": "x"}"#, Some(0.8)),
            (
                "Sure! Here is my grade:\n```json\n{\"score\": 2, \"reason\": \"vague\"}\n```",
                Some(0.25),
            ),
            ("Score: 4/5. Clear and sourced.", Some(0.75)),
            ("I would rate it 3 out of 5.", Some(0.5)),
            ("score = 0.9", Some(0.9)),
            ("Rating: 8/10", Some(7.0 / 9.0)),
            ("The reply is fine.", None),
            (r#"{"score": 42}"#, None),
            (r#"{"verdict": "good"}"#, None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = parse_grade(text).map(|g| g.score);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{text}: {g} != {w}"),
                (None, None) => {}
                _ => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(
            parse_grade(r#"{"score": 5, "reason": " complete "}"#)
                .unwrap()
                .reason,
            "complete"
        );
    }

    #[tokio::test]
    async fn grades_through_the_model_with_the_judge_prompt() {
        let model = crate::testing::scripted([Ok(r#"{"score": 4, "reason": "ok"}"#.to_string())]);
        let judge = Judge::new(model.clone(), Arc::new(Prompts::load(None).unwrap()));
        let grade = judge
            .grade(
                "Gives Saturday's hours.",
                &[("customer", "Open Saturday?")],
                &["Saturday 08:00 – 15:00".into()],
                "Yes, 08:00 to 15:00.",
            )
            .await
            .unwrap();
        assert_eq!(grade.score, 0.75);
        let asked = model.requests();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].temperature, 0.0);
        assert!(asked[0].messages[0].contains("Gives Saturday's hours."));
        assert!(asked[0].messages[0].contains("Yes, 08:00 to 15:00."));
    }

    #[tokio::test]
    async fn an_answer_without_a_score_is_an_error() {
        let model = crate::testing::scripted([Ok("I cannot say.".to_string())]);
        let judge = Judge::new(model, Arc::new(Prompts::load(None).unwrap()));
        let err = judge.grade("r", &[], &[], "reply").await.unwrap_err();
        assert!(matches!(err, JudgeError::Unreadable(_)), "{err}");
    }
}
