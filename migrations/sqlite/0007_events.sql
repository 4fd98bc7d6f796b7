-- The event log: every change a screen or an integration follows, written in the transaction
-- of the change. `seq` counts up per workspace (the workspace row's counter, taken under its
-- write lock, so events become visible in `seq` order); readers resume after the last `seq`
-- they saw.
ALTER TABLE workspaces ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;
CREATE TABLE events (
    workspace_id     TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    kind             TEXT NOT NULL,
    conversation_id  TEXT,
    channel_id       TEXT,
    body             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);
CREATE INDEX events_created ON events (created_at);
