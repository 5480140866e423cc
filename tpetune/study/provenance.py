"""The reproducibility record: what a study ran under, stored with it on every start.

:func:`record` describes this process: Python, OS and CPU, the versions of the packages that
decide a trial's numbers (tpetune, hyperopt, numpy, tensorflow, keras: read from the
installed distributions, never imported), the space file (path, SHA-256, the git commit
when it lives in a repository), data files, and TensorFlow's determinism switches as far as
they are knowable without importing TensorFlow.

The driver stores a list of these in the study meta (``meta["provenance"]``): one at creation,
one more on each resume. :func:`compare` says, in words, which package versions changed
between two records (a resume under other versions warns; it is not refused), and
:func:`space_file_changed` tells replay whether the space file still is the one the study
recorded.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: Distributions whose versions are recorded; the first installed name of each tuple counts.
PACKAGES: dict[str, tuple[str, ...]] = {
    "tpetune": ("tpetune",),
    "hyperopt": ("hyperopt",),
    "numpy": ("numpy",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
    "keras": ("keras",),
}
#: Environment variables that change what TensorFlow computes or how it seeds.
DETERMINISM_VARS = (
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "TF_ENABLE_ONEDNN_OPTS",
    "PYTHONHASHSEED",
    "CUDA_VISIBLE_DEVICES",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
)
#: Meta key of the list of records.
META_KEY = "provenance"
#: Records kept per study: the first and the latest ones (a study resumed thousands of times
#: must not grow its meta without bound).
MAX_RECORDS = 50


def record(
    space_source: str | Path | None = None,
    *,
    data_files: Iterable[str | Path] = (),
    event: str = "create",
) -> dict[str, Any]:
    """Describe this process for a study being created (``event="create"``) or resumed.

    Args:
        space_source: the space file (``Space.source``); ``None`` or ``"<memory>"`` for a
            space built in code.
        data_files: files the objective reads (bundled studies pass their price/digit files).
        event: ``"create"``, ``"resume"`` or ``"import"``.

    Never raises for a missing git, a file that vanished or an unreadable package.
    """
    return {
        "event": event,
        "time": round(time.time(), 3),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "os": {"platform": platform.platform(), "system": platform.system()},
        "cpu": {
            "machine": platform.machine(),
            "processor": platform.processor() or None,
            "count": os.cpu_count(),
        },
        "packages": package_versions(),
        "space_file": file_entry(space_source, with_git=True),
        "data_files": [e for e in (file_entry(p) for p in data_files) if e is not None],
        "determinism": determinism(),
    }


def package_versions() -> dict[str, str | None]:
    """name -> installed version (``None`` when not installed), without importing anything."""
    out: dict[str, str | None] = {}
    for name, dists in PACKAGES.items():
        out[name] = None
        for dist in dists:
            try:
                out[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: str | Path | None, *, with_git: bool = False) -> dict[str, Any] | None:
    """``{"path", "sha256"}`` (plus ``git_commit``/``git_modified``) for an existing file."""
    if path is None or str(path).startswith("<"):
        return None
    p = Path(path)
    if not p.is_file():
        return {"path": str(p.absolute()), "sha256": None}
    entry: dict[str, Any] = {"path": str(p.resolve()), "sha256": file_hash(p)}
    if with_git:
        entry.update(git_state(p))
    return entry


def git_state(path: Path) -> dict[str, Any]:
    """The commit of the repository holding ``path`` and whether the file differs from it.

    Empty when git is not installed or the file is not in a repository."""
    folder = str(path.resolve().parent)

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", folder, *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--", path.name)
    return {"git_commit": commit, "git_modified": bool(status) if status is not None else None}


def determinism() -> dict[str, Any]:
    """TensorFlow's determinism settings as far as known without importing it.

    ``op_determinism`` is read from TensorFlow only when this process already imported it
    (``None`` otherwise); the environment variables are recorded as set (absent ones omitted).
    """
    env = {var: os.environ[var] for var in DETERMINISM_VARS if var in os.environ}
    op_determinism: bool | None = None
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        try:
            op_determinism = bool(tf.config.experimental.is_op_determinism_enabled())
        except Exception:  # an old or partial TensorFlow: the setting is unknown
            op_determinism = None
    return {
        "env": env,
        "op_determinism": op_determinism,
        "tensorflow_imported": tf is not None,
        # What tpetune itself does: every trial gets a seed derived from (study seed, tid);
        # the bundled objectives pass it to keras.utils.set_random_seed.
        "trial_seeds": "derive_seed(study seed, tid, 'objective')",
    }


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Package and Python versions that differ between two records, as ``"name a -> b"``."""
    changes = []
    old_py = dict(old.get("python") or {}).get("version")
    new_py = dict(new.get("python") or {}).get("version")
    if old_py != new_py:
        changes.append(f"python {old_py} -> {new_py}")
    old_pk, new_pk = old.get("packages") or {}, new.get("packages") or {}
    for name in PACKAGES:
        a, b = old_pk.get(name), new_pk.get(name)
        if a != b:
            changes.append(f"{name} {a or 'absent'} -> {b or 'absent'}")
    return changes


