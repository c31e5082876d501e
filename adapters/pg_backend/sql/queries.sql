-- insert_job: enqueue one job; a second enqueue of the same id is a no-op (no row returned)
-- The NOTIFY that wakes idle workers is sent in the same statement (delivered at commit, so a transactional
-- enqueue that rolls back wakes nobody); a trigger would cost a fifth of an enqueue.
WITH ins AS (
    INSERT INTO {jobs} (id, queue, func, args, kwargs, meta, description, priority, state, run_at, timeout_s,
                        result_ttl, ttl, failure_ttl, retry_max, retry_intervals, depends_on, callbacks,
                        allow_failure)
    VALUES (%(id)s, %(queue)s, %(func)s, %(args)s, %(kwargs)s, %(meta)s, %(description)s, %(priority)s,
            %(state)s, coalesce(%(run_at)s, now()), %(timeout_s)s, %(result_ttl)s, %(ttl)s, %(failure_ttl)s,
            %(retry_max)s, %(retry_intervals)s, %(depends_on)s, %(callbacks)s, %(allow_failure)s)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, queue, state, run_at
)
SELECT ins.id FROM ins
LEFT JOIN LATERAL (SELECT pg_notify({channel}, ins.queue) WHERE ins.state = 'queued' AND ins.run_at <= now()) n
    ON true;

-- create_bulk_table: a session's staging table for bulk enqueues (COPY is the fastest way in)
CREATE TEMP TABLE IF NOT EXISTS {bulk_jobs} (
    id text, queue text, func text, args jsonb, kwargs jsonb, meta jsonb, description text, priority integer,
    run_at timestamptz, timeout_s integer, result_ttl integer, ttl integer, failure_ttl integer, retry_max integer,
    retry_intervals integer[], callbacks jsonb
) ON COMMIT DELETE ROWS;

-- copy_bulk: the COPY that stages a bulk enqueue
COPY {bulk_jobs} (id, queue, func, args, kwargs, meta, description, priority, run_at, timeout_s, result_ttl, ttl,
                  failure_ttl, retry_max, retry_intervals, callbacks) FROM STDIN;

-- insert_bulk: move the staged jobs into the queue (existing ids are skipped); one NOTIFY per queue.
-- Staged rows are consumed by the DELETE, so a later bulk enqueue in the same transaction starts empty.
WITH staged AS (
    DELETE FROM {bulk_jobs} RETURNING *
), ins AS (
    INSERT INTO {jobs} (id, queue, func, args, kwargs, meta, description, priority, run_at, timeout_s,
                        result_ttl, ttl, failure_ttl, retry_max, retry_intervals, callbacks)
    SELECT id, queue, func, args, kwargs, meta, description, priority, coalesce(run_at, now()), timeout_s,
           result_ttl, ttl, failure_ttl, retry_max, retry_intervals, callbacks
    FROM staged
    ON CONFLICT (id) DO NOTHING
    RETURNING id, queue, run_at
)
SELECT count(*), (SELECT count(pg_notify({channel}, q.queue))
                  FROM (SELECT DISTINCT queue FROM ins WHERE run_at <= now()) q)
FROM ins;

-- lock_parents: hold the parents of a new dependent job so none can finish before the child is visible
SELECT id, state FROM {jobs} WHERE id = ANY(%(ids)s) FOR SHARE;

-- claim_jobs: lock the oldest runnable jobs of the given queues for one worker, queues in the order given
-- (as RQ serves them). One ordered index scan per queue: `queue = ANY(...)` would sort the whole queue.
-- SKIP LOCKED lets workers claim side by side; the row stays 'running' with our worker id until we write
-- its outcome, so a worker that dies leaves a trail the reaper can follow.
WITH next AS (
    SELECT c.id
    FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS q(name, ord)
    CROSS JOIN LATERAL (
        SELECT id FROM {jobs}
        WHERE state = 'queued' AND queue = q.name AND run_at <= now()
        ORDER BY priority DESC, run_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) c
    LIMIT %(limit)s
)
UPDATE {jobs} j
SET state = 'running', worker_id = %(worker_id)s, started_at = now(), attempts = j.attempts + 1
FROM next WHERE j.id = next.id
RETURNING j.id, j.queue, j.func, j.args, j.kwargs, j.meta, j.timeout_s, j.attempts, j.interrupted, j.retry_max,
          j.retry_intervals, j.enqueued_at, j.ttl, j.priority, j.run_at, j.result_ttl, j.callbacks, j.description,
          j.failure_ttl;

