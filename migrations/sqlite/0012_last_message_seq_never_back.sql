-- Postgres's trigger keeps a conversation's highest message number when two transactions
-- add messages at once (see its 0012). SQLite has one writer at a time, so messages are
-- numbered and recorded in one order: nothing changes here.
SELECT 1;
