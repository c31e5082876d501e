-- Opt-in pickled payloads (pickle_payloads in migrator.toml): the pickled (args, kwargs) of a job whose arguments
-- tagged JSON cannot carry, kept apart from the JSON columns, which then hold a marker. NULL for every other job.
-- Only the worker unpickles it, and only for a job its own configuration opts in (adapters/pg_backend/pickled.py).
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS pickled_payload bytea;
