"""The RQ adapter's pure decoding: job names, payloads, options and states from raw hash fields."""
from __future__ import annotations

import json
import zlib
from datetime import datetime, timezone

from rq.serializers import DefaultSerializer, JSONSerializer

from adapters.base import JobState, RetryPolicy
from adapters.rq_backend import decode

# ("tests.jobs.add", None, (Thing(),), {}) pickled (protocol 0) with Thing in a module that does not exist.
MISSING_CLASS = b"(Vtests.jobs.add\nN(cnonexistent_mod_xyz\nThing\n)Rt}t."


def rq_data(call: tuple, serializer=DefaultSerializer) -> bytes:  # type: ignore[no-untyped-def,type-arg]
    """The data field as RQ writes it: the serialized call, zlib-compressed."""
    return zlib.compress(serializer.dumps(call))


def test_func_name_reads_pickles_without_unpickling_args() -> None:
    assert decode.func_name(rq_data(("app.jobs.send", None, (1,), {})), DefaultSerializer) == "app.jobs.send"
    assert decode.func_name(MISSING_CLASS, DefaultSerializer) == "tests.jobs.add"
    as_json = rq_data(("app.jobs.send", None, [1], {}), JSONSerializer)
    assert decode.func_name(as_json, JSONSerializer) == "app.jobs.send"
    assert decode.func_name(b"\x80\x05garbage", DefaultSerializer) == decode.UNKNOWN_FUNC
    assert decode.func_name(None, DefaultSerializer) == decode.UNKNOWN_FUNC


def test_decode_call_reports_instead_of_raising() -> None:
    assert decode.decode_call(rq_data(("m.f", None, (1, "a"), {"k": 2})), DefaultSerializer) == (
        "m.f", (1, "a"), {"k": 2}, None)
    func, args, kwargs, error = decode.decode_call(MISSING_CLASS, DefaultSerializer)
    assert (func, args, kwargs) == ("tests.jobs.add", (), {}) and "nonexistent_mod_xyz" in (error or "")
    assert "method of a pickled instance" in (decode.decode_call(rq_data(("f", 3, (), {})), DefaultSerializer)[3] or "")


def test_waiting_state_tells_retries_from_first_runs() -> None:
    assert decode.waiting_state(JobState.SCHEDULED, "scheduled", None, None) is JobState.SCHEDULED
    ran_before = "2024-01-01T00:00:00.000000Z"
    assert decode.waiting_state(JobState.SCHEDULED, "scheduled", ran_before, None) is JobState.RETRYING
    assert decode.waiting_state(JobState.QUEUED, "queued", None, "1") is JobState.RETRYING
    assert decode.waiting_state(JobState.FAILED, "failed", "2024-01-01T00:00:00Z", "2") is JobState.FAILED


def test_options_and_times() -> None:
    assert decode.retry_policy("3", "[5, 10]") == RetryPolicy(3, (5, 10))
    assert decode.retry_policy("0", "[5]") is None and decode.retry_policy("2", "{broken") == RetryPolicy(2)
    assert decode.parse_time("2024-05-06T07:08:09.123456Z") == datetime(2024, 5, 6, 7, 8, 9, 123456, timezone.utc)
    assert decode.parse_time("2024-05-06T07:08:09") == datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    assert decode.parse_time("yesterday") is None


def test_pending_job_from_hash_fields() -> None:
    raw = {b"data": rq_data(("m.f", None, (1,), {"a": 2})), b"origin": b"q", b"status": b"deferred",
           b"timeout": b"42", b"result_ttl": b"600", b"ttl": b"900", b"failure_ttl": b"1200",
           b"retries_left": b"2", b"retry_intervals": b"[5]", b"meta": DefaultSerializer.dumps({"x": 1}),
           b"description": b"d", b"enqueue_at_front": b"1", b"dependency_ids": json.dumps(["p"]).encode(),
           b"success_callback_name": b"m.ok", b"failure_callback_name": b"", b"enqueued_at": b""}
    job = decode.pending_job("id1", "q", JobState.DEFERRED, raw, DefaultSerializer)
    spec = job.spec
    assert (spec.job_name, spec.args, spec.kwargs, spec.queue, spec.job_id) == ("m.f", (1,), {"a": 2}, "q", "id1")
    assert (spec.timeout, spec.result_ttl, spec.ttl, spec.failure_ttl) == (42, 600, 900, 1200)
    assert (spec.retry, spec.meta, spec.description, spec.at_front) == (RetryPolicy(2, (5,)), {"x": 1}, "d", True)
    assert (spec.depends_on, spec.on_success, spec.on_failure) == (("p",), "m.ok", None)
    assert (job.state, job.error, job.enqueued_at) == (JobState.DEFERRED, None, None)


def test_pending_job_of_a_gone_hash() -> None:
    job = decode.pending_job("id2", "q", JobState.QUEUED, None, DefaultSerializer)
    assert (job.spec.job_name, job.spec.job_id, job.spec.queue, job.error) == (decode.UNKNOWN_FUNC, "id2", "q", decode.GONE)
