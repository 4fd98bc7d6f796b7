-- Claiming walks the due jobs in the order they are claimed (due time, then number) and stops
-- at the first that qualifies; with the number in the index, no sort of every due job.
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs (status, run_at, seq);
