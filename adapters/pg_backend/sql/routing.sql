-- Named SQL of the routing tables, run by adapters/pg_backend/routing_tables.py; migrated by 0002_routing.sql
-- and 0004_routers.sql.
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

-- report_router: this process applies routing `version`: inserted at its first report, then its heartbeat
INSERT INTO {routers} (token, host, pid, version) VALUES (%(token)s, %(host)s, %(pid)s, %(version)s)
ON CONFLICT (token) DO UPDATE SET version = excluded.version, last_seen = now();

-- remove_router: a router that closes cleanly leaves at once, rather than after the drop-out bound
DELETE FROM {routers} WHERE token = %(token)s;

-- prune_routers: forget processes killed without a clean close, long after they dropped out
DELETE FROM {routers} WHERE last_seen < now() - make_interval(secs => %(seconds)s);

-- live_routers: routers heard from within the bound, by the server's clock (hosts' clocks may disagree)
SELECT host, pid, version, first_seen, last_seen FROM {routers}
WHERE last_seen >= now() - make_interval(secs => %(within)s)
ORDER BY host, pid, first_seen;
