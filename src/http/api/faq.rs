//! `/knowledge-gaps` and `/faq-proposals`: the questions people had to answer, grouped by
//! meaning, and FAQ entries proposed from their replies. Anyone who reads conversations may
//! propose an entry; authors edit, approve (the entry joins its agent's knowledge) and reject.
//! `/agents/{agent}/faq-suite` is the approved entries as an eval suite. The rules are
//! [`crate::knowledge::gaps`]', [`crate::knowledge::faq`]' and [`crate::eval::from_faq`]'.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{find_agent, Json, Path, Query};
use crate::accounts::{check_limit, Caller, Resource, Roles};
use crate::domain::{AgentId, FaqProposal, FaqProposalId, FaqStatus, MessageId};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::knowledge::faq::{Actor, FaqEdit, APPROVED_SOURCE};
use crate::knowledge::gaps::{GapReport, MAX_WEEKS};
use crate::store::FaqFilter;

/// The routes.
pub fn routes() -> Vec<Route> {
    let one = "/faq-proposals/{proposal}";
    vec![
        Route::get("/knowledge-gaps", Roles::AUTHORS, gaps),
        Route::get("/faq-proposals", Roles::AUTHORS, list),
        Route::post("/faq-proposals", Roles::ANY, propose),
        Route::get(one, Roles::AUTHORS, read),
        Route::patch(one, Roles::AUTHORS, edit),
        Route::delete(one, Roles::AUTHORS, remove),
        Route::post(&format!("{one}/approve"), Roles::AUTHORS, approve),
        Route::post(&format!("{one}/reject"), Roles::AUTHORS, reject),
        Route::get("/agents/{agent}/faq-suite", Roles::AUTHORS, suite),
    ]
}

/// The caller's name, as a proposal or a decision records it.
pub async fn caller_name(state: &AppState, caller: &Caller) -> Result<String, ApiError> {
    Ok(match caller.actor.user() {
        Some(user) => state
            .store
            .user(user)
            .await?
            .map(|u| u.name)
            .unwrap_or_else(|| caller.actor.label()),
        None => "API key".to_string(),
    })
}

/// The report's period and agent.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GapParams {
    /// Weeks back from now, 1-26 (default 8).
    pub weeks: Option<u32>,
    /// Only this agent's conversations (name or id).
    pub agent: Option<String>,
}

/// The knowledge-gap report `params` ask for.
pub async fn gap_report(
    state: &AppState,
    caller: &Caller,
    params: &GapParams,
) -> Result<GapReport, ApiError> {
    let weeks = params.weeks.unwrap_or(8);
    if !(1..=MAX_WEEKS).contains(&weeks) {
        return Err(ApiError::invalid(
            "weeks",
            &format!("must be between 1 and {MAX_WEEKS}"),
        ));
    }
    let agent = match params.agent.as_deref().filter(|a| !a.is_empty()) {
        Some(key) => Some(find_agent(state, caller, key).await?.id),
        None => None,
    };
    Ok(state
        .knowledge
        .knowledge_gaps(caller.workspace, weeks, agent)
        .await?)
}

#[utoipa::path(
    get,
    path = "/knowledge-gaps",
    operation_id = "knowledge_gaps",
    tag = "knowledge",
    summary = "The questions people had to answer, grouped by meaning",
    description = "Customer messages of the period (real conversations, not the sandbox's) that escalated for want of an answer, or that a person answered, grouped by what they ask with the installation's embedder; each group with its counts, per-week counts, the last 7 days against the 7 before, its newest questions with the person's reply, and any FAQ entry proposed from them.",
    params(GapParams),
    responses((status = 200, description = "The groups, the most asked first", body = GapReport))
)]
async fn gaps(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<GapParams>,
) -> Result<Json<GapReport>, ApiError> {
    Ok(Json(gap_report(&state, &caller, &params).await?))
}

/// List filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// `proposed`, `approved` or `rejected`.
    status: Option<FaqStatus>,
    /// Only this agent's (name or id).
    agent: Option<String>,
}

#[utoipa::path(
    get,
    path = "/faq-proposals",
    operation_id = "list_faq_proposals",
    tag = "knowledge",
    summary = "List proposed FAQ entries",
    params(ListParams),
    responses((status = 200, description = "Proposals, newest first (an agent's approved ones in the order of its document)", body = Vec<FaqProposal>))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<FaqProposal>>, ApiError> {
    let agent = match params.agent.as_deref() {
        Some(key) => Some(find_agent(&state, &caller, key).await?.id),
        None => None,
    };
    let filter = FaqFilter {
        status: params.status,
        agent,
        conversation: None,
    };
    Ok(Json(
        state.store.faq_proposals(caller.workspace, filter).await?,
    ))
}

