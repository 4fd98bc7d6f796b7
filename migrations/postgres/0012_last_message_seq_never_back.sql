-- Two transactions adding messages to one conversation can take their numbers in one order
-- and update the conversation in the other: the conversation keeps the higher number.
CREATE OR REPLACE FUNCTION messages_last_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations SET last_message_seq = GREATEST(last_message_seq, NEW.seq)
        WHERE id = NEW.conversation_id;
    RETURN NULL;
END;
$$;
