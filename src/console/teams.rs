//! Teams in the console (owners): the Teams page lists the workspace's teams with their
//! members and, for each channel, who gets its escalations; its forms create, rename and
//! delete teams, add and remove members, and set a channel's rule. Plain forms (no script
//! needed), each with the session's CSRF token; every change goes through
//! [`crate::inbox::teams`], as the JSON API's.

use std::collections::HashMap;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Value};

use super::{acting, describe, error_page, page_viewer, render, Viewer};
use crate::accounts::Roles;
use crate::domain::{
    AssignmentRule, ChannelAssignment, ChannelId, FieldError, ProviderKind, TeamId, UserId,
};
use crate::http::{ApiError, AppState};
use crate::inbox::teams;

/// The Teams page's routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/teams", get(teams_page).post(create))
        .route("/teams/channels/{channel}", post(set_channel_rule))
        .route("/teams/{team}", post(rename))
        .route("/teams/{team}/delete", post(delete))
        .route("/teams/{team}/members", post(add_member))
        .route("/teams/{team}/members/remove", post(remove_member))
}

/// A channel rule as the page's select names it: `workspace`, `manual`, `user:<id>` or
/// `team:<id>`.
fn rule_value(rule: ChannelAssignment) -> String {
    match rule {
        ChannelAssignment::Workspace => "workspace".into(),
        ChannelAssignment::Manual => "manual".into(),
        ChannelAssignment::Default { user } => format!("user:{user}"),
        ChannelAssignment::Team { team } => format!("team:{team}"),
    }
}

/// The select's value read back.
fn parse_rule(value: &str) -> Result<ChannelAssignment, FieldError> {
    let bad = || FieldError::new("rule", "choose who gets this channel's escalations");
    match value.split_once(':') {
        None if value == "workspace" => Ok(ChannelAssignment::Workspace),
        None if value == "manual" => Ok(ChannelAssignment::Manual),
        Some(("user", id)) => Ok(ChannelAssignment::Default {
            user: id.parse().map_err(|_| bad())?,
        }),
        Some(("team", id)) => Ok(ChannelAssignment::Team {
            team: id.parse().map_err(|_| bad())?,
        }),
        _ => Err(bad()),
    }
}

/// The page's values.
async fn values(state: &AppState, viewer: &Viewer) -> Result<Value, ApiError> {
    let ws = viewer.caller.workspace;
    let found = state.store.teams(ws).await?;
    // Who may be in a team: the workspace's people who answer the inbox.
    let people: Vec<(UserId, String)> = state
        .store
        .members(ws)
        .await?
        .into_iter()
        .filter(|m| Roles::INBOX.allows(m.role))
        .map(|m| (m.user.id, m.user.name))
        .collect();
    let person = |(id, name): &(UserId, String)| context! { id => id.to_string(), name };
    let workspace = state
        .store
        .workspace(ws)
        .await?
        .ok_or_else(|| ApiError::NotFound("the workspace no longer exists".into()))?;
    let workspace_rule = match workspace.assignment {
        AssignmentRule::Manual => "nobody: people take them".to_string(),
        AssignmentRule::Default { user } => people
            .iter()
            .find(|(id, _)| *id == user)
            .map(|(_, name)| name.clone())
            .unwrap_or_else(|| "nobody: people take them".into()),
        AssignmentRule::RoundRobin => "the workspace's agents in turn".to_string(),
    };
    let mut channels = Vec::new();
    for channel in state.store.list_channels(Some(ws), None).await? {
        if channel.provider == ProviderKind::Sandbox {
            continue;
        }
        let rule = state
            .store
            .channel_assignment(ws, channel.id)
            .await?
            .unwrap_or_default();
        channels.push(context! {
            id => channel.id.to_string(),
            name => channel.name,
            rule => rule_value(rule),
        });
    }
    let shown: Vec<Value> = found
        .iter()
        .map(|t| {
            let outside: Vec<Value> = people
                .iter()
                .filter(|(id, _)| !t.members.iter().any(|m| m.id == *id))
                .map(person)
                .collect();
            context! {
                id => t.id.to_string(),
                name => t.name,
                members => Value::from_serialize(&t.members),
                outside,
            }
        })
        .collect();
    Ok(context! {
        page => "teams",
        teams => shown,
        people => people.iter().map(person).collect::<Vec<_>>(),
        channels,
        workspace_rule,
        max_name => teams::MAX_NAME,
    })
}

async fn teams_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let viewer = match page_viewer(&state, &headers, Roles::OWNER, "/teams").await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    match values(&state, &viewer).await {
        Ok(page) => render(StatusCode::OK, "teams.html", Some(&viewer), page),
        Err(e) => error_page(Some(&viewer), e),
    }
}

