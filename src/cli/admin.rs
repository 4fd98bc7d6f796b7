//! `palaver models`, `keys`, `users` and `workspaces`: the installation's models, API keys,
//! people and tenants.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use palaver::Settings;

use super::workspace;

#[derive(Subcommand)]
pub(crate) enum ModelsCommand {
    /// Show every model, its source and whether it is ready.
    List,
    /// Download and verify models (all of them with --all).
    Fetch {
        /// Model names (see `palaver models list`).
        names: Vec<String>,
        /// Fetch every model in the catalogue.
        #[arg(long)]
        all: bool,
        /// Fetch again even when present and valid.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key and print it (it is not shown again).
    Create {
        /// A label.
        name: String,
        /// What the key may do: owner, author or agent.
        #[arg(long, default_value = "owner")]
        role: String,
    },
    /// List keys.
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id.
        id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum UsersCommand {
    /// Create a person and give them a role in the workspace; the password is read from
    /// standard input (one line).
    Create {
        /// Their email (the sign-in name).
        email: String,
        /// Display name (default: the email).
        #[arg(long)]
        name: Option<String>,
        /// Role in the workspace: owner, author or agent.
        #[arg(long, default_value = "owner")]
        role: String,
        /// Make them the instance owner (manages workspaces and their limits).
        #[arg(long)]
        instance_owner: bool,
    },
    /// List people (of the workspace, with their roles).
    List,
    /// Set a password (read from standard input); every session of theirs ends.
    SetPassword {
        /// Their email.
        email: String,
    },
    /// Give an existing person a role in the workspace.
    Add {
        /// Their email.
        email: String,
        /// owner, author or agent.
        #[arg(long)]
        role: String,
    },
    /// Take a person out of the workspace.
    Remove {
        /// Their email.
        email: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum WorkspacesCommand {
    /// Create a workspace.
    Create {
        /// Short unique name (a-z, 0-9, '-', '_').
        slug: String,
        /// Display name (default: the slug).
        #[arg(long)]
        name: Option<String>,
    },
    /// List workspaces with what they hold and their limits.
    List,
    /// Set the workspace's limits (the one named by --workspace); `none` removes a limit.
    Limits {
        /// Channels.
        #[arg(long)]
        channels: Option<String>,
        /// Agents.
        #[arg(long)]
        agents: Option<String>,
        /// Knowledge documents.
        #[arg(long)]
        documents: Option<String>,
        /// Bytes of knowledge documents.
        #[arg(long)]
        storage_bytes: Option<String>,
    },
}

pub(crate) async fn models(settings: Settings, cmd: ModelsCommand) -> Result<()> {
    let store = palaver::models::ModelStore::from_settings(&settings);
    match cmd {
        ModelsCommand::List => {
            println!("cache: {}", settings.models_dir().display());
            for spec in palaver::models::catalogue() {
                let status = store.status(spec.name).await?;
                println!("{:<18} {:<40} {}", spec.name, status, spec.description);
            }
            Ok(())
        }
        ModelsCommand::Fetch { names, all, force } => {
            let names: Vec<String> = if all {
                palaver::models::catalogue()
                    .iter()
                    .map(|s| s.name.to_string())
                    .collect()
            } else if names.is_empty() {
                bail!("name a model (see `palaver models list`) or pass --all");
            } else {
                names
            };
            for name in names {
                let files = store.fetch(&name, force).await?;
                println!("{name}: ready in {}", files.dir().display());
            }
            Ok(())
        }
    }
}

pub(crate) async fn keys(settings: Settings, ws_key: &str, cmd: KeysCommand) -> Result<()> {
    let store =
        palaver::store::open(&settings.database_url(), settings.database.max_connections).await?;
    store.migrate().await?;
    let ws = workspace(store.as_ref(), ws_key).await?.id;
    match cmd {
        KeysCommand::Create { name, role } => {
            let role: palaver::domain::MemberRole = role
                .parse()
                .map_err(|_| anyhow::anyhow!("--role must be owner, author or agent"))?;
            let (info, key) = palaver::issue_api_key(store.as_ref(), ws, role, &name).await?;
            println!("{key}");
            eprintln!(
                "created key `{}` ({}); it is not shown again",
                info.name, info.id
            );
        }
        KeysCommand::List => {
            for k in store.list_api_keys(ws).await? {
                let state = k
                    .revoked_at
                    .map_or("live".to_string(), |t| format!("revoked {t}"));
                println!(
                    "{}  {:<20} {:<6} {}…  {}  {}",
                    k.id, k.name, k.role, k.prefix, k.created_at, state
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let id = id.parse().context("not a key id")?;
            if !store.revoke_api_key(ws, id).await? {
                bail!("no live key {id}");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

/// A password from standard input (one line, its end trimmed).
fn read_password() -> Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn role_arg(role: &str) -> Result<palaver::domain::MemberRole> {
    role.parse()
        .map_err(|_| anyhow::anyhow!("--role must be owner, author or agent"))
}

pub(crate) async fn users(settings: Settings, ws_key: &str, cmd: UsersCommand) -> Result<()> {
    use palaver::accounts::people;
    let store =
        palaver::store::open(&settings.database_url(), settings.database.max_connections).await?;
    store.migrate().await?;
    let ws = workspace(store.as_ref(), ws_key).await?;
    let find = |email: String| {
        let store = store.clone();
        async move {
            store
                .user_by_email(&people::normalise_email(&email))
                .await?
                .map(|(u, _)| u)
                .with_context(|| format!("no user {email}"))
        }
    };
    let described = |e: people::PeopleError| match e {
        people::PeopleError::Invalid(fields) => anyhow::anyhow!(
            "{}",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => other.into(),
    };
    match cmd {
        UsersCommand::Create {
            email,
            name,
            role,
            instance_owner,
        } => {
            let role = role_arg(&role)?;
            let password = read_password()?;
            let name = name.unwrap_or_else(|| email.clone());
            let user =
                people::create_user(store.as_ref(), &email, &name, &password, instance_owner)
                    .await
                    .map_err(described)?;
            store.set_membership(user.id, ws.id, role).await?;
            println!("{}  {}  {} in {}", user.id, user.email, role, ws.slug);
        }
        UsersCommand::List => {
            for m in store.members(ws.id).await? {
                let owner = if m.user.instance_owner {
                    "  (instance owner)"
                } else {
                    ""
                };
                println!(
                    "{}  {:<32} {:<6} {}{owner}",
                    m.user.id, m.user.email, m.role, m.user.name
                );
            }
        }
        UsersCommand::SetPassword { email } => {
            let user = find(email).await?;
            let password = read_password()?;
            people::reset_password(store.as_ref(), user.id, &password)
                .await
                .map_err(described)?;
            println!("password set for {}; their sessions ended", user.email);
        }
        UsersCommand::Add { email, role } => {
            let role = role_arg(&role)?;
            let user = find(email).await?;
            store.set_membership(user.id, ws.id, role).await?;
            println!("{} is {role} in {}", user.email, ws.slug);
        }
        UsersCommand::Remove { email } => {
            let user = find(email).await?;
            if !store.remove_membership(user.id, ws.id).await? {
                bail!("{} is not in {}", user.email, ws.slug);
            }
            println!("{} left {}", user.email, ws.slug);
        }
    }
    Ok(())
}

pub(crate) async fn workspaces(
    settings: Settings,
    ws_key: &str,
    cmd: WorkspacesCommand,
) -> Result<()> {
    let store =
        palaver::store::open(&settings.database_url(), settings.database.max_connections).await?;
    store.migrate().await?;
    match cmd {
        WorkspacesCommand::Create { slug, name } => {
            let name = name.unwrap_or_else(|| slug.clone());
            let created = palaver::accounts::create_workspace(
                store.as_ref(),
                &slug,
                &name,
                &Default::default(),
            )
            .await
            .map_err(|e| match e {
                palaver::accounts::WorkspaceError::Invalid(fields) => anyhow::anyhow!(
                    "{}",
                    fields
                        .iter()
                        .map(|f| format!("{}: {}", f.field, f.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                other => other.into(),
            })?;
            println!("{}  {}", created.id, created.slug);
        }
        WorkspacesCommand::List => {
            for w in store.list_workspaces().await? {
                let used = store.workspace_usage(w.id).await?;
                let of = |n: u64, limit: Option<u64>| match limit {
                    Some(l) => format!("{n}/{l}"),
                    None => n.to_string(),
                };
                println!(
                    "{}  {:<16} channels {}  agents {}  documents {}  bytes {}  ({})",
                    w.id,
                    w.slug,
                    of(used.channels, w.limits.channels.map(u64::from)),
                    of(used.agents, w.limits.agents.map(u64::from)),
                    of(used.documents, w.limits.documents.map(u64::from)),
                    of(used.storage_bytes, w.limits.storage_bytes),
                    w.name
                );
            }
        }
        WorkspacesCommand::Limits {
            channels,
            agents,
            documents,
            storage_bytes,
        } => {
            let w = workspace(store.as_ref(), ws_key).await?;
            fn limit<T: std::str::FromStr>(
                flag: &str,
                value: Option<String>,
                current: Option<T>,
            ) -> Result<Option<T>> {
                match value.as_deref() {
                    None => Ok(current),
                    Some("none") => Ok(None),
                    Some(v) => v
                        .parse()
                        .map(Some)
                        .map_err(|_| anyhow::anyhow!("--{flag} must be a number or `none`")),
                }
            }
            let limits = palaver::domain::WorkspaceLimits {
                channels: limit("channels", channels, w.limits.channels)?,
                agents: limit("agents", agents, w.limits.agents)?,
                documents: limit("documents", documents, w.limits.documents)?,
                storage_bytes: limit("storage-bytes", storage_bytes, w.limits.storage_bytes)?,
            };
            store.update_workspace(w.id, &w.name, &limits).await?;
            println!("{}: {}", w.slug, serde_json::to_string(&limits)?);
        }
    }
    Ok(())
}
