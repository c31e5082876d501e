"""The panel in a real headless Chromium (Debian's chromium and chromium-driver through Selenium; nothing downloads a
browser): the overview refreshes by itself and shows a running app process, an operator flips a job from the page,
and that app process routes the job to the new backend within the 2 s the design promises."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rq import Queue as RQQueue

from adapters.base import JobSpec
from adapters.pg_backend.backend import PostgresBackend
from adapters.pg_backend.routing_tables import RoutingTables
from migrator.routing.flag_store import FlagStore
from tests.support import ROOT, spawn_cli, spawn_rq_worker, stop_processes, subprocess_env, wait_for
from tests.web import support
from tests.web.support import Server

webdriver = pytest.importorskip("selenium.webdriver", reason="the web extra (selenium) is not installed")
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1500,1250"]
JOB = "tests.jobs.add"
PROPAGATION = 2.0  # seconds: the design's bound for a routing change to reach every process (flag_cache_seconds 1)

# An app process: enqueues JOB through migrator.Queue every 50 ms and writes when and where each one went.
APP = """
import sys, time
from migrator import Queue
from tests import jobs
queue = Queue("default")
with open(sys.argv[1], "a") as out:
    while True:
        at = time.time()
        job = queue.enqueue(jobs.add, 1, 2)
        print(f"{at:.3f} {job.backend}", file=out, flush=True)
        time.sleep(0.05)
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if not (CHROMIUM and DRIVER):
        why = "needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}: .ci/run installs them; on CI this test must run")
        pytest.skip(why)
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Server]:
    """The panel run from an app's checkout (app.jobs and its lock file), as an operator would."""
    yield from support.start(pg_url, redis_url, tmp_path, refresh=1.0, cwd=support.app_dir(tmp_path / "shop"))


@pytest.fixture
def scene(pg_url: str, redis_url: str, tmp_path: Path, conn: Any) -> Iterator[tuple[Path, int]]:
    """A migration in progress: known jobs with work waiting in RQ, a worker of each kind, a failed job on the new
    backend, and the app process enqueuing JOB; yields the app's log of (time, backend) lines and its pid."""
    RoutingTables(pg_url).record_seen([JOB, "tests.jobs.boom"])
    emails = RQQueue("emails", connection=conn)
    for n in range(3):
        emails.enqueue("app.jobs.send_email", n, "Welcome")
    emails.enqueue("app.jobs.resize_image", "cat.png", 800, 600)
    pg = PostgresBackend(pg_url)
    try:
        pg.enqueue(JobSpec("tests.jobs.boom", ("payment declined",)))
    finally:
        pg.close()
    log = tmp_path / "app.log"
    env = subprocess_env(DATABASE_URL=pg_url, REDIS_URL=redis_url)
    app = subprocess.Popen([sys.executable, "-c", APP, str(log)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    procs: list[subprocess.Popen[bytes]] = [app, spawn_rq_worker(redis_url, "default"),
                                            spawn_cli("worker", log=tmp_path / "worker.log", DATABASE_URL=pg_url,
                                                      REDIS_URL=redis_url)]
    try:
        wait_for(lambda: log.exists() and log.read_text().count("\n") > 3, timeout=60, what="the app to enqueue")
        yield log, app.pid
    finally:
        stop_processes(procs)


def retry(action: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Do `action` on the live page, again if the refresh replaced the element meanwhile."""
    def attempt() -> Any:
        try:
            return action() or True
        except (StaleElementReferenceException, WebDriverException):
            return None
    return wait_for(attempt, timeout=timeout, interval=0.2, what="the page element")


def routed(log: Path) -> list[tuple[float, str]]:
    lines = [line.split() for line in log.read_text().splitlines()]
    return [(float(at), backend) for at, backend in (line for line in lines if len(line) == 2)]


def test_flip_from_the_page_reaches_a_running_app_within_2s(browser: Any, server: Server,
                                                            scene: tuple[Path, int], pg_url: str,
                                                            tmp_path: Path) -> None:
    log, app_pid = scene
    browser.get(f"{server.url}/?token={support.TOKEN}")  # the link `migrator web` prints: sets the cookie
    assert browser.current_url == f"{server.url}/"
    # the overview refreshes by itself: the app process and the workers appear without a reload
    wait_for(lambda: f">{app_pid}<" in browser.find_element(By.ID, "live").get_attribute("innerHTML"), timeout=30,
             what="the app process on the overview")
    wait_for(lambda: browser.find_element(By.ID, "live").text.count("yes") >= 2, timeout=30,
             what="a live worker of each kind on the overview")
    assert "tests.jobs.add" in browser.find_element(By.CSS_SELECTOR, "table.jobs").text

    retry(lambda: browser.find_element(By.CSS_SELECTOR, f'tr[data-job="{JOB}"] a[href*="action=flip&"]').click())
    wait_for(lambda: "/confirm" in browser.current_url, what="the confirmation page")
    assert "Flip tests.jobs.add to the new backend" in browser.find_element(By.TAG_NAME, "h1").text
    assert FlagStore(RoutingTables(pg_url)).snapshot().version == 0  # nothing happens before the confirmation
    browser.find_element(By.ID, "by").send_keys("Olive Operator")
    browser.find_element(By.ID, "confirm").click()
    result = wait_for(lambda: browser.find_elements(By.ID, "outcome"), what="the outcome")[0].text
    assert "tests.jobs.add routes to postgres (flipped)" in result and "Olive Operator (web)" in result

    entry = FlagStore(RoutingTables(pg_url)).history(1)[0]
    assert (entry.action, entry.job_name, entry.actor) == ("flip", JOB, "Olive Operator (web)")
    flipped_at = entry.at.timestamp()
    wait_for(lambda: any(at > flipped_at + PROPAGATION + 0.5 for at, _ in routed(log)), timeout=30,
             what="the app to go on enqueuing")
    late = [backend for at, backend in routed(log) if at > flipped_at + PROPAGATION]
    assert late and set(late) == {"postgres"}, f"enqueued {PROPAGATION}s after the flip: {late}"
    assert {backend for at, backend in routed(log) if at < flipped_at} == {"rq"}

    browser.find_element(By.LINK_TEXT, "Back to the overview").click()
    row = f'tr[data-job="{JOB}"]'
    wait_for(lambda: "postgres flipped" in browser.find_element(By.CSS_SELECTOR, row).text, timeout=30,
             what="the flip on the overview")
    wait_for(lambda: "all current" in browser.find_element(By.ID, "live").text, timeout=30,
             what="every app process on the new routing version")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1500, height + 160)  # the whole page, for the picture
    browser.save_screenshot(str(tmp_path / "overview.png"))
    if os.environ.get("MIGRATOR_WEB_SCREENSHOT"):  # how docs/web-overview.png is made
        browser.save_screenshot(os.environ["MIGRATOR_WEB_SCREENSHOT"])
