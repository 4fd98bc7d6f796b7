-- Workspaces (tenants). Everything earlier belongs to the default workspace, whose fixed id the
-- code knows; its API keys become owner keys. Agent names become unique per workspace. The
-- defaults only fill existing rows: new rows must name their workspace.
CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    limits      TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
INSERT INTO workspaces (id, slug, name, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-000000000001', 'default', 'Default',
        (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT, (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT);

ALTER TABLE agents ADD COLUMN workspace_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000001' REFERENCES workspaces(id) ON DELETE CASCADE;
ALTER TABLE agents ALTER COLUMN workspace_id DROP DEFAULT;
ALTER TABLE agents DROP CONSTRAINT agents_name_key;
ALTER TABLE agents ADD CONSTRAINT agents_workspace_name_key UNIQUE (workspace_id, name);

ALTER TABLE channels ADD COLUMN workspace_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000001' REFERENCES workspaces(id) ON DELETE CASCADE;
ALTER TABLE channels ALTER COLUMN workspace_id DROP DEFAULT;
CREATE INDEX channels_workspace ON channels (workspace_id, name);

ALTER TABLE api_keys ADD COLUMN workspace_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000001' REFERENCES workspaces(id) ON DELETE CASCADE;
ALTER TABLE api_keys ALTER COLUMN workspace_id DROP DEFAULT;
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
ALTER TABLE api_keys ALTER COLUMN role DROP DEFAULT;
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at);

ALTER TABLE jobs ADD COLUMN workspace_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000001';
ALTER TABLE jobs ALTER COLUMN workspace_id DROP DEFAULT;
CREATE INDEX jobs_workspace ON jobs (workspace_id, status, run_at);

ALTER TABLE eval_runs ADD COLUMN workspace_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000001' REFERENCES workspaces(id) ON DELETE CASCADE;
ALTER TABLE eval_runs ALTER COLUMN workspace_id DROP DEFAULT;
CREATE INDEX eval_runs_workspace ON eval_runs (workspace_id, created_at);
