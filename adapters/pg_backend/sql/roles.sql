-- The least Postgres privileges each migrator process needs (docs/security.md says why each grant is there).
-- Run it as the role that owns migrator's tables (the one that runs `migrator db migrate`), in the database that
-- holds them, after `migrator db migrate`, and again after an upgrade that adds a table. Tables are in schema
-- public here: for another schema (`schema` in migrator.toml), change the search_path line.
-- Three group roles, NOLOGIN: make your login roles members (CREATE ROLE shop_web LOGIN IN ROLE migrator_app).

SET search_path = public;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'migrator_app') THEN CREATE ROLE migrator_app NOLOGIN; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'migrator_worker') THEN CREATE ROLE migrator_worker NOLOGIN; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'migrator_operator') THEN CREATE ROLE migrator_operator NOLOGIN; END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- migrator_app: the application's processes (web, API, anything that enqueues through migrator.Queue).
-- Enqueue (insert_job, insert_bulk through a TEMP table: TEMPORARY on the database, PUBLIC has it by default),
-- read its jobs back (Job.fetch, len(queue), job_ids), read the flags, record the job names it enqueues, report
-- its presence (the routing version it applies). UPDATE (meta) only: job.save_meta() from the app, and the row
-- lock (FOR SHARE) that an enqueue with depends_on takes on its parents needs UPDATE on some column. No DELETE
-- of jobs, no other column, no flags, no audit log.
-- ---------------------------------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA public TO migrator_app;
GRANT SELECT, INSERT ON migrator_jobs TO migrator_app;
GRANT UPDATE (meta) ON migrator_jobs TO migrator_app;
GRANT SELECT ON migrator_workers, migrator_flags, migrator_schema_version TO migrator_app;
GRANT SELECT, INSERT, UPDATE ON migrator_seen_jobs TO migrator_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON migrator_routers TO migrator_app;

-- ---------------------------------------------------------------------------------------------------------------
-- migrator_worker: `migrator worker`. Claims, finishes (a finished job with result_ttl 0 is deleted), fails,
-- retries, releases and purges jobs, requeues a dead worker's jobs (reap_orphans); registers itself, heartbeats and
-- reaps dead workers' rows (a serial id: the sequence); ticks periodic schedules, whose jobs are routed by the flags
-- like an app's (hence the app's reads and its presence). It never edits flags nor the audit log.
-- ---------------------------------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA public TO migrator_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON migrator_jobs, migrator_workers, migrator_periodic TO migrator_worker;
GRANT USAGE, SELECT ON SEQUENCE migrator_workers_id_seq TO migrator_worker;
GRANT SELECT ON migrator_flags, migrator_schema_version TO migrator_worker;
GRANT SELECT, INSERT, UPDATE ON migrator_seen_jobs TO migrator_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON migrator_routers TO migrator_worker;

-- ---------------------------------------------------------------------------------------------------------------
-- migrator_operator: the CLI and the control panel (flip, rollout, rollback, status, history, drain-check,
-- transfer, compat scan, playbook, jobs retry/delete/purge, web). Every row of every migrator table, no DDL:
-- `migrator db migrate` runs as the tables' owner, not as this role.
-- ---------------------------------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA public TO migrator_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    migrator_jobs, migrator_workers, migrator_flags, migrator_routing_history, migrator_seen_jobs, migrator_routers,
    migrator_transfers, migrator_playbook_runs, migrator_playbook_steps, migrator_periodic
    TO migrator_operator;
GRANT SELECT ON migrator_schema_version TO migrator_operator;
GRANT USAGE, SELECT ON SEQUENCE migrator_workers_id_seq, migrator_routing_history_id_seq, migrator_playbook_runs_id_seq
    TO migrator_operator;
