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

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from tpetune.errors import ConfigError, MissingDependencyError

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
    module, function = FORMATS[fmt].split(":")
    result: Exported = getattr(importlib.import_module(module), function)(study, target)
    return result
