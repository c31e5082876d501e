"""Plan parsing and validation with plain values: the shipped plans load, and each invalid plan's error names
the file, the line and the key."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from migrator.errors import BadInput
from migrator.playbook import plan
from migrator.playbook.values import Kind, parse_duration

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
[playbook]
name = "t"

[params]
job = "a.jobs.one"

[health]
max_failure_rate = 0.1

[[step]]
do = "flip"
job = "{job}"
on_fail = "rollback"

[[step]]
do = "soak"
duration = "2m"
min_runs = 5

[[step]]
do = "rollout"
percent = 25
"""


def error(text: str, **overrides: str) -> str:
    with pytest.raises(BadInput) as caught:
        plan.parse(text, "p.toml", overrides)
    return str(caught.value)


def test_a_good_plan_parses_with_params_and_health_overrides():
    p = plan.parse(GOOD, "p.toml")
    assert [s.kind for s in p.steps] == [Kind.FLIP, Kind.SOAK, Kind.ROLLOUT]
    flip, soak, rollout = p.steps
    assert (flip.job, flip.on_fail, flip.line, flip.index) == ("a.jobs.one", "rollback", 10, 1)
    assert soak.duration == 120 and soak.health is not None
    assert (soak.health.max_failure_rate, soak.health.min_runs) == (0.1, 5)
    assert rollout.percent == 25 and rollout.title == "rollout 25%"


def test_set_overrides_a_param_and_the_fingerprint_follows_shapes_not_durations():
    p = plan.parse(GOOD, "p.toml", {"job": "a.jobs.two"})
    assert p.steps[0].job == "a.jobs.two"
    base = plan.parse(GOOD, "p.toml")
    assert base.with_soak(1).fingerprint == base.fingerprint
    assert p.fingerprint != base.fingerprint


@pytest.mark.parametrize("path", sorted((ROOT / "playbooks").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_plans_load_once_their_params_are_given(path):
    params = tomllib.loads(path.read_text()).get("params", {})
    loaded = plan.load(path, {k: f"app.jobs.{k}" for k in params})
    assert loaded.steps and all("{" not in (s.job or "") + s.text for s in loaded.steps)


def test_default_plan_has_the_issue_sequence():
    p = plan.load(ROOT / "playbooks/rq-to-postgres.toml", {"first_job": "app.jobs.x"})
    kinds = [s.kind for s in p.steps]
    assert kinds[:4] == [Kind.CANARY, Kind.COMPAT, Kind.FLIP, Kind.SOAK]
    assert [s.percent for s in p.steps if s.kind is Kind.ROLLOUT and not s.everything] == [10, 25, 50]
    assert kinds[-4:] == [Kind.DRAIN, Kind.TRANSFER, Kind.DRAIN, Kind.CHECKLIST]


@pytest.mark.parametrize("change, line, key", [
    (("do = \"soak\"", "do = \"sleep\""), 16, "'do'"),
    (("duration = \"2m\"", "duration = \"two minutes\""), 17, "'duration'"),
    (("percent = 25", "percent = 250"), 22, "'percent'"),
    (("on_fail = \"rollback\"", "on_fail = \"retry\""), 13, "'on_fail'"),
    (("min_runs = 5", "min_run = 5"), 18, "'min_run'"),
    (("max_failure_rate = 0.1", "max_failure_rate = \"low\""), 8, "'max_failure_rate'"),
    (("job = \"{job}\"", "job = \"{jbo}\""), 12, "'job'"),
])
def test_each_error_names_file_line_and_key(change, line, key):
    message = error(GOOD.replace(*change))
    assert message.startswith(f"p.toml:{line}: "), message
    assert key in message


def test_missing_required_keys_name_the_step_line():
    message = error(GOOD.replace("percent = 25\n", ""))
    assert message.startswith("p.toml:20: ") and "percent = P or all = true" in message
    assert error(GOOD.replace('name = "t"', "")).startswith("p.toml:1: ")


def test_empty_param_says_how_to_give_it():
    message = error(GOOD.replace('job = "a.jobs.one"', 'job = ""'))
    assert message.startswith("p.toml:12: ") and "--set job=VALUE" in message


def test_unknown_set_and_toml_syntax_errors():
    assert "--set nope" in error(GOOD, nope="x")
    assert "line" in error(GOOD + "\n[[step]\n") and error(GOOD + "\n[[step]\n").startswith("p.toml: ")


def test_keys_inside_multiline_text_are_not_keys():
    text = GOOD + '\n[[step]]\ndo = "confirm"\ntext = """\nnot_a_key = 1\n"""\nbogus = 2\n'
    assert error(text).startswith("p.toml:29: ")


@pytest.mark.parametrize("value, seconds", [(90, 90), ("30s", 30), ("5m", 300), ("1h", 3600), ("250ms", 0.25),
                                            ("1.5", 1.5)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["-1", "5 minutes", True, "1d"])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        parse_duration(value)
