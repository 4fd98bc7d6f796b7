//! Who is calling, and whether they may. [`authenticate`] turns the request's credentials into
//! a [`Caller`]: an API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`) carries its
//! workspace and role; the operator key from the settings is the owner of the workspace named
//! by `X-Palaver-Workspace` (id or slug; the default workspace without it); a session cookie
//! is a person, with their role in the workspace that header names (or their first one).
//! Requests that change something with a session cookie must echo its CSRF token in
//! `X-CSRF-Token`: a page of another site can make the browser send the cookie, never the
//! token.
//! [`allow`] wraps each route with the roles that may call it, so every route declares its
//! rule where it is defined.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::MethodRouter;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::accounts::{people, Actor, Caller, Roles};
use crate::crypto::hash_api_key;
use crate::domain::{MemberRole, WorkspaceId};

/// The header naming the workspace an operator key acts in.
pub const WORKSPACE_HEADER: &str = "x-palaver-workspace";

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(token) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(token.trim());
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Resolves the caller (401 without valid credentials) and hands it to the route.
pub async fn authenticate(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = resolve(&app, req.method(), req.headers()).await?;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// Whether the credentials in `headers` still make the same `caller` (the key not revoked, the
/// session not ended, the membership and role unchanged): a long-lived response, such as an
/// event stream, asks again as it goes.
pub async fn still_valid(app: &AppState, headers: &HeaderMap, caller: &Caller) -> bool {
    matches!(resolve(app, &Method::GET, headers).await, Ok(now) if now == *caller)
}

async fn resolve(app: &AppState, method: &Method, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(key) = presented_key(headers).filter(|k| !k.is_empty()) else {
        return match session_token(headers) {
            Some(token) => resolve_session(app, method, headers, &token).await,
            None => Err(ApiError::Unauthorized),
        };
    };
    if let Some(admin) = &app.settings.server.admin_api_key {
        if bool::from(admin.expose_secret().as_bytes().ct_eq(key.as_bytes())) {
            let workspace = operator_workspace(app, headers).await?;
            return Ok(Caller {
                workspace,
                role: MemberRole::Owner,
                actor: Actor::Operator,
                operator: true,
                by_session: false,
            });
        }
    }
    // Lookup by the hash of a high-entropy key: the hash reveals nothing and the index makes it
    // one probe; a timing difference could only tell whether some key has that hash.
    let Some(stored) = app.store.api_key_by_hash(&hash_api_key(key)).await? else {
        return Err(ApiError::Unauthorized);
    };
    if headers.contains_key(WORKSPACE_HEADER)
        && operator_workspace(app, headers).await.ok() != Some(stored.workspace_id)
    {
        // A workspace key opens its own workspace only; naming another is a mistake worth saying.
        return Err(ApiError::Forbidden(
            "this key belongs to another workspace".into(),
        ));
    }
    if let Err(e) = app.store.touch_api_key(stored.id, chrono::Utc::now()).await {
        tracing::warn!(key = %stored.id, error = %e, "cannot record an API key's use");
    }
    Ok(Caller {
        workspace: stored.workspace_id,
        role: stored.role,
        actor: Actor::ApiKey(stored.id),
        operator: false,
        by_session: false,
    })
}

async fn operator_workspace(app: &AppState, headers: &HeaderMap) -> Result<WorkspaceId, ApiError> {
    let Some(value) = headers.get(WORKSPACE_HEADER) else {
        return Ok(WorkspaceId::DEFAULT);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::BadRequest(format!("{WORKSPACE_HEADER} is not text")))?
        .trim();
    let found = match value.parse::<WorkspaceId>() {
        Ok(id) => app.store.workspace(id).await?,
        Err(_) => app.store.workspace_by_slug(value).await?,
    };
    found
        .map(|w| w.id)
        .ok_or_else(|| ApiError::NotFound(format!("no workspace `{value}`")))
}

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "palaver_session";

/// The session token the request's cookies carry.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE && !c.value().is_empty())
        .map(|c| c.value().to_string())
}

async fn resolve_session(
    app: &AppState,
    method: &Method,
    headers: &HeaderMap,
    token: &str,
) -> Result<Caller, ApiError> {
    let Some((session, user)) = people::session(app.store.as_ref(), token).await? else {
        return Err(ApiError::Unauthorized);
    };
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let presented = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !bool::from(presented.as_bytes().ct_eq(session.csrf_token.as_bytes())) {
            return Err(ApiError::Forbidden(
                "missing or wrong X-CSRF-Token for a signed-in request that changes something"
                    .into(),
            ));
        }
    }
    session_caller(app, headers, &user).await
}

/// The caller a signed-in `user` is: their role in the workspace `X-Palaver-Workspace` names,
/// or in their first one. (The console checks its forms' CSRF token itself, then comes here.)
pub(crate) async fn session_caller(
    app: &AppState,
    headers: &HeaderMap,
    user: &crate::domain::User,
) -> Result<Caller, ApiError> {
    let workspace = match headers.get(WORKSPACE_HEADER) {
        Some(_) => Some(operator_workspace(app, headers).await?),
        None => None,
    };
    let memberships = app.store.memberships(user.id).await?;
    let (workspace, role) = match workspace {
        Some(ws) => match memberships.iter().find(|(w, _)| *w == ws) {
            Some((_, role)) => (ws, *role),
            None if user.instance_owner => (ws, MemberRole::Owner),
            None => return Err(ApiError::NotFound(format!("no workspace {ws}"))),
        },
        None => match memberships.first() {
            Some((ws, role)) => (*ws, *role),
            None if user.instance_owner => (WorkspaceId::DEFAULT, MemberRole::Owner),
            None => {
                return Err(ApiError::Forbidden(
                    "you are not a member of any workspace".into(),
                ))
            }
        },
    };
    let role = if user.instance_owner {
        MemberRole::Owner
    } else {
        role
    };
    Ok(Caller {
        workspace,
        role,
        actor: Actor::User(user.id),
        operator: user.instance_owner,
        by_session: true,
    })
}

/// `route`, callable only by callers whose role is in `roles` (403 for the others).
pub fn allow(roles: Roles, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.route_layer(middleware::from_fn(move |req: Request, next: Next| {
        check(roles, false, req, next)
    }))
}

/// `route`, callable only by the instance's operator (its key, or the instance owner).
pub fn operator(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.route_layer(middleware::from_fn(move |req: Request, next: Next| {
        check(Roles::OWNER, true, req, next)
    }))
}

async fn check(
    roles: Roles,
    operator_only: bool,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(caller) = req.extensions().get::<Caller>().copied() else {
        // A route wrapped without `authenticate` in front: refuse rather than guess.
        return Err(ApiError::Unauthorized);
    };
    if operator_only && !caller.is_operator() {
        return Err(ApiError::Forbidden(
            "only the instance's operator may do this".into(),
        ));
    }
    if !roles.allows(caller.role) {
        return Err(ApiError::Forbidden(format!(
            "the {} role may not do this",
            caller.role
        )));
    }
    Ok(next.run(req).await)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .copied()
            .ok_or(ApiError::Unauthorized)
    }
}