/// A new proposal: from a person's reply (`message_id`), or written out (`question`,
/// `answer` and optionally `agent`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProposal {
    /// A person's reply to a customer: the customer's messages just before it become the
    /// question, the reply the answer, for the conversation's agent.
    pub message_id: Option<MessageId>,
    /// The question (1-500 characters), when written out.
    pub question: Option<String>,
    /// The answer (1-4000 characters), when written out.
    pub answer: Option<String>,
    /// The agent (name or id) whose knowledge it would join, when written out.
    pub agent: Option<String>,
}

/// Makes the proposal `body` asks for; whether it is new.
pub async fn make_proposal(
    state: &AppState,
    caller: &Caller,
    body: NewProposal,
) -> Result<(FaqProposal, bool), ApiError> {
    let name = caller_name(state, caller).await?;
    let by = Actor {
        user: caller.actor.user(),
        name: &name,
    };
    match body {
        NewProposal {
            message_id: Some(message),
            question: None,
            answer: None,
            agent: None,
        } => Ok(state
            .knowledge
            .propose_from_reply(caller.workspace, message, by)
            .await?),
        NewProposal {
            message_id: None,
            question: Some(question),
            answer: Some(answer),
            agent,
        } => {
            let agent = match agent.as_deref() {
                Some(key) => Some(find_agent(state, caller, key).await?.id),
                None => None,
            };
            let made = state
                .knowledge
                .propose_entry(caller.workspace, &question, &answer, agent, by)
                .await?;
            Ok((made, true))
        }
        _ => Err(ApiError::invalid(
            "message_id",
            "give a person's reply (`message_id`) alone, or a `question` and an `answer`",
        )),
    }
}

#[utoipa::path(
    post,
    path = "/faq-proposals",
    operation_id = "propose_faq",
    tag = "knowledge",
    summary = "Propose an FAQ entry",
    description = "From a person's reply to a customer (`message_id`): the customer's words as the question, the reply as the answer; a reply proposed before answers its proposal (200). Or written out (`question`, `answer`, `agent`). An author approves it.",
    request_body = NewProposal,
    responses((status = 201, description = "Proposed", body = FaqProposal), (status = 200, description = "Proposed before", body = FaqProposal))
)]
async fn propose(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewProposal>,
) -> Result<(StatusCode, Json<FaqProposal>), ApiError> {
    let (proposal, created) = make_proposal(&state, &caller, body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(proposal)))
}

#[utoipa::path(
    get,
    path = "/faq-proposals/{proposal}",
    operation_id = "get_faq_proposal",
    tag = "knowledge",
    summary = "Read a proposed FAQ entry",
    params(("proposal" = FaqProposalId, Path, description = "The proposal")),
    responses((status = 200, description = "The proposal", body = FaqProposal))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<FaqProposalId>,
) -> Result<Json<FaqProposal>, ApiError> {
    state
        .store
        .faq_proposal(caller.workspace, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no FAQ proposal {id}")))
}

/// An author's changes; what is absent stays.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalEdit {
    /// The question (1-500 characters).
    pub question: Option<String>,
    /// The answer (1-4000 characters).
    pub answer: Option<String>,
    /// The agent (name or id) whose knowledge it joins.
    pub agent: Option<String>,
}

impl ProposalEdit {
    /// The edit, its agent found in the caller's workspace.
    pub async fn resolve(self, state: &AppState, caller: &Caller) -> Result<FaqEdit, ApiError> {
        let agent: Option<AgentId> = match self.agent.as_deref().filter(|a| !a.is_empty()) {
            Some(key) => Some(
                find_agent(state, caller, key)
                    .await
                    .map_err(|_| ApiError::invalid("agent", &format!("no agent `{key}`")))?
                    .id,
            ),
            None => None,
        };
        Ok(FaqEdit {
            question: self.question,
            answer: self.answer,
            agent,
        })
    }
}

#[utoipa::path(
    patch,
    path = "/faq-proposals/{proposal}",
    operation_id = "edit_faq_proposal",
    tag = "knowledge",
    summary = "Edit a proposed FAQ entry",
    description = "An approved entry's agent's knowledge follows the change.",
    params(("proposal" = FaqProposalId, Path, description = "The proposal")),
    request_body = ProposalEdit,
    responses((status = 200, description = "The proposal", body = FaqProposal))
)]
async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<FaqProposalId>,
    Json(body): Json<ProposalEdit>,
) -> Result<Json<FaqProposal>, ApiError> {
    let edit = body.resolve(&state, &caller).await?;
    Ok(Json(
        state
            .knowledge
            .edit_proposal(caller.workspace, id, edit)
            .await?,
    ))
}

