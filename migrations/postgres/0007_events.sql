-- The event log: every change a screen or an integration follows, written in the transaction
-- of the change. `seq` counts up per workspace (the workspace row's counter, taken under its
-- row lock, so events become visible in `seq` order); readers resume after the last `seq`
-- they saw. Each new event notifies `palaver_events` with its workspace id at commit, which
-- wakes the event streams of every replica.
ALTER TABLE workspaces ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;
CREATE TABLE events (
    workspace_id     TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    seq              BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    conversation_id  TEXT,
    channel_id       TEXT,
    body             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);
CREATE INDEX events_created ON events (created_at);

CREATE FUNCTION palaver_notify_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('palaver_events', NEW.workspace_id || ':' || NEW.seq);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION palaver_notify_event();
