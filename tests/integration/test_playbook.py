"""Playbook runs on real servers: a whole run under load, each gate failing with and without rollback, a run
SIGKILLed during a soak and between a routing change and its record then resumed, two runs at once, abort."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import rq

from adapters.base import JobSpec, JobState
from migrator.config import Settings
from migrator.playbook import plan as plans
from migrator.playbook import state as runs
from migrator.playbook.context import Context, open_context
from migrator.playbook.runner import Runner
from migrator.queue import Queue
from migrator.routing import presence
from tests.compat_types import Money
from tests.support import ROOT, ledger_counts, run_cli, spawn_cli, spawn_rq_worker, stop_processes, subprocess_env, wait_for

HEAD = '[playbook]\nname = "t"\n\n[health]\nmax_p95_wait = "30s"\n\n[propagation]\nwithin = "{within}"\n'


def write_plan(tmp_path: Path, steps: str, within: str = "10s") -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(HEAD.format(within=within) + steps)
    return path


@pytest.fixture
def settings(pg_url: str, redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, database_url=pg_url, job_modules=("tests.jobs",), flag_cache_seconds=0.2)


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    c = open_context(settings)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def env(pg_url: str, redis_url: str) -> dict[str, str]:
    return {"DATABASE_URL": pg_url, "REDIS_URL": redis_url, "LEDGER_URL": pg_url}


@pytest.fixture
def pg_worker(ctx: Context, env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = spawn_cli("worker", "--queues", "default", log=tmp_path / "worker.log", MIGRATOR_TEST_SIDE="postgres", **env)
    try:
        wait_for(lambda: any(w.alive for w in ctx.new.workers()), what="a live migrator worker")
        yield proc
    finally:
        stop_processes([proc])


def run(ctx: Context, path: Path, yes: bool = True, **params: str):  # type: ignore[no-untyped-def]
    return Runner(plans.load(path, params), ctx, confirm=lambda text: False, yes=yes).run()


def actors(ctx: Context) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in reversed(ctx.flags.history(100))]


class Load(threading.Thread):
    """An app enqueuing ledger jobs through migrator.Queue (its router reports presence like any app)."""

    def __init__(self, settings: Settings, jobs: tuple[str, ...] = ("tests.jobs.ledger_a", "tests.jobs.ledger_b")):
        super().__init__(daemon=True)
        from migrator import wiring
        self.router = wiring.router_from_env(settings=settings)
        self.queue = Queue("default", router=self.router)
        self.jobs, self.keys, self.halt = jobs, [], threading.Event()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            key = f"k{i}"
            self.queue.enqueue(self.jobs[i % len(self.jobs)], key, job_id=key)
            self.keys.append(key)
            i += 1
            time.sleep(0.02)

    def stop(self) -> None:
        self.halt.set()
        self.join(10)
        self.router.close()


def test_a_whole_run_under_load_loses_nothing(ctx, settings, env, ledger_url, pg_worker, rqb, tmp_path):
    rq_worker = spawn_rq_worker(settings.redis_url, "--with-scheduler", "default", simple=True,
                                MIGRATOR_TEST_SIDE="rq", LEDGER_URL=ledger_url)
    wait_for(lambda: any(w.alive for w in rqb.workers()), what="a live RQ worker")
    later = rqb.enqueue(JobSpec("tests.jobs.ledger", ("later",), job_id="later",
                                run_at=datetime.now(timezone.utc) + timedelta(hours=1)))
    path = write_plan(tmp_path, """
