"""pgqueuer's app for bench_peers.py (asyncpg driver): a no-op and a stamp entrypoint."""
import os
import time
from contextlib import asynccontextmanager

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job


@asynccontextmanager  # pgqueuer 1.6 wants an async context manager factory
async def main():
    conn = await asyncpg.connect(os.environ["BENCH_PG_URL"])
    pgq = PgQueuer(AsyncpgDriver(conn))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    @pgq.entrypoint("stamp")
    async def stamp(job: Job) -> None:
        now, path = time.time(), job.payload.decode()
        with open(f"{path}.tmp", "w") as f:  # renamed into place: the reader never sees a half-written number
            f.write(repr(now))
        os.replace(f"{path}.tmp", path)

    try:
        yield pgq
    finally:
        await conn.close()
