//! `/teams`: groups of the workspace's people who answer the inbox; and
//! `/channels/{channel}/assignment`: who gets a channel's escalations (the workspace's rule,
//! nobody, one person, or a team's members in turn). Everyone reads them; owners change them.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{find_channel, Json, Path};
use crate::accounts::{Caller, Roles};
use crate::domain::{ChannelAssignment, ChannelId, Team, TeamId, UserId};
use crate::http::route::Route;
use crate::http::{ApiError, AppState};
use crate::inbox::teams;

/// Routes under `/teams` and a channel's assignment rule.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/teams", Roles::ANY, list),
        Route::post("/teams", Roles::OWNER, create),
        Route::get("/teams/{team}", Roles::ANY, read),
        Route::patch("/teams/{team}", Roles::OWNER, update),
        Route::delete("/teams/{team}", Roles::OWNER, remove),
        Route::put("/teams/{team}/members/{user}", Roles::OWNER, add_member),
        Route::delete("/teams/{team}/members/{user}", Roles::OWNER, remove_member),
        Route::get(
            "/channels/{channel}/assignment",
            Roles::ANY,
            channel_assignment,
        ),
        Route::put(
            "/channels/{channel}/assignment",
            Roles::OWNER,
            set_channel_assignment,
        ),
    ]
}

/// A new team.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewTeam {
    /// 1-64 characters, unique in the workspace.
    #[schema(example = "Sales")]
    name: String,
    /// Its members: people of the workspace who answer the inbox (owners and agents).
    #[serde(default)]
    members: Vec<UserId>,
}

/// A team's new name.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TeamChanges {
    /// 1-64 characters, unique in the workspace.
    name: String,
}

#[utoipa::path(
    get,
    path = "/teams",
    operation_id = "list_teams",
    tag = "teams",
    summary = "List teams",
    responses((status = 200, description = "The workspace's teams, by name, with their members", body = Vec<Team>))
)]
async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Team>>, ApiError> {
    Ok(Json(state.store.teams(caller.workspace).await?))
}

#[utoipa::path(
    post,
    path = "/teams",
    operation_id = "create_team",
    tag = "teams",
    summary = "Create a team",
    description = "A member who is not an owner or agent of the workspace is a 422 naming them (`members[0]`); a name taken is a 409.",
    request_body = NewTeam,
    responses((status = 201, description = "The team", body = Team))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewTeam>,
) -> Result<(StatusCode, Json<Team>), ApiError> {
    let team = teams::create(state.store.as_ref(), &caller, &body.name, &body.members).await?;
    Ok((StatusCode::CREATED, Json(team)))
}

#[utoipa::path(
    get,
    path = "/teams/{team}",
    operation_id = "get_team",
    tag = "teams",
    summary = "A team",
    params(("team" = TeamId, Path, description = "The team")),
    responses((status = 200, description = "The team with its members", body = Team))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<TeamId>,
) -> Result<Json<Team>, ApiError> {
    state
        .store
        .team(caller.workspace, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no team {id}")))
}

#[utoipa::path(
    patch,
    path = "/teams/{team}",
    operation_id = "update_team",
    tag = "teams",
    summary = "Rename a team",
    params(("team" = TeamId, Path, description = "The team")),
    request_body = TeamChanges,
    responses((status = 200, description = "The team", body = Team))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<TeamId>,
    Json(body): Json<TeamChanges>,
) -> Result<Json<Team>, ApiError> {
    Ok(Json(
        teams::rename(state.store.as_ref(), &caller, id, &body.name).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/teams/{team}",
    operation_id = "delete_team",
    tag = "teams",
    summary = "Delete a team",
    description = "The channels whose escalations went to it follow the workspace's rule again.",
    params(("team" = TeamId, Path, description = "The team")),
    responses((status = 204, description = "Deleted"))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<TeamId>,
) -> Result<StatusCode, ApiError> {
    teams::delete(state.store.as_ref(), &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put,
    path = "/teams/{team}/members/{user}",
    operation_id = "add_team_member",
    tag = "teams",
    summary = "Add a person to a team",
    description = "The person must be an owner or agent of the workspace (422 otherwise); adding a member again changes nothing.",
    params(("team" = TeamId, Path, description = "The team"), ("user" = UserId, Path, description = "The person")),
    responses((status = 200, description = "The team", body = Team))
)]
async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(TeamId, UserId)>,
) -> Result<Json<Team>, ApiError> {
    Ok(Json(
        teams::add_member(state.store.as_ref(), &caller, id, user).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/teams/{team}/members/{user}",
    operation_id = "remove_team_member",
    tag = "teams",
    summary = "Take a person out of a team",
    description = "They get none of the team's escalations from then on; the conversations they have stay theirs.",
    params(("team" = TeamId, Path, description = "The team"), ("user" = UserId, Path, description = "The person")),
    responses((status = 200, description = "The team", body = Team))
)]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(TeamId, UserId)>,
) -> Result<Json<Team>, ApiError> {
    Ok(Json(
        teams::remove_member(state.store.as_ref(), &caller, id, user).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/channels/{channel}/assignment",
    operation_id = "get_channel_assignment",
    tag = "teams",
    summary = "Who gets a channel's escalations",
    params(("channel" = ChannelId, Path, description = "The channel")),
    responses((status = 200, description = "The channel's rule", body = ChannelAssignment))
)]
async fn channel_assignment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ChannelId>,
) -> Result<Json<ChannelAssignment>, ApiError> {
    let channel = find_channel(&state, &caller, id).await?;
    state
        .store
        .channel_assignment(caller.workspace, channel.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no channel {id}")))
}

/// Who gets the channel's escalated conversations that nobody has: `{"mode": "workspace"}`
/// (the workspace's rule, the default), `{"mode": "manual"}` (nobody), `{"mode": "default",
/// "user": id}` or `{"mode": "team", "team": id}` (its members in turn).
#[utoipa::path(
    put,
    path = "/channels/{channel}/assignment",
    operation_id = "set_channel_assignment",
    tag = "teams",
    summary = "Set who gets a channel's escalations",
    description = "A default person must be an owner or agent of the workspace, a team one of its teams: 422 otherwise.",
    params(("channel" = ChannelId, Path, description = "The channel")),
    request_body = ChannelAssignment,
    responses((status = 200, description = "The channel's rule", body = ChannelAssignment))
)]
async fn set_channel_assignment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<ChannelId>,
    Json(rule): Json<ChannelAssignment>,
) -> Result<Json<ChannelAssignment>, ApiError> {
    let channel = find_channel(&state, &caller, id).await?;
    Ok(Json(
        teams::set_channel_rule(state.store.as_ref(), &caller, channel.id, rule).await?,
    ))
}
