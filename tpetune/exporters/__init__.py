"""Every export, through one entry point: :func:`export_to` (``tpetune export --format``).

Formats (:data:`FORMATS`): snapshot files (CSV, JSON, a hyperopt ``Trials`` pickle; module
:mod:`~tpetune.exporters.files`) and other tools' own stores (Optuna storage, TensorBoard,
MLflow). Every exporter reads a :class:`tpetune.study.study.Study` (the store is the one
source of truth and is only read) and returns :class:`Exported`; the tool exporters are
idempotent by tid, so they may run again, and while the study runs, without writing a trial
twice. The tools are optional extras, imported only when used; :func:`require` names the
extra. The dashboard (:mod:`~tpetune.exporters.dashboard`) keeps an Optuna export in step.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import unquote

from tpetune.errors import ConfigError, MissingDependencyError
from tpetune.study.lock import LOCK_NAME

if TYPE_CHECKING:
    from tpetune.study.study import Study

#: Format name -> ``module:function`` writing it, as ``function(study, target) -> Exported``
#: (``target`` None: the format's default inside the study folder).
FORMATS = {
    "csv": "tpetune.exporters.files:export_csv",
    "json": "tpetune.exporters.files:export_json",
    "pickle": "tpetune.exporters.files:export_pickle",
    "optuna": "tpetune.exporters.optuna:export",
    "tensorboard": "tpetune.exporters.tensorboard:export",
    "mlflow": "tpetune.exporters.mlflow:export",
}


@dataclass(frozen=True)
class Exported:
    """What one export did: ``target`` (a file, folder or tracking URI), trials ``added`` new,
    ``updated`` (exported while running, finished since), and the study's ``total``; a
    ``snapshot`` (a file rewritten whole) holds every trial."""

    target: str
    added: int
    updated: int
    total: int
    snapshot: bool = False

    def summary(self) -> str:
        if self.snapshot:
            return f"{self.target} ({self.total} trials)"
        return (
            f"{self.target}: {self.added} trials added, {self.updated} updated, "
            f"{self.total} in the study"
        )


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or say which extra installs it.

    Raises:
        MissingDependencyError: ``module`` is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"this needs {module.split('.')[0]}, which is not installed: "
            f"pip install 'tpetune[{extra}]'"
        ) from None


def export_to(study: Study, fmt: str, target: str | Path | None = None) -> Exported:
    """Export ``study`` in tool format ``fmt`` to ``target`` (default: inside the study folder).

    Raises:
        ConfigError: an unknown format, or a target the format cannot use.
        MissingDependencyError: the tool is not installed.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if target is not None:
        refuse_study_files(study.study_dir, target, "-o" if fmt != "mlflow" else "--tracking-uri")
    module, function = FORMATS[fmt].split(":")
    result: Exported = getattr(importlib.import_module(module), function)(study, target)
    return result


#: What a study keeps in its folder and an export must never write over: the store (and
#: SQLite's side files), its lock, the bundled report's cache, and the trial and model folders.
STUDY_OWN = ("study.db*", ".study.db.new*", LOCK_NAME, "summary.json")
STUDY_OWN_DIRS = ("trials", "models", "discarded")


def refuse_study_files(study_dir: str | Path, target: str | Path, flag: str) -> None:
    """Refuse an export ``target`` (a path, or a ``sqlite:///`` or ``file:`` URI) that is the
    study folder itself or one of the files and folders the study keeps there
    (:data:`STUDY_OWN`, :data:`STUDY_OWN_DIRS`): writing it would destroy the study.

    Raises:
        ConfigError: naming ``flag``, the option that gave the target.
    """
    text = str(target)
    for scheme in ("sqlite:///", "file://localhost/", "file://", "file:"):
        if text.startswith(scheme):
            text = unquote(text[len(scheme) :].split("?", 1)[0])
            if scheme == "file://localhost/":
                text = "/" + text  # file://localhost/x names /x
            break
    else:
        if "://" in text:  # a tracking server: nothing of the study's is at stake
            return
    folder, path = Path(study_dir).resolve(), Path(text).expanduser().resolve()
    inside = path.parent == folder and any(fnmatch.fnmatch(path.name, p) for p in STUDY_OWN)
    # a case-insensitive file system: STUDY/Study.db is study.db
    same = path.exists() and any(
        os.path.samefile(path, own) for own in folder.glob("study.db*") if own.exists()
    )
    if (
        path == folder
        or inside
        or same
        or any(path.is_relative_to(folder / d) for d in STUDY_OWN_DIRS)
    ):
        raise ConfigError(
            f"{target} is the study's own {'folder' if path == folder else 'file'}: exporting "
            f"there would overwrite the study; give {flag} another path (or leave it out for "
            "the default inside the study folder)"
        )
