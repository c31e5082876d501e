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
    now = time.time()
    with open(f"{path}.tmp", "w") as f:  # renamed into place: the reader never sees a half-written number
        f.write(repr(now))
    os.replace(f"{path}.tmp", path)
