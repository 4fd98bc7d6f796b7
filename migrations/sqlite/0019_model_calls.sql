-- Model calls a person asks for (drafting an agent's instructions with a model), counted per
-- workspace and calendar month (UTC, `YYYY-MM`) against the monthly limit the workspace's owners
-- set; no limit set means none.
ALTER TABLE workspaces ADD COLUMN model_calls_limit BIGINT;
CREATE TABLE model_calls (
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    month         TEXT NOT NULL,
    calls         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, month)
);
