-- Palaver schema (SQLite). Ids are UUID strings, times are Unix milliseconds, JSON is TEXT,
-- flags are 0/1 integers: the same column types as the Postgres schema reads through one code path.

CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    active      INTEGER NOT NULL DEFAULT 1,
    config      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);

CREATE TABLE channels (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    provider      TEXT NOT NULL,
    route_key     TEXT NOT NULL,
    agent_id      TEXT REFERENCES agents(id) ON DELETE SET NULL,
    credentials   BLOB NOT NULL,
    settings      TEXT NOT NULL,
    state         TEXT NOT NULL,
    state_detail  TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (provider, route_key)
);

CREATE TABLE contacts (
    id          TEXT PRIMARY KEY,
    channel_id  TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    wa_id       TEXT NOT NULL,
    reply_to    TEXT,
    name        TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (channel_id, wa_id)
);

CREATE TABLE conversations (
    id                  TEXT PRIMARY KEY,
    channel_id          TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    contact_id          TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    agent_id            TEXT REFERENCES agents(id) ON DELETE SET NULL,
    sandbox             INTEGER NOT NULL DEFAULT 0,
    status              TEXT NOT NULL DEFAULT 'active',
    status_reason       TEXT,
    last_inbound_at     INTEGER,
    last_activity_at    INTEGER NOT NULL,
    context_started_at  INTEGER NOT NULL,
    unread_count        INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (channel_id, contact_id)
);
CREATE INDEX conversations_activity ON conversations (sandbox, last_activity_at DESC);

CREATE TABLE messages (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   TEXT NOT NULL UNIQUE,
    conversation_id      TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    channel_id           TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    direction            TEXT NOT NULL,
    role                 TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    body                 TEXT,
    transcript           TEXT,
    details              TEXT NOT NULL DEFAULT '{}',
    provider_message_id  TEXT,
    idempotency_key      TEXT UNIQUE,
    status               TEXT NOT NULL,
    status_rank          INTEGER NOT NULL DEFAULT 0,
    handled              INTEGER NOT NULL DEFAULT 0,
    error                TEXT,
    generation           TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (channel_id, provider_message_id)
);
CREATE INDEX messages_conversation ON messages (conversation_id, seq);
CREATE INDEX messages_unhandled ON messages (conversation_id, handled, direction);

CREATE TABLE escalations (
    id                 TEXT PRIMARY KEY,
    conversation_id    TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    reason             TEXT NOT NULL,
    detail             TEXT,
    message_id         TEXT,
    opened_at          INTEGER NOT NULL,
    closed_at          INTEGER,
    resolution         TEXT,
    closed_by          TEXT
);
CREATE INDEX escalations_conversation ON escalations (conversation_id, opened_at);

CREATE TABLE collections (
    name             TEXT PRIMARY KEY,
    version          INTEGER NOT NULL DEFAULT 0,
    indexed_version  INTEGER NOT NULL DEFAULT -1,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE documents (
    id               TEXT PRIMARY KEY,
    collection       TEXT NOT NULL REFERENCES collections(name) ON DELETE CASCADE,
    source           TEXT NOT NULL,
    title            TEXT NOT NULL,
    format           TEXT NOT NULL,
    content_hash     TEXT NOT NULL,
    bytes            INTEGER NOT NULL,
    chunk_count      INTEGER NOT NULL,
    embedding_model  TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (collection, source)
);

-- `seq` gives FTS5 a stable integer row id.
CREATE TABLE chunks (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    document_id  TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    collection   TEXT NOT NULL,
    position     INTEGER NOT NULL,
    heading      TEXT,
    body         TEXT NOT NULL,
    search_text  TEXT NOT NULL,
    token_count  INTEGER NOT NULL,
    embedding    BLOB NOT NULL,
    UNIQUE (document_id, position)
);
CREATE INDEX chunks_collection ON chunks (collection, id);

CREATE VIRTUAL TABLE chunks_fts USING fts5(
    search_text,
    content = 'chunks', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, search_text) VALUES (new.seq, new.search_text);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, search_text) VALUES ('delete', old.seq, old.search_text);
END;
CREATE TRIGGER chunks_fts_update AFTER UPDATE OF search_text ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, search_text) VALUES ('delete', old.seq, old.search_text);
    INSERT INTO chunks_fts (rowid, search_text) VALUES (new.seq, new.search_text);
END;

CREATE TABLE jobs (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    queue_key     TEXT,
    payload       TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending',
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_at        INTEGER NOT NULL,
    lease_until   INTEGER,
    locked_by     TEXT,
    last_error    TEXT,
    dedupe_key    TEXT UNIQUE,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs (status, run_at);
CREATE INDEX jobs_queue ON jobs (queue_key, status, seq);

-- Every delivery status a provider reported, kept even when it arrives before we know the
-- provider's id for our message (it is applied when the id is recorded).
CREATE TABLE message_statuses (
    channel_id           TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    provider_message_id  TEXT NOT NULL,
    status               TEXT NOT NULL,
    status_rank          INTEGER NOT NULL,
    error                TEXT,
    reported_at          INTEGER NOT NULL,
    received_at          INTEGER NOT NULL,
    PRIMARY KEY (channel_id, provider_message_id, status)
);

-- Eval runs started through the API: the request, progress, and the results as JSON.
CREATE TABLE eval_runs (
    id           TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    request      TEXT NOT NULL,
    cases_done   INTEGER NOT NULL DEFAULT 0,
    cases_total  INTEGER NOT NULL DEFAULT 0,
    summary      TEXT,
    results      TEXT,
    error        TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX eval_runs_created ON eval_runs (created_at);
