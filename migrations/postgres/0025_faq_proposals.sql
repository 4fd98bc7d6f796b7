-- FAQ entries proposed from the inbox (a customer's question and a person's reply to it) or
-- written on the Knowledge gaps page. An author edits and approves one for an agent; approved
-- entries are that agent's "approved answers" document, ingested like any other, and its eval
-- suite. `answer_message_id` is the person's reply it was proposed from: one proposal per reply.
CREATE TABLE faq_proposals (
    id                   TEXT PRIMARY KEY,
    workspace_id         TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    agent_id             TEXT REFERENCES agents(id) ON DELETE SET NULL,
    conversation_id      TEXT REFERENCES conversations(id) ON DELETE SET NULL,
    question_message_id  TEXT,
    answer_message_id    TEXT UNIQUE,
    question             TEXT NOT NULL,
    answer               TEXT NOT NULL,
    status               TEXT NOT NULL DEFAULT 'proposed',
    proposed_by          TEXT REFERENCES users(id) ON DELETE SET NULL,
    proposed_by_name     TEXT NOT NULL,
    decided_by           TEXT REFERENCES users(id) ON DELETE SET NULL,
    decided_at           BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
-- The page's lists: a workspace's proposals by status, newest first.
CREATE INDEX faq_proposals_workspace ON faq_proposals (workspace_id, status, created_at);
-- An agent's approved entries, the document they make.
CREATE INDEX faq_proposals_agent ON faq_proposals (agent_id, status);
-- Customer messages by time: the questions a knowledge-gap report reads.
CREATE INDEX messages_role_time ON messages (role, created_at);
