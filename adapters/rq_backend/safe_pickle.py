"""RQ's pickled payloads read without running anything: what drain-check, the compat scan and transfer decode.

RQ pickles a job's call (and its meta) by default, and unpickling runs whatever callables the bytes name: a hostile
pickle written to Redis would run code in every process that reads it. RQ's worker takes that risk to run the job;
a tool that only reads payloads does not have to. This unpickler resolves only plain data types (the values the new
backend's tagged JSON carries, and what they are built from); any other class or callable a pickle names becomes
an `Opaque` placeholder that records the name and its arguments and does nothing else. So a job's arguments still
count and bind to a signature, and a value the new backend cannot carry is refused naming its class, and nothing
of the app (nor os.system) is imported or called.
"""
from __future__ import annotations

import _compat_pickle
import importlib.util
import io
import pickle
import sys
from typing import Any

# (module, name) pairs a pickle may name and get the real thing: data types, and the builtins pickle itself uses to
# rebuild them. Nothing here runs code of the app nor touches the machine.
PLAIN = frozenset({
    *(("builtins", n) for n in ("set", "frozenset", "bytearray", "bytes", "complex", "slice", "range", "list",
                                "tuple", "dict", "str", "int", "float", "bool", "object")),
    *(("datetime", n) for n in ("datetime", "date", "time", "timedelta", "timezone")),
    ("decimal", "Decimal"), ("uuid", "UUID"), ("collections", "OrderedDict"), ("copyreg", "_reconstructor"),
    ("_codecs", "encode"), ("zoneinfo", "ZoneInfo._unpickle"), ("zoneinfo", "ZoneInfo"),
})


class Opaque:
    """A value of a class (or the result of a callable) that was not resolved: its qualified name, the arguments
    the pickle gave it and the state it set; equal to nothing but itself."""

    qualname = "?"
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    state: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> "Opaque":  # REDUCE calls the class, NEWOBJ its __new__
        obj = super().__new__(cls)
        obj.args, obj.kwargs = args, kwargs
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __reduce__(self) -> Any:  # never pickled again as if it were the real value
        raise pickle.PicklingError(f"{self.qualname} was not unpickled (read as an opaque value): it cannot be "
                                   "written back")

    def __repr__(self) -> str:
        return f"<{self.qualname} (not unpickled)>"


_placeholders: dict[str, type[Opaque]] = {}


def placeholder(module: str, name: str) -> type[Opaque]:
    """The Opaque subclass standing for `module.name` (one per name, so equal names give equal types)."""
    qualname = f"{module}.{name}"
    found = _placeholders.get(qualname)
    if found is None:
        found = _placeholders[qualname] = type(name.rpartition(".")[2], (Opaque,),
                                               {"qualname": qualname, "__module__": module, "__qualname__": name})
    return found


class SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # protocols 0-2 name Python 2's modules (__builtin__)
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in PLAIN:
            return super().find_class(module, name)
        _must_exist(module, name)
        return placeholder(module, name)


def _must_exist(module: str, name: str) -> None:
    """What pickle would fail on, found without running anything: a top-level package nobody installed (finding a
    module's spec does not execute it), or a name missing from a module this process has already imported. So
    a payload naming a class that is gone still reads as undecodable, as RQ's worker would find it."""
    top = module.partition(".")[0]
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ModuleNotFoundError(f"No module named {top!r} (named by the payload's {module}.{name})")
    loaded: Any = sys.modules.get(module)
    for part in name.split(".") if loaded is not None else ():
        loaded = getattr(loaded, part, None)
        if loaded is None:
            raise AttributeError(f"Can't get attribute {name!r} on module {module!r}")


def loads(data: bytes) -> Any:
    """pickle.loads that resolves plain data types only (see the module's docstring)."""
    return SafeUnpickler(io.BytesIO(data)).load()


def is_pickle(serializer: Any) -> bool:
    """Whether this RQ serializer is plain pickle (RQ's DefaultSerializer, or the pickle module itself)."""
    return getattr(serializer, "loads", None) is pickle.loads


def serializer_loads(serializer: Any, data: bytes) -> Any:
    """Decode a payload written with the app's serializer without running code: pickle through SafeUnpickler; any
    other serializer (JSON, or the app's own) as it is."""
    return loads(data) if is_pickle(serializer) else serializer.loads(data)


def opaque_in(value: Any, depth: int = 0) -> str | None:
    """The qualified name of the first Opaque inside a decoded value (None: there is none)."""
    if isinstance(value, Opaque):
        return value.qualname
    if depth > 50:
        return None
    if isinstance(value, dict):
        items: Any = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return None
    for item in items:
        found = opaque_in(item, depth + 1)
        if found:
            return found
    return None
