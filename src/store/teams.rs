//! [`TeamStore`] on SQL: a workspace's teams and their members, and who gets each channel's
//! escalations. Picking a team's next member is part of opening an escalation
//! (`SqlStore::assign_escalated_in`), in its transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::AssertSqlSafe;

use super::rows::{db_err, get, now_ms, opt_id, parse_id, parse_text, time, Tx};
use super::sql::SqlStore;
use super::StoreError;
use crate::domain::{ChannelAssignment, ChannelId, Team, TeamId, TeamMember, UserId, WorkspaceId};

/// Teams and the channels' assignment rules.
#[async_trait]
pub trait TeamStore: Send + Sync {
    /// Creates a team with these members; [`StoreError::Conflict`] if the workspace has a team
    /// of that name. Whether the members may answer the inbox is the caller's to check.
    async fn create_team(
        &self,
        ws: WorkspaceId,
        name: &str,
        members: &[UserId],
    ) -> Result<Team, StoreError>;
    /// The workspace's teams, by name, each with its members by name.
    async fn teams(&self, ws: WorkspaceId) -> Result<Vec<Team>, StoreError>;
    /// One of the workspace's teams.
    async fn team(&self, ws: WorkspaceId, id: TeamId) -> Result<Option<Team>, StoreError>;
    /// Renames a team; `None` if it is not the workspace's. [`StoreError::Conflict`] if the
    /// name is taken.
    async fn rename_team(
        &self,
        ws: WorkspaceId,
        id: TeamId,
        name: &str,
    ) -> Result<Option<Team>, StoreError>;
    /// Deletes a team; the channels whose escalations went to it follow the workspace's rule
    /// again. False if it was not the workspace's.
    async fn delete_team(&self, ws: WorkspaceId, id: TeamId) -> Result<bool, StoreError>;
    /// Adds a person to a team (nothing if they are in it); `None` if the team is not the
    /// workspace's.
    async fn add_team_member(
        &self,
        ws: WorkspaceId,
        id: TeamId,
        user: UserId,
    ) -> Result<Option<Team>, StoreError>;
    /// Takes a person out of a team: `None` if the team is not the workspace's, `Some(false)`
    /// if they were not in it.
    async fn remove_team_member(
        &self,
        ws: WorkspaceId,
        id: TeamId,
        user: UserId,
    ) -> Result<Option<bool>, StoreError>;
    /// Who gets a channel's escalations; `None` if the channel is not the workspace's.
    async fn channel_assignment(
        &self,
        ws: WorkspaceId,
        channel: ChannelId,
    ) -> Result<Option<ChannelAssignment>, StoreError>;
    /// Sets who gets a channel's escalations; false if the channel is not the workspace's.
    async fn set_channel_assignment(
        &self,
        ws: WorkspaceId,
        channel: ChannelId,
        rule: ChannelAssignment,
    ) -> Result<bool, StoreError>;
}

/// The members of the workspace's teams (those still members of the workspace), by team.
async fn members_of(
    store: &SqlStore,
    ws: WorkspaceId,
    team: Option<TeamId>,
) -> Result<HashMap<TeamId, Vec<TeamMember>>, StoreError> {
    const SELECT: &str = "SELECT tm.team_id, u.id, u.name, u.email, m.role FROM team_members tm
         JOIN teams t ON t.id = tm.team_id
         JOIN users u ON u.id = tm.user_id
         JOIN memberships m ON m.user_id = tm.user_id AND m.workspace_id = t.workspace_id
         WHERE t.workspace_id = $1";
    let query = match team {
        Some(team) => sqlx::query(AssertSqlSafe(format!(
            "{SELECT} AND t.id = $2 ORDER BY u.name, u.email"
        )))
        .bind(ws.to_string())
        .bind(team.to_string()),
        None => sqlx::query(AssertSqlSafe(format!("{SELECT} ORDER BY u.name, u.email")))
            .bind(ws.to_string()),
    };
    let rows = query.fetch_all(&store.read).await.map_err(db_err)?;
    let mut out: HashMap<TeamId, Vec<TeamMember>> = HashMap::new();
    for row in &rows {
        out.entry(parse_id(row, "team_id")?)
            .or_default()
            .push(TeamMember {
                id: parse_id(row, "id")?,
                name: get(row, "name")?,
                email: get(row, "email")?,
                role: parse_text(row, "role")?,
            });
    }
    Ok(out)
}

