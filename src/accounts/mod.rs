//! Workspaces, roles and who is calling. Every request the API serves runs as a [`Caller`]: a
//! workspace and a role in it, resolved once from its credentials. What each role may do is
//! declared route by route with a [`Roles`] set (see `http::auth::allow`); what each workspace
//! may hold is checked here, against its limits. People, their sessions and invitations are in
//! [`people`]; the monthly limit of model calls in [`quota`].

pub mod people;
pub mod quota;

use serde::Serialize;

use crate::domain::{
    validate_name, ApiKeyId, FieldError, MemberRole, UserId, Workspace, WorkspaceId,
    WorkspaceLimits,
};
use crate::store::{Store, StoreError, WorkspaceUsage};

/// A set of roles: who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles(u8);

impl Roles {
    /// Owners only: channels and credentials, keys, people, webhooks, the job queue.
    pub const OWNER: Roles = Roles(1);
    /// Owners and authors: agents, prompts, knowledge, the sandbox, evals.
    pub const AUTHORS: Roles = Roles(1 | 2);
    /// Owners and inbox agents: replying to and handling conversations.
    pub const INBOX: Roles = Roles(1 | 4);
    /// Every role: reading conversations and the workspace itself.
    pub const ANY: Roles = Roles(1 | 2 | 4);

    fn bit(role: MemberRole) -> u8 {
        match role {
            MemberRole::Owner => 1,
            MemberRole::Author => 2,
            MemberRole::Agent => 4,
        }
    }

    /// Whether `role` is in the set.
    pub fn allows(self, role: MemberRole) -> bool {
        self.0 & Self::bit(role) != 0
    }
}

/// Who acts: kept with what they change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// The instance's operator key from the settings.
    Operator,
    /// A workspace's API key.
    ApiKey(ApiKeyId),
    /// A signed-in person.
    User(UserId),
}

impl Actor {
    /// The person, when a person acts.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Actor::User(id) => Some(*id),
            _ => None,
        }
    }

    /// How the audit log names the actor.
    pub fn label(&self) -> String {
        match self {
            Actor::Operator => "operator".into(),
            Actor::ApiKey(id) => format!("key:{id}"),
            Actor::User(id) => format!("user:{id}"),
        }
    }
}

/// The caller of a request: a workspace, a role in it, and who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The workspace everything the request reads or changes belongs to.
    pub workspace: WorkspaceId,
    /// What the caller may do there.
    pub role: MemberRole,
    /// Who it is.
    pub actor: Actor,
    /// Runs the installation (the operator key, or the instance owner signed in): manages
    /// workspaces and their limits.
    pub operator: bool,
    /// Signed in with a session cookie (state-changing requests then need the CSRF token).
    pub by_session: bool,
}

impl Caller {
    /// Whether the caller is the instance's operator (who manages workspaces and their limits).
    pub fn is_operator(&self) -> bool {
        self.operator
    }
}

/// Records what `caller` changed; a failure to record is logged, not returned (the change
/// itself is done).
pub async fn audit(
    store: &dyn Store,
    caller: &Caller,
    action: &str,
    target: Option<String>,
    detail: serde_json::Value,
) {
    let entry = crate::store::AuditEntry {
        workspace_id: Some(caller.workspace),
        actor: caller.actor.label(),
        action: action.to_string(),
        target,
        detail,
        at: chrono::Utc::now(),
    };
    if let Err(e) = store.audit(&entry).await {
        tracing::error!(action, error = %e, "cannot write the audit log");
    }
}

/// Something a workspace's limits count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// One more channel.
    Channel,
    /// One more agent.
    Agent,
    /// One more document of this many bytes (or a replacement: `new_document` false).
    Document {
        /// Its size.
        bytes: u64,
        /// Whether it adds a document (a new version of a stored one does not).
        new_document: bool,
    },
}

