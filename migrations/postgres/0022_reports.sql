-- Reports and satisfaction surveys.
-- Conversations per day and the share the bot answered alone read each channel's messages of
-- a date range from this index alone (it carries the conversation and the role).
CREATE INDEX messages_report ON messages (channel_id, created_at, conversation_id, role);
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
    sent_at            BIGINT NOT NULL,
    score              BIGINT CHECK (score BETWEEN 1 AND 5),
    answered_at        BIGINT,
    answer_message_id  TEXT
);
-- The survey a customer's message may answer: the conversation's latest.
CREATE INDEX csat_surveys_conversation ON csat_surveys (conversation_id, sent_at);
-- The surveys of a date range, by channel.
CREATE INDEX csat_surveys_sent ON csat_surveys (channel_id, sent_at);
