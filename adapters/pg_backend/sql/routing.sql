-- Named SQL of the routing tables (migrator/flags.py, history.py, known_jobs.py), migrated by 0002_routing.sql.
-- Placeholders in braces are identifiers filled in with psycopg.sql.

-- lock_routing: serialise routing edits; flipper items are read-modify-write, so two concurrent edits without
-- this lock could each write back a state missing the other's change. Transaction-scoped: freed at commit,
-- or by Postgres when the editing session dies.
SELECT pg_advisory_xact_lock(%(key)s);

-- read_flags: every routing item in one statement, so a snapshot never mixes two edits
SELECT name, item FROM {flags} WHERE starts_with(name, %(prefix)s);

-- upsert_flag: write one serialized flipper item
INSERT INTO {flags} (name, item) VALUES (%(name)s, %(item)s)
ON CONFLICT (name) DO UPDATE SET item = excluded.item;

-- delete_flags: remove per-job items (unflip, rollback)
DELETE FROM {flags} WHERE name = ANY(%(names)s);

-- insert_history: one audit entry, in the transaction of the change it describes
INSERT INTO {routing_history} (actor, action, job, detail, before, after)
VALUES (%(actor)s, %(action)s, %(job)s, %(detail)s, %(before)s, %(after)s)
RETURNING id, at;

-- list_history: the newest entries first
SELECT id, at, actor, action, job, detail, before, after FROM {routing_history}
ORDER BY id DESC LIMIT %(limit)s;

-- record_seen: remember job names the router routed; sorted so that concurrent batches lock rows in one order
INSERT INTO {seen_jobs} (name)
SELECT DISTINCT n FROM unnest(%(names)s::text[]) AS n ORDER BY n
ON CONFLICT (name) DO UPDATE SET last_seen = now();

-- seen_jobs: every job name the router has routed
SELECT name FROM {seen_jobs} ORDER BY name;
