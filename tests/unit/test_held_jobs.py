"""The claimed-but-unstarted jobs of a batch (adapters.pg_backend.claimer.Held), shared by the worker's main
thread and its releaser: every job is either started or handed back, never both. Plain values, no servers."""
from __future__ import annotations

from datetime import datetime, timezone

from adapters.pg_backend.claimer import Held
from adapters.pg_backend.executor import Claimed

NOW = datetime.now(timezone.utc)


def job(i: int) -> Claimed:
    return Claimed(f"j{i}", "default", "tests.jobs.noop", [], {}, {}, 180, 1, 0, 0, [], NOW, None, 0, NOW, None)


def test_jobs_start_in_order_and_the_batch_ends_empty():
    held = Held()
    held.hold([job(1), job(2)])
    assert [held.start_next(), held.start_next(), held.start_next()] == [job(1), job(2), None]
    assert held.take_if_stuck(0.0) == []  # the releaser finds nothing and stops watching
    assert not held.armed.is_set()


def test_the_rest_is_taken_only_while_a_job_has_run_long_enough():
    held = Held()
    held.hold([job(1), job(2), job(3)])
    assert held.armed.is_set()  # jobs wait behind the first: the releaser watches
    assert held.take_if_stuck(0.0) == []  # nothing running yet: nothing is stuck
    assert held.start_next() == job(1)
    assert held.take_if_stuck(3600.0) == []  # running, but not for an hour
    assert held.take_if_stuck(0.0) == [job(2), job(3)]
    assert held.start_next() is None  # the main thread never starts a job the releaser took
    assert not held.armed.is_set()


def test_a_job_done_is_no_longer_running():
    held = Held()
    held.hold([job(1), job(2)])
    held.start_next()
    held.job_done()
    assert held.take_if_stuck(0.0) == []
    assert held.start_next() == job(2)


def test_jobs_the_releaser_could_not_release_come_back_first_in_order():
    held = Held()
    held.hold([job(1), job(2), job(3), job(4)])
    held.start_next()
    taken = held.take_if_stuck(0.0)
    held.give_back(taken)
    assert held.take_all() == [job(2), job(3), job(4)]


def test_jobs_claimed_ahead_while_one_runs_are_watched_and_keep_their_order():
    held = Held()
    held.hold([job(1)])
    assert not held.armed.is_set()  # one job, nothing behind it
    assert held.start_next() == job(1)
    held.hold([job(2)])  # claimed ahead while job 1 runs: it waits behind a running job
    assert held.armed.is_set() and len(held) == 1
    assert held.take_if_stuck(0.0) == [job(2)]