def data_files_in(config: Mapping[str, Any] | None) -> list[str]:
    """The data files an objective's settings name: values that are existing file paths,
    and ``bundled:NAME`` (a bundled study's series) as its file in ``tpetune/stock/series``."""
    out = []
    for value in (config or {}).values():
        if not isinstance(value, str) or len(value) > 4096:
            continue
        if value.startswith("bundled:"):
            # by resource name, not import: the store's side stays below the bundled studies
            series = importlib.resources.files("tpetune.stock.series")
            bundled = Path(str(series)) / f"{value.split(':', 1)[1]}.csv.gz"
            if bundled.is_file():
                out.append(str(bundled))
        elif os.path.isfile(value):
            out.append(value)
    return out


def records(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The study's records, oldest first (empty for a study made before they existed)."""
    value = meta.get(META_KEY)
    return list(value) if isinstance(value, list) else []


def on_open(
    meta: Mapping[str, Any] | None,
    space_source: str | Path | None,
    *,
    data_files: Sequence[str | Path] = (),
) -> tuple[list[dict[str, Any]], str | None]:
    """The record list to store when a study is created (``meta`` None) or resumed, and a
    one-line warning when the package versions differ from the last record's."""
    if meta is None:
        return [record(space_source, data_files=data_files)], None
    before = records(meta)
    new = record(space_source, data_files=data_files, event="resume")
    warning = None
    if before:
        changes = compare(before[-1], new)
        if changes:
            warning = (
                "resuming under other versions than the study's last run ("
                + ", ".join(changes)
                + "): new trials may not be comparable with the old ones"
            )
    kept = before if len(before) < MAX_RECORDS else [before[0], *before[-(MAX_RECORDS - 2) :]]
    return [*kept, new], warning


def space_file_changed(meta: Mapping[str, Any], path: str | Path) -> str | None:
    """Why ``path`` is not the space file the study last recorded, or ``None`` when it is.

    A study without a recorded hash (made before provenance existed) cannot be checked and
    gives a reason too, so callers refuse unless forced."""
    recorded: list[dict[str, Any]] = [
        r["space_file"] for r in records(meta) if isinstance(r.get("space_file"), dict)
    ]
    if not recorded:
        return f"the study recorded no space-file hash, so {path} cannot be checked"
    last = recorded[-1]
    if not Path(path).is_file():
        return f"space file {path} does not exist"
    now = file_hash(path)
    if last.get("sha256") != now:
        return (
            f"space file {path} changed since the study recorded it "
            f"(sha256 {str(last.get('sha256'))[:12]} -> {now[:12]})"
        )
    return None
