-- Teams: a workspace's people grouped to share a channel's escalations in turn. Each channel
-- says who gets its escalations (its own rule, or the workspace's when `assignment_mode` is
-- 'workspace'). A team counts the turns it gave (`turns`): taking the next turn updates the
-- team's row first, so picks within a team happen one at a time across replicas.
CREATE TABLE teams (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    turns         BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (workspace_id, name)
);
CREATE TABLE team_members (
    team_id     TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The team's turn this member last got (NULL: never).
    last_turn   BIGINT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);
ALTER TABLE channels ADD COLUMN assignment_mode TEXT NOT NULL DEFAULT 'workspace';
ALTER TABLE channels ADD COLUMN assignment_user_id TEXT REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE channels ADD COLUMN assignment_team_id TEXT REFERENCES teams(id) ON DELETE SET NULL;
