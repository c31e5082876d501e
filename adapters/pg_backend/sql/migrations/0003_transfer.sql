-- Transfer bookkeeping: what `migrator transfer` holds in, or has landed in, the new backend mid-move.
-- Placeholders in braces are identifiers filled in with psycopg.sql.

-- direction 'to_rq': a job taken out of {jobs} (its whole row in `payload`) and not yet confirmed in RQ;
--   the row is out of reach of every worker until the move finishes or is undone.
-- direction 'from_rq': a marker that job_id was inserted into {jobs} by a transfer whose RQ side is not yet
--   cleaned up; it outlives the job row (a job with result_ttl 0 is deleted when it finishes), so a re-run
--   never inserts the same job twice.
CREATE TABLE IF NOT EXISTS {schema}.migrator_transfers (
    direction  text NOT NULL,
    job_id     text NOT NULL,
    payload    jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (direction, job_id)
);
