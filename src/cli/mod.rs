//! The commands, one module per group; `main` parses the command line and calls into them.

pub(crate) mod admin;
pub(crate) mod bench;
pub(crate) mod chat;
pub(crate) mod eval;
pub(crate) mod knowledge;
pub(crate) mod serve;

use anyhow::{bail, Context, Result};
use palaver::App;

/// The workspace named by `--workspace` (slug or id).
pub(crate) async fn workspace(
    store: &dyn palaver::store::Store,
    key: &str,
) -> Result<palaver::domain::Workspace> {
    let found = match key.parse::<palaver::domain::WorkspaceId>() {
        Ok(id) => store.workspace(id).await?,
        Err(_) => store.workspace_by_slug(key).await?,
    };
    found.with_context(|| format!("no workspace `{key}` (see `palaver workspaces list`)"))
}

pub(crate) async fn find_or_create_agent(
    app: &App,
    ws: palaver::domain::WorkspaceId,
    name: &str,
) -> Result<palaver::domain::Agent> {
    if let Some(agent) = app.store.agent_by_name(ws, name).await? {
        return Ok(agent);
    }
    if let Some(e) = palaver::domain::validate_name("agent", name) {
        bail!("agent name `{name}` {}", e.message);
    }
    let agent = app
        .store
        .create_agent(ws, name, true, &Default::default())
        .await?;
    eprintln!("created agent `{name}`");
    Ok(agent)
}
