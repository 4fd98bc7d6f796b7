-- Outgoing webhooks: a workspace's owners subscribe URLs to event types. A dispatcher turns the
-- event log into one delivery per subscription and event (unique on both, so replicas racing
-- to dispatch the same event make one), advancing the subscription's cursor in the same
-- transaction; each delivery is sent by a `hook` job, in order per conversation.
CREATE TABLE hooks (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    url           TEXT NOT NULL,
    -- The signing secret, sealed with the instance's key.
    secret        BYTEA NOT NULL,
    -- Event types as `,a,b,` (empty: every type).
    kinds         TEXT NOT NULL DEFAULT '',
    description   TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT 'active',
    -- Failed attempts in a row; the subscription pauses at `events.hook_pause_after`.
    failures      BIGINT NOT NULL DEFAULT 0,
    paused_reason TEXT,
    -- The last event of the workspace's log looked at.
    event_cursor  BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX hooks_workspace ON hooks (workspace_id);

CREATE TABLE hook_deliveries (
    id               TEXT PRIMARY KEY,
    hook_id          TEXT NOT NULL REFERENCES hooks(id) ON DELETE CASCADE,
    workspace_id     TEXT NOT NULL,
    event_seq        BIGINT NOT NULL,
    event_kind       TEXT NOT NULL,
    conversation_id  TEXT,
    -- The event as sent (kept here, so pruning the log never empties a pending delivery).
    body             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         BIGINT NOT NULL DEFAULT 0,
    response_status  BIGINT,
    response_ms      BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    UNIQUE (hook_id, event_seq)
);
CREATE INDEX hook_deliveries_hook ON hook_deliveries (hook_id, event_seq);
