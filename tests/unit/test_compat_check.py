"""The signature classifier with plain values: each kind of change, which deploy direction it breaks, its recipe."""
from __future__ import annotations

import pytest

from migrator.compat import lockfile
from migrator.compat.changes import ChangeKind, Direction
from migrator.compat.check import diff, diff_signature
from migrator.compat.signatures import JobSignature, Kind, Param, signature_of
from migrator.errors import BadInput

P, PK, KW = Kind.POSITIONAL_ONLY, Kind.POSITIONAL_OR_KEYWORD, Kind.KEYWORD_ONLY
STAR, STARS = Kind.VAR_POSITIONAL, Kind.VAR_KEYWORD
OLD_ON_NEW, NEW_ON_OLD = Direction.OLD_ON_NEW, Direction.NEW_ON_OLD


def sig(*params: Param, name: str = "app.jobs.f") -> JobSignature:
    return JobSignature(name, params)


def p(name: str, kind: Kind = PK, default: bool = False, annotation: str = "") -> Param:
    return Param(name, kind, default, annotation)


def kinds(changes) -> list[tuple[ChangeKind, tuple[Direction, ...]]]:  # type: ignore[no-untyped-def]
    return [(c.kind, c.breaks) for c in changes]


def test_identical_signatures_have_no_changes():
    s = sig(p("a"), p("b", default=True), p("args", STAR), p("c", KW), p("kw", STARS))
    assert diff_signature(s, s) == []


def test_new_required_param_breaks_both_directions_unless_old_code_absorbs_it():
    assert kinds(diff_signature(sig(p("a")), sig(p("a"), p("b")))) == [(ChangeKind.NEW_REQUIRED, (OLD_ON_NEW, NEW_ON_OLD))]
    absorbing = sig(p("a"), p("rest", STAR), p("more", STARS))
    changes = diff_signature(absorbing, sig(p("a"), p("b"), p("rest", STAR), p("more", STARS)))
    assert kinds(changes) == [(ChangeKind.NEW_REQUIRED, (OLD_ON_NEW,))]
    assert changes[0].recipe == "give it a default, deploy, then make it required in a second deploy"


def test_new_optional_param_and_new_variadics_are_safe():
    changes = diff_signature(sig(p("a")), sig(p("a"), p("b", default=True), p("c", KW, True), p("kw", STARS)))
    assert {c.kind for c in changes} == {ChangeKind.NEW_OPTIONAL} and not any(c.breaking for c in changes)


def test_removed_param_breaks_old_payloads_and_if_required_new_ones_too():
    assert kinds(diff_signature(sig(p("a"), p("b", default=True)), sig(p("a")))) == [(ChangeKind.REMOVED_PARAM, (OLD_ON_NEW,))]
    assert kinds(diff_signature(sig(p("a"), p("b")), sig(p("a")))) == [(ChangeKind.REMOVED_PARAM, (OLD_ON_NEW, NEW_ON_OLD))]


def test_removed_param_absorbed_by_variadics_is_safe():
    changes = diff_signature(sig(p("a"), p("b", default=True)), sig(p("a"), p("_", STAR), p("__", STARS)))
    assert [c for c in changes if c.breaking] == []
    keyword_only = diff_signature(sig(p("a"), p("b", KW, True)), sig(p("a"), p("kw", STARS)))
    assert [c for c in keyword_only if c.breaking] == []


def test_removed_variadic_breaks_old_payloads():
    assert kinds(diff_signature(sig(p("a"), p("rest", STAR)), sig(p("a")))) == [(ChangeKind.REMOVED_PARAM, (OLD_ON_NEW,))]


def test_renamed_param_breaks_keyword_callers_both_ways_but_positional_only_is_safe():
    changes = diff_signature(sig(p("order"), p("amount")), sig(p("order"), p("total")))
    assert kinds(changes) == [(ChangeKind.RENAMED_PARAM, (OLD_ON_NEW, NEW_ON_OLD))]
    assert "amount" in changes[0].detail and "total" in changes[0].detail
    assert diff_signature(sig(p("a", P), p("b", P)), sig(p("x", P), p("b", P))) == []
    assert kinds(diff_signature(sig(p("a"), p("old", KW, True)), sig(p("a"), p("new", KW, True)))) == \
        [(ChangeKind.RENAMED_PARAM, (OLD_ON_NEW, NEW_ON_OLD))]


def test_reordered_positional_params_break_both_ways():
    changes = diff_signature(sig(p("user_id"), p("full")), sig(p("full"), p("user_id")))
    assert kinds(changes) == [(ChangeKind.REORDERED, (OLD_ON_NEW, NEW_ON_OLD))]
    assert "user_id, full -> full, user_id" in changes[0].detail


