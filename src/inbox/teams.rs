//! Teams: owners group the workspace's people who answer the inbox, and say for each channel
//! who gets its escalations: the workspace's rule, nobody, one person, or a team's members in
//! turn. A person who leaves the workspace (or stops answering the inbox) leaves its turns.
//! The JSON API and the console both call these, so each rule is checked once.

use super::{answers_the_inbox, InboxError};
use crate::accounts::Caller;
use crate::domain::{ChannelAssignment, ChannelId, FieldError, Team, TeamId, UserId};
use crate::store::{Store, StoreError};

/// The longest team name, in characters.
pub const MAX_NAME: usize = 64;

/// A team's name as stored: trimmed, 1-64 characters, no control characters.
pub fn team_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    let length = name.chars().count();
    if length == 0 || length > MAX_NAME || name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            format!("must be 1-{MAX_NAME} characters, without line breaks"),
        ));
    }
    Ok(name.to_string())
}

/// Creates a team of the caller's workspace with these members, each of whom must answer the
/// inbox there (an error names each one that does not, as `members[i]`).
pub async fn create(
    store: &dyn Store,
    caller: &Caller,
    name: &str,
    members: &[UserId],
) -> Result<Team, InboxError> {
    let mut errors = Vec::new();
    let name = team_name(name).map_err(|e| errors.push(e)).ok();
    for (i, user) in members.iter().enumerate() {
        let field = format!("members[{i}]");
        if let Err(InboxError::Invalid(found)) =
            answers_the_inbox(store, caller.workspace, *user, &field).await
        {
            errors.extend(found);
        }
    }
    let Some(name) = name.filter(|_| errors.is_empty()) else {
        return Err(InboxError::Invalid(errors));
    };
    let team = store.create_team(caller.workspace, &name, members).await?;
    audit(store, caller, "team.created", &team).await;
    Ok(team)
}

/// Renames a team.
pub async fn rename(
    store: &dyn Store,
    caller: &Caller,
    id: TeamId,
    name: &str,
) -> Result<Team, InboxError> {
    let name = team_name(name).map_err(|e| InboxError::Invalid(vec![e]))?;
    let team = store
        .rename_team(caller.workspace, id, &name)
        .await?
        .ok_or_else(|| not_found(id))?;
    audit(store, caller, "team.renamed", &team).await;
    Ok(team)
}

/// Deletes a team; its channels follow the workspace's rule again.
pub async fn delete(store: &dyn Store, caller: &Caller, id: TeamId) -> Result<(), InboxError> {
    if !store.delete_team(caller.workspace, id).await? {
        return Err(not_found(id));
    }
    crate::accounts::audit(
        store,
        caller,
        "team.deleted",
        Some(id.to_string()),
        serde_json::json!({}),
    )
    .await;
    Ok(())
}

/// Adds a person who answers the inbox to a team.
pub async fn add_member(
    store: &dyn Store,
    caller: &Caller,
    id: TeamId,
    user: UserId,
) -> Result<Team, InboxError> {
    // An unknown team is a 404 before the person is judged.
    store
        .team(caller.workspace, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    answers_the_inbox(store, caller.workspace, user, "user").await?;
    let team = store
        .add_team_member(caller.workspace, id, user)
        .await?
        .ok_or_else(|| not_found(id))?;
    audit(store, caller, "team.members", &team).await;
    Ok(team)
}

/// Takes a person out of a team: they get none of its turns from then on.
pub async fn remove_member(
    store: &dyn Store,
    caller: &Caller,
    id: TeamId,
    user: UserId,
) -> Result<Team, InboxError> {
    match store.remove_team_member(caller.workspace, id, user).await? {
        None => return Err(not_found(id)),
        Some(false) => {
            return Err(StoreError::NotFound(format!("{user} is not in the team")).into())
        }
        Some(true) => {}
    }
    let team = store
        .team(caller.workspace, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    audit(store, caller, "team.members", &team).await;
    Ok(team)
}

/// Sets who gets the channel's escalations: a default person must answer the inbox, a team
/// must be the workspace's. Recorded in the audit log.
pub async fn set_channel_rule(
    store: &dyn Store,
    caller: &Caller,
    channel: ChannelId,
    rule: ChannelAssignment,
) -> Result<ChannelAssignment, InboxError> {
    match rule {
        ChannelAssignment::Default { user } => {
            answers_the_inbox(store, caller.workspace, user, "user").await?
        }
        ChannelAssignment::Team { team } => {
            if store.team(caller.workspace, team).await?.is_none() {
                return Err(InboxError::Invalid(vec![FieldError::new(
                    "team",
                    "is not a team of this workspace",
                )]));
            }
        }
        ChannelAssignment::Workspace | ChannelAssignment::Manual => {}
    }
    if !store
        .set_channel_assignment(caller.workspace, channel, rule)
        .await?
    {
        return Err(StoreError::NotFound(format!("no channel {channel}")).into());
    }
    crate::accounts::audit(
        store,
        caller,
        "channel.assignment",
        Some(channel.to_string()),
        serde_json::to_value(rule).unwrap_or_default(),
    )
    .await;
    Ok(rule)
}

fn not_found(id: TeamId) -> InboxError {
    StoreError::NotFound(format!("no team {id}")).into()
}

async fn audit(store: &dyn Store, caller: &Caller, action: &str, team: &Team) {
    let members: Vec<String> = team.members.iter().map(|m| m.id.to_string()).collect();
    crate::accounts::audit(
        store,
        caller,
        action,
        Some(team.id.to_string()),
        serde_json::json!({"name": team.name, "members": members}),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_names_are_one_line_of_at_most_64_characters() {
        assert_eq!(team_name("  Vendas  ").unwrap(), "Vendas");
        assert_eq!(team_name(&"é".repeat(64)).unwrap().chars().count(), 64);
        for bad in ["", "   ", "two\nlines", &"x".repeat(65)] {
            assert_eq!(team_name(bad).unwrap_err().field, "name", "{bad:?}");
        }
    }
}
