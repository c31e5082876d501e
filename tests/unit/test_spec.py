"""RQ's enqueue vocabulary to JobSpec: options carried, unsupported ones refused by name."""
from __future__ import annotations

import pytest
from rq import Queue, Retry

from adapters.base import JobRefused, RetryPolicy
from adapters.spec import build_spec, from_enqueue_data, job_name, parse_timeout
from tests import jobs


def test_job_name_is_rq_dotted_path():
    assert job_name(jobs.add) == "tests.jobs.add"
    assert job_name("app.jobs.send") == "app.jobs.send"


def test_lambda_and_local_functions_are_refused():
    def local():
        pass
    for fn in (lambda: 1, local):
        with pytest.raises(JobRefused, match="not an importable module-level function"):
            job_name(fn)


@pytest.mark.parametrize("value,seconds", [(30, 30), ("45", 45), ("10m", 600), ("1h", 3600), ("2d", 172800)])
def test_timeouts_in_rq_forms(value, seconds):
    assert parse_timeout(value) == seconds


def test_bad_timeout_is_refused():
    with pytest.raises(JobRefused, match="not a duration"):
        parse_timeout("soon")


def test_all_options_carried():
    spec = build_spec(jobs.add, (1,), {"b": 2}, "emails", job_id="j1", job_timeout="5m", result_ttl=10, ttl=20,
                      failure_ttl=30, retry=Retry(max=3, interval=[1, 5]), meta={"k": "v"}, at_front=True,
                      depends_on=["p1", "p2"], description="d", on_success=jobs.noop)
    assert (spec.job_name, spec.args, spec.kwargs, spec.queue, spec.job_id) == ("tests.jobs.add", (1,), {"b": 2}, "emails", "j1")
    assert (spec.timeout, spec.result_ttl, spec.ttl, spec.failure_ttl) == (300, 10, 20, 30)
    assert spec.retry == RetryPolicy(3, (1, 5))
    assert spec.meta == {"k": "v"} and spec.at_front and spec.depends_on == ("p1", "p2")
    assert spec.on_success == "tests.jobs.noop"


@pytest.mark.parametrize("option", ["repeat", "webhooks"])
def test_unsupported_rq_option_is_refused_by_name(option):
    with pytest.raises(JobRefused, match=option):
        build_spec(jobs.add, (1, 2), **{option: object()})


def test_unknown_option_is_refused():
    with pytest.raises(JobRefused, match="unknown enqueue option 'colour'"):
        build_spec(jobs.add, colour="red")


def test_prepare_data_item():
    item = Queue.prepare_data(jobs.add, (1, 2), {"x": 1}, timeout=7, job_id="x1", meta={"m": 1},
                              retry=Retry(max=2))
    spec = from_enqueue_data(item, "q")
    assert (spec.job_name, spec.args, spec.kwargs, spec.timeout, spec.job_id, spec.queue) == (
        "tests.jobs.add", (1, 2), {"x": 1}, 7, "x1", "q")
    assert spec.retry == RetryPolicy(2, (0,)) or spec.retry == RetryPolicy(2, ())


class _Mailer:
    def send(self, to: str) -> None:
        """An instance method: RQ pickles the instance, a job name cannot carry it."""

    @classmethod
    def send_all(cls) -> None:
        """A classmethod imports by its dotted path like a function."""


def test_a_bound_method_is_refused_with_the_reason_a_classmethod_is_not() -> None:
    with pytest.raises(JobRefused, match="is a method of an instance"):
        job_name(_Mailer().send)
    assert job_name(_Mailer.send_all) == f"{__name__}._Mailer.send_all"
    assert job_name(len) == "builtins.len"  # a builtin's __self__ is its module: importable by name
