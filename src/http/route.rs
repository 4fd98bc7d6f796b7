//! One list of routes makes both the router and the contract: each [`Route`] is a method, a
//! path, who may call it ([`Access`]) and its handler. [`router`] serves the list, each route
//! behind its access check; the OpenAPI document ([`super::openapi`]) is checked against the
//! same list, and takes each operation's roles from it, so neither can leave a route out.

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware;
use axum::routing::{self, MethodRouter};
use axum::Router;

use super::{auth, AppState};
use crate::accounts::Roles;
use crate::domain::MemberRole;

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Anyone, without credentials (sign-in, health, provider webhooks, the contract itself).
    Public,
    /// Members of the workspace whose role is in the set.
    Members(Roles),
    /// The instance's operator alone (its key, or the instance owner).
    Operator,
}

impl Access {
    /// The roles that may call, as the document names them: `public`, `operator`, or the
    /// member roles.
    pub fn names(self) -> Vec<&'static str> {
        match self {
            Access::Public => vec!["public"],
            Access::Operator => vec!["operator"],
            Access::Members(roles) => [MemberRole::Owner, MemberRole::Author, MemberRole::Agent]
                .into_iter()
                .filter(|r| roles.allows(*r))
                .map(MemberRole::as_str)
                .collect(),
        }
    }
}

impl From<Roles> for Access {
    fn from(roles: Roles) -> Self {
        Access::Members(roles)
    }
}

/// One method on one path, with who may call it and what answers.
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path as the router and the document write it (`/api/v1/agents/{agent}`).
    pub path: String,
    /// Who may call it.
    pub access: Access,
    handler: MethodRouter<AppState>,
}

macro_rules! constructor {
    ($name:ident, $method:ident) => {
        #[doc = concat!("`", stringify!($method), " path`, answered by `handler`.")]
        pub fn $name<H, T>(path: &str, access: impl Into<Access>, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            Route {
                method: Method::$method,
                path: path.to_string(),
                access: access.into(),
                handler: routing::$name(handler),
            }
        }
    };
}

impl Route {
    constructor!(get, GET);
    constructor!(post, POST);
    constructor!(put, PUT);
    constructor!(patch, PATCH);
    constructor!(delete, DELETE);

    /// The route with bodies of up to `bytes` (uploads; the default is axum's 2 MB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.handler = self.handler.layer(DefaultBodyLimit::max(bytes));
        self
    }

    /// The route under `prefix` (`/api/v1`).
    pub fn nested(mut self, prefix: &str) -> Self {
        self.path = format!("{prefix}{}", self.path);
        self
    }
}

/// The routes served: each behind its access check (credentials resolved first, then the role),
/// the methods of one path together.
pub fn router(state: &AppState, routes: Vec<Route>) -> Router<AppState> {
    routes.into_iter().fold(Router::new(), |router, route| {
        let handler = match route.access {
            Access::Public => route.handler,
            Access::Members(roles) => auth::allow(roles, route.handler),
            Access::Operator => auth::operator(route.handler),
        };
        let handler = match route.access {
            Access::Public => handler,
            Access::Members(_) | Access::Operator => handler.route_layer(
                middleware::from_fn_with_state(state.clone(), auth::authenticate),
            ),
        };
        router.route(&route.path, handler)
    })
}