/// Approves proposal `id` with `edit`, within the workspace's document limits.
pub async fn approve_proposal(
    state: &AppState,
    caller: &Caller,
    id: FaqProposalId,
    edit: FaqEdit,
) -> Result<FaqProposal, ApiError> {
    let current = state
        .store
        .faq_proposal(caller.workspace, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no FAQ proposal {id}")))?;
    if let Some(agent) = edit.agent.or(current.agent_id) {
        if let Some(agent) = state.store.agent(agent).await? {
            let stored = state
                .store
                .document_by_source(&agent.collection(), APPROVED_SOURCE)
                .await?;
            let bytes = edit.question.as_ref().unwrap_or(&current.question).len()
                + edit.answer.as_ref().unwrap_or(&current.answer).len();
            check_limit(
                state.store.as_ref(),
                caller.workspace,
                Resource::Document {
                    bytes: bytes as u64,
                    new_document: stored.is_none(),
                },
            )
            .await?;
        }
    }
    let name = caller_name(state, caller).await?;
    let by = Actor {
        user: caller.actor.user(),
        name: &name,
    };
    Ok(state
        .knowledge
        .approve_proposal(caller.workspace, id, edit, by)
        .await?)
}

#[utoipa::path(
    post,
    path = "/faq-proposals/{proposal}/approve",
    operation_id = "approve_faq_proposal",
    tag = "knowledge",
    summary = "Approve a proposed FAQ entry",
    description = "With the author's last edits (optional body). The entry joins its agent's knowledge: the agent's approved entries are the document `approved-answers.md`, ingested again; and its eval suite (`GET /agents/{agent}/faq-suite`).",
    params(("proposal" = FaqProposalId, Path, description = "The proposal")),
    request_body(content = Option<ProposalEdit>, description = "Last edits"),
    responses((status = 200, description = "Approved", body = FaqProposal))
)]
async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<FaqProposalId>,
    body: axum::body::Bytes,
) -> Result<Json<FaqProposal>, ApiError> {
    let body: ProposalEdit = super::optional_json(&body)?;
    let edit = body.resolve(&state, &caller).await?;
    Ok(Json(approve_proposal(&state, &caller, id, edit).await?))
}

#[utoipa::path(
    post,
    path = "/faq-proposals/{proposal}/reject",
    operation_id = "reject_faq_proposal",
    tag = "knowledge",
    summary = "Reject a proposed FAQ entry",
    description = "Kept as rejected, so the same reply is not proposed again; an approved entry leaves its agent's knowledge.",
    params(("proposal" = FaqProposalId, Path, description = "The proposal")),
    responses((status = 200, description = "Rejected", body = FaqProposal))
)]
async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<FaqProposalId>,
) -> Result<Json<FaqProposal>, ApiError> {
    let name = caller_name(&state, &caller).await?;
    let by = Actor {
        user: caller.actor.user(),
        name: &name,
    };
    Ok(Json(
        state
            .knowledge
            .reject_proposal(caller.workspace, id, by)
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/faq-proposals/{proposal}",
    operation_id = "delete_faq_proposal",
    tag = "knowledge",
    summary = "Delete a proposed FAQ entry",
    description = "An approved entry leaves its agent's knowledge.",
    params(("proposal" = FaqProposalId, Path, description = "The proposal")),
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<FaqProposalId>,
) -> Result<StatusCode, ApiError> {
    state
        .knowledge
        .delete_proposal(caller.workspace, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An agent's approved entries as an eval suite.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FaqSuite {
    /// The agent it runs against.
    pub agent: String,
    /// How many cases (one per approved entry).
    pub cases: usize,
    /// The suite's YAML text, ready to run inline (`POST /eval/runs {"suite": ...}`) or to keep
    /// in a suite file.
    pub suite: String,
}

/// The eval suite of agent `key`'s approved entries.
pub async fn faq_suite(state: &AppState, caller: &Caller, key: &str) -> Result<FaqSuite, ApiError> {
    let agent = find_agent(state, caller, key).await?;
    let entries = state
        .store
        .faq_proposals(
            caller.workspace,
            FaqFilter {
                status: Some(FaqStatus::Approved),
                agent: Some(agent.id),
                conversation: None,
            },
        )
        .await?;
    let suite = crate::eval::from_faq::suite_from_faq(&agent, &entries).ok_or_else(|| {
        ApiError::NotFound(format!(
            "agent `{}` has no approved FAQ entries",
            agent.name
        ))
    })?;
    Ok(FaqSuite {
        agent: agent.name,
        cases: entries.len(),
        suite,
    })
}

#[utoipa::path(
    get,
    path = "/agents/{agent}/faq-suite",
    operation_id = "faq_suite",
    tag = "knowledge",
    summary = "The approved FAQ entries as an eval suite",
    description = "A case per approved entry: its question must be answered, not escalated, with the answer's key facts (figures, names), citing `approved-answers.md`. 404 while the agent has none.",
    params(("agent" = String, Path, description = "The agent's name or id")),
    responses((status = 200, description = "The suite's YAML text", body = FaqSuite))
)]
async fn suite(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent): Path<String>,
) -> Result<Json<FaqSuite>, ApiError> {
    Ok(Json(faq_suite(&state, &caller, &agent).await?))
}
