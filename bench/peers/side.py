"""The client side of bench_peers.py, run under an interpreter that has pgqueuer or procrastinate installed
(not the project's): `side.py SYSTEM ACTION N|SAMPLES [DIR]` prints one JSON value on stdout.
Actions: install, single (seconds for N one-at-a-time enqueues), bulk (seconds for N in chunks of 5,000),
pickup (ms from just before an enqueue to the job's start, SAMPLES after one warm-up; needs an idle worker).
The database is $BENCH_PG_URL. Job bodies are in pgq_app.py and proc_app.py beside this file.
"""
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

URL = os.environ["BENCH_PG_URL"]
CHUNK = 5000


def pickup(enqueue, folder: str, samples: int) -> list:
    out = []
    for i in range(samples + 1):
        path = Path(folder) / f"s{i}"
        time.sleep(random.uniform(0.2, 0.4))
        t = time.time()
        enqueue(str(path))
        deadline = time.time() + 10
        while not path.exists():
            if time.time() > deadline:
                raise TimeoutError("the stamp job never ran")
            time.sleep(0.0005)
        if i:
            out.append((float(path.read_text()) - t) * 1000)
        path.unlink()
    return out


def pgqueuer(action: str, n: int, folder: str) -> object:
    import subprocess

    import asyncpg
    from pgqueuer import Queries
    from pgqueuer.db import AsyncpgDriver

    if action == "install":
        done = subprocess.run([str(Path(sys.executable).parent / "pgq"), "--pg-dsn", URL, "install"],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stdout[-1000:] + done.stderr[-1000:])
        return 0
    loop = asyncio.new_event_loop()
    queries = Queries(AsyncpgDriver(loop.run_until_complete(asyncpg.connect(URL))))

    async def single() -> None:
        for _ in range(n):
            await queries.enqueue("noop", None)

    async def bulk() -> None:
        for i in range(0, n, CHUNK):
            m = min(CHUNK, n - i)
            await queries.enqueue(["noop"] * m, [None] * m, [0] * m)

    if action == "pickup":
        return pickup(lambda p: loop.run_until_complete(queries.enqueue("stamp", p.encode())), folder, n)
    t = time.perf_counter()
    loop.run_until_complete(single() if action == "single" else bulk())
    return time.perf_counter() - t


def procrastinate(action: str, n: int, folder: str) -> object:
    from proc_app import app, noop, stamp

    with app.open():
        if action == "install":
            app.schema_manager.apply_schema()
            return 0
        if action == "pickup":
            return pickup(lambda p: stamp.defer(path=p), folder, n)
        t = time.perf_counter()
        if action == "single":
            for _ in range(n):
                noop.defer()
        else:
            for i in range(0, n, CHUNK):
                noop.batch_defer(*({} for _ in range(min(CHUNK, n - i))))
        return time.perf_counter() - t


if __name__ == "__main__":
    system, action, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps({"pgqueuer": pgqueuer, "procrastinate": procrastinate}[system](action, count,
                     sys.argv[4] if len(sys.argv) > 4 else "")))
