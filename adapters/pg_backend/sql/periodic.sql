-- save_periodic: add or update one schedule; its next run is kept while its schedule (cron, interval) is unchanged,
-- so that several workers starting with the same migrator.toml do not push each other's next tick around
INSERT INTO {periodic} (name, func, queue, args, kwargs, cron, every_s, timeout_s, repeats_left, source, next_run_at)
VALUES (%(name)s, %(func)s, %(queue)s, %(args)s, %(kwargs)s, %(cron)s, %(every_s)s, %(timeout_s)s, %(repeats_left)s,
        %(source)s, %(next_run_at)s)
ON CONFLICT (name) DO UPDATE
SET func = excluded.func, queue = excluded.queue, args = excluded.args, kwargs = excluded.kwargs,
    timeout_s = excluded.timeout_s, source = excluded.source,
    next_run_at = CASE WHEN {periodic}.cron IS NOT DISTINCT FROM excluded.cron
                        AND {periodic}.every_s IS NOT DISTINCT FROM excluded.every_s
                       THEN {periodic}.next_run_at ELSE excluded.next_run_at END,
    cron = excluded.cron, every_s = excluded.every_s
RETURNING name;

-- add_periodic_once: add a schedule unless one of that name exists (transfer --periodic: a re-run adds nothing)
INSERT INTO {periodic} (name, func, queue, args, kwargs, cron, every_s, timeout_s, repeats_left, source, next_run_at)
VALUES (%(name)s, %(func)s, %(queue)s, %(args)s, %(kwargs)s, %(cron)s, %(every_s)s, %(timeout_s)s, %(repeats_left)s,
        %(source)s, %(next_run_at)s)
ON CONFLICT (name) DO NOTHING
RETURNING name;

-- list_periodic: every schedule, soonest first
SELECT name, func, queue, args, kwargs, cron, every_s, timeout_s, repeats_left, source, next_run_at, last_run_at
FROM {periodic} ORDER BY next_run_at, name;

-- remove_periodic: drop schedules by name (of one source, when given)
DELETE FROM {periodic}
WHERE name = ANY(%(names)s::text[]) AND (%(source)s::text IS NULL OR source = %(source)s)
RETURNING name;

-- periodic_names: the names of one source's schedules (config: to drop those migrator.toml no longer lists)
SELECT name FROM {periodic} WHERE source = %(source)s;

-- lock_due_periodic: the due schedules, locked for this ticker's transaction; another ticker skips them
SELECT name, func, queue, args, kwargs, cron, every_s, timeout_s, repeats_left, source, next_run_at, last_run_at
FROM {periodic} WHERE next_run_at <= now()
ORDER BY next_run_at, name
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- advance_periodic: a tick was enqueued: the next one, and one run fewer for a schedule with a repeat count
-- (the last run deletes the schedule)
WITH gone AS (
    DELETE FROM {periodic} WHERE name = %(name)s AND repeats_left IS NOT NULL AND repeats_left <= 1
    RETURNING name
)
UPDATE {periodic}
SET next_run_at = %(next_run_at)s, last_run_at = %(ran_at)s, repeats_left = repeats_left - 1
WHERE name = %(name)s AND NOT EXISTS (SELECT 1 FROM gone);
