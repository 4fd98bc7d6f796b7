//! The HTTP edge (axum): health, readiness and metrics endpoints, the `/api/v1` JSON API
//! behind API keys or sessions, and provider webhooks, with the layers every request passes
//! through. It knows nothing of pages: [`crate::server`] composes these routes with the
//! console's. Handlers are thin: they validate, call the library, and shape JSON.

pub mod api;
pub mod auth;
pub mod error;
pub mod health;
pub mod openapi;
pub mod route;
pub mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;

use crate::App;
pub use error::ApiError;
pub(crate) use health::health;
pub use health::metrics_handle;
use route::{Access, Route};

/// Shared state of every handler.
pub type AppState = Arc<App>;

/// Every route of the JSON API, the provider webhooks, and health, readiness and metrics: the
/// one list the router is made of and the OpenAPI document is checked against.
pub fn route_table(state: &AppState) -> Vec<Route> {
    let mut routes = vec![
        Route::get("/healthz", Access::Public, health::healthz),
        Route::get("/readyz", Access::Public, health::readyz),
        // Counters of every workspace: the instance's operator's alone (its key as a bearer
        // token in the scraper's configuration, or the instance owner signed in).
        Route::get("/metrics", Access::Operator, health::metrics_text),
        Route::get(
            "/api/v1/openapi.json",
            Access::Public,
            openapi::openapi_json,
        ),
    ];
    routes.extend(api::routes(state));
    routes.extend(webhooks::routes());
    routes
}

/// The JSON API, the provider webhooks, and health, readiness and metrics.
pub fn routes(state: &AppState) -> Router<AppState> {
    let table = route_table(state);
    // The contract is made once, from the very table the router is made of.
    let contract = Arc::new(openapi::document(&table));
    let (hooks, others): (Vec<Route>, Vec<Route>) =
        table.into_iter().partition(webhooks::is_webhook);
    route::router(state, others)
        .merge(webhooks::bounded(state, route::router(state, hooks)))
        .layer(axum::Extension(openapi::Contract(contract)))
}

/// `routes` with what every request passes through: the request id, the timeout, request
/// metrics, and a JSON 404 for any other path.
pub fn layered(routes: Router<AppState>, state: AppState) -> Router {
    // Install the recorder before any request, so every request is counted.
    metrics_handle();
    let timeout = Duration::from_secs(state.settings.server.request_timeout_secs);
    let x_request_id = header::HeaderName::from_static("x-request-id");
    routes
        .fallback(not_found)
        .layer(middleware::from_fn(track))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            timeout,
        ))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// Request metrics and the request id made available to error bodies.
async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-")
        .to_string();
    let response = error::REQUEST_ID.scope(request_id, next.run(req)).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("palaver_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("palaver_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The `method` label of the request metrics: the standard methods by name and anything a client
/// invents as `other`, so a client cannot create label series without bound. (Routes are bounded
/// already: the matched route template, or `unmatched`.)
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
