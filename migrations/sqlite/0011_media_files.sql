-- Files people send from the inbox, kept until their message is sent (every attempt sends the
-- same bytes); they go with their conversation.
CREATE TABLE media_files (
    id               TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    filename         TEXT NOT NULL,
    mime_type        TEXT NOT NULL,
    size             INTEGER NOT NULL,
    content          BLOB NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX media_files_conversation ON media_files (conversation_id);
