-- Team work in the inbox: a workspace's conversation labels, its canned responses, and
-- conversations snoozed until a time.
CREATE TABLE labels (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    colour        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
);
CREATE TABLE conversation_labels (
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    label_id         TEXT NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, label_id)
);
-- The inbox filtered by a label reads that label's conversations from here.
CREATE INDEX conversation_labels_label ON conversation_labels (label_id, conversation_id);
CREATE TABLE canned_responses (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    short_code    TEXT NOT NULL,
    content       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, short_code)
);
ALTER TABLE conversations ADD COLUMN snoozed_until INTEGER;
-- Few conversations are snoozed at a time: the "Snoozed" list reads them from here.
CREATE INDEX conversations_snoozed ON conversations (snoozed_until) WHERE snoozed_until IS NOT NULL;
