"""`migrator metrics` as Prometheus scrapes it: a real server process, real jobs on both backends."""
from __future__ import annotations

import urllib.request

import pytest
import rq
from prometheus_client.parser import text_string_to_metric_families

from adapters.base import JobSpec
from migrator.localservers import free_port
from migrator.metrics import NAMES
from tests.support import run_cli, spawn_cli, stop_processes, wait_for


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def test_the_documented_names_with_rq_exporter_labels(backend, rqb, pg_url, redis_url, tmp_path):
    rq.Queue("emails", connection=rqb.connection).enqueue("tests.jobs.add", 1, 2)
    backend.enqueue(JobSpec("tests.jobs.boom", ("x",), job_id="f1"))
    assert run_cli("worker", "--burst", DATABASE_URL=pg_url).returncode == 0
    backend.enqueue(JobSpec("tests.jobs.add", (1, 1), queue="reports"))
    port = free_port()
    server = spawn_cli("metrics", "--port", str(port), log=tmp_path / "metrics.log", DATABASE_URL=pg_url,
                       REDIS_URL=redis_url)
    try:
        found = wait_for(lambda: scrape(port).get("migrator_jobs") and scrape(port), what="the metrics endpoint")
    finally:
        stop_processes([server])
    assert set(NAMES) <= set(found), sorted(set(NAMES) - set(found))
    jobs = {(s["backend"], s["queue"], s["status"]): v for s, v in found["migrator_jobs"]}
    assert jobs[("rq", "emails", "queued")] == 1 and jobs[("postgres", "reports", "queued")] == 1
    runs = {(s["backend"], s["job"], s["status"]): v for s, v in found["migrator_job_runs"]}
    assert runs[("postgres", "tests.jobs.boom", "failed")] == 1
    assert {s["backend"]: v for s, v in found["migrator_backend_up"]} == {"rq": 1.0, "postgres": 1.0}
    assert found["migrator_routing_version"] == [({}, 0.0)]


def test_an_unreachable_backend_reads_as_down_not_as_a_failed_scrape(pg_url, tmp_path):
    port = free_port()
    server = spawn_cli("metrics", "--port", str(port), log=tmp_path / "metrics.log", DATABASE_URL=pg_url,
                       REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    try:
        found = wait_for(lambda: scrape(port).get("migrator_backend_up") and scrape(port), what="the endpoint")
    finally:
        stop_processes([server])
    assert {s["backend"]: v for s, v in found["migrator_backend_up"]} == {"rq": 0.0, "postgres": 1.0}
