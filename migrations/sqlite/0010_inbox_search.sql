-- The inbox with many conversations.
--
-- Its order is latest activity first, then the latest message (two conversations active in the
-- same millisecond). The latest message's number is kept on the conversation by a trigger, so
-- the order is an index walk that stops at the page instead of a sort of every conversation.
ALTER TABLE conversations ADD COLUMN last_message_seq INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET last_message_seq =
    COALESCE((SELECT MAX(seq) FROM messages m WHERE m.conversation_id = conversations.id), 0);
CREATE TRIGGER messages_last_seq AFTER INSERT ON messages
BEGIN
    UPDATE conversations SET last_message_seq = NEW.seq WHERE id = NEW.conversation_id;
END;
DROP INDEX conversations_activity;
CREATE INDEX conversations_activity
    ON conversations (sandbox, last_activity_at DESC, last_message_seq DESC);

-- Searching message text finds any part of a word ("refund" in "refunds"), as `LIKE '%...%'`
-- does, through a trigram index instead of reading every message. It holds no copy of the
-- text (external content); triggers keep it in step with the messages.
CREATE VIRTUAL TABLE messages_text USING fts5(
    body, transcript, content = 'messages', content_rowid = 'seq', tokenize = 'trigram'
);
INSERT INTO messages_text (messages_text) VALUES ('rebuild');
CREATE TRIGGER messages_text_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO messages_text (rowid, body, transcript) VALUES (NEW.seq, NEW.body, NEW.transcript);
END;
CREATE TRIGGER messages_text_delete AFTER DELETE ON messages
BEGIN
    INSERT INTO messages_text (messages_text, rowid, body, transcript)
        VALUES ('delete', OLD.seq, OLD.body, OLD.transcript);
END;
CREATE TRIGGER messages_text_update AFTER UPDATE OF body, transcript ON messages
BEGIN
    INSERT INTO messages_text (messages_text, rowid, body, transcript)
        VALUES ('delete', OLD.seq, OLD.body, OLD.transcript);
    INSERT INTO messages_text (rowid, body, transcript) VALUES (NEW.seq, NEW.body, NEW.transcript);
END;
