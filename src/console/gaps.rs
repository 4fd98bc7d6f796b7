//! The Knowledge gaps page (owners and authors): the questions people had to answer, grouped
//! by meaning with counts and a weekly trend; the FAQ entries proposed from the inbox, each
//! with a form to edit, approve (it joins the agent's knowledge), reject or delete it; the
//! approved entries and their eval suite. Plain forms with the session's CSRF token; every
//! change goes through the JSON API's functions ([`crate::http::api::faq`]).

use std::collections::HashMap;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Value};

use super::{acting, describe, error_page, page_viewer, render, Viewer};
use crate::accounts::Roles;
use crate::domain::{FaqProposalId, FaqStatus};
use crate::http::api::faq::{self as api, GapParams, NewProposal, ProposalEdit};
use crate::http::{ApiError, AppState};
use crate::knowledge::faq::{Actor, MAX_ANSWER, MAX_QUESTION};
use crate::store::FaqFilter;

/// The page's routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/knowledge-gaps", get(gaps_page))
        .route("/knowledge-gaps/proposals", post(create))
        .route("/knowledge-gaps/proposals/{proposal}", post(change))
        .route("/knowledge-gaps/suite", get(suite))
}

/// The page's query: the period and the agent.
#[derive(Debug, Default, serde::Deserialize)]
struct PageParams {
    #[serde(default)]
    weeks: String,
    #[serde(default)]
    agent: String,
}

impl PageParams {
    fn api(&self) -> Result<GapParams, ApiError> {
        let weeks = match self.weeks.trim() {
            "" => None,
            w => Some(
                w.parse()
                    .map_err(|_| ApiError::invalid("weeks", "must be a number of weeks"))?,
            ),
        };
        Ok(GapParams {
            weeks,
            agent: Some(self.agent.clone()).filter(|a| !a.trim().is_empty()),
        })
    }
}

/// Weekly counts as bars: an inline SVG the page's policy allows (no style, no script).
fn bars(weekly: &[usize]) -> Value {
    let max = weekly.iter().copied().max().unwrap_or(0).max(1);
    let bars: Vec<Value> = weekly
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let height = if n == 0 { 1 } else { 2 + n * 20 / max };
            context! { x => i * 8, y => 22 - height, height, n }
        })
        .collect();
    context! { bars, width => weekly.len() * 8 }
}

