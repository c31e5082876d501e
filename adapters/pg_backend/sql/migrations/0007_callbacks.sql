-- RQ's callbacks on the new backend: a JSON object with one entry per callback the job was enqueued with, keyed
-- by option (on_success, on_failure, on_stopped), each giving the import path ("func") and "timeout" in seconds;
-- NULL when none (also in rows a transfer held from before this migration). Import paths, never pickled
-- functions: a worker imports them as it imports the job's function.
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS callbacks jsonb;
