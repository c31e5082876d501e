-- The job table and the worker registry.
-- Placeholders in braces are identifiers filled in with psycopg.sql (schema-qualified tables, bare index names).
CREATE TABLE IF NOT EXISTS {jobs} (
    id              text PRIMARY KEY,
    queue           text NOT NULL,
    func            text NOT NULL,
    args            jsonb NOT NULL DEFAULT '[]',
    kwargs          jsonb NOT NULL DEFAULT '{{}}',
    meta            jsonb NOT NULL DEFAULT '{{}}',
    description     text,
    priority        integer NOT NULL DEFAULT 0,
    -- queued | deferred | running | finished | failed | canceled ; "scheduled" and "retrying" are queued
    -- rows whose run_at is in the future, told apart by attempts
    state           text NOT NULL DEFAULT 'queued',
    run_at          timestamptz NOT NULL DEFAULT now(),
    enqueued_at     timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    expires_at      timestamptz,
    timeout_s       integer NOT NULL DEFAULT 180,
    result_ttl      integer,
    ttl             integer,
    failure_ttl     integer,
    retry_max       integer NOT NULL DEFAULT 0,
    retry_intervals integer[] NOT NULL DEFAULT '{{}}',
    attempts        integer NOT NULL DEFAULT 0,
    interrupted     integer NOT NULL DEFAULT 0,
    worker_id       bigint,
    depends_on      text[] NOT NULL DEFAULT '{{}}',
    result          jsonb,
    error_type      text,
    error_message   text,
    traceback       text
);

-- The claim query walks this index in order; it holds only runnable-or-scheduled rows, so it stays small.
CREATE INDEX IF NOT EXISTS {jobs_claim_idx} ON {jobs} (queue, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS {jobs_running_idx} ON {jobs} (worker_id) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS {jobs_expiry_idx} ON {jobs} (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS {jobs_deferred_idx} ON {jobs} USING gin (depends_on) WHERE state = 'deferred';

CREATE TABLE IF NOT EXISTS {workers} (
    id           bigserial PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    queues       text[] NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
