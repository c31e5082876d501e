-- Id lists travel as one JSON text (%(ids)s::jsonb, written by json.dumps in C): psycopg dumps a list element by
-- element in Python, through a regular expression in text, and packing each in binary still cost a move from RQ
-- a tenth of its time (three lists of thousands of ids a chunk).

-- lock_transfer: one transfer at a time per database; a session lock, so a SIGKILLed transfer frees it
SELECT pg_try_advisory_lock(%(key)s::bigint);

-- existing_ids: which of these ids the job table already holds (in any state); a join, so that the planner
-- probes the primary key per id instead of scanning the table for a long array
SELECT j.id FROM jsonb_array_elements_text(%(ids)s::jsonb) AS i(id) JOIN {jobs} j ON j.id = i.id;

-- land_check: of these ids, which a transfer from RQ has already inserted ('landed': a crashed run committed them)
-- and which the job table holds ('exists'), in one round trip. A marker row stands for a whole batch (payload: the
-- array of its ids; job_id: its first id); one without a payload (from an older migrator) for its job_id alone.
-- The marker ids are joined to the asked ids (a hash join), not tested with = ANY: that compared each id of every
-- marker with each asked id, 22 million comparisons while the chunk before is still being cleaned up
SELECT e.id, 'landed' FROM {schema}.migrator_transfers t
CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(t.payload, jsonb_build_array(t.job_id))) AS e(id)
JOIN jsonb_array_elements_text(%(ids)s::jsonb) AS i(id) ON i.id = e.id
WHERE t.direction = 'from_rq'
UNION ALL
SELECT j.id, 'exists' FROM jsonb_array_elements_text(%(ids)s::jsonb) AS i(id) JOIN {jobs} j ON j.id = i.id;

-- mark_landed: record that these ids are being inserted from RQ, in the same transaction as the insert: one row
-- per batch (a row per id cost as much as inserting the jobs). No ON CONFLICT: a marker must never be dropped
INSERT INTO {schema}.migrator_transfers (direction, job_id, payload)
SELECT 'from_rq', %(ids)s::jsonb->>0, %(ids)s::jsonb
WHERE jsonb_array_length(%(ids)s::jsonb) > 0;

-- forget_landed: the RQ side of these ids is cleaned up; their markers are no longer needed. A batch is cleaned up
-- in one Redis transaction, so its first id stands for all of it
DELETE FROM {schema}.migrator_transfers WHERE direction = 'from_rq'
  AND job_id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb));

-- sweep_landed: markers whose RQ side is gone (a run died after cleaning RQ, before forgetting them): none of
-- their ids is held any more
DELETE FROM {schema}.migrator_transfers t
WHERE t.direction = 'from_rq' AND NOT EXISTS (
    SELECT 1 FROM jsonb_array_elements_text(coalesce(t.payload, jsonb_build_array(t.job_id))) AS e(id)
    WHERE e.id IN (SELECT jsonb_array_elements_text(%(held)s::jsonb)));

-- parents_with_dependents: which of these ids other jobs still wait on (deferred on them)
SELECT DISTINCT p.id FROM jsonb_array_elements_text(%(ids)s::jsonb) AS p(id)
WHERE EXISTS (SELECT 1 FROM {jobs} c WHERE c.state = 'deferred' AND c.depends_on @> ARRAY[p.id]);

-- take_jobs: move not-started jobs out of the job table into the transfer table, in one statement: from
-- here on no worker can claim them. Jobs that started, have run before, wait on parents or are waited on
-- are left alone. The rows are locked first with SKIP LOCKED: a row a worker is claiming at this instant is
-- left to that worker (it runs here, counted as missed), and the DELETE never waits on a worker's lock while
-- holding others, which could deadlock with a worker locking the same rows in another order.
WITH chosen AS (
    SELECT j.id FROM {jobs} j
    WHERE j.id = ANY(ARRAY(SELECT jsonb_array_elements_text(%(ids)s::jsonb)))
      AND j.state = 'queued' AND j.attempts = 0 AND j.depends_on = '{{}}'
      AND NOT EXISTS (SELECT 1 FROM {jobs} c WHERE c.state = 'deferred' AND c.depends_on @> ARRAY[j.id])
    FOR UPDATE OF j SKIP LOCKED
), taken AS (
    DELETE FROM {jobs} j USING chosen WHERE j.id = chosen.id
    RETURNING j.*
)
INSERT INTO {schema}.migrator_transfers (direction, job_id, payload)
SELECT 'to_rq', taken.id, to_jsonb(taken) FROM taken
RETURNING payload;

-- held_jobs: jobs taken out by a transfer to RQ that has not finished (a re-run completes them)
SELECT payload FROM {schema}.migrator_transfers WHERE direction = 'to_rq' ORDER BY created_at, job_id;

-- forget_held: these jobs are in RQ now; drop what we held of them
DELETE FROM {schema}.migrator_transfers WHERE direction = 'to_rq'
  AND job_id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb));

-- restore_held: put held jobs back in the job table unchanged (RQ already had a job with their id)
WITH back AS (
    DELETE FROM {schema}.migrator_transfers WHERE direction = 'to_rq'
      AND job_id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb))
    RETURNING payload
)
INSERT INTO {jobs} SELECT r.* FROM back, jsonb_populate_record(NULL::{jobs}, back.payload) AS r
ON CONFLICT (id) DO NOTHING;

-- count_held: jobs taken out by an unfinished transfer to RQ, per queue and job name (a drain check counts them)
SELECT payload->>'queue', payload->>'func', count(*) FROM {schema}.migrator_transfers
WHERE direction = 'to_rq' AND (%(func)s::text IS NULL OR payload->>'func' = %(func)s)
GROUP BY 1, 2 ORDER BY 1, 2;
