"""Exporters into other tools' own stores: Optuna storage, TensorBoard, MLflow.

Each module here reads a :class:`tpetune.study.study.Study` (the store is the one source of
truth and
is only read), writes one tool's format and is idempotent by tid, so it may run again, and
while the study runs, without writing a trial twice. Each has ``export(study, target=None)``
returning :class:`Exported` and ``DEFAULT_TARGET`` (inside the study folder). The tools are
optional extras, imported only here and only when used; :func:`require` names the extra.
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

#: Format name -> the module that writes it (the registry ``tpetune.exporters.files`` lists).
MODULES = {
    "optuna": "tpetune.exporters.optuna",
    "tensorboard": "tpetune.exporters.tensorboard",
    "mlflow": "tpetune.exporters.mlflow",
}


@dataclass(frozen=True)
class Exported:
    """What one export did: ``target`` (a file, folder or tracking URI), trials ``added`` new,
    ``updated`` (exported while running, finished since), and the study's ``total``."""

    target: str
    added: int
    updated: int
    total: int

    def summary(self) -> str:
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
    if fmt not in MODULES:
        raise ConfigError(f"unknown export format {fmt!r}: choose one of {', '.join(MODULES)}")
    module = importlib.import_module(MODULES[fmt])
    result: Exported = module.export(study, target)
    return result
