-- rq.Dependency(allow_failure=True): the job runs once its parents have ended, finished or failed (canceled
-- too), not only once they have finished. A child without it waits for finished parents, as before.
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS allow_failure boolean NOT NULL DEFAULT false;
