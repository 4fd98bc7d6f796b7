-- Workspaces (tenants). Everything earlier belongs to the default workspace, whose fixed id the
-- code knows; its API keys become owner keys. Agent names become unique per workspace, which on
-- SQLite means rebuilding `agents`: this migration runs outside sqlx's transaction so that it can
-- turn foreign keys off first (dropping the old table would otherwise unlink every channel and
-- conversation from its agent), and runs its own.
PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    limits      TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
INSERT INTO workspaces (id, slug, name, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-000000000001', 'default', 'Default',
        CAST(strftime('%s', 'now') AS INTEGER) * 1000, CAST(strftime('%s', 'now') AS INTEGER) * 1000);

CREATE TABLE agents_new (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1,
    config        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
);
INSERT INTO agents_new (id, workspace_id, name, active, config, created_at, updated_at)
SELECT id, '00000000-0000-0000-0000-000000000001', name, active, config, created_at, updated_at
FROM agents;
DROP TABLE agents;
ALTER TABLE agents_new RENAME TO agents;

ALTER TABLE channels ADD COLUMN workspace_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000001' REFERENCES workspaces(id) ON DELETE CASCADE;
CREATE INDEX channels_workspace ON channels (workspace_id, name);

ALTER TABLE api_keys ADD COLUMN workspace_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000001' REFERENCES workspaces(id) ON DELETE CASCADE;
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at);

ALTER TABLE jobs ADD COLUMN workspace_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000001';
CREATE INDEX jobs_workspace ON jobs (workspace_id, status, run_at);

ALTER TABLE eval_runs ADD COLUMN workspace_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000001' REFERENCES workspaces(id) ON DELETE CASCADE;
CREATE INDEX eval_runs_workspace ON eval_runs (workspace_id, created_at);

COMMIT;
PRAGMA foreign_keys = ON;
