//! The workspace's pages beyond the inbox: channels (owners), agents and their knowledge, the
//! sandbox and evals (owners and authors), settings (owners). Each page is rendered from the
//! same store reads and views as the JSON API's lists; what a page changes it changes by calling
//! the JSON API from `ui/static/` with the session's CSRF token, so roles, validation and audit
//! are the API's own.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{error_page, page_viewer, render, Viewer};
use crate::accounts::{people, Roles};
use crate::domain::{AgentConfig, EvalRunId, MessageSet, ProviderKind};
use crate::http::api::channels::view as channel_view;
use crate::http::api::{find_agent, find_eval_run};
use crate::http::{ApiError, AppState};
use crate::prompts::Prompts;
use crate::store::ConversationFilter;

/// The pages' routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/channels", get(channels))
        .route("/agents", get(agents))
        .route("/agents/{agent}", get(agent))
        .route("/sandbox", get(sandbox))
        .route("/evals", get(evals))
        .route("/evals/case", get(eval_case))
        .route("/evals/{run}", get(eval_run))
        .route("/settings", get(settings))
}

/// Renders `name` for a viewer `roles` may show it to, with what `build` reads.
pub(super) async fn page<F>(
    state: AppState,
    headers: HeaderMap,
    roles: Roles,
    path: &str,
    name: &str,
    build: F,
) -> Response
where
    F: AsyncFnOnce(&AppState, &Viewer) -> Result<Value, ApiError>,
{
    let viewer = match page_viewer(&state, &headers, roles, path).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    match build(&state, &viewer).await {
        Ok(data) => render(StatusCode::OK, name, Some(&viewer), data),
        Err(e) => error_page(Some(&viewer), e),
    }
}

async fn channels(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(
        state,
        headers,
        Roles::OWNER,
        "/channels",
        "channels.html",
        async |state, viewer| {
            let ws = viewer.caller.workspace;
            let mut shown = Vec::new();
            for channel in state.store.list_channels(Some(ws), None).await? {
                // The newest conversation tells when the channel last heard from a customer.
                let last = state
                    .store
                    .list_conversations(
                        ws,
                        &ConversationFilter {
                            channel_id: Some(channel.id),
                            limit: 1,
                            ..Default::default()
                        },
                    )
                    .await?
                    .into_iter()
                    .next()
                    .map(|c| c.conversation.last_activity_at);
                let pairing = state
                    .channels
                    .provider(channel.provider)
                    .is_ok_and(|p| p.pairing().is_some());
                shown.push(context! {
                    channel => Value::from_serialize(channel_view(state, &viewer.caller, channel)),
                    last_activity => Value::from_serialize(last),
                    pairing,
                });
            }
            let agents = state.store.list_agents(ws).await?;
            let meta_webhook = format!(
                "{}/webhooks/{}",
                state.settings.server.public_url.trim_end_matches('/'),
                ProviderKind::Meta.as_str()
            );
            let graph_versions =
                state
                    .channels
                    .graph_version_choice(ProviderKind::Meta)
                    .map(|choice| {
                        context! { default => choice.default, choosable => choice.choosable }
                    });
            Ok(context! {
                page => "channels",
                channels => shown,
                graph_versions,
                agents => agents
                    .iter()
                    .map(|a| context! { id => a.id.to_string(), name => a.name })
                    .collect::<Vec<_>>(),
                meta_webhook,
                // A verify token to start from: the owner copies it into Meta's form.
                verify_token => people::random_token(),
            })
        },
    )
    .await
}

async fn agents(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(
        state,
        headers,
        Roles::AUTHORS,
        "/agents",
        "agents.html",
        async |state, viewer| {
            let agents = state.store.list_agents(viewer.caller.workspace).await?;
            let mut shown = Vec::new();
            for agent in agents {
                let documents = state.store.list_documents(&agent.collection()).await?;
                shown.push(context! {
                    agent => Value::from_serialize(crate::http::api::agents::AgentView::from(agent)),
                    documents => documents.len(),
                });
            }
            Ok(context! { page => "agents", agents => shown })
        },
    )
    .await
}

