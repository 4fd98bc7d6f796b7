//! The server: one router composed of the JSON API and the provider webhooks ([`crate::http`])
//! and the console's pages ([`crate::console`]), which sit side by side above the library and
//! know nothing of each other; and [`serve`], which runs it with the event hub, the outgoing
//! webhooks and the webhook journal's recorder.

use axum::Router;

use crate::http::{self, AppState};

/// The whole application's routes: the API, the webhooks and the console, behind the same
/// layers.
pub fn router(state: AppState) -> Router {
    http::layered(http::routes(&state).merge(crate::console::routes()), state)
}

/// Binds `settings.server.bind` and serves until `shutdown` resolves.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.events.clone();
    let notifications = (state.store.backend() == crate::store::Backend::Postgres)
        .then(|| state.settings.database_url());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let events = tokio::spawn(hub.clone().run(notifications, stopped.clone()));
    let hooks = tokio::spawn(state.hooks.clone().run(hub.clone(), stopped.clone()));
    // What webhooks deliver is recorded from the journal by the process that took them (and,
    // on Postgres, by any replica).
    let channels = state.channels.clone();
    let recorder = tokio::spawn(async move { channels.record_journal(stopped).await });
    let draining = state.workers.clone();
    let drain_secs = state.settings.server.drain_secs;
    let app = router(state);
    // The peer address throttles sign-in attempts per client.
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        // Readiness turns false first and requests are still served for a moment, so a load
        // balancer routes new ones elsewhere before the listener closes.
        draining.drain();
        let drain = std::time::Duration::from_secs(drain_secs);
        if !drain.is_zero() {
            tracing::info!(seconds = drain_secs, "draining: /readyz answers 503");
            tokio::time::sleep(drain).await;
        }
        // Event streams never end by themselves: end them, or shutdown waits for them.
        hub.close();
    })
    .await;
    let _ = stop.send(true);
    let _ = events.await;
    let _ = hooks.await;
    let _ = recorder.await;
    served
}
