"""Crash-safe file writes and tolerant JSON reads; a leaf module (imports only tpetune.errors).

Every file tpetune writes for people or for a resumed trial (a study summary, an export, a
finished fold's result) goes through :func:`atomic_write`, so a crash in the middle of the
write leaves the old file or the new one, never a torn one. :func:`read_json` is its reader
for files that may predate that rule: a torn or missing file reads as ``None``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tpetune.errors import from_os_error  # a leaf too

__all__ = ["atomic_write", "read_json", "write_json"]


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