/// Why a workspace cannot hold more.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The limit is reached.
    #[error("this workspace's limit of {limit} {what} is reached")]
    Reached {
        /// What is limited.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// Counting failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refuses to add `resource` to workspace `ws` when its limits forbid it.
pub async fn check_limit(
    store: &dyn Store,
    ws: WorkspaceId,
    resource: Resource,
) -> Result<(), LimitError> {
    let Some(workspace) = store.workspace(ws).await? else {
        return Err(StoreError::NotFound(format!("workspace {ws}")).into());
    };
    let limits = workspace.limits;
    if limits == WorkspaceLimits::default() {
        return Ok(());
    }
    let usage = store.workspace_usage(ws).await?;
    exceeded(&limits, &usage, resource).map_or(Ok(()), Err)
}

/// The limit `resource` would break, given what the workspace holds.
fn exceeded(
    limits: &WorkspaceLimits,
    usage: &WorkspaceUsage,
    resource: Resource,
) -> Option<LimitError> {
    let over = |what, limit: Option<u64>, used: u64, adding: u64| {
        limit
            .filter(|&limit| used.saturating_add(adding) > limit)
            .map(|limit| LimitError::Reached { what, limit })
    };
    match resource {
        Resource::Channel => over(
            "channels",
            limits.channels.map(u64::from),
            usage.channels,
            1,
        ),
        Resource::Agent => over("agents", limits.agents.map(u64::from), usage.agents, 1),
        Resource::Document {
            bytes,
            new_document,
        } => over(
            "documents",
            limits.documents.map(u64::from),
            usage.documents,
            new_document as u64,
        )
        .or_else(|| {
            over(
                "bytes of knowledge",
                limits.storage_bytes,
                usage.storage_bytes,
                bytes,
            )
        }),
    }
}

/// Checks a workspace slug: the rules of agent names (1-64 of `a-z`, `0-9`, `-`, `_`).
pub fn validate_slug(slug: &str) -> Option<FieldError> {
    validate_name("slug", slug)
}

/// Creates a workspace.
pub async fn create_workspace(
    store: &dyn Store,
    slug: &str,
    name: &str,
    limits: &WorkspaceLimits,
) -> Result<Workspace, WorkspaceError> {
    let mut errors: Vec<FieldError> = validate_slug(slug).into_iter().collect();
    if name.trim().is_empty() || name.len() > 200 {
        errors.push(FieldError::new("name", "must be 1-200 characters"));
    }
    if !errors.is_empty() {
        return Err(WorkspaceError::Invalid(errors));
    }
    Ok(store.create_workspace(slug, name.trim(), limits).await?)
}

/// Why a workspace could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// Bad fields.
    #[error("invalid workspace")]
    Invalid(Vec<FieldError>),
    /// The store refused (a slug taken: [`StoreError::Conflict`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_sets() {
        use MemberRole::*;
        let table = [
            (Roles::OWNER, [true, false, false]),
            (Roles::AUTHORS, [true, true, false]),
            (Roles::INBOX, [true, false, true]),
            (Roles::ANY, [true, true, true]),
        ];
        for (roles, expected) in table {
            let got = [Owner, Author, Agent].map(|r| roles.allows(r));
            assert_eq!(got, expected, "{roles:?}");
        }
    }

    #[test]
    fn limits_refuse_only_what_would_go_over() {
        let limits = WorkspaceLimits {
            channels: Some(2),
            agents: None,
            documents: Some(10),
            storage_bytes: Some(1000),
        };
        let usage = WorkspaceUsage {
            channels: 1,
            agents: 500,
            documents: 10,
            storage_bytes: 900,
        };
        let cases = [
            (Resource::Channel, None),
            (Resource::Agent, None),
            (
                Resource::Document {
                    bytes: 50,
                    new_document: true,
                },
                Some("documents"),
            ),
            (
                Resource::Document {
                    bytes: 100,
                    new_document: false,
                },
                None,
            ),
            (
                Resource::Document {
                    bytes: 101,
                    new_document: false,
                },
                Some("bytes of knowledge"),
            ),
        ];
        for (resource, expected) in cases {
            let got = exceeded(&limits, &usage, resource).map(|e| match e {
                LimitError::Reached { what, .. } => what,
                LimitError::Store(_) => "store",
            });
            assert_eq!(got, expected, "{resource:?}");
        }
        let full = WorkspaceUsage {
            channels: 2,
            ..usage
        };
        assert!(exceeded(&limits, &full, Resource::Channel).is_some());
    }
}
