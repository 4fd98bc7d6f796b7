//! People: sign-in and sign-out (a session cookie), who am I, password change, the workspace's
//! members and invitations, the instance's first set-up, and the audit log. Sign-in, accepting
//! an invitation and the set-up are public; the rest runs as a [`Caller`].

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};

use super::{Json, Path, Query};
use crate::accounts::people::{self, PeopleError, SignedIn};
use crate::accounts::{audit, Actor, Caller, Roles};
use crate::domain::{MemberRole, User, UserId, WorkspaceId};
use crate::http::auth::{session_token, SESSION_COOKIE};
use crate::http::route::{Access, Route};
use crate::http::{ApiError, AppState};
use crate::store::{AuditEntry, Member};

/// The routes of people: sign-in, accepting an invitation and the set-up need no credentials.
pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/sign-in", Access::Public, sign_in),
        Route::post("/invitations/accept", Access::Public, accept),
        Route::post("/setup", Access::Public, setup),
        Route::post("/sign-out", Roles::ANY, sign_out),
        Route::get("/me", Roles::ANY, me),
        Route::post("/me/password", Roles::ANY, change_password),
        Route::get("/members", Roles::OWNER, members),
        Route::put("/members/{user}", Roles::OWNER, set_member),
        Route::delete("/members/{user}", Roles::OWNER, remove_member),
        Route::post("/invitations", Roles::OWNER, invite),
        Route::get("/audit", Roles::OWNER, audit_log),
    ]
}

impl From<PeopleError> for ApiError {
    fn from(e: PeopleError) -> Self {
        match e {
            PeopleError::Invalid(fields) => ApiError::Invalid(fields),
            e @ PeopleError::BadCredentials => ApiError::BadCredentials(e.to_string()),
            PeopleError::Throttled { retry_after_secs } => ApiError::Throttled(retry_after_secs),
            e @ PeopleError::BadToken => ApiError::NotFound(e.to_string()),
            PeopleError::Store(e) => e.into(),
            e @ PeopleError::Hash(_) => ApiError::internal(e),
        }
    }
}

/// Whether cookies must be `Secure`: the server is reached over HTTPS.
pub(crate) fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.settings.server.public_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

pub(crate) fn set_cookie(value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((SESSION_COOKIE, value.to_string()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("a cookie is a valid header")
}

/// What a new session answers: the person, the CSRF token, and the cookie.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SessionView {
    user: User,
    csrf_token: String,
    expires_at: chrono::DateTime<chrono::Utc>,
    workspaces: Vec<WorkspaceRole>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct WorkspaceRole {
    id: WorkspaceId,
    slug: String,
    name: String,
    role: MemberRole,
}

async fn workspaces_of(state: &AppState, user: &User) -> Result<Vec<WorkspaceRole>, ApiError> {
    let mut out = Vec::new();
    for (id, role) in state.store.memberships(user.id).await? {
        if let Some(w) = state.store.workspace(id).await? {
            out.push(WorkspaceRole {
                id,
                slug: w.slug,
                name: w.name,
                role,
            });
        }
    }
    Ok(out)
}

async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    s: SignedIn,
) -> Result<Response, ApiError> {
    let cookie = set_cookie(
        &s.token,
        state.settings.accounts.session_ttl_secs as i64,
        secure(state, headers),
    );
    let body = SessionView {
        workspaces: workspaces_of(state, &s.user).await?,
        user: s.user,
        csrf_token: s.csrf_token,
        expires_at: s.expires_at,
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Sign-in fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    email: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/sign-in",
    operation_id = "sign_in",
    tag = "people",
    summary = "Sign in",
    description = "Sets the HttpOnly session cookie; the `csrf_token` must come back as `X-CSRF-Token` on every request that changes something.",
    request_body = SignInBody,
    responses((status = 200, description = "Signed in: the session cookie is set", body = SessionView))
)]
async fn sign_in(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(body): Json<SignInBody>,
) -> Result<Response, ApiError> {
    let client = peer.map(|Extension(ConnectInfo(addr))| addr.ip().to_string());
    let signed = people::sign_in(
        state.store.as_ref(),
        &state.settings.accounts,
        &body.email,
        &body.password,
        client.as_deref(),
    )
    .await?;
    // A session the browser already held is ended: sign-in never keeps a token it was given.
    if let Some(old) = session_token(&headers) {
        people::sign_out(state.store.as_ref(), &old).await?;
    }
    signed_in(&state, &headers, StatusCode::OK, signed).await
}

#[utoipa::path(
    post,
    path = "/sign-out",
    operation_id = "sign_out",
    tag = "people",
    summary = "Sign out",
    responses((status = 204, description = "Signed out: the cookie is cleared"))
)]
async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = session_token(&headers) {
        people::sign_out(state.store.as_ref(), &token).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie("", 0, secure(&state, &headers)),
    );
    Ok(response)
}

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct MeView {
    actor: Actor,
    user: Option<User>,
    workspace: WorkspaceId,
    role: MemberRole,
    operator: bool,
    workspaces: Vec<WorkspaceRole>,
}

