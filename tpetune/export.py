"""Export a study: CSV (one row per trial), JSON (as ``show --json``), hyperopt pickle.

The pickle is an explicit export for code written against hyperopt (``Trials`` with choice
*indices* in ``misc.vals``, as hyperopt itself stores them); tpetune never reads pickles.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path

from tpetune.errors import ConfigError
from tpetune.study import Study

FORMATS = ("csv", "json", "pickle")


def export(study: Study, fmt: str, path: str | Path) -> Path:
    """Write ``study`` to ``path`` in ``fmt`` atomically (a crash leaves no half file).

    Raises:
        ConfigError: unknown format, or the target folder does not exist.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise ConfigError(f"folder {path.parent} does not exist: create it or choose another -o")
    if fmt == "csv":
        frame = study.to_dataframe()
        # JSON-encode dict/list params so a cell reads back unambiguously.
        for col in study.param_labels:
            frame[col] = frame[col].map(
                lambda v: json.dumps(v) if isinstance(v, dict | list) else v
            )
        data = frame.to_csv().encode()
    elif fmt == "json":
        data = (json.dumps(study.to_dict(), indent=2) + "\n").encode()
    else:
        data = pickle.dumps(study.trials, protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write(path, data)
    return path


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a report is for everyone to read
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
