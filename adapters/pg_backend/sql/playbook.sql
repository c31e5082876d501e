-- Named SQL of playbook runs (adapters/pg_backend/playbook_state.py), migrated by 0006_playbooks.sql.
-- Placeholders in braces are identifiers filled in with psycopg.sql.

-- try_lock_playbook: one runner per playbook. A session lock, held by the runner's own connection for the
-- whole run, so Postgres frees it when that session ends (exit, crash, SIGKILL): a killed run never blocks the next.
SELECT pg_try_advisory_lock(%(namespace)s::integer, %(key)s::integer);

-- unlock_playbook: release it at the end of a run
SELECT pg_advisory_unlock(%(namespace)s::integer, %(key)s::integer);

-- lock_holder: who holds a playbook's lock: the holder's application_name carries its host and pid
SELECT a.application_name, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.classid::bigint = %(namespace)s AND l.objid::bigint = %(key)s
  AND l.objsubid = 2 AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database());

-- latest_run: the newest run of a playbook
SELECT id, playbook, fingerprint, status, step, message, started_at, updated_at, finished_at
FROM {schema}.migrator_playbook_runs WHERE playbook = %(playbook)s ORDER BY id DESC LIMIT 1;

-- active_runs: the newest run of each playbook, when it is not finished (what `migrator status` shows)
SELECT DISTINCT ON (playbook) id, playbook, fingerprint, status, step, message, started_at, updated_at, finished_at
FROM {schema}.migrator_playbook_runs ORDER BY playbook, id DESC;

-- start_run: a new run at its first step
INSERT INTO {schema}.migrator_playbook_runs (playbook, fingerprint) VALUES (%(playbook)s, %(fingerprint)s)
RETURNING id, playbook, fingerprint, status, step, message, started_at, updated_at, finished_at;

-- set_run: a run's status, next step and message
UPDATE {schema}.migrator_playbook_runs
SET status = %(status)s, step = %(step)s, message = %(message)s, updated_at = now(),
    finished_at = CASE WHEN %(status)s IN ('done', 'aborted') THEN now() END
WHERE id = %(id)s;

-- run_steps: the steps a run reached, in order
SELECT run_id, idx, kind, status, intent, outcome, started_at, finished_at
FROM {schema}.migrator_playbook_steps WHERE run_id = %(run_id)s ORDER BY idx;

-- save_step: write a step's status, intent and outcome; with advance, the run moves to `next` in the same
-- statement, so no crash can record a step done without the run past it (or the reverse)
WITH saved AS (
    INSERT INTO {schema}.migrator_playbook_steps (run_id, idx, kind, status, intent, outcome, finished_at)
    VALUES (%(run_id)s, %(idx)s, %(kind)s, %(status)s, %(intent)s, %(outcome)s,
            CASE WHEN %(status)s = 'started' THEN NULL ELSE now() END)
    ON CONFLICT (run_id, idx) DO UPDATE
    SET status = excluded.status, intent = excluded.intent, outcome = excluded.outcome,
        finished_at = excluded.finished_at,
        started_at = CASE WHEN {schema}.migrator_playbook_steps.status = 'started'
                          THEN {schema}.migrator_playbook_steps.started_at ELSE now() END
    RETURNING run_id
)
UPDATE {schema}.migrator_playbook_runs r SET step = %(next)s, updated_at = now()
FROM saved WHERE r.id = saved.run_id AND %(next)s::integer IS NOT NULL;
