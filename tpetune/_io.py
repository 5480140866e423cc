"""Crash-safe file writes, tolerant JSON reads, and the value checks every layer shares; a leaf
module (imports only tpetune.errors).

Every file tpetune writes for people or for a resumed trial (a study summary, an export, a
finished fold's result) goes through :func:`atomic_write`, so a crash in the middle of the
write leaves the old file or the new one, never a torn one. :func:`read_json` is its reader
for files that may predate that rule: a torn or missing file reads as ``None``.

What counts as plain data (:func:`is_json_value`), a finite number (:func:`finite_float`), a
Python number from hyperopt's numpy scalars (:func:`plain_number`) and a valid integer option
(:func:`check_int`) is decided here once, so a live run, an import and an export agree.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tpetune.errors import ConfigError, from_os_error  # a leaf too

__all__ = [
    "atomic_write",
    "check_int",
    "finite_float",
    "is_json_value",
    "jsonable",
    "plain_number",
    "read_json",
    "write_json",
]


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half.

    The data is written to a temporary file in the same folder, flushed and fsynced, then
    renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows).
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:  # an unwritable or full folder: one line, not a traceback
        raise from_os_error(exc, path.parent, f"write {path.name}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a report is for everyone to read
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise from_os_error(exc, path.parent, f"write {path.name}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any, *, indent: int | None = None) -> None:
    """:func:`atomic_write` of ``obj`` as JSON (with a final newline when indented)."""
    text = json.dumps(obj, indent=indent) + ("\n" if indent is not None else "")
    atomic_write(path, text.encode())


def read_json(path: Path) -> Any:
    """The JSON value in ``path``, or ``None`` when it is missing, unreadable or torn."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_json_value(value: Any) -> bool:
    """Plain data: numbers, strings, None, numpy scalars/arrays, lists and dicts of them (what
    a result may carry into the store; :func:`tpetune.search.space.jsonable` converts it)."""
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(is_json_value(v) for v in value)
    if isinstance(value, Mapping):
        return all(is_json_value(v) for v in value.values())
    return hasattr(value, "tolist") and hasattr(value, "dtype")


_ADDRESS_RE = re.compile(r" at 0x[0-9a-fA-F]+")


def jsonable(obj: Any, *, strict: bool = False) -> Any:
    """A JSON-safe copy: numpy scalars become Python numbers, arrays and tuples lists, other
    objects their names; ``strict`` also turns NaN and infinities into ``None`` (for readers
    that refuse them, such as MLflow's)."""
    if isinstance(obj, float) and strict and not math.isfinite(obj):
        return None
    if isinstance(obj, bool | int | float | str) or obj is None:
        return obj
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, strict=strict) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v, strict=strict) for v in obj]
    item = getattr(obj, "item", None)  # numpy scalars and 0-d arrays
    if callable(item) and getattr(obj, "ndim", None) == 0:
        return jsonable(item(), strict=strict)
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return jsonable(tolist(), strict=strict)
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"{getattr(obj, '__module__', '')}.{obj.__qualname__}".lstrip(".")
    return _ADDRESS_RE.sub("", repr(obj))


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float (numpy scalars included), else ``None`` (booleans, strings,
    NaN, infinities and non-numbers alike)."""
    if value is None or isinstance(value, bool | str | bytes):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def plain_number(value: Any) -> int | float:
    """A Python number for one of hyperopt's (numpy) values: integers and booleans become
    ``int`` (choice indices stay ints), the rest ``float``, so a study rebuilt from JSON is
    bit-identical to the live one."""
    if isinstance(value, bool | int):
        return int(value)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and dtype.kind in "iub":
        return int(value)
    return float(value)


def check_int(name: str, value: Any, low: int = 1) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``value`` is an int (not a bool) of at
    least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        words = {1: "a positive integer", 0: "a non-negative integer"}
        raise ConfigError(f"{name} must be {words.get(low, f'an integer >= {low}')}; got {value!r}")