fn team_from_row(
    row: &AnyRow,
    members: &mut HashMap<TeamId, Vec<TeamMember>>,
) -> Result<Team, StoreError> {
    let id: TeamId = parse_id(row, "id")?;
    Ok(Team {
        id,
        workspace_id: parse_id(row, "workspace_id")?,
        name: get(row, "name")?,
        members: members.remove(&id).unwrap_or_default(),
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// A unique violation said as the name taken.
fn taken(name: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match db_err(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a team `{name}` exists")),
        other => other,
    }
}

/// Whether the team is the workspace's.
async fn team_of(tx: &mut Tx, ws: WorkspaceId, id: TeamId) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT id FROM teams WHERE workspace_id = $1 AND id = $2")
            .bind(ws.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?
            .is_some(),
    )
}

/// Records that the team changed (its members did).
/// Makes `user` a member of team `id` (nothing when they already are).
async fn add_member(tx: &mut Tx, id: TeamId, user: UserId, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO team_members (team_id, user_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(id.to_string())
    .bind(user.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn touch(tx: &mut Tx, id: TeamId, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE teams SET updated_at = $2 WHERE id = $1")
        .bind(id.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

impl SqlStore {
    /// The next of the team's members who answer the inbox in `ws`, the one whose last turn
    /// is oldest (or who never had one) first; `None` when it has none. The team's row is
    /// updated first: concurrent picks in one team (other workers, other replicas) wait for
    /// each other there, and each sees the turns given before it.
    pub(super) async fn next_in_team(
        tx: &mut Tx,
        ws: &str,
        team: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(row) = sqlx::query(
            "UPDATE teams SET turns = turns + 1 WHERE id = $1 AND workspace_id = $2 RETURNING turns",
        )
        .bind(team)
        .bind(ws)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        else {
            return Ok(None);
        };
        let turn: i64 = get(&row, "turns")?;
        sqlx::query(
            "UPDATE team_members SET last_turn = $3
             WHERE team_id = $1 AND user_id = (
                 SELECT tm.user_id FROM team_members tm
                 JOIN memberships m ON m.user_id = tm.user_id AND m.workspace_id = $2
                 WHERE tm.team_id = $1 AND m.role IN ('owner', 'agent')
                 ORDER BY tm.last_turn ASC NULLS FIRST, tm.created_at, tm.user_id LIMIT 1)
             RETURNING user_id",
        )
        .bind(team)
        .bind(ws)
        .bind(turn)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .map(|r| get(&r, "user_id"))
        .transpose()
    }
}

/// A channel's rule from its columns.
pub(super) fn channel_rule(row: &AnyRow) -> Result<ChannelAssignment, StoreError> {
    let mode: String = get(row, "assignment_mode")?;
    let user: Option<UserId> = opt_id(row, "assignment_user_id")?;
    let team: Option<TeamId> = opt_id(row, "assignment_team_id")?;
    Ok(match (mode.as_str(), user, team) {
        ("manual", _, _) => ChannelAssignment::Manual,
        ("default", Some(user), _) => ChannelAssignment::Default { user },
        ("team", _, Some(team)) => ChannelAssignment::Team { team },
        // A person or team since deleted: the workspace's rule decides.
        _ => ChannelAssignment::Workspace,
    })
}

#[async_trait]
impl TeamStore for SqlStore {
    async fn create_team(
        &self,
        ws: WorkspaceId,
        name: &str,
        members: &[UserId],
    ) -> Result<Team, StoreError> {
        let id = TeamId::new();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO teams (id, workspace_id, name, turns, created_at, updated_at)
             VALUES ($1, $2, $3, 0, $4, $4)",
        )
        .bind(id.to_string())
        .bind(ws.to_string())
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(taken(name))?;
        for user in members {
            add_member(&mut tx, id, *user, now).await?;
        }
        tx.commit().await.map_err(db_err)?;
        self.team(ws, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("team {id}")))
    }

    async fn teams(&self, ws: WorkspaceId) -> Result<Vec<Team>, StoreError> {
        let mut members = members_of(self, ws, None).await?;
        let rows = sqlx::query("SELECT * FROM teams WHERE workspace_id = $1 ORDER BY name")
            .bind(ws.to_string())
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| team_from_row(r, &mut members))
            .collect()
    }

    async fn team(&self, ws: WorkspaceId, id: TeamId) -> Result<Option<Team>, StoreError> {
        let row = sqlx::query("SELECT * FROM teams WHERE workspace_id = $1 AND id = $2")
            .bind(ws.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut members = members_of(self, ws, Some(id)).await?;
        team_from_row(&row, &mut members).map(Some)
    }

    async fn rename_team(
        &self,
        ws: WorkspaceId,
        id: TeamId,
        name: &str,
    ) -> Result<Option<Team>, StoreError> {
        let updated = sqlx::query(
            "UPDATE teams SET name = $3, updated_at = $4 WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.to_string())
        .bind(id.to_string())
        .bind(name)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(taken(name))?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        self.team(ws, id).await
    }

    async fn delete_team(&self, ws: WorkspaceId, id: TeamId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        if !team_of(&mut tx, ws, id).await? {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE channels SET assignment_mode = 'workspace', assignment_team_id = NULL
             WHERE workspace_id = $1 AND assignment_team_id = $2",
        )
        .bind(ws.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query("DELETE FROM teams WHERE workspace_id = $1 AND id = $2")
            .bind(ws.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn add_team_member(
        &self,
        ws: WorkspaceId,
        id: TeamId,
        user: UserId,
    ) -> Result<Option<Team>, StoreError> {
        let mut tx = self.begin_write().await?;
        if !team_of(&mut tx, ws, id).await? {
            return Ok(None);
        }
        let now = now_ms();
        add_member(&mut tx, id, user, now).await?;
        touch(&mut tx, id, now).await?;
        tx.commit().await.map_err(db_err)?;
        self.team(ws, id).await
    }

    async fn remove_team_member(
        &self,
        ws: WorkspaceId,
        id: TeamId,
        user: UserId,
    ) -> Result<Option<bool>, StoreError> {
        let mut tx = self.begin_write().await?;
        if !team_of(&mut tx, ws, id).await? {
            return Ok(None);
        }
        let removed = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected()
            > 0;
        touch(&mut tx, id, now_ms()).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(removed))
    }

    async fn channel_assignment(
        &self,
        ws: WorkspaceId,
        channel: ChannelId,
    ) -> Result<Option<ChannelAssignment>, StoreError> {
        let row = sqlx::query(
            "SELECT assignment_mode, assignment_user_id, assignment_team_id FROM channels
             WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.to_string())
        .bind(channel.to_string())
        .fetch_optional(&self.read)
        .await
        .map_err(db_err)?;
        row.as_ref().map(channel_rule).transpose()
    }

    async fn set_channel_assignment(
        &self,
        ws: WorkspaceId,
        channel: ChannelId,
        rule: ChannelAssignment,
    ) -> Result<bool, StoreError> {
        let (mode, user, team) = match rule {
            ChannelAssignment::Workspace => ("workspace", None, None),
            ChannelAssignment::Manual => ("manual", None, None),
            ChannelAssignment::Default { user } => ("default", Some(user.to_string()), None),
            ChannelAssignment::Team { team } => ("team", None, Some(team.to_string())),
        };
        Ok(sqlx::query(
            "UPDATE channels SET assignment_mode = $3, assignment_user_id = $4,
                assignment_team_id = $5, updated_at = $6
             WHERE workspace_id = $1 AND id = $2",
        )
        .bind(ws.to_string())
        .bind(channel.to_string())
        .bind(mode)
        .bind(user)
        .bind(team)
        .bind(now_ms())
        .execute(&self.write)
        .await
        .map_err(db_err)?
        .rows_affected()
            > 0)
    }
}
