-- Router presence: every process that routes jobs reports here the routing version it applies, so an operator
-- (and the playbook's propagation gate) can tell when a flip has reached every process.
-- Placeholders in braces are identifiers filled in with psycopg.sql.

-- One row per routing process (a per-process token: pids repeat across hosts and restarts). Written by the
-- flag cache's refresher when its version changes and as a heartbeat; deleted on a clean close. A killed
-- process leaves its row behind: readers go by last_seen (the server's clock, so hosts' clocks do not matter),
-- and rows unheard of for an hour are pruned when a new router first reports.
CREATE TABLE IF NOT EXISTS {routers} (
    token      text PRIMARY KEY,
    host       text NOT NULL,
    pid        integer NOT NULL,
    version    bigint NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);