def test_optional_param_inserted_before_a_positional_one_shifts_payloads():
    changes = diff_signature(sig(p("text"), p("sep", default=True)),
                             sig(p("text"), p("limit", default=True), p("sep", default=True)))
    assert sorted(kinds(changes)) == sorted([(ChangeKind.NEW_OPTIONAL, ()),
                                             (ChangeKind.REORDERED, (OLD_ON_NEW, NEW_ON_OLD))])


def test_keyword_only_params_may_be_reordered():
    assert diff_signature(sig(p("a"), p("x", KW), p("y", KW)), sig(p("a"), p("y", KW), p("x", KW))) == []


@pytest.mark.parametrize(("old", "new", "breaks"), [
    (KW, PK, (NEW_ON_OLD,)),  # new callers may pass it by place; old code takes it by name only
    (PK, KW, (OLD_ON_NEW,)),  # old payloads may have passed it by place
    (PK, P, (OLD_ON_NEW,)),
    (P, KW, (OLD_ON_NEW, NEW_ON_OLD)),
])
def test_changed_kind_breaks_the_direction_that_loses_a_calling_style(old: Kind, new: Kind, breaks):  # type: ignore[no-untyped-def]
    assert kinds(diff_signature(sig(p("a"), p("b", old)), sig(p("a"), p("b", new)))) == [(ChangeKind.CHANGED_KIND, breaks)]


def test_removed_default_breaks_old_payloads_added_default_is_safe():
    assert kinds(diff_signature(sig(p("a", KW, True)), sig(p("a", KW)))) == [(ChangeKind.REMOVED_DEFAULT, (OLD_ON_NEW,))]
    assert kinds(diff_signature(sig(p("a", KW)), sig(p("a", KW, True)))) == [(ChangeKind.ADDED_DEFAULT, ())]


def test_annotation_change_is_reported_safe():
    assert kinds(diff_signature(sig(p("a")), sig(p("a", annotation="int")))) == [(ChangeKind.ANNOTATION, ())]


def test_deleted_new_and_renamed_jobs():
    locked = {"app.jobs.old_report": sig(p("account"), p("month"), name="app.jobs.old_report"),
              "app.jobs.cleanup": sig(p("days"), name="app.jobs.cleanup")}
    code = {"app.jobs.monthly_report": sig(p("account"), p("month"), name="app.jobs.monthly_report"),
            "app.jobs.welcome": sig(p("user"), name="app.jobs.welcome")}
    changes = {c.kind: c for c in diff(locked, code)}
    assert set(changes) == {ChangeKind.DELETED_JOB, ChangeKind.RENAMED_JOB, ChangeKind.NEW_JOB}
    assert changes[ChangeKind.DELETED_JOB].job_name == "app.jobs.cleanup"
    assert changes[ChangeKind.DELETED_JOB].recipe == "stop enqueuing, drain, then delete"
    renamed = changes[ChangeKind.RENAMED_JOB]
    assert (renamed.old_job, renamed.job_name) == ("app.jobs.old_report", "app.jobs.monthly_report")
    assert "`migrator drain-check --job app.jobs.old_report`" in renamed.recipe
    assert not changes[ChangeKind.NEW_JOB].breaking


def test_a_new_job_of_another_shape_is_no_rename():
    locked = {"app.jobs.report": sig(p("a"), name="app.jobs.report")}
    code = {"app.jobs.reports": sig(p("a"), p("b"), name="app.jobs.reports")}
    assert {c.kind for c in diff(locked, code)} == {ChangeKind.DELETED_JOB, ChangeKind.NEW_JOB}


def test_signature_of_a_function_as_values():
    def job(a: int, /, b, *rest, c: str = "x", **kw) -> None: ...
    s = signature_of("m.job", job)
    assert [(x.name, x.kind, x.has_default, x.annotation) for x in s.params] == [
        ("a", P, False, "int"), ("b", PK, False, ""), ("rest", STAR, False, ""), ("c", KW, True, "str"),
        ("kw", STARS, False, "")]


def test_lock_file_round_trips_in_stable_order_one_param_per_line():
    sigs = {"b.j": sig(p("x"), p("y", KW, True, "int"), name="b.j"), "a.j": sig(name="a.j")}
    text = lockfile.render(sigs)
    assert lockfile.parse(text) == {"a.j": sigs["a.j"], "b.j": sigs["b.j"]}
    assert text.index('"a.j"') < text.index('"b.j"')
    assert lockfile.render(dict(reversed(list(sigs.items())))) == text
    assert sum('"name": "y"' in line for line in text.splitlines()) == 1


@pytest.mark.parametrize("text", ["{", "[]", '{"format": 99, "jobs": {}}', '{"format": 1, "jobs": {"a": [1]}}',
                                  '{"format": 1, "jobs": {"a": [{"name": "x", "kind": "sideways"}]}}'])
def test_malformed_lock_file_is_bad_input_naming_it(text: str):
    with pytest.raises(BadInput, match="the lock file x/migrator.lock.json is malformed"):
        lockfile.parse(text, "x/migrator.lock.json")
