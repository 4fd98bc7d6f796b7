//! The HTTP edge (axum): health, readiness and metrics endpoints, the `/api/v1` JSON API
//! behind API keys or sessions, and provider webhooks, with the layers every request passes
//! through. It knows nothing of pages: [`crate::server`] composes these routes with the
//! console's. Handlers are thin: they validate, call the library, and shape JSON.

pub mod api;
pub mod auth;
pub mod error;
pub mod webhooks;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;

use crate::App;
pub use error::ApiError;

/// Shared state of every handler.
pub type AppState = Arc<App>;

/// The process-wide Prometheus recorder (installed once, shared by every router).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("static bucket list is valid")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The JSON API, the provider webhooks, and health, readiness and metrics.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // Counters of every workspace: the instance's operator's alone (its key as a bearer
        // token in the scraper's configuration, or the instance owner signed in).
        .route(
            "/metrics",
            auth::operator(get(metrics_text)).route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::authenticate,
            )),
        )
        .nest("/api/v1", api::routes(state.clone()))
        .merge(webhooks::routes(state))
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

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers, the vector index can be read and every job worker is
/// running (a process whose workers died takes webhooks it will never answer).
/// What the server depends on, checked now: the store, the vector index and the job workers.
/// `/readyz` answers it, and the console's settings page shows it.
pub(crate) async fn health(app: &AppState) -> (bool, serde_json::Value) {
    let store = app.store.ping().await;
    let journal = app.store.journal_backlog().await;
    let vectors = app.knowledge.vectors().count("__readiness_probe").await;
    let workers_ok = app.workers.ok();
    let draining = app.workers.draining();
    let ok = store.is_ok() && journal.is_ok() && vectors.is_ok() && workers_ok && !draining;
    let body = json!({
        "status": match (ok, draining) {
            (true, _) => "ready",
            (false, true) => "draining",
            (false, false) => "unavailable",
        },
        "store": { "backend": app.store.backend(), "ok": store.is_ok() },
        // Webhooks acknowledged and not yet recorded: a backlog that only grows means the
        // database cannot keep up (or refuses what failing entries carry).
        "journal": journal.as_ref().ok(),
        "vectors": { "backend": app.knowledge.vectors().name(), "ok": vectors.is_ok() },
        "embedder": { "model": app.knowledge.embedder().model_id() },
        "workers": {
            "running": app.workers.running(),
            "expected": app.workers.expected(),
            "ok": workers_ok,
        },
    });
    if !workers_ok {
        tracing::warn!(
            running = app.workers.running(),
            expected = app.workers.expected(),
            "readiness: job workers are not running"
        );
    }
    if let Err(e) = &store {
        tracing::warn!(error = %e, "readiness: store unavailable");
    }
    if let Err(e) = &vectors {
        tracing::warn!(error = %e, "readiness: vector index unavailable");
    }
    (ok, body)
}

async fn readyz(State(app): State<AppState>) -> Response {
    let (ok, body) = health(&app).await;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics_text() -> Response {
    let mut response = metrics_handle().render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