async fn agent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let path = format!("/agents/{name}");
    page(
        state,
        headers,
        Roles::AUTHORS,
        &path,
        "agent.html",
        async |state, viewer| {
            let agent = find_agent(state, &viewer.caller, &name).await?;
            let documents = state.store.list_documents(&agent.collection()).await?;
            let max_upload = state.settings.server.max_upload_bytes;
            let languages = message_languages(&agent.config, &state.prompts);
            Ok(context! {
                page => "agents",
                languages,
                agent => Value::from_serialize(crate::http::api::agents::AgentView::from(agent)),
                documents => Value::from_serialize(&documents),
                max_upload,
                max_upload_mib => format!("{:.0}", max_upload as f64 / (1024.0 * 1024.0)),
                formats => ".md,.markdown,.txt,.csv,.html,.htm,.pdf",
            })
        },
    )
    .await
}

/// The bot's own messages in each language the agent page edits: the shipped languages and any
/// the agent has messages of its own in, the agent's language first. Each message shows the
/// agent's wording and the shipped one that stands when it has none. In the agent's language
/// its escalation, voice and hours settings say the rest (see `pipeline::language`), so only
/// the two messages without such a setting are offered there.
fn message_languages(config: &AgentConfig, prompts: &Prompts) -> Vec<Value> {
    let own = config.language.as_deref().unwrap_or("en");
    let mut codes: Vec<&str> = prompts.message_languages().collect();
    codes.extend(
        config
            .messages
            .keys()
            .map(String::as_str)
            .filter(|c| !prompts.message_languages().any(|s| s == *c)),
    );
    codes.sort_by_key(|c| *c != own);
    codes
        .into_iter()
        .map(|code| {
            let mine = config.messages.get(code);
            let fields: Vec<Value> = MessageSet::default()
                .entries()
                .into_iter()
                .map(|(key, _)| key)
                .filter(|key| {
                    code != own || matches!(*key, "unsupported" | "other_language" | "which_one")
                })
                .map(|key| {
                    context! {
                        key,
                        label => message_label(key),
                        value => mine.and_then(|m| m.get(key)),
                        shipped => prompts.message(code, key),
                    }
                })
                .collect();
            context! {
                code,
                name => crate::language::name(code).unwrap_or(code),
                own => code == own,
                customised => mine.is_some(),
                fields,
            }
        })
        .collect()
}

/// What message `key` of a [`MessageSet`] is said for, as the agent page labels it.
fn message_label(key: &str) -> &'static str {
    match key {
        "escalation" => "Handing the conversation to a person",
        "after_hours" => "Handing over out of hours ({opens} is the next opening time)",
        "handback" => "Answering again after a handover",
        "closed" => "Closing an idle conversation",
        "voice_unavailable" => "A voice note that cannot be transcribed",
        "unsupported" => "A message with nothing to answer (a sticker, a location)",
        "other_language" => "Before a quote from documents in another language",
        "which_one" => {
            "Before the names of things priced differently, when the customer did not say which"
        }
        _ => "Message",
    }
}

#[derive(Debug, Deserialize)]
struct SandboxParams {
    agent: Option<String>,
}

async fn sandbox(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SandboxParams>,
) -> Response {
    page(
        state,
        headers,
        Roles::AUTHORS,
        "/sandbox",
        "sandbox.html",
        async |state, viewer| {
            let agents = state.store.list_agents(viewer.caller.workspace).await?;
            let chosen = match &p.agent {
                Some(name) => Some(find_agent(state, &viewer.caller, name).await?),
                None => agents.first().cloned(),
            };
            Ok(context! {
                page => "sandbox",
                agents => Value::from_serialize(
                    agents.iter().map(|a| a.name.clone()).collect::<Vec<_>>()
                ),
                agent => chosen.map(|a| Value::from_serialize(
                    crate::http::api::agents::AgentView::from(a)
                )),
                // One sandbox conversation per page load; "reset" starts it over.
                session => format!("console-{}", &people::random_token()[..12]),
            })
        },
    )
    .await
}