-- finish_jobs: record successes; result_ttl 0 deletes the row at once; dependents whose other parents are
-- all finished are queued in the same statement (two parents finishing at the same instant are caught by
-- housekeeping's release_dependents)
WITH done AS (
    SELECT d.id, d.result FROM unnest(%(ids)s::text[], %(results)s::jsonb[]) AS d(id, result)
), gone AS (
    DELETE FROM {jobs} j USING done
    WHERE j.id = done.id AND j.state = 'running' AND j.worker_id = %(worker_id)s AND j.result_ttl = 0
    RETURNING j.id
), kept AS (
    UPDATE {jobs} j
    SET state = 'finished', finished_at = now(), worker_id = NULL, result = done.result,
        expires_at = CASE WHEN j.result_ttl < 0 THEN NULL
                          ELSE now() + make_interval(secs => coalesce(j.result_ttl, %(default_result_ttl)s)) END
    FROM done
    WHERE j.id = done.id AND j.state = 'running' AND j.worker_id = %(worker_id)s
      AND j.result_ttl IS DISTINCT FROM 0
    RETURNING j.id
), released AS (
    UPDATE {jobs} c SET state = 'queued', run_at = now()
    WHERE c.state = 'deferred' AND c.depends_on && %(ids)s::text[]
      AND NOT EXISTS (SELECT 1 FROM {jobs} p WHERE p.id = ANY(c.depends_on) AND p.state <> 'finished'
                                                AND NOT (c.allow_failure AND p.state IN ('failed', 'canceled'))
                                                AND NOT p.id = ANY(%(ids)s::text[]))
    RETURNING c.id
)
SELECT id FROM gone UNION ALL SELECT id FROM kept;

-- release_dependents: queue deferred jobs whose every parent has finished (or is gone), or, for a child with
-- allow_failure, has ended (failed or canceled too); ids NULL checks all (housekeeping runs it so, catching two
-- parents that finished at the same instant, a crash in between, and parents that failed for good)
UPDATE {jobs} c SET state = 'queued', run_at = now()
WHERE c.state = 'deferred' AND (%(ids)s::text[] IS NULL OR c.depends_on && %(ids)s::text[])
  AND NOT EXISTS (SELECT 1 FROM {jobs} p WHERE p.id = ANY(c.depends_on) AND p.state <> 'finished'
                                          AND NOT (c.allow_failure AND p.state IN ('failed', 'canceled')))
RETURNING c.id;

-- fail_job: record one failed attempt: back to queued at run_at when it will be retried, else failed
UPDATE {jobs}
SET state = CASE WHEN %(retry)s THEN 'queued' ELSE 'failed' END,
    run_at = CASE WHEN %(retry)s THEN now() + make_interval(secs => %(delay)s) ELSE run_at END,
    finished_at = CASE WHEN %(retry)s THEN NULL ELSE now() END,
    expires_at = CASE WHEN %(retry)s OR failure_ttl < 0 THEN NULL
                      ELSE now() + make_interval(secs => coalesce(failure_ttl, %(default_failure_ttl)s)) END,
    worker_id = NULL, error_type = %(error_type)s, error_message = %(error_message)s, traceback = %(traceback)s
WHERE id = %(id)s AND state = 'running' AND worker_id = %(worker_id)s
RETURNING id, state;

-- cancel_expired: a job that waited past its ttl is canceled instead of run (RQ's ttl)
UPDATE {jobs}
SET state = 'canceled', finished_at = now(), worker_id = NULL, error_type = 'Expired',
    error_message = 'waited in the queue longer than its ttl', expires_at = now() + interval '1 day'
WHERE id = %(id)s AND state = 'running' AND worker_id = %(worker_id)s;

-- requeue_own_running: after a reconnect, a worker's rows still 'running' that it is not running (between two
-- batches it runs none): a claim whose reply was lost, or an outcome a Postgres crash forgot (outcomes commit
-- asynchronously). Nothing else would take them: the worker is alive, so no reaper does. They run again.
WITH back AS (
    UPDATE {jobs} SET state = 'queued', worker_id = NULL, started_at = NULL, run_at = now()
    WHERE state = 'running' AND worker_id = %(worker_id)s
    RETURNING queue
)
SELECT queue FROM back, LATERAL (SELECT pg_notify({channel}, back.queue)) n;

-- release_jobs: give claimed-but-unstarted jobs back (shutdown, or a slow batch), their attempt not counted
WITH back AS (
    UPDATE {jobs} SET state = 'queued', worker_id = NULL, started_at = NULL, attempts = attempts - 1
    WHERE id = ANY(%(ids)s) AND state = 'running' AND worker_id = %(worker_id)s
    RETURNING queue
)
SELECT pg_notify({channel}, q.queue) FROM (SELECT DISTINCT queue FROM back) q;

-- register_worker: a worker row, written by the session that already holds the worker's advisory lock
INSERT INTO {workers} (id, hostname, pid, queues) VALUES (%(id)s, %(hostname)s, %(pid)s, %(queues)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now();

-- next_worker_id: the id a new worker locks before it registers
SELECT nextval(pg_get_serial_sequence({workers_name}, 'id'));

-- lock_worker: the session advisory lock that proves this worker alive; Postgres drops it with the session
SELECT pg_try_advisory_lock(%(namespace)s::integer, %(id)s::integer);

-- heartbeat: refresh the worker's timestamp (display, and the grace period of recovery)
UPDATE {workers} SET heartbeat_at = now() WHERE id = %(id)s RETURNING id;

-- unregister_worker: a worker that stops cleanly removes itself
DELETE FROM {workers} WHERE id = %(id)s;

-- reap_orphans: requeue running jobs whose worker's session is gone (lock released) and whose heartbeat
-- is older than the grace period; a job interrupted too often fails instead of looping forever
WITH dead AS (
    SELECT w.id FROM {workers} w
    WHERE w.id NOT IN (SELECT {live_workers}(%(namespace)s))
      AND w.heartbeat_at < now() - make_interval(secs => %(grace)s)
), orphans AS (
    SELECT j.id FROM {jobs} j
    WHERE j.state = 'running'
      AND (j.worker_id IN (SELECT id FROM dead)
           OR NOT EXISTS (SELECT 1 FROM {workers} w WHERE w.id = j.worker_id))
    FOR UPDATE OF j SKIP LOCKED
), requeued AS (
    UPDATE {jobs} j
    SET state = CASE WHEN j.interrupted + 1 >= %(max_interrupts)s THEN 'failed' ELSE 'queued' END,
        run_at = now(), worker_id = NULL, interrupted = j.interrupted + 1,
        finished_at = CASE WHEN j.interrupted + 1 >= %(max_interrupts)s THEN now() END,
        error_type = 'WorkerDied',
        error_message = format('interrupted: worker %%s died during attempt %%s', j.worker_id, j.attempts)
    FROM orphans WHERE j.id = orphans.id
    RETURNING j.id, j.state
), forgotten AS (
    DELETE FROM {workers} w WHERE w.id IN (SELECT id FROM dead) RETURNING w.id
)
SELECT id, state FROM requeued;

-- purge_expired: delete finished, failed and canceled jobs whose retention has passed
DELETE FROM {jobs} WHERE expires_at < now() AND state IN ('finished', 'failed', 'canceled');

-- purge_finished_before: delete finished jobs older than a retention, whatever their result_ttl
DELETE FROM {jobs} WHERE state = 'finished' AND finished_at < now() - make_interval(secs => %(seconds)s);

-- count_states: jobs per queue, job name and state, scheduled and retrying told apart from runnable
SELECT queue, func,
       CASE WHEN state = 'queued' AND run_at > now() AND attempts > 0 THEN 'retrying'
            WHEN state = 'queued' AND run_at > now() THEN 'scheduled'
            WHEN state = 'queued' AND attempts > 0 THEN 'retrying'
            WHEN state = 'running' THEN 'started'
            ELSE state END AS state,
       count(*)
FROM {jobs}
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s) AND (%(func)s::text IS NULL OR func = %(func)s)
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- pending_jobs: every job not yet done, in enqueue order, for drain, transfer and compat
SELECT id, queue, func, args, kwargs, meta, description, priority, state, run_at, enqueued_at, timeout_s,
       result_ttl, ttl, failure_ttl, retry_max, retry_intervals, depends_on, attempts, callbacks, allow_failure
FROM {jobs}
WHERE state IN ('queued', 'deferred', 'running')
  AND (%(queue)s::text IS NULL OR queue = %(queue)s) AND (%(func)s::text IS NULL OR func = %(func)s)
ORDER BY enqueued_at, id;

-- fetch_job: one job by id, for status, result and error
SELECT j.id, j.queue, j.func, j.state, j.attempts, j.result, j.error_type, j.error_message, j.traceback,
       j.enqueued_at, j.started_at, j.finished_at, j.run_at,
       (SELECT w.hostname || ':' || w.pid FROM {workers} w WHERE w.id = j.worker_id AND j.state = 'running'),
       j.args, j.kwargs, j.meta, j.description, j.priority, j.timeout_s, j.result_ttl, j.ttl, j.failure_ttl,
       j.retry_max, j.retry_intervals, j.depends_on, j.callbacks
FROM {jobs} j WHERE j.id = %(id)s;

-- retry_failed: put failed jobs back in their queue with a fresh attempt budget
UPDATE {jobs}
SET state = 'queued', run_at = now(), attempts = 0, interrupted = 0, finished_at = NULL, expires_at = NULL
WHERE state = 'failed' AND (%(ids)s::text[] IS NULL OR id = ANY(%(ids)s))
  AND (%(func)s::text IS NULL OR func = %(func)s)
RETURNING id;

-- delete_failed: remove failed jobs
DELETE FROM {jobs}
WHERE state = 'failed' AND (%(ids)s::text[] IS NULL OR id = ANY(%(ids)s))
  AND (%(func)s::text IS NULL OR func = %(func)s)
RETURNING id;

-- take_pending: remove one not-started job so that it can be moved to another backend
DELETE FROM {jobs} WHERE id = %(id)s AND state IN ('queued', 'deferred')
RETURNING id;

-- list_workers: registered workers, whether their session still holds the liveness lock, and their running jobs
SELECT w.id, w.hostname, w.pid, w.queues, w.started_at, w.heartbeat_at,
       (SELECT count(*) FROM {jobs} j WHERE j.state = 'running' AND j.worker_id = w.id) AS running,
       w.id IN (SELECT {live_workers}(%(namespace)s)) AS alive
FROM {workers} w ORDER BY w.id;

-- count_running: running jobs per queue and job name, split by whether their worker's session still holds its
-- liveness lock (a dead worker's jobs wait for a live worker's reaper)
SELECT j.queue, j.func,
       coalesce(j.worker_id IN (SELECT {live_workers}(%(namespace)s)), false) AS alive,
       count(*)
FROM {jobs} j
WHERE j.state = 'running' AND (%(func)s::text IS NULL OR j.func = %(func)s)
GROUP BY 1, 2, 3;

-- schema_version: the highest migration applied
SELECT coalesce(max(version), 0) FROM {schema_version};

-- run_stats: jobs (of some job names, or all) that started, finished or failed since a time, and the p95 wait from
-- when each could run (enqueued, or its scheduled time) to its start; runnable jobs still waiting count with their
-- wait so far, so a backlog shows before it starts. The playbook's health gate over a soak.
WITH w AS (
    SELECT state, started_at, finished_at,
           CASE WHEN state = 'queued' AND run_at <= now() THEN now() - greatest(enqueued_at, run_at)
                WHEN state <> 'queued' AND started_at >= %(since)s THEN started_at - greatest(enqueued_at, run_at)
           END AS wait
    FROM {jobs}
    WHERE (started_at >= %(since)s OR finished_at >= %(since)s OR (state = 'queued' AND run_at <= now()))
      AND (%(funcs)s::text[] IS NULL OR func = ANY(%(funcs)s))
)
SELECT count(*) FILTER (WHERE state <> 'queued' AND started_at >= %(since)s),
       count(*) FILTER (WHERE state = 'finished' AND finished_at >= %(since)s),
       count(*) FILTER (WHERE state = 'failed' AND finished_at >= %(since)s),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM wait))