#[utoipa::path(
    get,
    path = "/me",
    operation_id = "me",
    tag = "people",
    summary = "Who am I",
    responses((status = 200, description = "The caller", body = MeView))
)]
async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<MeView>, ApiError> {
    let user = match caller.actor {
        Actor::User(id) => state.store.user(id).await?,
        _ => None,
    };
    let workspaces = match &user {
        Some(u) => workspaces_of(&state, u).await?,
        None => Vec::new(),
    };
    Ok(Json(MeView {
        actor: caller.actor,
        user,
        workspace: caller.workspace,
        role: caller.role,
        operator: caller.operator,
        workspaces,
    }))
}

/// A password change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

#[utoipa::path(
    post,
    path = "/me/password",
    operation_id = "change_password",
    tag = "people",
    summary = "Change my password",
    request_body = PasswordBody,
    responses((status = 200, description = "A new session; every other session ended", body = SessionView))
)]
async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<PasswordBody>,
) -> Result<Response, ApiError> {
    let Actor::User(id) = caller.actor else {
        return Err(ApiError::BadRequest(
            "only a signed-in person has a password".into(),
        ));
    };
    let user = state.store.user(id).await?.ok_or(ApiError::Unauthorized)?;
    let signed = people::change_password(
        state.store.as_ref(),
        &state.settings.accounts,
        &user,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    audit(
        state.store.as_ref(),
        &caller,
        "user.password",
        Some(id.to_string()),
        serde_json::json!({}),
    )
    .await;
    signed_in(&state, &headers, StatusCode::OK, signed).await
}

#[utoipa::path(
    get,
    path = "/members",
    operation_id = "list_members",
    tag = "people",
    summary = "List members",
    responses((status = 200, description = "Members with their roles", body = Vec<Member>))
)]
async fn members(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Member>>, ApiError> {
    Ok(Json(state.store.members(caller.workspace).await?))
}

/// A member's role.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: MemberRole,
}

#[utoipa::path(
    put,
    path = "/members/{user}",
    operation_id = "set_member",
    tag = "people",
    summary = "Give a member a role",
    params(("user" = UserId, Path, description = "The person")),
    request_body = RoleBody,
    responses((status = 204, description = "Done"))
)]
async fn set_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<UserId>,
    Json(body): Json<RoleBody>,
) -> Result<StatusCode, ApiError> {
    // Roles are given to people of this workspace (others join by invitation).
    if state
        .store
        .membership(user, caller.workspace)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("no member {user}")));
    }
    if body.role != MemberRole::Owner && last_owner(&state, &caller, user).await? {
        return Err(ApiError::Conflict(
            "a workspace keeps at least one owner".into(),
        ));
    }
    state
        .store
        .set_membership(user, caller.workspace, body.role)
        .await?;
    audit(
        state.store.as_ref(),
        &caller,
        "member.role",
        Some(user.to_string()),
        serde_json::json!({ "role": body.role }),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `user` is the workspace's only owner.
async fn last_owner(state: &AppState, caller: &Caller, user: UserId) -> Result<bool, ApiError> {
    let owners: Vec<UserId> = state
        .store
        .members(caller.workspace)
        .await?
        .into_iter()
        .filter(|m| m.role == MemberRole::Owner)
        .map(|m| m.user.id)
        .collect();
    Ok(owners == [user])
}

#[utoipa::path(
    delete,
    path = "/members/{user}",
    operation_id = "remove_member",
    tag = "people",
    summary = "Remove a member",
    params(("user" = UserId, Path, description = "The person")),
    responses((status = 204, description = "Removed"))
)]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<UserId>,
) -> Result<StatusCode, ApiError> {
    if last_owner(&state, &caller, user).await? {
        return Err(ApiError::Conflict(
            "a workspace keeps at least one owner".into(),
        ));
    }
    if !state
        .store
        .remove_membership(user, caller.workspace)
        .await?
    {
        return Err(ApiError::NotFound(format!("no member {user}")));
    }
    audit(
        state.store.as_ref(),
        &caller,
        "member.remove",
        Some(user.to_string()),
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// An invitation to make.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    email: String,
    role: MemberRole,
}

/// A new invitation: its link is shown only here.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct InvitationView {
    email: String,
    role: MemberRole,
    expires_at: chrono::DateTime<chrono::Utc>,
    token: String,
    url: String,
}

