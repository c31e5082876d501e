"""Tagged JSON payloads: every supported type round-trips; anything else is refused with its path named."""
from __future__ import annotations

import json
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from adapters import payload
from adapters.base import JobRefused

SAMPLES = [
    datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 1, 2, 3, 4, 5),
    date(2026, 2, 28),
    time(13, 14, 15, 16),
    timedelta(days=-1, seconds=5, microseconds=7),
    Decimal("12.3400"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    b"\x00\xffbytes",
    (1, "two", (3.0,)),
    {1, 2, 3},
    frozenset({"a"}),
    {1: "int key", (1, 2): "tuple key", None: "none key"},
    {"__t": "a user dict that looks like a tag", "v": 1},
    {"nested": [{"when": date(2020, 1, 1)}, [Decimal("1")]]},
    [None, True, 1, 1.5, "text"],
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_round_trip_keeps_value_and_type(value):
    decoded = payload.decode_json(payload.encode_json(value))
    assert decoded == value
    assert type(decoded) is type(value)


def test_aware_datetime_keeps_its_offset():
    value = SAMPLES[0]
    assert payload.decode_json(payload.encode_json(value)).utcoffset() == timedelta(hours=5, minutes=30)


def test_encoded_form_is_plain_json():
    args, kwargs = payload.encode_call((1, Decimal("2")), {"at": date(2020, 1, 1)})
    assert json.loads(args) == [1, {"__t": "decimal", "v": "2"}]
    assert json.loads(kwargs) == {"at": {"__t": "date", "v": "2020-01-01"}}


class Opaque:
    pass


@pytest.mark.parametrize("args,kwargs,named", [
    ((Opaque(),), {}, "args[0]"),
    ((1, [2, Opaque()]), {}, "args[1][1]"),
    ((), {"user": {"profile": Opaque()}}, "kwargs['user']['profile']"),
    ((), {"f": lambda: 1}, "kwargs['f']"),
])
def test_unsupported_value_is_refused_with_its_path_and_type(args, kwargs, named):
    with pytest.raises(JobRefused) as err:
        payload.encode_call(args, kwargs)
    assert named in str(err.value)
    assert "which a job payload cannot carry" in str(err.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinities_are_refused_with_their_path(value):
    """Postgres jsonb has neither: an infinity once reached the COPY and failed the whole batch there."""
    with pytest.raises(JobRefused, match=r"kwargs\['x'\]\[1\] is (nan|inf|-inf), which JSON cannot carry"):
        payload.encode_call((), {"x": [1.5, value]})


def test_unknown_tag_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown payload tag 'future'"):
        payload.decode_json('{"__t": "future", "v": 1}')
