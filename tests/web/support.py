"""The panel as a user runs it, for the web tests: `python -m migrator web` on a free loopback port against this
test's Postgres and Redis, an httpx client that sends its token, and a helper that confirms an action."""
from __future__ import annotations

import html
import ipaddress
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from migrator.localservers import free_port
from tests.support import ROOT, subprocess_env, wait_for

TOKEN = "test-token-0123456789"
PASSWORD = "s3cret-pw"  # in DATABASE_URL (the test server trusts loopback): never on a page
# A plan for the page to run: a flip, then a confirm step where the run pauses for the operator's word.
PLAN = """
[playbook]
name = "web-test"
summary = "flip one job, then wait for a deploy"

[params]
job = ""

[[step]]
do = "flip"
job = "{job}"

[[step]]
do = "confirm"
text = "deploy the new code"
"""


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    plans: Path

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, follow_redirects=False)


def with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def listening_on(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at `port`, from the kernel's own tables (/proc/net/tcp, tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port and len(address) == width:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word little-endian
                found.add(str(ipaddress.ip_address(words)))
    return found


def start(pg_url: str, redis_url: str, workdir: Path, refresh: float = 0.5, cwd: Path = ROOT,
          **env: str) -> Iterator[Server]:
    """Start the panel, wait until it answers, and stop it (SIGTERM, as an operator's Ctrl-C) afterwards."""
    plans = workdir / "playbooks"
    plans.mkdir(exist_ok=True)
    (plans / "web-test.toml").write_text(PLAN)
    port, log = free_port(), workdir / "web.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "migrator", "web", "--port", str(port), "--playbooks",
                                 str(plans), "--refresh", str(refresh)], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env=subprocess_env(**{"DATABASE_URL": with_password(pg_url), "REDIS_URL": redis_url,
                                                      "MIGRATOR_WEB_TOKEN": TOKEN, **env}))
    server = Server(f"http://127.0.0.1:{port}", proc, log, plans)
    try:
        wait_for(lambda: _answers(server), timeout=60, what=f"the panel to answer (log: {log.read_text()})")
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)


def app_dir(where: Path, version: str = "v1", locked: str = "v1") -> Path:
    """An app checkout: app/jobs.py at `version` of tests/compat_app, its lock file taken at `locked`, and a
    migrator.toml naming app.jobs (the panel run from here lists those jobs and their compat status)."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "app").mkdir(exist_ok=True)
    (where / "app" / "__init__.py").write_text("")
    (where / "migrator.toml").write_text('job_modules = ["app.jobs"]\n')
    for code in (locked, version):
        (where / "app" / "jobs.py").write_text((ROOT / "tests" / "compat_app" / f"{code}.py").read_text())
        if code == locked:
            done = subprocess.run([sys.executable, "-m", "migrator", "compat", "snapshot"], cwd=where,
                                  env=subprocess_env(PYTHONDONTWRITEBYTECODE="1"), capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
    return where


def _answers(server: Server) -> bool:
    if server.proc.poll() is not None:
        raise AssertionError(f"the panel exited {server.proc.returncode}: {server.log.read_text()}")
    try:
        with server.client() as c:
            return c.get("/static/panel.css").status_code in (200, 401)  # 401: up, with a token of its own
    except httpx.TransportError:
        return False


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def act(client: httpx.Client, by: str = "alice", **fields: Any) -> httpx.Response:
    """Open the action's confirmation page, then confirm it as `by`, as a user clicking through would."""
    page = client.get("/confirm", params=fields)
    assert page.status_code == 200, page.text
    return client.post("/act", data={**fields, "csrf": csrf_of(page.text), "confirmed": "yes", "by": by})


def outcome(response: httpx.Response) -> str:
    found = re.search(r'<p id="outcome"[^>]*>(.*?)</p>', response.text, re.S)
    assert found, response.text
    return html.unescape(found.group(1))