async fn values(state: &AppState, viewer: &Viewer, params: &PageParams) -> Result<Value, ApiError> {
    let ws = viewer.caller.workspace;
    let query = params.api()?;
    let report = api::gap_report(state, &viewer.caller, &query).await?;
    let agents = state.store.list_agents(ws).await?;
    let agent_name = |id: Option<crate::domain::AgentId>| {
        id.and_then(|id| agents.iter().find(|a| a.id == id))
            .map(|a| a.name.clone())
    };
    let names: HashMap<String, String> = state
        .store
        .members(ws)
        .await?
        .into_iter()
        .map(|m| (m.user.id.to_string(), m.user.name))
        .collect();
    let proposals = state.store.faq_proposals(ws, FaqFilter::default()).await?;
    let shown = |status: FaqStatus| -> Vec<Value> {
        proposals
            .iter()
            .filter(|p| p.status == status)
            .map(|p| {
                context! {
                    id => p.id.to_string(),
                    question => p.question,
                    answer => p.answer,
                    agent => agent_name(p.agent_id),
                    conversation_id => p.conversation_id.map(|c| c.to_string()),
                    answer_message_id => p.answer_message_id.map(|m| m.to_string()),
                    proposed_by_name => p.proposed_by_name,
                    created_at => p.created_at.to_rfc3339(),
                    decided_at => p.decided_at.map(|t| t.to_rfc3339()),
                    decided_by => p.decided_by.and_then(|u| names.get(&u.to_string()).cloned()),
                }
            })
            .collect()
    };
    let groups: Vec<Value> = report
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let examples: Vec<Value> = g
                .examples
                .iter()
                .map(|e| {
                    context! {
                        conversation_id => e.conversation_id.to_string(),
                        message_id => e.message_id.to_string(),
                        text => e.text,
                        asked_at => e.asked_at.to_rfc3339(),
                        escalated => e.escalated,
                        agent => agent_name(e.agent_id),
                        reply => e.reply.as_ref().map(|r| context! {
                            message_id => r.message_id.to_string(),
                            text => r.text,
                            by => r.sent_by.and_then(|u| names.get(&u.to_string()).cloned()),
                        }),
                    }
                })
                .collect();
            // The newest reply a person gave to the group's questions: what one click proposes.
            let reply = g
                .examples
                .iter()
                .find_map(|e| e.reply.as_ref().map(|r| r.message_id.to_string()));
            let trend = match g.last_7_days.cmp(&g.previous_7_days) {
                std::cmp::Ordering::Greater => "up",
                std::cmp::Ordering::Less => "down",
                std::cmp::Ordering::Equal => "flat",
            };
            context! {
                n => i + 1,
                question => g.question,
                count => g.count,
                escalated => g.escalated,
                answered_by_person => g.answered_by_person,
                last_7_days => g.last_7_days,
                previous_7_days => g.previous_7_days,
                trend,
                weekly => bars(&g.weekly),
                weekly_text => g.weekly.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", "),
                examples,
                reply,
                agent => g.examples.first().and_then(|e| agent_name(e.agent_id)),
                proposal => g.proposal.as_ref().map(|p| context! {
                    id => p.id.to_string(),
                    status => p.status.as_str(),
                }),
            }
        })
        .collect();
    let approved = shown(FaqStatus::Approved);
    let approved_agents: Vec<String> = {
        let mut names: Vec<String> = proposals
            .iter()
            .filter(|p| p.status == FaqStatus::Approved)
            .filter_map(|p| agent_name(p.agent_id))
            .collect();
        names.sort();
        names.dedup();
        names
    };
    Ok(context! {
        page => "gaps",
        weeks => query.weeks.unwrap_or(8),
        week_options => vec![2, 4, 8, 12, 26],
        agent => params.agent.trim(),
        agents => agents.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
        questions => report.questions,
        groups,
        proposed => shown(FaqStatus::Proposed),
        approved,
        approved_agents,
        rejected => shown(FaqStatus::Rejected),
        max_question => MAX_QUESTION,
        max_answer => MAX_ANSWER,
    })
}

async fn gaps_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, Roles::AUTHORS, "/knowledge-gaps").await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    match values(&state, &viewer, &params).await {
        Ok(page) => render(StatusCode::OK, "gaps.html", Some(&viewer), page),
        Err(e) => error_page(Some(&viewer), e),
    }
}

