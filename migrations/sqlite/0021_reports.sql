-- Reports and satisfaction surveys.
-- Conversations per day and the share the bot answered alone: each conversation's messages
-- counted by who wrote them per quarter of an hour (created_at / 900000), kept by the
-- transaction that stores a message, so a report reads a row per conversation and quarter
-- rather than every message. Quarters divide every zone's offset from UTC, so days cut in any
-- zone are exact.
CREATE TABLE conversation_activity (
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    quarter          INTEGER NOT NULL,
    channel_id       TEXT NOT NULL,
    customer         INTEGER NOT NULL DEFAULT 0,
    bot              INTEGER NOT NULL DEFAULT 0,
    person           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, quarter)
);
-- A channel's quarters of a date range, read from the index alone.
CREATE INDEX conversation_activity_channel
    ON conversation_activity (channel_id, quarter, conversation_id, customer, bot, person);
-- The messages stored before this migration.
INSERT INTO conversation_activity (conversation_id, quarter, channel_id, customer, bot, person)
SELECT conversation_id, created_at / 900000, MIN(channel_id),
    SUM(CASE WHEN role = 'customer' THEN 1 ELSE 0 END),
    SUM(CASE WHEN role = 'bot' THEN 1 ELSE 0 END),
    SUM(CASE WHEN role = 'agent' THEN 1 ELSE 0 END)
FROM messages
WHERE role IN ('customer', 'bot', 'agent')
GROUP BY conversation_id, created_at / 900000;
-- A person's first reply after an escalation opened: few messages are people's.
CREATE INDEX messages_people ON messages (conversation_id, created_at) WHERE role = 'agent';
-- Escalations of a date range (response and resolution times, reasons).
CREATE INDEX escalations_opened ON escalations (opened_at);
-- A short survey sent after a conversation is resolved, and the customer's answer (1 to 5).
CREATE TABLE csat_surveys (
    id                 TEXT PRIMARY KEY,
    conversation_id    TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    channel_id         TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    escalation_id      TEXT,
    message_id         TEXT NOT NULL,
    person_id          TEXT,
    sent_at            INTEGER NOT NULL,
    score              INTEGER CHECK (score BETWEEN 1 AND 5),
    answered_at        INTEGER,
    answer_message_id  TEXT
);
-- The survey a customer's message may answer: the conversation's latest.
CREATE INDEX csat_surveys_conversation ON csat_surveys (conversation_id, sent_at);
-- The surveys of a date range, by channel.
CREATE INDEX csat_surveys_sent ON csat_surveys (channel_id, sent_at);
