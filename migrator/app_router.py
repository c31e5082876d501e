"""The router an app process uses: `Router.from_env()`, and one default router per process (per Redis connection,
serializer and job class the app passes), shared by every migrator.Queue and by Job.fetch."""
from __future__ import annotations

import atexit
import threading
from typing import Any

from migrator import wiring
from migrator.routing import router as routing_router


class Router(routing_router.Router):
    """The router an app uses (`from migrator import Router`): routing's Router, built from the environment."""

    @classmethod
    def from_env(cls, redis: Any = None, fallback: bool | None = None, settings: Any = None,
                 serializer: Any = None, job_class: Any = None) -> "Router":
        """A router from REDIS_URL, DATABASE_URL and migrator.toml (`fallback = true` there opts in)."""
        return wiring.router_from_env(cls, redis, fallback, settings, serializer=serializer, job_class=job_class)


_routers: dict[tuple[int, int, int], Router] = {}
_routers_lock = threading.Lock()


def default_router(connection: Any = None, serializer: Any = None, job_class: Any = None) -> Router:
    """One router per process (per Redis connection object, serializer and job class, when the app passes its own)."""
    key = (id(connection), id(serializer), id(job_class))
    with _routers_lock:
        router = _routers.get(key)
        if router is None:
            router = _routers[key] = Router.from_env(redis=connection, serializer=serializer, job_class=job_class)
            atexit.register(router.close)  # saves the job names this process routed
        return router
