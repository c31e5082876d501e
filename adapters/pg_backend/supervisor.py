"""`--concurrency N`: N worker processes, each running jobs in its main thread so that job_timeout can
interrupt them with SIGALRM (threads cannot be interrupted safely). The supervisor forwards stop signals
and, unless in burst mode, replaces a worker process that died (its jobs are recovered by the reaper).
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from typing import Any

from adapters.pg_backend.worker import Worker
from adapters.pg_backend.worker_options import WorkerOptions

log = logging.getLogger("migrator.worker")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _child(url: str, options: WorkerOptions, schema: str, supervised: bool = False) -> int:
    try:
        worker = Worker(url, options, schema)
        if supervised:  # the supervisor died (_stop_with): no new jobs, the running one runs to its end
            def orphaned(signum: int, frame: Any) -> None:
                if not worker.stopping:
                    log.warning("the supervisor is gone: stopping once the running job (if any) ends")
                worker.stop()
            signal.signal(signal.SIGHUP, orphaned)
        worker.run()
        return 0
    except Exception:
        log.exception("worker process failed")
        return 1


def _stop_with(parent: int) -> None:
    """A worker process must not run on unsupervised when its supervisor is SIGKILLed (the OOM killer, a lost
    container's init): Linux sends it SIGHUP then (not SIGTERM: the death signal was seen to arrive twice, and a
    second SIGTERM means "stop now, give the job back"), and the worker stops taking jobs, its running one run to
    its end. Elsewhere nothing changes: its
    orphans run on until stopped."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGHUP)
    except (OSError, AttributeError):  # no prctl here (not Linux)
        return
    if os.getppid() != parent:  # the supervisor died before the death signal was set: no job taken yet
        os._exit(0)


def run_workers(url: str, options: WorkerOptions, concurrency: int = 1, schema: str = "public") -> int:
    """Run `concurrency` worker processes until stopped; returns an exit code (0 clean)."""
    if concurrency <= 1:
        return _child(url, options, schema)
    children: dict[int, int] = {}
    stopping = False

    def spawn() -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _stop_with(parent)
            os._exit(_child(url, options, schema, supervised=True))
        children[pid] = int(time.monotonic())

    def forward(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for _ in range(concurrency):
        spawn()
    code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.pop(pid, None)
        exit_code = os.waitstatus_to_exitcode(status)
        if exit_code == 0:
            continue
        if stopping or options.burst:
            code = 1  # a process that failed while we were finishing: say so
            continue
        log.warning("worker process %s exited with %s; starting a new one (the reaper requeues its jobs)",
                    pid, exit_code)
        time.sleep(1)
        spawn()
    return code
