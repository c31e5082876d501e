-- Playbook runs (migrator/playbook/): one row per run of a plan, one per step it reached, so a run killed at any
-- instant resumes where it was. Placeholders in braces are identifiers filled in with psycopg.sql.

-- status: running | stopped (a gate failed or the operator declined; `run` resumes) | done | aborted.
-- step: the 1-based index of the step to run next (or being run). fingerprint: the plan's step shapes, so a run
-- resumes only on the plan it started with.
CREATE TABLE IF NOT EXISTS {schema}.migrator_playbook_runs (
    id          bigserial PRIMARY KEY,
    playbook    text NOT NULL,
    fingerprint text NOT NULL,
    status      text NOT NULL DEFAULT 'running',
    step        integer NOT NULL DEFAULT 1,
    message     text NOT NULL DEFAULT '',
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS migrator_playbook_runs_name_idx ON {schema}.migrator_playbook_runs (playbook, id DESC);

-- intent is written before a step acts (the routing it found, baselines, when a soak's timer started), outcome
-- after; status: started | done | failed | rolled-back.
CREATE TABLE IF NOT EXISTS {schema}.migrator_playbook_steps (
    run_id      bigint NOT NULL REFERENCES {schema}.migrator_playbook_runs (id) ON DELETE CASCADE,
    idx         integer NOT NULL,
    kind        text NOT NULL,
    status      text NOT NULL,
    intent      jsonb NOT NULL DEFAULT '{{}}',
    outcome     jsonb NOT NULL DEFAULT '{{}}',
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (run_id, idx)
);
