"""Routing flags as flipper-client store items: the only module that imports flipper. Pure encoding and
decoding, so that flipper's own client reads what we write (enabled/disabled and its bucketer are the truth)."""
from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from adapters.base import BackendName
from migrator.errors import BadInput
from migrator.routing.snapshot import LEGACY, RoutingSnapshot


# The only flipper imports of the toolkit. flipper-client (redis<5, RQ 2 apps) and its fork felipper-client
# (redis>=5, RQ 3 apps) both install the `flipper` module; with neither, `import migrator` still works and
# routing stays legacy, with the install line in the error.
try:
    from flipper.bucketing import ConsistentHashPercentageBucketer, NoOpBucketer, Percentage
    from flipper.contrib.storage import FeatureFlagStoreItem, FeatureFlagStoreMeta
    FLIPPER_MISSING = ""
except ImportError as _exc:  # pragma: no cover - exercised only on an install without either distribution
    FLIPPER_MISSING = str(_exc)


FLAG_PREFIX = "migrator_"
ROLLOUT_FLAG = "migrator_rollout"  # the seed's `worker_next` flag: the rollout rule over all job names
JOB_FLAG_PREFIX = "migrator_job_"
NAME_LIMIT = 40  # flipper's PostgreSQL store keys flags by varchar(40)


def require_flipper() -> None:
    if FLIPPER_MISSING:
        raise BadInput(f"flipper is not installed ({FLIPPER_MISSING}); pip install 'migrator[rq2]' "
                       "(flipper-client) or 'migrator[rq3]' (felipper-client)")


def job_flag_name(job: str) -> str:
    """The flag key of one job: job names outgrow varchar(40), so the key is a hash of the name; the full
    name travels in the item's client_data."""
    digest = hashlib.sha256(job.encode("utf-8")).hexdigest()
    return JOB_FLAG_PREFIX + digest[:NAME_LIMIT - len(JOB_FLAG_PREFIX)]


def _item(name: str, enabled: bool, client_data: dict[str, Any], bucketer: Any = None) -> bytes:
    meta = FeatureFlagStoreMeta(int(time.time()), client_data, bucketer=bucketer)
    return bytes(FeatureFlagStoreItem(name, enabled, meta).serialize())


def encode_job(job: str, route: BackendName) -> bytes:
    """A per-job flag: enabled = flipped to the new backend, disabled = pinned to the legacy one."""
    return _item(job_flag_name(job), route is BackendName.POSTGRES, {"job": job})


def encode_rollout(s: RoutingSnapshot) -> bytes:
    """The rollout rule in flipper's own terms: enabled without bucketer = every job; enabled with a
    percentage bucketer hashing only the `job` keyword = a percentage of job names (key_whitelist, because
    the bucketer otherwise hashes every keyword a caller passes). No conditions: with conditions present,
    flipper skips the bucketer. migrator itself decides with router.bucket(), exact to 0.01%."""
    bucketer = NoOpBucketer() if s.rollout_all else ConsistentHashPercentageBucketer(
        key_whitelist=["job"], percentage=Percentage(s.percent / 100))
    data = {"version": s.version, "changed_at": s.changed_at.isoformat() if s.changed_at else None}
    return _item(ROLLOUT_FLAG, s.rollout_all or s.threshold > 0, data, bucketer)


def decode(rows: Iterable[tuple[str, bytes]]) -> RoutingSnapshot:
    """The snapshot held by flag rows; enabled/disabled and the bucketer are the truth, as flipper reads them."""
    flipped: set[str] = set()
    pinned: set[str] = set()
    rollout = LEGACY
    for name, raw in rows:
        item = FeatureFlagStoreItem.deserialize(bytes(raw))
        meta = item.meta
        if name == ROLLOUT_FLAG:
            rollout = _decode_rollout(item.raw_is_enabled, meta)
        elif name.startswith(JOB_FLAG_PREFIX):
            (flipped if item.raw_is_enabled else pinned).add(meta["client_data"]["job"])
    return replace(rollout, flipped=frozenset(flipped), pinned=frozenset(pinned))


def _decode_rollout(enabled: bool, meta: dict[str, Any]) -> RoutingSnapshot:
    data = meta.get("client_data") or {}
    changed = datetime.fromisoformat(data["changed_at"]) if data.get("changed_at") else None
    bucketer = meta.get("bucketer") or {}
    everyone = enabled and bucketer.get("type") == NoOpBucketer.get_type()
    value = (bucketer.get("percentage") or {}).get("value") or 0.0
    percent = 100.0 if everyone else round(float(value) * 100, 2) if enabled else 0.0
    return RoutingSnapshot(rollout_all=everyone, percent=percent, version=int(data.get("version", 0)),
                           changed_at=changed)


