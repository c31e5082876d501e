"""The panel's pure pieces with plain values: how counts group per job, the playbook parameters, the CSRF value and
the origin check, the operator's name for the audit log."""
from __future__ import annotations

import pytest
from starlette.requests import Request

from adapters.base import JobState, StateCount
from migrator.errors import BadInput
from migrator.web import actions, panel, playbooks, security


def test_tallies_group_pending_running_and_failed_per_job() -> None:
    counts = [StateCount("default", "a.b", JobState.QUEUED, 2), StateCount("other", "a.b", JobState.SCHEDULED, 1),
              StateCount("default", "a.b", JobState.RETRYING, 4), StateCount("default", "a.b", JobState.STARTED, 3),
              StateCount("default", "a.b", JobState.FAILED, 5), StateCount("default", "a.b", JobState.FINISHED, 9),
              StateCount("default", "c.d", JobState.DEFERRED, 1)]
    assert panel.tallies(counts) == {"a.b": panel.Tally(7, 3, 5), "c.d": panel.Tally(1, 0, 0)}


def test_rq_health_counts_its_registries_and_has_no_wait() -> None:
    health = panel.rq_health([StateCount("q", "a", JobState.FINISHED, 3), StateCount("q", "a", JobState.FAILED, 1)])
    assert (health.runs, health.failed, health.failure_rate, health.p95_wait) == (4, 1, 0.25, None)
    assert panel.Health(health.backend).failure_rate is None


def test_playbook_parameters_are_key_value_pairs() -> None:
    assert playbooks.parse_params("first_job=app.jobs.a  other=x=y\n") == {"first_job": "app.jobs.a", "other": "x=y"}
    with pytest.raises(BadInput, match="KEY=VALUE"):
        playbooks.parse_params("first_job")


def test_the_audit_name_is_required_and_marked_as_from_the_panel() -> None:
    assert actions.actor("  Olive   Operator ") == "Olive Operator (web)"
    for bad in ("", "   ", "x" * 81):
        with pytest.raises(BadInput):
            actions.actor(bad)


def _request(headers: dict[str, str]) -> Request:
    return Request({"type": "http", "method": "POST", "scheme": "http", "server": ("127.0.0.1", 8765), "path": "/act",
                    "query_string": b"", "headers": [(k.lower().encode(), v.encode()) for k, v in
                                                     {"host": "127.0.0.1:8765", **headers}.items()]})


def test_csrf_value_is_bound_to_the_token_and_actions_come_from_this_origin() -> None:
    assert security.csrf_token("a") == security.csrf_token("a") != security.csrf_token("b")
    assert security.same(security.csrf_token("a"), security.csrf_token("a")) and not security.same(None, "x")
    assert security.same_origin(_request({"origin": "http://127.0.0.1:8765"}))
    assert security.same_origin(_request({}))  # a client that sends no Origin (curl, scripts with the token)
    for origin in ("http://evil.example", "http://127.0.0.1:8766", "null"):
        assert not security.same_origin(_request({"origin": origin})), origin
    assert not security.same_origin(_request({"referer": "http://evil.example/page"}))