/// A form of the page: signed in as an owner, with this session's CSRF token.
async fn owner(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Viewer, Response> {
    let viewer = acting(state, headers, form).await?;
    if !Roles::OWNER.allows(viewer.caller.role) {
        let e = ApiError::Forbidden(format!(
            "the {} role may not change teams",
            viewer.caller.role
        ));
        return Err(error_page(Some(&viewer), e));
    }
    Ok(viewer)
}

/// Back to the page once `done` (at `anchor`); the page again saying why when it failed.
async fn back<T, E: Into<ApiError>>(
    state: &AppState,
    viewer: &Viewer,
    anchor: &str,
    done: Result<T, E>,
) -> Response {
    let e = match done {
        Ok(_) => return Redirect::to(&format!("/teams#{anchor}")).into_response(),
        Err(e) => e.into(),
    };
    let status = e.status_code();
    if status.is_server_error() {
        return error_page(Some(viewer), e);
    }
    match values(state, viewer).await {
        Ok(page) => render(
            status,
            "teams.html",
            Some(viewer),
            context! { error => describe(&e), ..page },
        ),
        Err(e) => error_page(Some(viewer), e),
    }
}

fn team_id(raw: &str) -> Result<TeamId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no team {raw}")))
}

fn user_id(form: &HashMap<String, String>) -> Result<UserId, ApiError> {
    form.get("user")
        .and_then(|u| u.parse().ok())
        .ok_or_else(|| ApiError::invalid("user", "choose a person"))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form: HashMap<String, String> = pairs.iter().cloned().collect();
    let viewer = match owner(&state, &headers, &form).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    // The form's checkboxes: one `member` field per person ticked.
    let members: Result<Vec<UserId>, ApiError> = pairs
        .iter()
        .filter(|(k, _)| k == "member")
        .map(|(_, v)| {
            v.parse()
                .map_err(|_| ApiError::invalid("members", "choose people of this workspace"))
        })
        .collect();
    let done = match members {
        Ok(members) => teams::create(
            state.store.as_ref(),
            &viewer.caller,
            form.get("name").map(String::as_str).unwrap_or(""),
            &members,
        )
        .await
        .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    back(&state, &viewer, "teams-h", done).await
}

/// A form acting on team `id`: the owner's `act` on it, then back to the team on the page.
async fn on_team<F, T>(
    state: AppState,
    headers: HeaderMap,
    id: String,
    form: HashMap<String, String>,
    act: F,
) -> Response
where
    F: AsyncFnOnce(&AppState, &Viewer, TeamId, &HashMap<String, String>) -> Result<T, ApiError>,
{
    let viewer = match owner(&state, &headers, &form).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let done = match team_id(&id) {
        Ok(team) => act(&state, &viewer, team, &form).await,
        Err(e) => Err(e),
    };
    back(&state, &viewer, &format!("team-{id}"), done).await
}

async fn rename(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    on_team(
        state,
        headers,
        id,
        form,
        async |state, viewer, team, form| {
            let name = form.get("name").map(String::as_str).unwrap_or("");
            Ok(teams::rename(state.store.as_ref(), &viewer.caller, team, name).await?)
        },
    )
    .await
}

async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    on_team(state, headers, id, form, async |state, viewer, team, _| {
        Ok(teams::delete(state.store.as_ref(), &viewer.caller, team).await?)
    })
    .await
}

async fn add_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    on_team(
        state,
        headers,
        id,
        form,
        async |state, viewer, team, form| {
            let user = user_id(form)?;
            Ok(teams::add_member(state.store.as_ref(), &viewer.caller, team, user).await?)
        },
    )
    .await
}

async fn remove_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    on_team(
        state,
        headers,
        id,
        form,
        async |state, viewer, team, form| {
            let user = user_id(form)?;
            Ok(teams::remove_member(state.store.as_ref(), &viewer.caller, team, user).await?)
        },
    )
    .await
}

async fn set_channel_rule(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let viewer = match owner(&state, &headers, &form).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let done = async {
        let channel: ChannelId = id
            .parse()
            .map_err(|_| ApiError::NotFound(format!("no channel {id}")))?;
        let channel = crate::http::api::find_channel(&state, &viewer.caller, channel).await?;
        let rule = parse_rule(form.get("rule").map(String::as_str).unwrap_or(""))
            .map_err(|e| ApiError::Invalid(vec![e]))?;
        Ok::<_, ApiError>(
            teams::set_channel_rule(state.store.as_ref(), &viewer.caller, channel.id, rule).await?,
        )
    };
    back(&state, &viewer, &format!("channel-{id}"), done.await).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_rules_read_back_as_written() {
        let user = UserId::new();
        let team = TeamId::new();
        for rule in [
            ChannelAssignment::Workspace,
            ChannelAssignment::Manual,
            ChannelAssignment::Default { user },
            ChannelAssignment::Team { team },
        ] {
            assert_eq!(parse_rule(&rule_value(rule)).unwrap(), rule);
        }
        for bad in ["", "team:", "user:x", "round_robin", "team"] {
            assert_eq!(parse_rule(bad).unwrap_err().field, "rule", "{bad:?}");
        }
    }
}