[[step]]
do = "canary"
timeout = "30s"
[[step]]
do = "flip"
job = "tests.jobs.ledger_a"
on_fail = "rollback"
[[step]]
do = "soak"
duration = "1.5s"
on_fail = "rollback"
[[step]]
do = "rollout"
percent = 50
[[step]]
do = "soak"
duration = "1s"
[[step]]
do = "rollout"
all = true
[[step]]
do = "soak"
duration = "1s"
[[step]]
do = "drain"
backend = "rq"
timeout = "30s"
quiet_period = "0.5s"
ignore = ["scheduled"]
[[step]]
do = "transfer"
[[step]]
do = "drain"
timeout = "10s"
quiet_period = "0.2s"
[[step]]
do = "checklist"
items = ["stop the RQ workers"]
""")
    load = Load(settings)
    load.start()
    try:
        outcome = run(ctx, path)
    finally:
        load.stop()
        try:
            assert outcome.status == runs.DONE, outcome.message
            wait_for(lambda: len(ledger_counts(ledger_url)) >= len(load.keys), timeout=60, what="every job ran")
        finally:
            stop_processes([rq_worker])
    counts = ledger_counts(ledger_url)
    assert set(counts) == set(load.keys) and set(counts.values()) == {1}  # none lost, none run twice
    assert ctx.new.fetch_job(later.job_id).state is JobState.SCHEDULED  # moved across, still waiting its time
    changes = actors(ctx)
    assert [a for a, _ in changes] == ["playbook:t#1:2", "playbook:t#1:4", "playbook:t#1:6"]
    view = runs.view(ctx.state, "t")
    assert [s.status for s in view.steps] == ["done"] * 11 and view.holder is None
    health = view.step(3).outcome["gate"]
    assert health["ok"] and health["values"]["runs"] > 0 and health["values"]["jobs"] == 1
    assert view.step(9).outcome["gate"]["values"]["moved"] == 1


def test_a_failing_gate_stops_the_run_and_keeps_the_routing(ctx, env, tmp_path):
    path = write_plan(tmp_path, '[[step]]\ndo = "flip"\njob = "tests.jobs.ledger_a"\n'
                                '[[step]]\ndo = "canary"\ntimeout = "1s"\n')
    outcome = run(ctx, path)
    assert (outcome.status, outcome.step, outcome.exit_code) == (runs.STOPPED, 2, 1)
    assert "no live migrator worker" in outcome.message
    assert "tests.jobs.ledger_a" in ctx.flags.snapshot().flipped
    again = run(ctx, path)  # resumes at the gate: the flip is not made twice
    assert again.step == 2 and actors(ctx) == [("playbook:t#1:1", "flip")]
    status = run_cli("status", "--json", **env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["playbooks"] == [{"playbook": "t", "run": 1, "status": "stopped", "step": 2,
                                                       "kind": "canary", "message": again.message}]


def test_a_failing_gate_with_rollback_undoes_the_routing_change_and_resumes_there(ctx, env, tmp_path):
    path = write_plan(tmp_path, '[[step]]\ndo = "rollout"\npercent = 40\n'
                                '[[step]]\ndo = "canary"\ntimeout = "1s"\non_fail = "rollback"\n')
    ctx.flags.rollout_percent(10, by="someone")
    outcome = run(ctx, path)
    assert (outcome.status, outcome.step) == (runs.STOPPED, 1)
    assert "rolled back step 1" in outcome.message
    assert ctx.flags.snapshot().percent == 10  # what the step replaced, not all-legacy
    assert actors(ctx)[-2:] == [("playbook:t#1:1", "rollout-percent"), ("playbook:t#1:2:rollback", "rollout-percent")]
    assert runs.view(ctx.state, "t").step(1).status == "rolled-back"
    worker = spawn_cli("worker", "--queues", "default", **env)
    try:
        wait_for(lambda: any(w.alive for w in ctx.new.workers()), what="a live worker")
        assert run(ctx, path).status == runs.DONE  # the run starts again at the routing step
    finally:
        stop_processes([worker])
    assert ctx.flags.snapshot().percent == 40


def test_health_fails_on_failures_and_rolls_the_flip_back(ctx, pg_worker, tmp_path):
    path = write_plan(tmp_path, '[[step]]\ndo = "flip"\njob = "tests.jobs.boom"\n'
                                '[[step]]\ndo = "soak"\nduration = "20s"\nmax_failure_rate = 0.1\non_fail = "rollback"\n')
    halt = threading.Event()

    def failing_load() -> None:
        while not halt.is_set():
            ctx.new.enqueue(JobSpec("tests.jobs.boom"))
            time.sleep(0.05)
    thread = threading.Thread(target=failing_load, daemon=True)
    thread.start()
    try:
        outcome = run(ctx, path)
    finally:
        halt.set()
        thread.join(5)
    assert outcome.status == runs.STOPPED and "failure rate" in outcome.message
    gate = outcome.gates[0]
    assert gate.name == "health" and not gate.ok and gate.values["failed"] > 0
    assert "tests.jobs.boom" not in ctx.flags.snapshot().flipped
    assert actors(ctx)[-1] == ("playbook:t#1:2:rollback", "unflip")


def test_health_judges_a_moved_jobs_failure_rate_against_its_rate_on_rq_before_the_step(ctx, env):
    """The same job failing one run in four on Postgres: unhealthy against RQ's record before the step (no failure
    there), healthy against a record where it failed as often on RQ. Both records read from RQ's own registries."""
    from migrator.playbook import gates
    from migrator.playbook.values import HealthLimits

    def rq_runs(*calls: tuple[int, ...]) -> None:
        for call in calls:
            ctx.legacy.enqueue(JobSpec("tests.jobs.add", call))
        assert spawn_rq_worker(env["REDIS_URL"], "--burst", "default", simple=True).wait(120) == 0

    limits = HealthLimits(max_failure_rate=0.5, margin=0.01, max_p95_wait=300)
    rq_runs((1, 2), (3, 4), (5, 6), (7, 8))
    clean = gates.rq_failure_counts(ctx, ["tests.jobs.add"])
    assert clean == {"tests.jobs.add": [4, 0]}
    since = datetime.now(timezone.utc)
    for call in ((1, 2), (3, 4), (5, 6), (1,)):  # add(1) misses b: a TypeError in the job
        ctx.new.enqueue(JobSpec("tests.jobs.add", call))
    done = run_cli("worker", "--burst", **env)
    assert done.returncode == 0, done.stderr
    worse = gates.health(ctx, since, ["tests.jobs.add"], clean, limits)
    assert not worse.ok and "failure rate 25.0% worse than 0.0% on RQ before the step" in worse.message
    assert (worse.values["failure_rate"], worse.values["rq_failure_rate"]) == (0.25, 0.0)
    rq_runs((1,), (2,))
    as_before = gates.health(ctx, since, ["tests.jobs.add"], gates.rq_failure_counts(ctx, ["tests.jobs.add"]), limits)
    assert as_before.ok, as_before.message
    assert (as_before.values["failure_rate"], as_before.values["rq_failure_rate"]) == (0.25, 0.3333)


