"""The Redis connection of the RQ adapter; redis connection errors become BackendUnavailable here, and only here."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from redis import Redis

from adapters.base import BackendUnavailable
from adapters.urls import mask_url as masked

# Inspection and enqueue never block on the server: a dead or unreachable Redis must fail fast.
CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 30.0


def connect(url: str) -> Redis:
    """A client as RQ needs it: bytes responses (RQ decodes itself), short connect timeout."""
    return Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT)


def describe(connection: Redis) -> str:
    """A URL for messages when the app handed us a connection; never includes the password."""
    kwargs = connection.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


@contextlib.contextmanager
def reachable(url: str) -> Iterator[None]:
    """Translate a lost or refused connection into BackendUnavailable("rq", masked url, first line of detail)."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        text = str(exc).strip()
        detail = text.splitlines()[0] if text else type(exc).__name__
        # redis-py says "Error N connecting to ..." when no connection was made: nothing was sent. Any other
        # break may have come after Redis wrote (and logged) the command, before its answer arrived.
        in_doubt = "connecting to" not in detail  # "Error 111 connecting to", "Timeout connecting to server"
        raise BackendUnavailable("rq", masked(url), detail[:200], in_doubt=in_doubt) from exc
