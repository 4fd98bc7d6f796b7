//! `/agents/{agent}/instructions`: draft an agent's instructions from its documents, and run
//! the agent's eval suites with its saved instructions beside a draft. Nothing is saved here;
//! a draft is saved with the agent's ordinary update (`PATCH /agents/{agent}`,
//! `system_prompt`).

use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{find_agent, optional_json, Json, Path};
use crate::accounts::quota::{self, ModelCalls};
use crate::accounts::{Caller, Roles};
use crate::eval::instructions::{self, Comparison, Draft, DraftError, DraftMode};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::llm::LlmError;

/// Routes under `/agents/{agent}/instructions`: owners and authors, who edit agents.
pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/agents/{agent}/instructions/draft", Roles::AUTHORS, draft),
        Route::post(
            "/agents/{agent}/instructions/compare",
            Roles::AUTHORS,
            compare,
        ),
    ]
}

impl From<DraftError> for ApiError {
    fn from(e: DraftError) -> Self {
        match e {
            e @ (DraftError::NoKnowledge | DraftError::NoModel) => ApiError::Conflict(e.to_string()),
            DraftError::Invalid(fields) => ApiError::Invalid(fields),
            DraftError::Quota(e) => e.into(),
            // The cause is logged where it happened; the caller learns what to do.
            DraftError::Model(LlmError::Transient(_)) => ApiError::Unavailable(
                "the model server did not answer in time or failed; try again, or draft offline"
                    .into(),
            ),
            DraftError::Model(LlmError::Permanent(_) | LlmError::ContextLengthExceeded(_)) => {
                ApiError::Unavailable(
                    "the model server refused to draft (check the llm.openai settings); draft offline instead"
                        .into(),
                )
            }
            DraftError::Prompt(e) => ApiError::internal(e),
            DraftError::Store(e) => e.into(),
            DraftError::Eval(e) => e.into(),
        }
    }
}

impl From<quota::QuotaError> for ApiError {
    fn from(e: quota::QuotaError) -> Self {
        match e {
            quota::QuotaError::Reached { resets_at, .. } => {
                let wait = (resets_at - chrono::Utc::now()).num_seconds().max(1) as u64;
                ApiError::QuotaReached {
                    message: e.to_string(),
                    retry_after_secs: wait,
                }
            }
            quota::QuotaError::Invalid(fields) => ApiError::Invalid(fields),
            quota::QuotaError::Store(e) => e.into(),
        }
    }
}

/// How to draft.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DraftRequest {
    /// `auto` (the default): with the model when the agent answers with `openai` and a server
    /// is configured, else offline.
    #[serde(default)]
    mode: DraftMode,
}

/// A draft of an agent's instructions, run beside the saved ones.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct DraftView {
    #[serde(flatten)]
    draft: Draft,
    /// The agent's eval suites with the saved instructions and with the draft.
    comparison: Comparison,
    /// The workspace's model calls this month, after this draft.
    model_calls: ModelCalls,
}

#[utoipa::path(
    post,
    path = "/agents/{agent}/instructions/draft",
    operation_id = "draft_instructions",
    tag = "agents",
    summary = "Draft an agent's instructions from its documents",
    description = "Writes instructions from the agent's documents — with the OpenAI-compatible server when the agent's answerer is `openai` (one call, counted against the workspace's monthly limit), else assembled from the documents without a model (never counted) — and runs the agent's eval suites (those that start from it: `agent: {from: <name>}`) with the saved instructions and with the draft. Nothing is saved. The body may be empty.",
    params(("agent" = String, Path, description = "The agent's name or id")),
    request_body(content = DraftRequest, description = "How to draft (optional)", example = json!({"mode": "offline"})),
    responses(
        (status = 200, description = "The draft, what made it, and both eval results", body = DraftView),
        (status = 429, description = "The workspace's model calls for the month are used up (`quota_reached`); `Retry-After` says when the count starts again. Offline drafts still work.", body = crate::http::error::ErrorResponse<'static>),
    )
)]
async fn draft(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<DraftView>, ApiError> {
    let request: DraftRequest = optional_json(&body)?;
    let agent = find_agent(&state, &caller, &key).await?;
    let draft = instructions::draft(&state, caller.workspace, &agent, request.mode).await?;
    let comparison = instructions::compare(&state, caller.workspace, &agent, &draft.text).await?;
    let model_calls =
        quota::model_calls(state.store.as_ref(), caller.workspace, chrono::Utc::now()).await?;
    Ok(Json(DraftView {
        draft,
        comparison,
        model_calls,
    }))
}

/// Instructions to run beside the saved ones.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CompareRequest {
    /// The instructions under review (1-32000 bytes), e.g. an edited draft.
    #[schema(example = "You answer Casa Nube Bakery's customers on WhatsApp.")]
    instructions: String,
}

#[utoipa::path(
    post,
    path = "/agents/{agent}/instructions/compare",
    operation_id = "compare_instructions",
    tag = "agents",
    summary = "Run an agent's eval suites with other instructions beside the saved ones",
    description = "Runs the agent's eval suites (those that start from it: `agent: {from: <name>}`) with its saved instructions and with `instructions`, and sets the verdicts side by side. No model call is counted and nothing is saved. With no such suite, `message` says so and `cases` is empty.",
    params(("agent" = String, Path, description = "The agent's name or id")),
    request_body = CompareRequest,
    responses((status = 200, description = "Both results, case by case", body = Comparison))
)]
async fn compare(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Json(request): Json<CompareRequest>,
) -> Result<Json<Comparison>, ApiError> {
    let agent = find_agent(&state, &caller, &key).await?;
    let comparison =
        instructions::compare(&state, caller.workspace, &agent, &request.instructions).await?;
    Ok(Json(comparison))
}
