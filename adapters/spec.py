"""Turn RQ's enqueue vocabulary (a callable or dotted name, RQ options, `Queue.prepare_data` items) into JobSpec."""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import rq
from rq.job import validate_job_id

from adapters.base import InvalidJobId, InvalidOption, JobRefused, JobSpec, RetryPolicy

# RQ options JobSpec carries; anything else passed to enqueue is refused by name, never dropped.
OPTIONS = frozenset({"job_id", "job_timeout", "timeout", "result_ttl", "ttl", "failure_ttl", "retry", "meta",
                     "at_front", "depends_on", "description", "on_success", "on_failure", "on_stopped", "priority",
                     "unique"})
UNSUPPORTED = frozenset({"repeat", "webhooks", "pipeline", "job_class", "serializer", "rate_limit", "group_id"})
# What rq.Queue.enqueue() (and enqueue_at/enqueue_in) takes out of **kwargs as options, exactly: every other keyword
# is the job's own, `timeout` and `priority` included (RQ passes those to the function). RQ 3 adds rate_limit.
ENQUEUE_OPTIONS = frozenset({"job_timeout", "description", "result_ttl", "ttl", "failure_ttl", "depends_on", "job_id",
                             "at_front", "meta", "retry", "repeat", "on_success", "on_failure", "on_stopped",
                             "webhooks", "pipeline", "unique"}) | ({"rate_limit"} if int(rq.VERSION.split(".")[0]) >= 3 else set())
# What a decorated function's .delay()/.enqueue() takes as options: RQ's decorator keeps only these three per call
# (the rest of its options come from the decorator) and passes every other keyword to the function.
DELAY_OPTIONS = frozenset({"depends_on", "job_id", "at_front"})
CALLBACKS = ("on_success", "on_failure", "on_stopped")
_importable: set[str] = set()


def job_name(func: Callable[..., Any] | str) -> str:
    """The dotted path RQ records for a job function (`app.jobs.send_email`)."""
    if isinstance(func, str):
        return func
    owner = getattr(func, "__self__", None)
    if owner is not None and not isinstance(owner, type) and not inspect.ismodule(owner):
        # RQ pickles the instance with the call; migrator carries a dotted name, which would lose it silently.
        raise JobRefused(f"{func!r} is a method of an instance: migrator enqueues jobs by name, without the "
                         "instance; enqueue a module-level function that takes the instance's id instead")
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if module == "__main__":
        raise InvalidOption("Functions from the __main__ module cannot be processed by workers")  # RQ's words
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise JobRefused(f"{func!r} is not an importable module-level function; workers could not find it")
    return f"{module}.{qualname}"


def parse_timeout(value: Any, option: str = "job_timeout") -> int | None:
    """RQ accepts seconds or strings like '10m', '1h', '30s'."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise JobRefused(f"{option} must be seconds or a string like '10m', not {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise JobRefused(f"{option}={value!r} is not a duration; use seconds or '10m', '1h'") from None


def _retry(value: Any) -> RetryPolicy | None:
    if value is None:
        return None
    if isinstance(value, RetryPolicy):
        return value
    maximum = getattr(value, "max", None)
    if not isinstance(maximum, int):
        raise JobRefused(f"retry={value!r} is not an rq.Retry")
    intervals = getattr(value, "intervals", None) or []
    if isinstance(intervals, int):
        intervals = [intervals]
    return RetryPolicy(maximum, tuple(int(i) for i in intervals))


def _callback(value: Any, option: str) -> str | None:
    """The import path of a callback (a function, a dotted name or an rq.Callback); JobRefused when it does not
    import here, so that a typo fails the enqueue rather than every run of the job."""
    if value is None:
        return None
    func = getattr(value, "func", value)  # rq.Callback keeps the function (or its name) in .func
    path = job_name(func)
    if path not in _importable:
        if not callable(resolve(path)):
            raise InvalidOption(f"{option}={path!r} does not import as a function; give a module-level function or "
                             "its dotted path")
        _importable.add(path)
    return path


def resolve(path: str) -> Any:
    """The object a dotted path names (`app.jobs.send_email`, `app.jobs.Mailer.send`: the longest importable module,
    then attributes), or None."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        return obj
    return None


def _callback_timeouts(options: Mapping[str, Any]) -> dict[str, int]:
    """Timeouts that rq.Callback(func, timeout=) gave (RQ parses them already; a plain function has none)."""
    out = {}
    for name in CALLBACKS:
        timeout = getattr(options.get(name), "timeout", None)
        if timeout is not None:
            out[name] = int(timeout)
    return out


