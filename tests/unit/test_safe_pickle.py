"""RQ payloads read by migrator's tools never run what a pickle names (adapters.rq_backend.safe_pickle)."""
from __future__ import annotations

import datetime as dt
import decimal
import os
import pickle
import uuid
from pathlib import Path

import pytest
from rq.serializers import DefaultSerializer, JSONSerializer

from adapters.rq_backend import safe_pickle
from tests.jobs import Opaque as AppClass


class Hostile:
    """What an attacker writes to Redis: unpickling it creates a file (it would run any command as easily)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.path}",))


def test_plain_values_come_back_as_they_were() -> None:
    value = ("tests.jobs.echo", None, (1, "a", 2.5, None, True, b"raw", [1, {2, 3}], frozenset({4})),
             {"when": dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc), "day": dt.date(2026, 1, 2),
              "amount": decimal.Decimal("9.99"), "id": uuid.UUID(int=7), "span": dt.timedelta(seconds=3)})
    assert safe_pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) == value
    assert safe_pickle.loads(pickle.dumps(value, protocol=2)) == value


def test_a_hostile_pickle_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "owned"
    data = pickle.dumps(("tests.jobs.noop", None, (Hostile(str(marker)),), {}))
    func, _, (arg,), _ = safe_pickle.loads(data)
    assert not marker.exists()
    assert func == "tests.jobs.noop" and isinstance(arg, safe_pickle.Opaque)
    assert arg.qualname == "posix.system" and arg.args == (f"touch {marker}",)
    pickle.loads(data)  # the same bytes, unpickled as RQ's worker would: the command runs
    assert marker.exists()


def test_an_app_object_is_opaque_but_named() -> None:
    data = pickle.dumps(("tests.jobs.noop", None, ({"user": AppClass(5)},), {}))
    _, _, (arg,), _ = safe_pickle.loads(data)
    assert safe_pickle.opaque_in(arg) == "tests.jobs.Opaque"
    assert arg["user"].state == {"value": 5}
    with pytest.raises(pickle.PicklingError, match="tests.jobs.Opaque was not unpickled"):
        pickle.dumps(arg)


def test_only_plain_pickle_is_read_safely() -> None:
    assert safe_pickle.is_pickle(DefaultSerializer) and safe_pickle.is_pickle(pickle)
    assert not safe_pickle.is_pickle(JSONSerializer)
    assert safe_pickle.serializer_loads(JSONSerializer, JSONSerializer.dumps(["f", None, [1], {}])) == ["f", None, [1], {}]


def test_what_pickle_itself_would_fail_on_is_still_an_error() -> None:
    """A payload naming a package nobody installed, or a class gone from an imported module, reads as undecodable
    (found without importing or running anything), as RQ's worker would find it."""
    with pytest.raises(ModuleNotFoundError, match="nonexistent_mod_xyz"):
        safe_pickle.loads(b"(Vtests.jobs.add\nN(cnonexistent_mod_xyz\nThing\n)Rt}t.")
    with pytest.raises(AttributeError, match="Gone"):
        safe_pickle.loads(b"ctests.jobs\nGone\n.")
