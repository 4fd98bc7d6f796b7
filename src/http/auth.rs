//! Who is calling, and whether they may. [`authenticate`] turns the request's API key
//! (`Authorization: Bearer <key>` or `X-API-Key: <key>`) into a [`Caller`]: a workspace key
//! carries its workspace and role; the operator key from the settings is the owner of the
//! workspace named by `X-Palaver-Workspace` (id or slug; the default workspace without it).
//! [`allow`] wraps each route with the roles that may call it, so every route declares its
//! rule where it is defined.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::MethodRouter;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::accounts::{Actor, Caller, Roles};
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
    let caller = resolve(&app, req.headers()).await?;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

async fn resolve(app: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(key) = presented_key(headers).filter(|k| !k.is_empty()) else {
        return Err(ApiError::Unauthorized);
    };
    if let Some(admin) = &app.settings.server.admin_api_key {
        if bool::from(admin.expose_secret().as_bytes().ct_eq(key.as_bytes())) {
            let workspace = operator_workspace(app, headers).await?;
            return Ok(Caller {
                workspace,
                role: MemberRole::Owner,
                actor: Actor::Operator,
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

/// `route`, callable only by callers whose role is in `roles` (403 for the others).
pub fn allow(roles: Roles, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.route_layer(middleware::from_fn(move |req: Request, next: Next| {
        check(roles, false, req, next)
    }))
}

/// `route`, callable only with the instance's operator key.
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
            "only the instance's operator key may do this".into(),
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
