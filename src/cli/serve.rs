//! `palaver serve` and `palaver migrate`.

use std::sync::Arc;

use anyhow::{Context, Result};

use palaver::{App, Settings};

/// Applies the database migrations.
pub(crate) async fn migrate(settings: Settings) -> Result<()> {
    let store =
        palaver::store::open(&settings.database_url(), settings.database.max_connections).await?;
    store.migrate().await?;
    println!("migrations applied ({:?})", store.backend());
    Ok(())
}

pub(crate) async fn serve(settings: Settings) -> Result<()> {
    let bind = settings.server.bind.clone();
    let app = Arc::new(App::build(settings).await?);
    app.channels.check_key().await.map_err(|e| match e {
        palaver::channels::ChannelError::Sealed => anyhow::anyhow!(
            "the channel credentials in the database were sealed with another key: every process \
             on one database needs the same channels.encryption_key (set \
             PALAVER__CHANNELS__ENCRYPTION_KEY on each, or copy data/secret.key from the first)"
        ),
        e => anyhow::anyhow!("cannot read the channels: {e}"),
    })?;
    app.channels
        .report_graph_versions()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the channels: {e}"))?;
    app.check_index().await?;
    palaver::eval::runs::interrupt_stale(app.store.as_ref()).await?;
    // The first owner: from the settings (unattended installs), or by a one-time set-up token
    // while nobody can sign in.
    let people = palaver::accounts::people::ensure_configured_owner(
        app.store.as_ref(),
        &app.settings.accounts,
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot create the configured owner: {e}"))?;
    if let Some(owner) = people {
        eprintln!(
            "created the instance owner {} from the settings",
            owner.email
        );
    }
    if let Some(token) = palaver::accounts::people::setup_token(app.store.as_ref()).await? {
        let url = app.settings.server.public_url.trim_end_matches('/');
        eprintln!("\nNobody can sign in yet. Create the instance owner in the console:\n");
        eprintln!("    {url}/setup?token={token}\n");
        eprintln!("or with this one-time set-up token through the API:\n");
        eprintln!("    curl -X POST {url}/api/v1/setup -H 'Content-Type: application/json' \\");
        eprintln!("      -d '{{\"token\": \"{token}\", \"email\": \"you@example.com\", \"name\": \"You\", \"password\": \"...\"}}'\n");
        eprintln!(
            "(or `palaver users create EMAIL --owner`). API keys: `palaver keys create NAME`.\n"
        );
    }
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = app.workers();
    let mut running = workers.spawn(stopped);
    tracing::info!(address = %listener.local_addr()?, workers = app.settings.workers.concurrency, "palaver is listening");
    palaver::server::serve(app, listener, shutdown_signal()).await?;
    // Finish the jobs in hand; whatever is left stays in the queue for the next start.
    let _ = stop.send(true);
    while running.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