/// A form of the page: signed in as an owner or author, with this session's CSRF token.
async fn author(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Viewer, Response> {
    let viewer = acting(state, headers, form).await?;
    if !Roles::AUTHORS.allows(viewer.caller.role) {
        let e = ApiError::Forbidden(format!(
            "the {} role may not change the knowledge",
            viewer.caller.role
        ));
        return Err(error_page(Some(&viewer), e));
    }
    Ok(viewer)
}

/// Back to the page at `anchor` once done; the page again saying why when it failed.
async fn back<T>(
    state: &AppState,
    viewer: &Viewer,
    anchor: &str,
    done: Result<T, ApiError>,
) -> Response {
    let e = match done {
        Ok(_) => return Redirect::to(&format!("/knowledge-gaps#{anchor}")).into_response(),
        Err(e) => e,
    };
    let status = e.status_code();
    if status.is_server_error() {
        return error_page(Some(viewer), e);
    }
    match values(state, viewer, &PageParams::default()).await {
        Ok(page) => render(
            status,
            "gaps.html",
            Some(viewer),
            context! { error => describe(&e), ..page },
        ),
        Err(e) => error_page(Some(viewer), e),
    }
}

fn field(form: &HashMap<String, String>, name: &str) -> Option<String> {
    form.get(name).cloned()
}

/// A new proposal: from a group's reply (`message`), or written out (`question`, `answer`,
/// `agent`).
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let viewer = match author(&state, &headers, &form).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let body = match form.get("message").filter(|m| !m.is_empty()) {
        Some(m) => match m.parse() {
            Ok(id) => NewProposal {
                message_id: Some(id),
                ..Default::default()
            },
            Err(_) => {
                let e = ApiError::invalid("message", "is not a message id");
                return back(&state, &viewer, "proposed", Err::<(), _>(e)).await;
            }
        },
        None => NewProposal {
            message_id: None,
            question: Some(field(&form, "question").unwrap_or_default()),
            answer: Some(field(&form, "answer").unwrap_or_default()),
            agent: field(&form, "agent").filter(|a| !a.is_empty()),
        },
    };
    match api::make_proposal(&state, &viewer.caller, body).await {
        Ok((p, _)) => Redirect::to(&format!("/knowledge-gaps#p-{}", p.id)).into_response(),
        Err(e) => back(&state, &viewer, "proposed", Err::<(), _>(e)).await,
    }
}

/// A proposal's form: `action` is `save`, `approve`, `reject` or `delete`.
async fn change(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let viewer = match author(&state, &headers, &form).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let Ok(id) = id.parse::<FaqProposalId>() else {
        return error_page(
            Some(&viewer),
            ApiError::NotFound(format!("no FAQ proposal {id}")),
        );
    };
    let anchor = format!("p-{id}");
    let edit = ProposalEdit {
        question: field(&form, "question"),
        answer: field(&form, "answer"),
        agent: field(&form, "agent"),
    };
    let name = match api::caller_name(&state, &viewer.caller).await {
        Ok(n) => n,
        Err(e) => return error_page(Some(&viewer), e),
    };
    let by = Actor {
        user: viewer.caller.actor.user(),
        name: &name,
    };
    let ws = viewer.caller.workspace;
    let done: Result<(), ApiError> = match form.get("action").map(String::as_str) {
        Some("save") => match edit.resolve(&state, &viewer.caller).await {
            Ok(edit) => state
                .knowledge
                .edit_proposal(ws, id, edit)
                .await
                .map(|_| ())
                .map_err(ApiError::from),
            Err(e) => Err(e),
        },
        Some("approve") => match edit.resolve(&state, &viewer.caller).await {
            Ok(edit) => api::approve_proposal(&state, &viewer.caller, id, edit)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        },
        Some("reject") => state
            .knowledge
            .reject_proposal(ws, id, by)
            .await
            .map(|_| ())
            .map_err(ApiError::from),
        Some("delete") => state
            .knowledge
            .delete_proposal(ws, id)
            .await
            .map_err(ApiError::from),
        _ => Err(ApiError::invalid(
            "action",
            "must be save, approve, reject or delete",
        )),
    };
    back(&state, &viewer, &anchor, done).await
}

/// The suite query.
#[derive(Debug, serde::Deserialize)]
struct SuiteParams {
    #[serde(default)]
    agent: String,
}

/// An agent's approved entries as an eval suite file, to download.
async fn suite(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SuiteParams>,
) -> Response {
    let viewer = match page_viewer(&state, &headers, Roles::AUTHORS, "/knowledge-gaps").await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    if p.agent.trim().is_empty() {
        return error_page(Some(&viewer), ApiError::invalid("agent", "choose an agent"));
    }
    match api::faq_suite(&state, &viewer.caller, p.agent.trim()).await {
        Ok(suite) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/yaml; charset=utf-8".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"approved-faq-{}.yaml\"", suite.agent),
                ),
            ],
            suite.suite,
        )
            .into_response(),
        Err(e) => error_page(Some(&viewer), e),
    }
}