/// The suites "run them all" runs: the eval directory's suite files, named relative to it.
fn suite_names(dir: &std::path::Path) -> Vec<String> {
    crate::eval::suite::suite_files(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|path| path.strip_prefix(dir).ok())
        .map(|rel| rel.to_string_lossy().into_owned())
        .collect()
}

/// Which reply to make a case of.
#[derive(Debug, Deserialize)]
struct CaseParams {
    conversation: String,
    message: String,
}

/// A bot reply from the inbox as an eval case, to edit and run.
async fn eval_case(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<CaseParams>,
) -> Response {
    page(
        state,
        headers,
        Roles::AUTHORS,
        "/evals",
        "eval_case.html",
        async |state, viewer| {
            let bad = |field: &str| ApiError::invalid(field, "is not an id");
            let conversation = p.conversation.parse().map_err(|_| bad("conversation"))?;
            let message = p.message.parse().map_err(|_| bad("message"))?;
            let case = crate::http::api::conversations::make_eval_case(
                state,
                &viewer.caller,
                conversation,
                message,
            )
            .await?;
            Ok(context! {
                page => "evals",
                conversation => p.conversation,
                agent => case.agent,
                suite => case.suite,
            })
        },
    )
    .await
}

async fn evals(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(
        state,
        headers,
        Roles::AUTHORS,
        "/evals",
        "evals.html",
        async |state, viewer| {
            let runs = state
                .store
                .list_eval_runs(viewer.caller.workspace, 50)
                .await?;
            Ok(context! {
                page => "evals",
                runs => Value::from_serialize(&runs),
                suites => suite_names(&state.settings.eval.dir),
            })
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
struct RunParams {
    /// Another run to compare with.
    compare: Option<String>,
}

async fn eval_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<RunParams>,
) -> Response {
    let path = format!("/evals/{id}");
    page(
        state,
        headers,
        Roles::AUTHORS,
        &path,
        "eval.html",
        async |state, viewer| {
            let load = async |id: &str| {
                let id: EvalRunId = id
                    .parse()
                    .map_err(|_| ApiError::NotFound(format!("no eval run {id}")))?;
                find_eval_run(state, &viewer.caller, id).await
            };
            let run = load(&id).await?;
            let other = match p.compare.as_deref().filter(|c| !c.is_empty()) {
                Some(other) => Some(load(other).await?),
                None => None,
            };
            let runs = state
                .store
                .list_eval_runs(viewer.caller.workspace, 50)
                .await?;
            Ok(context! {
                page => "evals",
                run => Value::from_serialize(&run),
                other => Value::from_serialize(&other),
                runs => Value::from_serialize(&runs),
            })
        },
    )
    .await
}

async fn settings(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(
        state,
        headers,
        Roles::OWNER,
        "/settings",
        "settings.html",
        async |state, viewer| {
            let ws = viewer.caller.workspace;
            let members = state.store.members(ws).await?;
            let keys = state.store.list_api_keys(ws).await?;
            let hooks = state.store.list_hooks(ws).await?;
            let labels = state.store.labels(ws).await?;
            let canned = state.store.canned_responses(ws).await?;
            let colours: Vec<&str> = crate::domain::LabelColour::ALL
                .iter()
                .map(|c| c.as_str())
                .collect();
            let (_, health) = crate::http::health(state).await;
            let model_calls =
                crate::accounts::quota::model_calls(state.store.as_ref(), ws, chrono::Utc::now())
                    .await?;
            let event_types: Vec<&str> = crate::domain::EventKind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect();
            Ok(context! {
                page => "settings",
                members => Value::from_serialize(&members),
                keys => Value::from_serialize(&keys),
                hooks => Value::from_serialize(&hooks),
                labels => Value::from_serialize(&labels),
                canned => Value::from_serialize(&canned),
                colours,
                variables => crate::inbox::canned::VARIABLES,
                kinds => event_types,
                health => Value::from_serialize(&health),
                model_calls => Value::from_serialize(&model_calls),
                data_dir => state.settings.data.dir.display().to_string(),
                eval_dir => state.settings.eval.dir.display().to_string(),
            })
        },
    )
    .await
}