def test_health_fails_on_wait_without_rollback(ctx, tmp_path):
    path = write_plan(tmp_path, '[[step]]\ndo = "flip"\njob = "tests.jobs.noop"\n'
                                '[[step]]\ndo = "soak"\nduration = "5s"\nmax_p95_wait = "0.2s"\n')
    ctx.new.enqueue(JobSpec("tests.jobs.noop"))  # no worker: it waits, and the wait grows
    time.sleep(0.5)
    outcome = run(ctx, path)
    assert outcome.status == runs.STOPPED and "p95 wait" in outcome.message
    assert "queue 'default' holds 1 jobs" in outcome.message  # stranded: no live worker serves it
    assert "tests.jobs.noop" in ctx.flags.snapshot().flipped


def test_drain_gate_fails_when_rq_keeps_jobs(ctx, rqb, tmp_path):
    rqb.enqueue(JobSpec("tests.jobs.noop"))
    path = write_plan(tmp_path, '[[step]]\ndo = "drain"\nbackend = "rq"\ntimeout = "1s"\nquiet_period = "0s"\n')
    outcome = run(ctx, path)
    assert outcome.status == runs.STOPPED and "not drained" in outcome.message
    assert outcome.gates[0].values["pending"] == {"rq": 1}


def spawn_app(env: dict[str, str], refresh: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.playbook_app", str(refresh)], cwd=ROOT,
                            env=subprocess_env(**env), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
    return proc


@pytest.mark.parametrize("refresh, ok", [(0.2, True), (4.0, False)])
def test_propagation_waits_for_every_app_process(ctx, env, tmp_path, refresh, ok):
    """The app process reports version 0 once it is 2 s old, at a refresh; with 4 s between refreshes it goes on
    applying version 0 for seconds after the flip, past the plan's 1.5 s bound."""
    app = spawn_app(env, refresh)
    try:
        wait_for(lambda: presence.live_routers(ctx.flags.tables, 10.0), timeout=30, what="the app to report")
        path = write_plan(tmp_path, '[[step]]\ndo = "flip"\njob = "tests.jobs.noop"\n'
                                    '[[step]]\ndo = "soak"\nduration = "0.5s"\n', within="1.5s")
        outcome = run(ctx, path)
    finally:
        app.kill()
        app.wait()
    if ok:
        assert outcome.status == runs.DONE, outcome.message
        return
    assert outcome.status == runs.STOPPED
    assert f"pid {app.pid} (version 0)" in outcome.message and "do not apply routing version 1" in outcome.message


def step_row(ctx: Context, index: int):  # type: ignore[no-untyped-def]
    view = runs.view(ctx.state, "t")
    return view.step(index)


def test_sigkill_during_a_soak_resumes_the_soak_without_repeating_the_flip(ctx, env, tmp_path):
    path = write_plan(tmp_path, '[[step]]\ndo = "flip"\njob = "tests.jobs.noop"\n'
                                '[[step]]\ndo = "soak"\nduration = "4s"\n')
    proc = spawn_cli("playbook", "run", str(path), "--yes", log=tmp_path / "run.log", **env)
    row = wait_for(lambda: (r := step_row(ctx, 2)) is not None and "soak_started" in r.intent and r, timeout=60,
                   what="the soak to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert step_row(ctx, 2).status == "started"
    wait_for(lambda: ctx.state.holder("t") is None, what="Postgres to free the killed run's lock")
    done = run_cli("playbook", "run", str(path), "--yes", "--json", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["status"] == "done"
    resumed = step_row(ctx, 2)
    assert resumed.status == "done" and resumed.intent["soak_started"] == row.intent["soak_started"]
    assert resumed.outcome["gate"]["name"] == "health"  # judged, not skipped
    assert actors(ctx) == [("playbook:t#1:1", "flip")]


def test_sigkill_between_a_routing_change_and_its_record_does_not_change_twice(ctx, env, tmp_path):
    path = write_plan(tmp_path, '[[step]]\ndo = "flip"\njob = "tests.jobs.noop"\n')
    proc = spawn_cli("playbook", "run", str(path), "--yes", MIGRATOR_FAILPOINT="after-routing-change", **env)
    wait_for(lambda: actors(ctx), timeout=60, what="the flip")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert step_row(ctx, 1).status == "started"  # the change is made, its record is not
    wait_for(lambda: ctx.state.holder("t") is None, what="the killed run's lock to go")
    done = run_cli("playbook", "run", str(path), "--yes", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert actors(ctx) == [("playbook:t#1:1", "flip")]
    assert step_row(ctx, 1).status == "done" and step_row(ctx, 1).outcome["history_id"] is None


def test_two_runs_of_one_playbook_cannot_proceed_at_once_and_abort_stops_the_first(ctx, env, tmp_path):
    path = write_plan(tmp_path, '[[step]]\ndo = "flip"\njob = "tests.jobs.noop"\n'
                                '[[step]]\ndo = "soak"\nduration = "120s"\n')
    first = spawn_cli("playbook", "run", str(path), "--yes", log=tmp_path / "first.log", **env)
    try:
        wait_for(lambda: (r := step_row(ctx, 2)) is not None and "soak_started" in r.intent, timeout=60,
                 what="the first run to soak")
        second = run_cli("playbook", "run", str(path), "--yes", **env)
        assert second.returncode == 2
        assert f"is being run by" in second.stderr and f"pid {first.pid} since" in second.stderr
        aborted = run_cli("playbook", "abort", str(path), **env)
        assert aborted.returncode == 0, aborted.stderr
        assert first.wait(30) == 1
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert runs.view(ctx.state, "t").run.status == runs.ABORTED
    status = run_cli("playbook", "status", str(path), "--json", **env)
    assert json.loads(status.stdout)["run"]["status"] == "aborted"


def test_compat_gate_fails_on_a_payload_the_code_cannot_bind_and_rolls_back(settings, rqb, tmp_path):
    from dataclasses import replace

    from migrator.compat import lockfile
    settings = replace(settings, lock_file=str(tmp_path / "migrator.lock.json"))
    lockfile.snapshot(settings)
    rqb.enqueue(JobSpec("tests.jobs.add", (1,)))  # add(a, b): this payload cannot bind
    path = write_plan(tmp_path, '[[step]]\ndo = "flip"\njob = "tests.jobs.add"\n'
                                '[[step]]\ndo = "compat"\non_fail = "rollback"\n')
    ctx = open_context(settings)
    try:
        outcome = run(ctx, path)
        assert outcome.status == runs.STOPPED and outcome.gates[0].name == "compat"
        assert not outcome.gates[0].ok and "tests.jobs.add" not in ctx.flags.snapshot().flipped
    finally:
        ctx.close()


def test_plan_shows_each_step_and_its_gate_now_and_invalid_plans_exit_2(env, rqb, tmp_path):
    rqb.enqueue(JobSpec("tests.jobs.noop"))
    text = HEAD.format(within="5s") + '[params]\njob = ""\n\n[[step]]\ndo = "flip"\njob = "{job}"\n' \
        '[[step]]\ndo = "drain"\n[[step]]\ndo = "canary"\n'
    (tmp_path / "p.toml").write_text(text)
    shown = run_cli("playbook", "plan", str(tmp_path / "p.toml"), "--set", "job=tests.jobs.noop", "--json", **env)
    assert shown.returncode == 0, shown.stderr
    steps = json.loads(shown.stdout)["steps"]
    assert steps[0]["would"].startswith("+flipped tests.jobs.noop")
    assert steps[1]["gate"]["values"]["pending"] == {"rq": 1} and not steps[1]["gate"]["ok"]
    assert steps[2]["gate"]["values"]["live_workers"] == 0
    missing = run_cli("playbook", "plan", str(tmp_path / "p.toml"), **env)
    assert missing.returncode == 2 and f"p.toml:14: key 'job'" in missing.stderr and "--set job=" in missing.stderr
    piped = run_cli("playbook", "run", str(tmp_path / "p.toml"), "--set", "job=tests.jobs.noop", **env)
    assert piped.returncode == 2 and "--yes" in piped.stderr and "Traceback" not in piped.stderr


def test_a_flip_step_goes_through_the_compat_gate_like_migrator_flip(ctx, rqb, tmp_path):
    """Pending RQ payloads the new backend cannot carry (a custom class, pickled by RQ): the flip step refuses,
    the routing stays legacy, and the run stops at that step with the gate's reason."""
    rq.Queue("default", connection=rqb.connection).enqueue("tests.jobs.echo", Money(150))
    path = write_plan(tmp_path, '[[step]]\ndo = "flip"\njob = "tests.jobs.echo"\n')
    outcome = run(ctx, path)
    assert (outcome.status, outcome.step, outcome.exit_code) == (runs.STOPPED, 1, 1)
    assert "tests.jobs.echo" in outcome.message and "Money" in outcome.message
    assert ctx.flags.snapshot().flipped == frozenset() and actors(ctx) == []


# The shipped plans for code changes (safely-deploy-job-payload-changes): file, params, the drain step's index, and
# the deploys asked for before it (the last deploy, the one that breaks old payloads, comes only after it).
CODE_CHANGE_PLANS = [
    ("rename-job", {"old": "tests.jobs.ledger_a", "new": "tests.jobs.ledger_b"}, 5, ["Deploy N+1", "Deploy N+2"],
     "Deploy N+3"),
    ("delete-job", {"job": "tests.jobs.ledger_a"}, 3, ["Deploy N+1"], "Deploy N+2"),
    ("add-required-parameter", {"job": "tests.jobs.ledger_a", "param": "locale"}, 5, ["Deploy N+1", "Deploy N+2"],
     "Deploy N+3"),
]


@pytest.mark.parametrize("name, params, drain_step, before, last", CODE_CHANGE_PLANS, ids=[c[0] for c in CODE_CHANGE_PLANS])
def test_a_shipped_code_change_plan_holds_its_last_deploy_until_the_old_payloads_ran(  # type: ignore[no-untyped-def]
        settings, rqb, ledger_url, tmp_path, name, params, drain_step, before, last):
    """playbooks/<name>.toml as shipped (quiet periods shortened, as the demo does), on code whose lock file is
    current; one payload of tests.jobs.ledger_a, written by the old code, still waits on RQ. The run confirms its
    deploys, holds at the drain step until an RQ worker has run that payload, and only then asks for the deploy
    that would break it."""
    from dataclasses import replace

    from migrator.compat import lockfile
    settings = replace(settings, lock_file=str(tmp_path / "migrator.lock.json"))
    lockfile.snapshot(settings)
    rqb.enqueue(JobSpec("tests.jobs.ledger_a", ("old-payload",), job_id="old-payload"))
    plan = plans.load(ROOT / "playbooks" / f"{name}.toml", params).with_quiet(0.2)
    asked: list[str] = []
    ctx = open_context(settings)
    outcome: list[object] = []
    runner = threading.Thread(target=lambda: outcome.append(
        Runner(plan, ctx, confirm=lambda text: asked.append(text) or True).run()), daemon=True)
    rq_worker = None

    def deploys() -> list[str]:  # each step is asked for too ("run step 1: ...?"): the deploys are the confirm steps
        return [text.split(":")[1].strip() for text in asked if "Deploy N+" in text]

    def at_drain() -> bool:
        return [(s.index, s.status) for s in runs.view(ctx.state, name).steps][-1:] == [(drain_step, "started")]

    try:
        runner.start()
        wait_for(at_drain, what="the run to reach the drain step")
        time.sleep(1.0)  # the gate keeps waiting while the old payload is queued
        assert at_drain() and deploys() == before
        rq_worker = spawn_rq_worker(settings.redis_url, "--burst", "default", simple=True, MIGRATOR_TEST_SIDE="rq",
                                    LEDGER_URL=ledger_url)
        runner.join(60)
        assert not runner.is_alive(), "the run did not end after the old payload ran"
    finally:
        if rq_worker is not None:
            stop_processes([rq_worker])
        if runner.is_alive():
            runs.abort(ctx.state, name)
            runner.join(30)
        ctx.close()
    [done] = outcome
    assert done.status == runs.DONE, done.message  # type: ignore[attr-defined]
    assert ledger_counts(ledger_url) == {"old-payload": 1}
    assert deploys() == [*before, last]
