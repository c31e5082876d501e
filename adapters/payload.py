"""Tagged JSON for job payloads: what RQ users pass every day, and nothing that needs pickle.

Plain JSON values stay as they are. Other supported values become {"__t": tag, "v": ...}; a str-keyed dict
that itself has the key "__t" is written as tagged pairs so it cannot be mistaken for a tag.
"""
from __future__ import annotations

import base64
import json
import math
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from adapters.base import JobRefused

TAG = "__t"
_PLAIN = (str, int, float, bool, type(None))
_AS_IS = (str, int, bool, type(None))  # JSON as they are, no path to name (a float may be NaN, which is refused)
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # json.dumps given options builds one every call


def _one_encoder() -> Any:
    """JSON text of an encoded value. JSONEncoder.encode builds its C encoder again on every call, a third of the
    time of a small call's encoding: a transfer encodes two a job, so the C encoder is built once here (the pure
    Python encoder where the C one is missing). No check for circular values: encode_value has walked them."""
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:
        return _JSON.encode
    encode = c_make_encoder(None, _JSON.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False,
                            False)
    return lambda value: "".join(encode(value, 0))


_dumps = _one_encoder()


def _fail(path: str, value: Any) -> JobRefused:
    kind = type(value)
    return JobRefused(f"{path} is a {kind.__module__}.{kind.__qualname__}, which a job payload cannot carry; "
                      "pass JSON types, datetime/date/time/timedelta, Decimal, UUID, bytes, tuple or set")


def encode_value(value: Any, path: str = "value") -> Any:
    """The JSON-ready form of `value`; JobRefused naming `path` for a type that cannot be carried."""
    kind = type(value)
    if kind in _PLAIN:
        if kind is float and not math.isfinite(value):  # Postgres jsonb has neither NaN nor Infinity
            raise JobRefused(f"{path} is {value!r}, which JSON cannot carry (NaN and infinities are refused)")
        return value
    if kind is list:
        return [encode_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind is dict:
        if all(type(k) is str for k in value) and TAG not in value:
            return {k: encode_value(v, f"{path}[{k!r}]") for k, v in value.items()}
        return {TAG: "dict", "v": [[encode_value(k, f"{path}<key>"), encode_value(v, f"{path}[{k!r}]")]
                                   for k, v in value.items()]}
    if kind is tuple:
        return {TAG: "tuple", "v": [encode_value(v, f"{path}[{i}]") for i, v in enumerate(value)]}
    if kind in (set, frozenset):
        items = [encode_value(v, f"{path}<item>") for v in value]
        return {TAG: "set" if kind is set else "frozenset", "v": items}
    if kind is datetime:
        return {TAG: "datetime", "v": value.isoformat()}
    if kind is date:
        return {TAG: "date", "v": value.isoformat()}
    if kind is time:
        return {TAG: "time", "v": value.isoformat()}
    if kind is timedelta:
        return {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if kind is Decimal:
        return {TAG: "decimal", "v": str(value)}
    if kind is uuid.UUID:
        return {TAG: "uuid", "v": str(value)}
    if kind in (bytes, bytearray):
        return {TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    raise _fail(path, value)


def _pickled(part: Any) -> Any:
    """The marker of a job whose arguments travel pickled (adapters/pg_backend/pickled.py): tagged JSON never reads
    them; only a worker whose configuration opts the job in does."""
    raise ValueError(f"its {part} are pickled (pickle_payloads): only a worker whose configuration opts the job in "
                     "reads them")


_DECODERS: dict[str, Any] = {
    "tuple": lambda v: tuple(decode_value(x) for x in v),
    "set": lambda v: {decode_value(x) for x in v},
    "frozenset": lambda v: frozenset(decode_value(x) for x in v),
    "dict": lambda v: {decode_value(k): decode_value(x) for k, x in v},
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "timedelta": lambda v: timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "decimal": Decimal,
    "uuid": uuid.UUID,
    "bytes": lambda v: base64.b64decode(v),
    "pickled": _pickled,
}


def decode_value(value: Any) -> Any:
    kind = type(value)
    if kind is list:
        return [decode_value(v) for v in value]
    if kind is dict:
        tag = value.get(TAG)
        if tag is not None:
            try:
                return _DECODERS[tag](value["v"])
            except KeyError:
                raise ValueError(f"unknown payload tag {tag!r}: written by a newer migrator?") from None
        return {k: decode_value(v) for k, v in value.items()}
    return value


def encode_call(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> tuple[str, str]:
    """JSON text of (args, kwargs), each refused value named as args[i] or kwargs['name']."""
    if not args and not kwargs:
        return "[]", "{}"
    # the common values are taken as they are: no path spelled for them (a bulk enqueue or a transfer encodes
    # thousands of calls a second, and spelling the paths cost as much as the JSON)
    enc_args = [v if type(v) in _AS_IS else encode_value(v, f"args[{i}]") for i, v in enumerate(args)]
    enc_kwargs = {}
    for k, v in kwargs.items():
        if type(k) is not str:
            raise JobRefused(f"keyword argument name {k!r} is not a string")
        enc_kwargs[k] = v if type(v) in _AS_IS else encode_value(v, f"kwargs[{k!r}]")
    return _dumps(enc_args), _dumps(enc_kwargs)


def encode_json(value: Any, path: str = "value") -> str:
    return _dumps(encode_value(value, path))


def decode_json(text: str | bytes | None) -> Any:
    return None if text is None else decode_value(json.loads(text))
