"""The panel over HTTP against a live `migrator web` on loopback, real Postgres and Redis: every page and action,
the token and CSRF refusals, the gates' refusals with the CLI's messages, escaping of what payloads carry."""
from __future__ import annotations

import html
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rq import Queue as RQQueue

from adapters.base import JobSpec, JobState
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.playbook_state import PgPlaybookState
from adapters.pg_backend.routing_tables import RoutingTables
from adapters.rq_backend import RQBackend
from migrator.localservers import free_port
from migrator.routing.flag_store import FlagStore
from tests.compat_types import Money
from tests.support import run_cli, wait_for
from tests.web import support
from tests.web.support import Server, act, outcome

EVIL = "app.jobs.<script>alert('job')</script>"
PAGES = ["/", "/fragment/overview", "/confirm?action=rollback", "/jobs/some-id", "/history", "/api/status",
         "/static/panel.css", "/static/panel.js"]


@pytest.fixture
def server(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Server]:
    RoutingTables(pg_url).record_seen(["tests.jobs.add", "tests.jobs.echo", "tests.jobs.boom"])
    yield from support.start(pg_url, redis_url, tmp_path)


@pytest.fixture
def web(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def routes(web: httpx.Client) -> dict[str, tuple[str, str]]:
    report = web.get("/api/status").json()
    return {j["job"]: (j["backend"], j["reason"]) for j in report["jobs"]}


def cli(pg_url: str, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, DATABASE_URL=pg_url, REDIS_URL=redis_url, COLUMNS="200")


def test_every_page_and_action_needs_the_token(server: Server, pg_url: str) -> None:
    with server.client(token=None) as anonymous, server.client(token="wrong") as wrong:
        for path in PAGES:
            for client in (anonymous, wrong):
                refused = client.get(path)
                assert refused.status_code == 401, path
                assert support.TOKEN not in refused.text
        assert anonymous.post("/act", data={"action": "rollback", "confirmed": "yes", "by": "x"}).status_code == 401
        # the link printed at start: ?token= sets an HttpOnly, SameSite=Strict cookie and drops the token from the URL
        first = anonymous.get("/history", params={"token": support.TOKEN, "job": "tests.jobs.add"})
        assert first.status_code == 303 and first.headers["location"] == "/history?job=tests.jobs.add"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert anonymous.get("/history").status_code == 200  # the cookie now
    with server.client() as web:
        for path in PAGES:
            page = web.get(path)
            assert page.status_code in (200, 404), (path, page.text)
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert FlagStore(RoutingTables(pg_url)).snapshot().version == 0


def test_actions_are_refused_without_csrf_or_from_another_site(web: httpx.Client, pg_url: str) -> None:
    form = {"action": "flip", "job": "tests.jobs.add", "confirmed": "yes", "by": "mallory"}
    token = support.csrf_of(web.get("/confirm", params={"action": "flip", "job": "tests.jobs.add"}).text)
    for data, headers in [(form, {}), ({**form, "csrf": "0" * 64}, {}),
                          ({**form, "csrf": token}, {"Origin": "http://evil.example"})]:
        refused = web.post("/act", data=data, headers=headers)
        assert refused.status_code == 403 and "CSRF" in refused.text
    assert FlagStore(RoutingTables(pg_url)).snapshot().version == 0
    # without the confirmation: back to the confirmation page, nothing done
    unconfirmed = web.post("/act", data={"action": "rollback", "csrf": token, "by": "x"})
    assert unconfirmed.status_code == 303 and unconfirmed.headers["location"] == "/confirm?action=rollback"
    page = web.get(unconfirmed.headers["location"])
    assert "Roll back: every job to the legacy backend" in page.text and 'id="confirm"' in page.text
    assert FlagStore(RoutingTables(pg_url)).snapshot().version == 0


def test_routing_actions_go_to_the_audit_log_under_the_operators_name(web: httpx.Client, pg_url: str) -> None:
    done = act(web, action="flip", job="tests.jobs.add")
    assert done.status_code == 200 and "tests.jobs.add routes to postgres (flipped)" in outcome(done)
    assert act(web, by="bob", action="flip-back", job="tests.jobs.echo").status_code == 200
    assert routes(web)["tests.jobs.echo"] == ("rq", "pinned")
    assert act(web, action="rollout", percent="all").status_code == 200
    assert routes(web)["tests.jobs.boom"] == ("postgres", "rollout all")
    assert act(web, action="unflip", job="tests.jobs.echo").status_code == 200
    assert routes(web)["tests.jobs.echo"] == ("postgres", "rollout all")
    assert "rollout all -> 25%" in outcome(act(web, action="rollout", percent="25"))
    back = act(web, action="rollback")
    assert back.status_code == 200 and "to redo what was rolled back: migrator flip tests.jobs.add --force" in outcome(back)
    assert set(routes(web).values()) == {("rq", "default")}
    entries = FlagStore(RoutingTables(pg_url)).history(20)
    assert [(e.action, e.actor) for e in reversed(entries)] == [
        ("flip", "alice (web)"), ("pin", "bob (web)"), ("rollout-all", "alice (web)"), ("unflip", "alice (web)"),
        ("rollout-percent", "alice (web)"), ("rollback", "alice (web)")]
    mine = web.get("/history", params={"job": "tests.jobs.echo"}).text
    assert "bob (web)" in mine and "pinned tests.jobs.echo" in mine and "+flipped tests.jobs.add" not in mine
    assert "+flipped tests.jobs.add" in web.get("/history").text
    nameless = act(web, by="  ", action="flip", job="tests.jobs.add")
    assert nameless.status_code == 400 and "give your name" in outcome(nameless)


def test_gates_refuse_with_the_clis_messages(web: httpx.Client, pg_url: str, redis_url: str,
                                             conn: object) -> None:
    RQQueue("default", connection=conn).enqueue("tests.jobs.echo", Money(990))  # type: ignore[arg-type]
    refused = act(web, action="flip", job="tests.jobs.echo")
    message = outcome(refused)
    assert refused.status_code == 409 and "tests.jobs.echo: 1 of 1 pending payloads would fail" in message
    by_cli = cli(pg_url, redis_url, "flip", "tests.jobs.echo")
    assert by_cli.returncode == 1 and message == "refused: " + by_cli.stderr.strip().removeprefix("error: ")
    rollout = act(web, action="rollout", percent="100")
    assert rollout.status_code == 409 and "rollout --percent 100 refused" in outcome(rollout)
    assert FlagStore(RoutingTables(pg_url)).snapshot().version == 0
    forced = act(web, action="flip", job="tests.jobs.echo", force="yes")
    assert forced.status_code == 200, outcome(forced)
    assert "Money" in FlagStore(RoutingTables(pg_url)).history(1)[0].detail["forced"]
    unknown = act(web, action="flip", job="tests.jobs.ad")
    assert unknown.status_code == 400 and "did you mean tests.jobs.add" in outcome(unknown)
    bad = act(web, action="rollout", percent="101")
    assert bad.status_code == 400 and "--percent must be between 0 and 100" in outcome(bad)


def test_overview_escapes_payloads_and_masks_urls(web: httpx.Client, pg_url: str, redis_url: str) -> None:
    RoutingTables(pg_url).record_seen([EVIL])
    pg, rq_side = PostgresBackend(pg_url), RQBackend(redis_url)
    try:
        on_pg = pg.enqueue(JobSpec("tests.jobs.echo", ("<script>alert('arg')</script>", "x" * 1000)))
        on_rq = rq_side.enqueue(JobSpec("tests.jobs.echo", ("<img src=x onerror=alert(1)>",)))
    finally:
        pg.close()
        rq_side.close()
    page = web.get("/")
    assert page.status_code == 200
    assert '<noscript><meta http-equiv="refresh"' in page.text  # readable, and refreshing, without script
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(&#39;job&#39;)&lt;/script&gt;" in page.text
    assert support.PASSWORD not in page.text and "postgres:***@" in page.text
    for text in (page.text, web.get("/fragment/overview").text):
        assert 'data-job="tests.jobs.echo"' in text and "tests.jobs.add" in text
    row = page.text.split('data-job="tests.jobs.echo"')[1].split("</tr>")[0]
    assert row.count('class="num">1<') == 2  # one pending on each backend
    job = web.get(f"/jobs/{on_pg.job_id}")
    assert job.status_code == 200 and "&lt;script&gt;alert(&#39;arg&#39;)&lt;/script&gt;" in job.text
    assert "<script>alert" not in job.text and "characters)" in job.text  # args cut short
    assert "x" * 400 not in job.text
    rq_page = web.get("/jobs", params={"id": on_rq.job_id}, follow_redirects=True)
    assert rq_page.status_code == 200 and "&lt;img src=x onerror=alert(1)&gt;" in rq_page.text
    assert 'class="badge rq"' in rq_page.text
    assert web.get("/jobs/no-such-job").status_code == 404
    evil_history = web.get("/history", params={"job": "<script>x</script>"}).text
    assert "<script>x" not in evil_history


def test_failed_jobs_on_the_new_backend_retried_and_deleted(web: httpx.Client, pg_url: str, redis_url: str) -> None:
    pg = PostgresBackend(pg_url)
    try:
        ids = [pg.enqueue(JobSpec("tests.jobs.boom", (f"postgres://u:{support.PASSWORD}@db/x",))).job_id
               for _ in range(3)]
        done = cli(pg_url, redis_url, "worker", "--burst")
        assert done.returncode == 0, done.stderr
        failed = web.get(f"/jobs/{ids[0]}").text
        assert "ValueError" in failed and "Traceback" in failed and support.PASSWORD not in failed
        assert 'data-job="tests.jobs.boom"' in web.get("/").text and "Retry failed" in web.get("/").text
        retried = act(web, action="retry-failed", ids=ids[0])
        assert retried.status_code == 200 and "retried 1 failed job" in outcome(retried)
        info = pg.fetch_job(ids[0])
        assert info is not None and info.state is JobState.QUEUED
        deleted = act(web, action="delete-failed", job="tests.jobs.boom")
        assert "deleted 2 failed jobs of tests.jobs.boom" in outcome(deleted)
        assert pg.fetch_job(ids[1]) is None and pg.fetch_job(ids[0]) is not None
    finally:
        pg.close()


def test_playbook_run_pauses_for_the_operator_aborts_and_respects_the_lock(server: Server, web: httpx.Client,
                                                                          pg_url: str) -> None:
    plan = str(server.plans / "web-test.toml")
    assert plan in web.get("/").text
    started = act(web, action="playbook-run", playbook=plan, params="job=tests.jobs.add")
    assert started.status_code == 200, outcome(started)
    wait_for(lambda: "paused before step 2" in web.get("/").text, what="the run to pause at the confirm step")
    assert routes(web)["tests.jobs.add"] == ("postgres", "flipped")
    assert FlagStore(RoutingTables(pg_url)).history(1)[0].actor.startswith("playbook:web-test#")
    link = re.search(r'href="/confirm\?(action=playbook-abort[^"]*)"', web.get("/").text)
    assert link is not None and dict(httpx.QueryParams(html.unescape(link.group(1))))["playbook"] == plan
    aborted = act(web, action="playbook-abort", playbook=plan)
    assert aborted.status_code == 200 and "aborted" in outcome(aborted)
    again = act(web, action="playbook-abort", playbook=plan)
    assert again.status_code == 400 and "nothing to abort" in outcome(again)
    holder = PgPlaybookState(pg_url)
    try:
        assert holder.try_lock("web-test") is None
        locked = act(web, action="playbook-run", playbook=plan, params="job=tests.jobs.add")
        assert locked.status_code == 400 and "playbook 'web-test' is being run by" in outcome(locked)
    finally:
        holder.release_lock("web-test")
        holder.close()
    missing = act(web, action="playbook-run", playbook="/etc/passwd")
    assert missing.status_code == 400 and "no playbook" in outcome(missing)
    assert json.loads(web.get("/api/status").text)["routing"]["version"] >= 1


def test_overview_shows_each_jobs_compat_status(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    shop = support.app_dir(tmp_path / "shop", version="v2", locked="v1")
    RoutingTables(pg_url).record_seen(["tests.jobs.add"])
    for server in support.start(pg_url, redis_url, tmp_path, cwd=shop):
        with server.client() as web:
            page = web.get("/").text
        assert "breaking changes in" in page and "against migrator.lock.json" in page
        def row(job: str) -> str:
            return page.split(f'data-job="{job}"')[1].split("</tr>")[0]
        assert "breaking: renamed-param" in row("app.jobs.charge_card")
        assert ">ok<" in row("app.jobs.send_email")  # safe changes only
        assert "not locked" in row("tests.jobs.add")


def test_a_generated_token_is_printed_once_and_works(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    for server in support.start(pg_url, redis_url, tmp_path, MIGRATOR_WEB_TOKEN=""):
        link = wait_for(lambda: re.search(r"open (http://127\.0\.0\.1:\d+/\?token=(\S+))", server.log.read_text()),
                        what="the link with the token")
        assert server.log.read_text().count(link.group(2)) == 1 and support.PASSWORD not in server.log.read_text()
        # Started without --host: it listens on the loopback address only, never on every interface.
        assert support.listening_on(int(server.url.rsplit(":", 1)[1])) == {"127.0.0.1"}
        with server.client(token=link.group(2)) as web:
            assert web.get("/").status_code == 200
        with server.client() as web:  # MIGRATOR_WEB_TOKEN was empty: the test's token is not the panel's
            assert web.get("/").status_code == 401


def test_the_overview_says_what_it_cannot_read(redis_url: str, tmp_path: Path) -> None:
    gone = f"postgresql://postgres@127.0.0.1:{free_port()}/gone"  # nothing listens there
    for server in support.start(gone, redis_url, tmp_path):
        with server.client() as web:
            page = web.get("/")
            assert page.status_code == 200 and 'class="alert">routing: ' in page.text
            assert "unreachable" in page.text and support.PASSWORD not in page.text
            refused = act(web, action="rollback")
            assert refused.status_code == 503 and "unreachable" in outcome(refused)
