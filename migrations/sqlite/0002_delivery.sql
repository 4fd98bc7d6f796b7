-- Jobs are retried until a deadline instead of a fixed number of attempts; expired leases (a
-- process that died while running the job) are counted apart, against `max_attempts`.
ALTER TABLE jobs ADD COLUMN expires_at INTEGER;
ALTER TABLE jobs ADD COLUMN abandoned INTEGER NOT NULL DEFAULT 0;

-- Each channel's send rate, shared by every process on this database: the theoretical arrival
-- time of the next message (GCRA), in Unix milliseconds.
CREATE TABLE channel_send_rate (
    channel_id  TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    tat         INTEGER NOT NULL
);
