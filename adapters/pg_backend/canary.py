"""The canary job: proves that a worker of the new backend picks jobs up and performs them."""
from __future__ import annotations

import os
import socket


def noop(token: str) -> dict[str, str | int]:
    """Does nothing but say who ran it."""
    return {"token": token, "host": socket.gethostname(), "pid": os.getpid()}
