//! Health, readiness and metrics: what a load balancer, an orchestrator and a scraper ask.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use super::AppState;

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

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "meta", summary = "Liveness",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
pub(super) async fn healthz() -> &'static str {
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
        // Whether the other replicas' notifications are heard (null without other replicas).
        "events": { "listening": app.events.listening() },
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

#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "meta", summary = "Readiness",
    description = "Ready when the database answers, the vector index can be read and every job worker runs; `draining` after SIGTERM.",
    responses(
        (status = 200, description = "Ready, with each dependency's state", body = serde_json::Value),
        (status = 503, description = "Not ready (`unavailable`) or draining", body = serde_json::Value),
    ))]
pub(super) async fn readyz(State(app): State<AppState>) -> Response {
    let (ok, body) = health(&app).await;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "meta", summary = "Prometheus metrics",
    description = "Every workspace's counters: give the scraper the operator key as its bearer token.",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4")))]
pub(super) async fn metrics_text() -> Response {
    let mut response = metrics_handle().render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
