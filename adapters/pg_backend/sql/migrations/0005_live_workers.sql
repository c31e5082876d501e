-- Worker liveness, written once: the ids of the workers whose session holds its advisory lock (see
-- adapters/pg_backend/liveness.py). reap_orphans, list_workers and count_running all ask this question.
-- Placeholders in braces are identifiers filled in with psycopg.sql.

-- A function rather than a view: the lock namespace stays one constant in liveness.py, passed as an argument
-- (a view would have to spell the number again). LANGUAGE sql and STABLE, so the planner inlines it into the
-- calling query like a subquery: no extra cost over the three copies it replaces. pg_locks is read per
-- statement, and only granted locks of this database count (another database may reuse worker ids).
CREATE OR REPLACE FUNCTION {live_workers}(namespace bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT l.objid::bigint FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.classid::bigint = namespace AND l.objsubid = 2 AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
$$;
