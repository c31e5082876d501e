"""Why a pending job cannot move, in plain values: each rule of the RQ -> Postgres and Postgres -> RQ refusals.
The backends are real but never connect (redis-py and the Postgres pool connect on first use): only their
refusal(spec) is asked, which reads the spec and the app's serializer."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from adapters.base import JobSpec, JobState, PendingJob
from adapters.pg_backend.backend import PostgresBackend
from adapters.rq_backend import RQBackend
from migrator.transfer.to_postgres import _DUE, _WAITED_ON, _refusal_for_postgres
from migrator.transfer.to_rq import _refusal_for_rq

NOW = datetime.now(timezone.utc)


@pytest.fixture
def postgres() -> Iterator[PostgresBackend]:
    backend = PostgresBackend("postgresql://nobody@127.0.0.1:1/never_connected")
    yield backend
    backend.close()


@pytest.fixture
def rq() -> Iterator[RQBackend]:
    backend = RQBackend("redis://127.0.0.1:1/0")
    yield backend
    backend.close()


def pending(state: JobState = JobState.QUEUED, error: str | None = None, **spec: object) -> PendingJob:
    return PendingJob(JobSpec("tests.jobs.add", job_id="j1", **spec), state, error=error)  # type: ignore[arg-type]


# -- RQ -> Postgres ---------------------------------------------------------------------------------------------
def test_postgres_takes_a_plain_queued_job(postgres):
    assert _refusal_for_postgres(postgres, pending(args=(1, 2)), False, set()) is None


def test_postgres_refuses_an_undecodable_job_with_the_decoding_error(postgres):
    job = pending(error="its payload cannot be decoded: UnpicklingError")
    assert _refusal_for_postgres(postgres, job, False, set()) == "its payload cannot be decoded: UnpicklingError"


def test_postgres_refuses_a_job_other_rq_jobs_wait_on(postgres):
    assert _refusal_for_postgres(postgres, pending(), True, set()) == _WAITED_ON


def test_postgres_refuses_a_job_whose_parent_is_still_in_rq_and_takes_it_once_the_parent_moved(postgres):
    job = pending(state=JobState.DEFERRED, depends_on=("parent-1",))
    assert _refusal_for_postgres(postgres, job, False, set()) == (
        "it waits on job parent-1, which is still in rq: let it run on rq")
    assert _refusal_for_postgres(postgres, job, False, {"parent-1"}) is None


def test_a_scheduled_job_about_to_be_due_is_left_to_rq_and_a_later_one_moves(postgres):
    soon = pending(state=JobState.SCHEDULED, run_at=NOW + timedelta(seconds=2))
    later = pending(state=JobState.SCHEDULED, run_at=NOW + timedelta(hours=1))
    assert _refusal_for_postgres(postgres, soon, False, set()) == _DUE
    assert _refusal_for_postgres(postgres, later, False, set()) is None


def test_postgres_refuses_a_payload_it_cannot_carry_naming_the_argument(postgres):
    reason = _refusal_for_postgres(postgres, pending(args=(1, object())), False, set())
    assert reason is not None and "args[1]" in reason and "cannot carry" in reason


# -- Postgres -> RQ ---------------------------------------------------------------------------------------------
def test_rq_takes_a_plain_queued_or_scheduled_job(rq):
    assert _refusal_for_rq(rq, pending(args=(1, 2)), set()) is None
    assert _refusal_for_rq(rq, pending(state=JobState.SCHEDULED, run_at=NOW + timedelta(hours=1)), set()) is None


def test_rq_refuses_an_undecodable_job_with_the_decoding_error(rq):
    assert _refusal_for_rq(rq, pending(error="bad args"), set()) == "bad args"


def test_rq_refuses_a_job_waiting_for_a_retry_on_postgres(rq):
    assert _refusal_for_rq(rq, pending(state=JobState.RETRYING), set()) == (
        "it has run on postgres and waits for a retry: let it finish there")


@pytest.mark.parametrize("job", [pending(state=JobState.DEFERRED), pending(depends_on=("parent-1",))],
                         ids=["deferred", "depends_on"])
def test_rq_refuses_a_job_that_waits_on_postgres_jobs(rq, job):
    assert _refusal_for_rq(rq, job, set()) == (
        "it waits on jobs in postgres (depends_on), which rq cannot wait on: let it run on postgres")


def test_rq_refuses_a_job_other_postgres_jobs_wait_on(rq):
    assert _refusal_for_rq(rq, pending(), {"j1"}) == (
        "other jobs in postgres wait on it (depends_on): let it run on postgres")
    assert _refusal_for_rq(rq, pending(), {"someone-else"}) is None


def test_rq_refuses_a_priority_it_has_no_word_for(rq):
    reason = _refusal_for_rq(rq, pending(priority=5), set())
    assert reason is not None and "RQ has no job priority (got priority=5" in reason


def test_rq_refuses_a_payload_its_serializer_cannot_write(rq):
    reason = _refusal_for_rq(rq, pending(args=(threading.Lock(),)), set())
    assert reason is not None and reason.startswith("rq's serializer refuses the payload: TypeError")
    assert "lock" in reason
