-- Private notes on conversations: written by the workspace's people for each other, shown in
-- the thread, never sent to the customer. The people a note mentions are resolved when it is
-- written and kept with it (a JSON array of user ids).
CREATE TABLE conversation_notes (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    author_id        TEXT REFERENCES users(id) ON DELETE SET NULL,
    author_name      TEXT NOT NULL,
    text             TEXT NOT NULL,
    mentions         TEXT NOT NULL DEFAULT '[]',
    created_at       BIGINT NOT NULL
);
-- A conversation's notes in the order they were written.
CREATE INDEX conversation_notes_conversation ON conversation_notes (conversation_id, created_at);
