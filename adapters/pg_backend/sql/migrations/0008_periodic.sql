-- Periodic jobs on the new backend: one row per schedule (a cron expression or a fixed interval). A worker's ticker
-- locks the due rows (FOR UPDATE SKIP LOCKED), enqueues each one's job with an id derived from the tick, and moves
-- next_run_at past now in the same transaction: however many workers tick, each tick is taken once, and a tick
-- missed while no worker ran is enqueued once on catch-up, not once per missed tick.
CREATE TABLE IF NOT EXISTS {periodic} (
    name          text PRIMARY KEY,  -- letters, digits, _ and - (it is part of each tick's job id)
    func          text NOT NULL,
    queue         text NOT NULL DEFAULT 'default',
    args          jsonb NOT NULL DEFAULT '[]',
    kwargs        jsonb NOT NULL DEFAULT '{{}}',
    cron          text,
    every_s       integer,
    timeout_s     integer,
    repeats_left  integer,  -- NULL: forever; rq-scheduler's repeat= counts down to the last run
    source        text NOT NULL,  -- config (migrator.toml), code, or rq-scheduler (moved by transfer --periodic)
    next_run_at   timestamptz NOT NULL,
    last_run_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((cron IS NULL) <> (every_s IS NULL))
);
CREATE INDEX IF NOT EXISTS {periodic_due_idx} ON {periodic} (next_run_at);