#[utoipa::path(
    post,
    path = "/invitations",
    operation_id = "invite",
    tag = "people",
    summary = "Invite a person",
    request_body = InviteBody,
    responses((status = 201, description = "A single-use link", body = InvitationView))
)]
async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<InviteBody>,
) -> Result<(StatusCode, Json<InvitationView>), ApiError> {
    let (token, invitation) = people::invite(
        state.store.as_ref(),
        &state.settings.accounts,
        caller.workspace,
        &body.email,
        body.role,
        &caller.actor.label(),
    )
    .await?;
    audit(
        state.store.as_ref(),
        &caller,
        "member.invite",
        None,
        serde_json::json!({ "email": invitation.email, "role": invitation.role }),
    )
    .await;
    let url = format!(
        "{}/invitations/accept?token={token}",
        state.settings.server.public_url.trim_end_matches('/')
    );
    Ok((
        StatusCode::CREATED,
        Json(InvitationView {
            email: invitation.email,
            role: invitation.role,
            expires_at: invitation.expires_at,
            token,
            url,
        }),
    ))
}

/// Accepting an invitation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    token: String,
    /// Your name (a new account).
    #[serde(default)]
    name: String,
    /// A new password, or your password when the email has an account.
    password: String,
}

#[utoipa::path(
    post,
    path = "/invitations/accept",
    operation_id = "accept_invitation",
    tag = "people",
    summary = "Accept an invitation",
    request_body = AcceptBody,
    responses((status = 201, description = "Signed in as the new member", body = SessionView))
)]
async fn accept(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<AcceptBody>,
) -> Result<Response, ApiError> {
    let name = if body.name.trim().is_empty() {
        "New member"
    } else {
        body.name.as_str()
    };
    let signed = people::accept_invitation(
        state.store.as_ref(),
        &state.settings.accounts,
        body.token.trim(),
        name,
        &body.password,
    )
    .await?;
    signed_in(&state, &headers, StatusCode::CREATED, signed).await
}

/// The first set-up.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetupBody {
    token: String,
    email: String,
    name: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/setup",
    operation_id = "setup",
    tag = "people",
    summary = "Create the instance owner",
    description = "With the one-time set-up token the first start prints.",
    request_body = SetupBody,
    responses((status = 201, description = "Signed in as the owner", body = SessionView))
)]
async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<SetupBody>,
) -> Result<Response, ApiError> {
    let signed = people::complete_setup(
        state.store.as_ref(),
        &state.settings.accounts,
        body.token.trim(),
        &body.email,
        &body.name,
        &body.password,
    )
    .await?;
    signed_in(&state, &headers, StatusCode::CREATED, signed).await
}

/// How much of the log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "audit_log",
    tag = "people",
    summary = "The audit log",
    params(AuditParams),
    responses((status = 200, description = "Changes, latest first", body = Vec<AuditEntry>))
)]
async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<AuditParams>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    Ok(Json(
        state
            .store
            .audit_log(caller.workspace, p.limit.unwrap_or(100))
            .await?,
    ))
}
