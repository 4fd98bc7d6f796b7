//! [`PeopleStore`] on SQL: users, their roles per workspace, sessions, invitations, sign-in
//! failures, the instance's one-time set-up token and the audit log. Secrets (session and
//! invitation tokens, the set-up token) are stored as sha256 hashes; passwords as argon2id
//! strings made by [`crate::accounts::people`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;

use super::rows::{db_err, get, now_ms, parse_id, parse_text, time};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{to_millis, MemberRole, User, UserId, WorkspaceId};

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Whose.
    pub user_id: UserId,
    /// The token state-changing requests must echo (`X-CSRF-Token`).
    pub csrf_token: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// An invitation to a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    /// Where to.
    pub workspace_id: WorkspaceId,
    /// Who is invited.
    pub email: String,
    /// With which role.
    pub role: MemberRole,
    /// Until when.
    pub expires_at: DateTime<Utc>,
}

/// A person in a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The person.
    #[serde(flatten)]
    pub user: User,
    /// Their role here.
    pub role: MemberRole,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Which workspace (none: the instance).
    pub workspace_id: Option<WorkspaceId>,
    /// Who: `user:<id>`, `key:<id>` or `operator`.
    pub actor: String,
    /// What, e.g. `agent.update`, `channel.credentials`, `member.role`.
    pub action: String,
    /// On what (an id), if anything.
    pub target: Option<String>,
    /// Details (never secrets).
    pub detail: serde_json::Value,
    /// When.
    pub at: DateTime<Utc>,
}

/// People and what they sign in with.
#[async_trait]
pub trait PeopleStore: Send + Sync {
    /// Creates a user; [`StoreError::Conflict`] if the email is taken.
    async fn create_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        instance_owner: bool,
    ) -> Result<User, StoreError>;
    /// A user by id.
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// A user and their password hash, by (lowercased) email.
    async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>, StoreError>;
    /// A user's password hash.
    async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError>;
    /// How many users exist.
    async fn count_users(&self) -> Result<i64, StoreError>;
    /// How many users own the instance (set-up is done once one does).
    async fn count_instance_owners(&self) -> Result<i64, StoreError>;
    /// Every user, by email.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Replaces a user's password hash.
    async fn set_password(&self, id: UserId, password_hash: &str) -> Result<bool, StoreError>;

    /// Gives a user a role in a workspace (replacing any other).
    async fn set_membership(
        &self,
        user: UserId,
        ws: WorkspaceId,
        role: MemberRole,
    ) -> Result<(), StoreError>;
    /// Removes a user from a workspace; false if they were not in it.
    async fn remove_membership(&self, user: UserId, ws: WorkspaceId) -> Result<bool, StoreError>;
    /// A user's role in a workspace.
    async fn membership(
        &self,
        user: UserId,
        ws: WorkspaceId,
    ) -> Result<Option<MemberRole>, StoreError>;
    /// The workspaces a user belongs to, with their role.
    async fn memberships(&self, user: UserId)
        -> Result<Vec<(WorkspaceId, MemberRole)>, StoreError>;
    /// A workspace's people, by email.
    async fn members(&self, ws: WorkspaceId) -> Result<Vec<Member>, StoreError>;

    /// Stores a session by its token's hash.
    async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// A live session (neither revoked nor expired at `now`).
    async fn session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;
    /// Ends one session.
    async fn revoke_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Ends every session of a user.
    async fn revoke_user_sessions(&self, user: UserId) -> Result<u64, StoreError>;

    /// Stores an invitation by its token's hash.
    async fn create_invitation(
        &self,
        token_hash: &str,
        invitation: &Invitation,
        invited_by: &str,
    ) -> Result<(), StoreError>;
    /// Uses up an invitation: the first caller gets it, once, before it expires.
    async fn take_invitation(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Invitation>, StoreError>;

    /// Failed sign-ins of `subject` since `since`.
    async fn sign_in_failures(
        &self,
        subject: &str,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError>;
    /// Counts a failed sign-in of `subject`; a count older than `since` starts again.
    async fn record_sign_in_failure(
        &self,
        subject: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Forgets `subject`'s failures.
    async fn clear_sign_in_failures(&self, subject: &str) -> Result<(), StoreError>;

    /// Keeps the hash of the one-time set-up token (replacing an earlier one).
    async fn set_setup_token(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Uses up the set-up token: true once, for the right hash.
    async fn take_setup_token(&self, token_hash: &str) -> Result<bool, StoreError>;

    /// Appends to the audit log.
    async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// A workspace's audit log, newest first.
    async fn audit_log(&self, ws: WorkspaceId, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: parse_id(row, "id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        instance_owner: get::<i64>(row, "instance_owner")? != 0,
        created_at: time(row, "created_at")?,
    })
}

fn invitation_from_row(row: &AnyRow) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        workspace_id: parse_id(row, "workspace_id")?,
        email: get(row, "email")?,
        role: parse_text(row, "role")?,
        expires_at: time(row, "expires_at")?,
    })
}

