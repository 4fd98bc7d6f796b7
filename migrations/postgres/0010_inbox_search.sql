-- The inbox with many conversations.
--
-- Its order is latest activity first, then the latest message (two conversations active in the
-- same millisecond). The latest message's number is kept on the conversation by a trigger, so
-- the order is an index walk that stops at the page instead of a sort of every conversation.
ALTER TABLE conversations ADD COLUMN last_message_seq BIGINT NOT NULL DEFAULT 0;
UPDATE conversations SET last_message_seq =
    COALESCE((SELECT MAX(seq) FROM messages m WHERE m.conversation_id = conversations.id), 0);
CREATE FUNCTION messages_last_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations SET last_message_seq = NEW.seq WHERE id = NEW.conversation_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER messages_last_seq AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_last_seq();
DROP INDEX conversations_activity;
CREATE INDEX conversations_activity
    ON conversations (sandbox, last_activity_at DESC, last_message_seq DESC);

-- Searching message text finds any part of a word ("refund" in "refunds"), as `LIKE '%...%'`
-- does, through trigram indexes instead of reading every message (pg_trgm ships with Postgres
-- and is a trusted extension: the database's owner may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX messages_body_trgm ON messages USING gin (LOWER(COALESCE(body, '')) gin_trgm_ops);
CREATE INDEX messages_transcript_trgm
    ON messages USING gin (LOWER(COALESCE(transcript, '')) gin_trgm_ops);
CREATE INDEX contacts_name_trgm ON contacts USING gin (LOWER(COALESCE(name, '')) gin_trgm_ops);
CREATE INDEX contacts_wa_id_trgm ON contacts USING gin (wa_id gin_trgm_ops);
