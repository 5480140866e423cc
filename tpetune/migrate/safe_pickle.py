"""Unpickle a hyperopt ``Trials`` without running code from the file.

A pickle names the callables it needs (``module.name``) and unpickling calls them, so a file
can run anything (``os.system``). :func:`load_trials_pickle` lets a pickle name only what a
``Trials`` pickle written by hyperopt (0.2.x, 0.3) holds: hyperopt's ``Trials``, numpy
arrays, scalars and dtypes (numpy 1 and 2 spellings), ``datetime`` values, bson's
``ObjectId`` (MongoTrials documents), and builtin containers. Anything else is refused by
name before it is called (:class:`UnsafePickleError`); ``trust=True`` (the CLI's
``--trust-pickle``) unpickles as plain :func:`pickle.load` does, for one's own files that
hold other objects.

Loading an allowed class creates it without running its ``__init__``; ``Trials`` sets its
state from a plain dict (``__dict__.update``), so nothing from the file runs.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

from tpetune.errors import ConfigError

#: module -> names a Trials pickle may refer to.
ALLOWED: dict[str, frozenset[str]] = {
    "hyperopt.base": frozenset({"Trials"}),
    "hyperopt": frozenset({"Trials"}),
    "datetime": frozenset({"datetime", "date", "time", "timedelta", "timezone"}),
    "numpy": frozenset({"dtype", "ndarray", "bool_", "int64", "float64"}),
    "numpy.core.multiarray": frozenset({"scalar", "_reconstruct"}),
    "numpy._core.multiarray": frozenset({"scalar", "_reconstruct"}),
    "numpy.core.numeric": frozenset({"_frombuffer"}),
    "numpy._core.numeric": frozenset({"_frombuffer"}),
    "bson.objectid": frozenset({"ObjectId"}),
    "bson.son": frozenset({"SON"}),
    "collections": frozenset({"OrderedDict", "defaultdict", "deque"}),
    "builtins": frozenset(
        {"object", "set", "frozenset", "bytearray", "complex", "list", "dict", "tuple"}
    ),
    "copyreg": frozenset({"_reconstructor"}),  # protocol 0/1: rebuilds an allowed class
    "_codecs": frozenset({"encode"}),  # protocol 2 spells bytes as encode(str, "latin1")
}


class UnsafePickleError(ConfigError):
    """The pickle names something a hyperopt Trials pickle does not need."""


class _TrialsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in ALLOWED.get(module, ()) or _numpy_dtype_class(module, name):
            return super().find_class(module, name)
        raise UnsafePickleError(f"{module}.{name}")


def _numpy_dtype_class(module: str, name: str) -> bool:
    """numpy 2 pickles a dtype's class as ``numpy.dtypes.Float64DType`` and the like."""
    return module == "numpy.dtypes" and name.endswith("DType") and name.isidentifier()


def load_trials_pickle(fh: IO[bytes], *, trust: bool = False) -> Any:
    """Unpickle ``fh`` allowing only what a hyperopt Trials pickle needs (see module doc).

    Raises:
        UnsafePickleError: the pickle names anything else (``str(exc)``: ``module.name``).
        Exception: whatever a malformed pickle raises.
    """
    if trust:
        return pickle.load(fh)
    return _TrialsUnpickler(fh).load()
