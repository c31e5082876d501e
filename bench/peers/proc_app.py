"""procrastinate's app for bench_peers.py (psycopg 3 connector): a sync no-op task (like a migrated RQ job) and a
stamp task."""
import os
import time

from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ["BENCH_PG_URL"]))


@app.task(name="noop")
def noop():
    return None


@app.task(name="stamp")
def stamp(path):
    with open(path, "w") as f:
        f.write(repr(time.time()))