const USER_COLUMNS: &str = "id, email, name, instance_owner, created_at";

#[async_trait]
impl PeopleStore for SqlStore {
    async fn create_user(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        instance_owner: bool,
    ) -> Result<User, StoreError> {
        let id = UserId::new();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, instance_owner, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(id.to_string())
        .bind(email)
        .bind(name)
        .bind(password_hash)
        .bind(instance_owner as i64)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(|e| match db_err(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("a user with email `{email}` already exists"))
            }
            other => other,
        })?;
        self.user(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref()
            .map(|r| Ok((user_from_row(r)?, get(r, "password_hash")?)))
            .transpose()
    }

    async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(|r| get(r, "password_hash")).transpose()
    }

    async fn count_users(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        get(&row, "n")
    }

    async fn count_instance_owners(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE instance_owner <> 0")
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        get(&row, "n")
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY email");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_password(&self, id: UserId, password_hash: &str) -> Result<bool, StoreError> {
        let result =
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id.to_string())
                .bind(password_hash)
                .bind(now_ms())
                .execute(&self.write)
                .await
                .map_err(db_err)?;
        Ok(result.rows_affected() > 0)
    }

    async fn set_membership(
        &self,
        user: UserId,
        ws: WorkspaceId,
        role: MemberRole,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO memberships (user_id, workspace_id, role, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, workspace_id) DO UPDATE SET role = excluded.role",
        )
        .bind(user.to_string())
        .bind(ws.to_string())
        .bind(role.as_str())
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn remove_membership(&self, user: UserId, ws: WorkspaceId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let result =
            sqlx::query("DELETE FROM memberships WHERE user_id = $1 AND workspace_id = $2")
                .bind(user.to_string())
                .bind(ws.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        // They leave the workspace's teams.
        sqlx::query(
            "DELETE FROM team_members WHERE user_id = $1
               AND team_id IN (SELECT id FROM teams WHERE workspace_id = $2)",
        )
        .bind(user.to_string())
        .bind(ws.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // Their conversations in this workspace go back to nobody.
        sqlx::query(
            "UPDATE conversations SET assignee_id = NULL WHERE assignee_id = $1
               AND channel_id IN (SELECT id FROM channels WHERE workspace_id = $2)",
        )
        .bind(user.to_string())
        .bind(ws.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(result.rows_affected() > 0)
    }

    async fn membership(
        &self,
        user: UserId,
        ws: WorkspaceId,
    ) -> Result<Option<MemberRole>, StoreError> {
        let row =
            sqlx::query("SELECT role FROM memberships WHERE user_id = $1 AND workspace_id = $2")
                .bind(user.to_string())
                .bind(ws.to_string())
                .fetch_optional(&self.read)
                .await
                .map_err(db_err)?;
        row.as_ref().map(|r| parse_text(r, "role")).transpose()
    }

    async fn memberships(
        &self,
        user: UserId,
    ) -> Result<Vec<(WorkspaceId, MemberRole)>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.workspace_id, m.role FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
             WHERE m.user_id = $1 ORDER BY w.slug",
        )
        .bind(user.to_string())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((parse_id(r, "workspace_id")?, parse_text(r, "role")?)))
            .collect()
    }

    async fn members(&self, ws: WorkspaceId) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.name, u.instance_owner, u.created_at, m.role
             FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.workspace_id = $1 ORDER BY u.email",
        )
        .bind(ws.to_string())
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    user: user_from_row(r)?,
                    role: parse_text(r, "role")?,
                })
            })
            .collect()
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user.to_string())
        .bind(csrf_token)
        .bind(now_ms())
        .bind(to_millis(expires_at))
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, csrf_token, expires_at FROM sessions
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(to_millis(now))
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref()
            .map(|r| {
                Ok(Session {
                    user_id: parse_id(r, "user_id")?,
                    csrf_token: get(r, "csrf_token")?,
                    expires_at: time(r, "expires_at")?,
                })
            })
            .transpose()
    }

    async fn revoke_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_user_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.to_string())
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(result.rows_affected())
    }

    async fn create_invitation(
        &self,
        token_hash: &str,
        invitation: &Invitation,
        invited_by: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO invitations (token_hash, workspace_id, email, role, invited_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token_hash)
        .bind(invitation.workspace_id.to_string())
        .bind(&invitation.email)
        .bind(invitation.role.as_str())
        .bind(invited_by)
        .bind(now_ms())
        .bind(to_millis(invitation.expires_at))
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn take_invitation(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(
            "UPDATE invitations SET accepted_at = $2
             WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2
             RETURNING workspace_id, email, role, expires_at",
        )
        .bind(token_hash)
        .bind(to_millis(now))
        .fetch_optional(&self.write)
        .await
        .map_err(db_err)?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    async fn sign_in_failures(
        &self,
        subject: &str,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let row = sqlx::query(
            "SELECT failures FROM sign_in_failures WHERE subject = $1 AND window_start > $2",
        )
        .bind(subject)
        .bind(to_millis(since))
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        Ok(row
            .map(|r| get::<i64>(&r, "failures"))
            .transpose()?
            .unwrap_or(0)
            .clamp(0, u32::MAX as i64) as u32)
    }

    async fn record_sign_in_failure(
        &self,
        subject: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sign_in_failures (subject, failures, window_start) VALUES ($1, 1, $3)
             ON CONFLICT (subject) DO UPDATE SET
                failures = CASE WHEN sign_in_failures.window_start > $2 THEN sign_in_failures.failures + 1 ELSE 1 END,
                window_start = CASE WHEN sign_in_failures.window_start > $2 THEN sign_in_failures.window_start ELSE $3 END",
        )
        .bind(subject)
        .bind(to_millis(since))
        .bind(to_millis(now))
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn clear_sign_in_failures(&self, subject: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sign_in_failures WHERE subject = $1")
            .bind(subject)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_setup_token(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO instance_setup (id, token_hash, created_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at",
        )
        .bind(token_hash)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn take_setup_token(&self, token_hash: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM instance_setup WHERE id = 1 AND token_hash = $1")
            .bind(token_hash)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected() > 0)
    }

    async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (workspace_id, actor, action, target, detail, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(entry.workspace_id.map(|w| w.to_string()))
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(entry.target.as_deref())
        .bind(entry.detail.to_string())
        .bind(to_millis(entry.at))
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn audit_log(&self, ws: WorkspaceId, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT workspace_id, actor, action, target, detail, created_at FROM audit_log
             WHERE workspace_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(ws.to_string())
        .bind(limit.clamp(1, 1000) as i64)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let workspace: Option<String> = get(r, "workspace_id")?;
                let detail: String = get(r, "detail")?;
                Ok(AuditEntry {
                    workspace_id: workspace
                        .map(|w| {
                            w.parse()
                                .map_err(|_| StoreError::Corrupt(format!("bad id {w}")))
                        })
                        .transpose()?,
                    actor: get(r, "actor")?,
                    action: get(r, "action")?,
                    target: get(r, "target")?,
                    detail: serde_json::from_str(&detail)
                        .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
                    at: time(r, "created_at")?,
                })
            })
            .collect()
    }
}
