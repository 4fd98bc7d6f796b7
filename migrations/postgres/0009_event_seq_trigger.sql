-- SQLite advances the workspace's event counter with a trigger (see its 0009). On Postgres the
-- event's INSERT takes the counter's row lock and moves it in the same statement (a
-- data-modifying WITH), so nothing is added here.
SELECT 1;
