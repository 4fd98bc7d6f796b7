-- Palaver schema (Postgres). Ids are UUID strings, times are Unix milliseconds, JSON is TEXT,
-- flags are 0/1 integers: the same column types as the Postgres schema reads through one code path.

CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    active      BIGINT NOT NULL DEFAULT 1,
    config      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);

CREATE TABLE channels (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    provider      TEXT NOT NULL,
    route_key     TEXT NOT NULL,
    agent_id      TEXT REFERENCES agents(id) ON DELETE SET NULL,
    credentials   BYTEA NOT NULL,
    settings      TEXT NOT NULL,
    state         TEXT NOT NULL,
    state_detail  TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (provider, route_key)
);

CREATE TABLE contacts (
    id          TEXT PRIMARY KEY,
    channel_id  TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    wa_id       TEXT NOT NULL,
    reply_to    TEXT,
    name        TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (channel_id, wa_id)
);

CREATE TABLE conversations (
    id                  TEXT PRIMARY KEY,
    channel_id          TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    contact_id          TEXT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    agent_id            TEXT REFERENCES agents(id) ON DELETE SET NULL,
    sandbox             BIGINT NOT NULL DEFAULT 0,
    status              TEXT NOT NULL DEFAULT 'active',
    status_reason       TEXT,
    last_inbound_at     BIGINT,
    last_activity_at    BIGINT NOT NULL,
    context_started_at  BIGINT NOT NULL,
    unread_count        BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (channel_id, contact_id)
);
CREATE INDEX conversations_activity ON conversations (sandbox, last_activity_at DESC);

CREATE TABLE messages (
    seq                  BIGSERIAL PRIMARY KEY,
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
    status_rank          BIGINT NOT NULL DEFAULT 0,
    handled              BIGINT NOT NULL DEFAULT 0,
    error                TEXT,
    generation           TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
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
    opened_at          BIGINT NOT NULL,
    closed_at          BIGINT,
    resolution         TEXT,
    closed_by          TEXT
);
CREATE INDEX escalations_conversation ON escalations (conversation_id, opened_at);

CREATE TABLE collections (
    name             TEXT PRIMARY KEY,
    version          BIGINT NOT NULL DEFAULT 0,
    indexed_version  BIGINT NOT NULL DEFAULT -1,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE documents (
    id               TEXT PRIMARY KEY,
    collection       TEXT NOT NULL REFERENCES collections(name) ON DELETE CASCADE,
    source           TEXT NOT NULL,
    title            TEXT NOT NULL,
    format           TEXT NOT NULL,
    content_hash     TEXT NOT NULL,
    bytes            BIGINT NOT NULL,
    chunk_count      BIGINT NOT NULL,
    embedding_model  TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (collection, source)
);

CREATE TABLE chunks (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    document_id  TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    collection   TEXT NOT NULL,
    position     BIGINT NOT NULL,
    heading      TEXT,
    body         TEXT NOT NULL,
    search_text  TEXT NOT NULL,
    token_count  BIGINT NOT NULL,
    embedding    BYTEA NOT NULL,
    UNIQUE (document_id, position)
);
CREATE INDEX chunks_collection ON chunks (collection, id);

CREATE INDEX chunks_search ON chunks USING GIN (to_tsvector('simple', search_text));

CREATE TABLE jobs (
    seq           BIGSERIAL PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    queue_key     TEXT,
    payload       TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending',
    attempts      BIGINT NOT NULL DEFAULT 0,
    max_attempts  BIGINT NOT NULL,
    run_at        BIGINT NOT NULL,
    lease_until   BIGINT,
    locked_by     TEXT,
    last_error    TEXT,
    dedupe_key    TEXT UNIQUE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (status, run_at);
CREATE INDEX jobs_queue ON jobs (queue_key, status, seq);

-- Every delivery status a provider reported, kept even when it arrives before we know the
-- provider's id for our message (it is applied when the id is recorded).
CREATE TABLE message_statuses (
    channel_id           TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    provider_message_id  TEXT NOT NULL,
    status               TEXT NOT NULL,
    status_rank          BIGINT NOT NULL,
    error                TEXT,
    reported_at          BIGINT NOT NULL,
    received_at          BIGINT NOT NULL,
    PRIMARY KEY (channel_id, provider_message_id, status)
);

-- Eval runs started through the API: the request, progress, and the results as JSON.
CREATE TABLE eval_runs (
    id           TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    request      TEXT NOT NULL,
    cases_done   BIGINT NOT NULL DEFAULT 0,
    cases_total  BIGINT NOT NULL DEFAULT 0,
    summary      TEXT,
    results      TEXT,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX eval_runs_created ON eval_runs (created_at);
