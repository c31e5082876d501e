-- Routing: the flag table (flipper-client's PostgreSQL store layout), the audit log, and the job names seen.
-- Placeholders in braces are identifiers filled in with psycopg.sql.

-- Exactly the table flipper's PostgreSQLFeatureFlagStore creates (name varchar(40), item bytea holding a
-- serialized FeatureFlagStoreItem), so flipper's own client can open it with table_name='migrator_flags'.
CREATE TABLE IF NOT EXISTS {flags} (
    name varchar(40) PRIMARY KEY,
    item bytea NOT NULL
);

-- One row per routing change, written in the same transaction as the change itself.
CREATE TABLE IF NOT EXISTS {routing_history} (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    job     text,
    detail  jsonb NOT NULL DEFAULT '{{}}',
    before  jsonb NOT NULL,
    after   jsonb NOT NULL
);

-- Job names the router has routed, so `flip` can tell a typo from a job that exists only in production.
CREATE TABLE IF NOT EXISTS {seen_jobs} (
    name       text PRIMARY KEY,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);
