-- Postgres adds the job's number to `jobs_due` so that claiming walks it in claim order (see
-- its 0016). Here `seq` is the rowid, which every index already ends with: nothing to change.
SELECT 1;