def validate(options: Mapping[str, Any]) -> None:
    """Refuse what RQ's Queue.create_job/enqueue_job refuse, with RQ's exception types (ValueError, TypeError)."""
    job_id = options.get("job_id")
    if job_id is not None:
        if not isinstance(job_id, str):
            raise InvalidJobId(f"Job ID must be a string, not {type(job_id)}")
        try:
            validate_job_id(job_id)
        except ValueError as exc:
            raise InvalidOption(str(exc)) from None
    if parse_timeout(options.get("job_timeout", options.get("timeout"))) == 0:
        raise InvalidOption("0 timeout is not allowed. Use -1 for infinite timeout")
    ttl = parse_timeout(options.get("ttl"), "ttl")
    if ttl is not None and ttl <= 0:
        raise InvalidOption("Job ttl must be greater than 0")
    if options.get("unique"):
        if not job_id:
            raise InvalidOption("unique=True requires an explicit job_id")
        if options.get("depends_on"):
            raise InvalidOption("unique=True is not supported with job dependencies")


def _allow_failure(value: Any) -> bool:
    """rq.Dependency(..., allow_failure=True), however deep in the depends_on value it is given."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return any(bool(getattr(item, "allow_failure", False)) for item in items if item is not None)


def _dependencies(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    ids: list[str] = []
    for item in items:
        inner = getattr(item, "dependencies", None)  # rq.Dependency(jobs=[...])
        if inner is not None:
            ids.extend(_dependencies(inner))
        else:
            ids.append(item if isinstance(item, str) else str(getattr(item, "id", getattr(item, "job_id", item))))
    return tuple(ids)


def build_spec(func: Callable[..., Any] | str, args: tuple[Any, ...] | list[Any] | None = None,
               kwargs: Mapping[str, Any] | None = None, queue: str = "default",
               run_at: datetime | None = None, **options: Any) -> JobSpec:
    """A JobSpec from RQ-style enqueue arguments; JobRefused names any option it cannot carry."""
    if not options:  # the common enqueue: no options to parse
        return JobSpec(job_name=job_name(func), args=tuple(args or ()), kwargs=dict(kwargs or {}), queue=queue,
                       run_at=run_at)
    unknown = set(options) - OPTIONS
    given_unsupported = sorted(k for k in unknown & UNSUPPORTED if options[k] is not None)
    if given_unsupported:
        raise JobRefused(f"RQ option {given_unsupported[0]} is not supported by migrator; remove it or enqueue "
                         "with rq directly")
    if unknown - UNSUPPORTED:
        raise JobRefused(f"unknown enqueue option {sorted(unknown - UNSUPPORTED)[0]!r}")
    validate(options)
    timeout = options.get("job_timeout", options.get("timeout"))
    return JobSpec(
        job_name=job_name(func), args=tuple(args or ()), kwargs=dict(kwargs or {}), queue=queue,
        job_id=options.get("job_id"), timeout=parse_timeout(timeout),
        result_ttl=parse_timeout(options.get("result_ttl"), "result_ttl"),
        ttl=parse_timeout(options.get("ttl"), "ttl"),
        failure_ttl=parse_timeout(options.get("failure_ttl"), "failure_ttl"),
        retry=_retry(options.get("retry")), meta=dict(options.get("meta") or {}),
        description=options.get("description"), run_at=run_at, priority=int(options.get("priority") or 0),
        at_front=bool(options.get("at_front")), depends_on=_dependencies(options.get("depends_on")),
        allow_failure=_allow_failure(options.get("depends_on")),
        on_success=_callback(options.get("on_success"), "on_success"),
        on_failure=_callback(options.get("on_failure"), "on_failure"),
        on_stopped=_callback(options.get("on_stopped"), "on_stopped"),
        callback_timeouts=_callback_timeouts(options), unique=bool(options.get("unique")))


def from_enqueue_data(item: Any, queue: str) -> JobSpec:
    """A JobSpec from one `rq.Queue.prepare_data(...)` item (an EnqueueData named tuple)."""
    fields = item._asdict()
    for name in ("repeat", "webhooks"):
        if fields.get(name) is not None:
            raise JobRefused(f"RQ option {name} is not supported by migrator; remove it or enqueue with rq directly")
    return build_spec(fields["func"], fields["args"], fields["kwargs"], queue,
                      job_timeout=fields["timeout"], result_ttl=fields["result_ttl"], ttl=fields["ttl"],
                      failure_ttl=fields["failure_ttl"], description=fields["description"],
                      depends_on=fields.get("depends_on"), job_id=fields["job_id"], at_front=fields["at_front"],
                      meta=fields["meta"], retry=fields["retry"], on_success=fields["on_success"],
                      on_failure=fields["on_failure"], on_stopped=fields.get("on_stopped"),
                      unique=bool(fields.get("unique")))


def run_at_in(delay: timedelta | int | float) -> datetime:
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def aware(when: datetime) -> datetime:
    """RQ treats a naive datetime as UTC; so do we."""
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
