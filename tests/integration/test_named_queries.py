"""Every named query in the .sql files runs against a real, migrated schema (a typo cannot hide in a rare path)."""
from __future__ import annotations

import psycopg
import pytest

from adapters.pg_backend import sql as named
from adapters.pg_backend.liveness import LOCK_NAMESPACE

JOB = {"id": "q1", "queue": "default", "func": "tests.jobs.noop", "args": "[]", "kwargs": "{}", "meta": "{}",
       "description": None, "priority": 0, "state": "queued", "run_at": None, "timeout_s": 180, "result_ttl": None,
       "ttl": None, "failure_ttl": None, "retry_max": 0, "retry_intervals": [], "depends_on": [], "allow_failure": False,
       "callbacks": '{"on_success": {"func": "tests.jobs.noop", "timeout": null}}', "pickled_payload": None}
BULK_ROW = ("q2", "default", "tests.jobs.noop", "[]", "{}", "{}", None, 0, None, 180, None, None, None, 0, [], None)
COPY_ROWS = {"copy_bulk": BULK_ROW, "copy_plain_jobs": ("q5", *BULK_ROW[1:5]),
             "copy_jobs": ("q3", *BULK_ROW[1:8], *BULK_ROW[9:]),
             "copy_jobs_at": ("q4", *BULK_ROW[1:8], "2020-01-01T00:00:00Z", *BULK_ROW[9:])}
SCHEDULE = {"name": "p1", "func": "tests.jobs.noop", "queue": "default", "args": "[]", "kwargs": "{}", "cron": None,
            "every_s": 60, "timeout_s": None, "repeats_left": 2, "source": "config",
            "next_run_at": "2020-01-01T00:00:00Z"}
PARAMS: dict[str, dict[str, dict]] = {
    "queries.sql": {
        "insert_job": JOB, "create_bulk_table": {}, "copy_bulk": {}, "insert_bulk": {},
        "copy_plain_jobs": {}, "copy_jobs": {}, "copy_jobs_at": {}, "notify_queues": {"queues": ["default"], "first": [None]},
        "lock_parents": {"ids": ["q1"]},
        "claim_jobs": {"queues": ["default"], "limit": 10, "worker_id": 1},
        "finish_jobs": {"ids": ["q1"], "results": ["1"], "deleted": [], "worker_id": 1, "default_result_ttl": 500},
        "release_dependents": {"ids": None},
        "fail_job": {"id": "q2", "worker_id": 1, "retry": True, "delay": 1.5, "error_type": "E", "error_message": "m",
                     "traceback": None, "default_failure_ttl": 60},
        "cancel_expired": {"id": "q2", "worker_id": 1}, "release_jobs": {"ids": ["q2"], "worker_id": 1}, "requeue_own_running": {"worker_id": 1},
        "next_worker_id": {},
        "lock_worker": {"namespace": LOCK_NAMESPACE, "id": 1},
        "register_worker": {"id": 1, "hostname": "h", "pid": 1, "queues": ["default"]},
        "heartbeat": {"id": 1}, "unregister_worker": {"id": 1},
        "reap_orphans": {"namespace": LOCK_NAMESPACE, "grace": 0, "max_interrupts": 5},
        "purge_expired": {}, "purge_finished_before": {"seconds": 60},
        "count_states": {"queue": None, "func": None}, "pending_jobs": {"queue": "default", "func": None},
        "fetch_job": {"id": "q1"}, "retry_failed": {"ids": None, "func": None},
        "delete_failed": {"ids": ["q9"], "func": None}, "take_pending": {"id": "q2"},
        "list_workers": {"namespace": LOCK_NAMESPACE}, "schema_version": {},
        "count_running": {"namespace": LOCK_NAMESPACE, "func": None},
        "run_stats": {"since": "2020-01-01T00:00:00Z", "funcs": None},
        "save_meta": {"id": "q1", "meta": '{"progress": 1}'},
        "cancel_job": {"id": "q2", "default_failure_ttl": 60}, "delete_job": {"id": "q9"},
        "queued_job_ids": {"queue": "default"}, "queued_count": {"queue": "default"}, "empty_queue": {"queue": "x"},
        "count_pickled": {},
    },
    "periodic.sql": {
        "save_periodic": SCHEDULE, "add_periodic_once": {**SCHEDULE, "name": "p2"}, "list_periodic": {},
        "remove_periodic": {"names": ["p2"], "source": None}, "periodic_names": {"source": "config"},
        "lock_due_periodic": {"limit": 10},
        "advance_periodic": {"name": "p1", "next_run_at": "2030-01-01T00:00:00Z", "ran_at": "2020-01-01T00:00:00Z"},
    },
    "routing.sql": {
        "lock_routing": {"key": 1}, "read_flags": {"prefix": "migrator_"},
        "upsert_flag": {"name": "migrator_test", "item": b"{}"}, "delete_flags": {"names": ["migrator_test"]},
        "insert_history": {"actor": "t@h", "action": "flip", "job": "a.b", "detail": "{}", "before": "{}",
                           "after": "{}"},
        "list_history": {"limit": 5}, "record_seen": {"names": ["a.b"]}, "seen_jobs": {},
        "report_router": {"token": "t1", "host": "h", "pid": 1, "version": 3}, "remove_router": {"token": "t0"},
        "prune_routers": {"seconds": 60.0}, "live_routers": {"within": 6.0},
    },
    "playbook.sql": {
        "try_lock_playbook": {"namespace": 1, "key": 2}, "unlock_playbook": {"namespace": 1, "key": 2},
        "lock_holder": {"namespace": 1, "key": 2}, "latest_run": {"playbook": "p"}, "active_runs": {},
        "start_run": {"playbook": "p", "fingerprint": "f"},
        "set_run": {"id": 1, "status": "stopped", "step": 2, "message": "m"}, "run_steps": {"run_id": 1},
        "save_step": {"run_id": 1, "idx": 1, "kind": "flip", "status": "done", "intent": "{}", "outcome": "{}",
                      "next": 2},
    },
}


@pytest.mark.parametrize("filename", sorted(PARAMS))
def test_every_named_query_runs(pg_url, filename):
    queries = named.queries("public", filename)
    assert set(PARAMS[filename]) == set(queries), "give every named query parameters here"
    with psycopg.connect(pg_url) as conn:  # one transaction: the staging table keeps its rows until commit
        for name in queries:  # file order: inserts first, so later queries find rows
            params = PARAMS[filename][name]
            try:
                if name in COPY_ROWS:
                    with conn.cursor() as cur, cur.copy(queries[name]) as copy:
                        copy.write_row(COPY_ROWS[name])
                else:
                    conn.execute(queries[name], params or None)
            except psycopg.Error as exc:
                pytest.fail(f"{filename} {name}: {exc}")
