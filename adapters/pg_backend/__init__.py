"""The new backend: a Postgres job queue (schema, enqueue, inspection) and its worker, on psycopg 3."""
