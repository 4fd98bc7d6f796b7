-- Verified webhook deliveries between their acknowledgement and the recording of what they
-- carry (see src/store/journal.rs). Entries are taken oldest first, by the primary key.
CREATE TABLE webhook_journal (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider TEXT NOT NULL,
    channels TEXT NOT NULL,
    body BYTEA NOT NULL,
    received_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    retry_at BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);
