"""The per-shape answers of the scan, with plain values: the same shape always gets the same answer, and
anything the new backend decides on (a type, NaN, an option, a dict key) makes a different shape."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from adapters.base import JobSpec
from migrator.compat import scan
from migrator.compat.scan import describe_call, encode_refusal


def key(*args, **kwargs):  # type: ignore[no-untyped-def]
    return scan._key(JobSpec("m.f", args, kwargs))


def test_same_types_in_same_places_share_a_key():
    assert key(1, "a", [1, 2], x=Decimal("1")) == key(2, "b", [3, 4], x=Decimal("9"))


def test_what_the_backend_decides_on_changes_the_key():
    assert key(1.0) != key(float("nan"))  # NaN is refused, other floats are not
    assert key(1) != key(1.0) != key(complex(1, 1))
    assert key({"a": 1}) != key({"__t": 1})  # a "__t" key is tagged: another encoding
    assert key([1]) != key([1, 2]) != key((1, 2))
    assert key(x=1) != key(y=1)
    with_callback = scan._key(JobSpec("m.f", (1,), on_success="m.cb"))
    assert with_callback != key(1)
    naive = scan._key(JobSpec("m.f", (1,), run_at=datetime(2030, 1, 1)))
    assert naive != key(1)


def test_large_or_odd_payloads_are_always_asked():
    assert key(list(range(100))) is None
    assert key({1: "int key"}) is None
    assert key([[[[[1]]]]]) is None


class Counting:
    def __init__(self) -> None:
        self.asked = 0

    def __call__(self, spec: JobSpec) -> str | None:
        self.asked += 1
        return encode_refusal(spec)


def test_carrier_asks_once_per_shape_and_answers_like_the_backend():
    asking = Counting()
    carrier = scan._Carrier(asking)
    specs = [JobSpec("m.f", (i, complex(i, 0) if i % 2 else i)) for i in range(10)]
    answers = [carrier.reason(s) for s in specs]
    assert answers == [encode_refusal(s) for s in specs]
    assert asking.asked == 2
    assert "args[1] is a builtins.complex" in (answers[1] or "")


def test_binder_binds_each_call_shape_once_with_the_answer_of_bind():
    binder = scan._Binder()
    assert binder.reason(JobSpec("tests.jobs.add", (1, 2))) is None
    assert binder.reason(JobSpec("tests.jobs.add", (1,))) == "does not bind: missing a required argument: 'b'"
    assert binder.reason(JobSpec("tests.jobs.add", (1,), {"b": 2})) is None
    assert binder.reason(JobSpec("tests.jobs.add", (1, 2), {"c": 2})) == \
        "does not bind: got an unexpected keyword argument 'c'"
    assert binder.reason(JobSpec("tests.nowhere.job")).startswith("function does not import")


def test_describe_call_cuts_values_short():
    text = describe_call(JobSpec("app.jobs.login", ("p" * 300,), {"token": "t" * 300}))
    assert text.startswith("login('ppp") and len(text) < 80 and "t" * 40 not in text
