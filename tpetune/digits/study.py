"""``tpetune digits`` as a bundled study: its data flags, objective, checks, report and plots.

:data:`DIGITS` is what :func:`tpetune.bundled.run_bundled` and the CLI drive. Order matters for
safety: the images, the folds and the space are checked before the study folder is touched, so
bad input changes nothing stored. On resume the study's stored settings (folds, data subset)
are the defaults, so re-running the bare command continues the same study.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpetune.bundled import SUMMARY_NAME, Settings, run_bundled
from tpetune.cli.types import positive_int
from tpetune.digits import DEFAULT_FOLDS, DEFAULT_MAX_EVALS, DEFAULT_PATIENCE, DEFAULT_PRUNER
from tpetune.digits import plots as digits_plots
from tpetune.digits.data import N_CLASSES, SKLEARN_SOURCE, load_digits_data
from tpetune.errors import ConfigError
from tpetune.executors.calls import Call, run_calls
from tpetune.keras.backend import add_backend_argument, study_backend
from tpetune.search.space import require_labels
from tpetune.study.store import TrialRecord
from tpetune.study.study import Study

if TYPE_CHECKING:
    from tpetune.digits.objective import DigitsObjective  # imports Keras
    from tpetune.engine.options import ExecutorOption
    from tpetune.search.space import Space

__all__ = [
    "DIGITS",
    "REPORT_FILES",
    "SUMMARY_NAME",
    "DigitsStudy",
    "format_summary",
    "run_digits_study",
]

#: What the final report writes into the study folder besides :data:`SUMMARY_NAME`.
REPORT_FILES: tuple[str, ...] = (
    "best_model.keras",
    "classification_report.txt",
    "confusion_matrix.png",
)
#: The labels the objective reads itself (the model reads the others).
_NEEDED = ("epochs", "batch_size")


@dataclass(frozen=True)
class DigitsStudy:
    """The digits study as :func:`~tpetune.bundled.run_bundled` drives it (``tpetune digits``)."""

    name: str = "digits"
    help: str = "tune a dense classifier on handwritten digits (k-fold CV)"
    default_space: str = "digits"
    default_max_evals: int = DEFAULT_MAX_EVALS
    default_pruner: str = DEFAULT_PRUNER
    report_files: tuple[str, ...] = REPORT_FILES
    #: A key only this study's stored settings hold (another bundled study's folder is told apart).
    config_marker: str = "patience"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--mnist", type=Path, metavar="FILE.npz",
            help="MNIST in Keras' mnist.npz layout; default: scikit-learn's 8x8 digits (offline)",
        )  # fmt: skip
        group.add_argument(
            "--folds", type=positive_int,
            help=f"stratified CV folds (default {DEFAULT_FOLDS}; stored on resume)",
        )  # fmt: skip
        add_backend_argument(group)

    def settings(
        self,
        stored: Mapping[str, Any],
        *,
        study_dir: Path,
        mnist: str | Path | None = None,
        folds: int | None = None,
        limit: int | None = None,
        backend: str | None = None,
    ) -> Settings:
        """``mnist`` (``None``: scikit-learn's 8x8 digits), ``folds`` and ``limit`` (``None``:
        the stored value on resume, else the default), checked before anything is stored."""

        data = load_digits_data(mnist)  # every data error surfaces here, before the study
        if mnist is None and stored.get("data", data.source) != data.source:
            raise ConfigError(
                f"study {study_dir} was made with --mnist data ({stored['data']}): pass the "
                "same --mnist to resume, or use --fresh or another --study-dir"
            )
        config = {
            "folds": folds or stored.get("folds") or DEFAULT_FOLDS,
            "patience": DEFAULT_PATIENCE,
            "limit": limit or stored.get("limit"),
            "data": data.source,
        }
        # Last: it sets KERAS_BACKEND for this process and the workers (see keras.backend).
        config.update(study_backend(backend, stored, study_dir=study_dir))
        return Settings(config, data)

    def make_objective(self, settings: Settings) -> DigitsObjective:
        from tpetune.digits.objective import DigitsObjective  # imports Keras

        config = settings.config
        # Builds the folds now, so a class too rare for them is refused before the study exists.
        return DigitsObjective(
            data=settings.data,
            limit=config["limit"],
            folds=config["folds"],
            patience=config["patience"],
        )

    def validate(self, space: Space, objective: DigitsObjective) -> None:
        """The space has the labels the objective reads."""
        require_labels(
            space.labels,
            _NEEDED,
            objective="digits objective",
            like="spaces/digits.py",
            subject=f"space {space.source}",
        )

    def final_report(
        self,
        objective: DigitsObjective,
        best: TrialRecord,
        *,
        seed: int,
        out_dir: Path,
        executor: ExecutorOption | None = None,
    ) -> dict[str, Any]:
        """Retrain the best params on all training images (a different fit by design: each
        trial trained on part of them, one model per fold) and evaluate it on the test split,
        where the trials ran (``executor``, see :func:`tpetune.executors.calls.run_calls`)."""

        kwargs = {
            "params": best.args,
            "out_dir": out_dir,
            "seed": seed,
            "epochs": max(1, round(float(best.metrics.get("best_epoch", 1)))),
            "cv_loss": best.loss,
        }
        [summary] = run_calls(objective, [Call("final_report", kwargs)], executor=executor)
        return {"cv_val_accuracy": best.metrics.get("val_accuracy"), **summary}

    def format_summary(self, summary: Mapping[str, Any]) -> str:
        return format_summary(summary)

    extra_plots = staticmethod(digits_plots.extra_plots)


def run_digits_study(
    *,
    study_dir: str | Path,
    mnist: str | Path | None = None,
    space: str | Path = "digits",
    folds: int | None = None,
    limit: int | None = None,
    **options: Any,
) -> tuple[Study, dict[str, Any] | None]:
    """Tune the digits classifier by k-fold cross-validation and report it on the test split.

    Args:
        study_dir: the study folder; the files of :data:`REPORT_FILES` and ``summary.json``
            are written there too.
        mnist: a Keras-layout ``mnist.npz``; ``None`` uses scikit-learn's 8x8 digits. MNIST
            trains far slower per trial (60,000 images of 784 pixels against 1,437 of 64):
            ``limit`` tunes on a subset.
        space: a space file or bundled name for the same objective (``digits_small`` for a
            quick demo).
        folds: ``None`` means the stored value on resume, else
            :data:`~tpetune.digits.DEFAULT_FOLDS`.
        limit: tune on a stratified subset of this many training images (quick runs, tests);
            ``None`` means the stored value on resume, else all of them.
        options: ``max_evals``, ``fresh``, ``progress`` and further :func:`tpetune.tune`
            options, as for :func:`~tpetune.bundled.run_bundled`.

    Returns:
        The study and the test summary (``None`` when no trial finished).

    Raises:
        DataError, SpaceError, ConfigError, StoreError, MissingDependencyError: bad input,
            before anything is changed.
    """
    data = {"mnist": mnist, "folds": folds, "limit": limit}
    return run_bundled(DIGITS, study_dir=study_dir, space=space, data=data, **options)


def format_summary(summary: Mapping[str, Any]) -> str:
    """The honest-evaluation block printed after a digits run."""
    cv_acc = summary.get("cv_val_accuracy")
    per_class = summary.get("per_class") or {}
    digits = [str(k) for k in range(N_CLASSES) if str(k) in per_class]
    lines = [
        f"test split: {summary['n_test']} images ({_data_name(summary.get('data'))}), best "
        f"trial {summary['best_tid']} retrained on all {summary['n_train']} training images "
        f"for {summary['epochs']} epochs:",
        f"  {'cross-validated loss':<22}{_num(summary.get('cv_loss'))}"
        + (f"   (val accuracy {cv_acc:.2%})" if isinstance(cv_acc, int | float) else ""),
        f"  {'test loss':<22}{_num(summary['test_loss'])}",
        f"  {'test accuracy':<22}{summary['test_accuracy']:>8.2%}"
        f"   (macro F1 {summary['macro_f1']:.4f})",
    ]
    if digits:
        lines.append(f"  {'digit':<10}" + "".join(f"{d:>6}" for d in digits))
        for key in ("precision", "recall", "f1"):
            lines.append(f"  {key:<10}" + "".join(f"{per_class[d][key]:>6.2f}" for d in digits))
    lines.append("  files: " + ", ".join(REPORT_FILES) + " (in the study folder)")
    return "\n".join(lines)


def _data_name(source: Any) -> str:
    text = str(source or "?")
    return "scikit-learn 8x8 digits" if text.startswith(SKLEARN_SOURCE) else text


def _num(value: Any) -> str:
    return f"{value:>8.4f}" if isinstance(value, int | float) else f"{'n/a':>8}"


#: The digits study (registered in :data:`tpetune.bundled.BUNDLED`).
DIGITS = DigitsStudy()