FROM w;

-- save_meta: replace one job's meta (RQ's job.save_meta(), also from inside the running job)
UPDATE {jobs} SET meta = %(meta)s WHERE id = %(id)s RETURNING id;

-- cancel_job: cancel one job no worker has started (RQ's job.cancel()); returns the state it had, so that the
-- caller can say why a started, ended or already canceled job was left alone. Kept like a failed job.
WITH old AS (
    SELECT id, state FROM {jobs} WHERE id = %(id)s FOR UPDATE
), canceled AS (
    UPDATE {jobs} j
    SET state = 'canceled', finished_at = now(), worker_id = NULL,
        expires_at = CASE WHEN j.failure_ttl < 0 THEN NULL
                          ELSE now() + make_interval(secs => coalesce(j.failure_ttl, %(default_failure_ttl)s)) END
    FROM old WHERE j.id = old.id AND old.state IN ('queued', 'deferred')
    RETURNING j.id
)
SELECT old.state FROM old;

-- delete_job: delete one job in any state (RQ's job.delete()); a running job's outcome then finds no row
DELETE FROM {jobs} WHERE id = %(id)s RETURNING id;

-- queued_job_ids: a queue's runnable jobs in the order workers take them (RQ's Queue.job_ids)
SELECT id FROM {jobs}
WHERE state = 'queued' AND queue = %(queue)s AND run_at <= now()
ORDER BY priority DESC, run_at, id;

-- queued_count: how many runnable jobs wait in a queue (RQ's len(queue))
SELECT count(*) FROM {jobs} WHERE state = 'queued' AND queue = %(queue)s AND run_at <= now();

-- empty_queue: delete a queue's runnable jobs (RQ's Queue.empty())
DELETE FROM {jobs} WHERE state = 'queued' AND queue = %(queue)s AND run_at <= now() RETURNING id;
