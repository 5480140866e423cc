"""The digits study's own plot: the confusion matrix of the retrained best model on the test split.

:func:`plot_confusion` draws a matrix; the final report
(:meth:`~tpetune.digits.objective.DigitsObjective.final_report`) keeps the matrix in the
summary, so :func:`extra_plots`, the study's hook that ``tpetune plot`` calls, can redraw
``confusion_matrix.png`` from ``summary.json`` alone (no TensorFlow, no retraining). A summary
written before the matrix was kept has none: its PNG, written by the report, stays as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tpetune._io import read_json
from tpetune.bundled import SUMMARY_NAME
from tpetune.study.study import Study
from tpetune.views.plots import new_figure, write_pngs

__all__ = ["CONFUSION_PNG", "extra_plots", "plot_confusion"]

CONFUSION_PNG = "confusion_matrix.png"


def plot_confusion(matrix: Any, *, title: str, ax: Any = None) -> Any:
    """Draw a confusion matrix (rows true, columns predicted) with the count in each cell.

    Args:
        matrix: square array (or nested list) of counts.
        title: the axes title.
        ax: a matplotlib Axes to draw on; ``None`` makes a new Agg figure (no pyplot state).

    Returns:
        The Axes (``ax.figure.savefig(...)`` writes it).
    """
    import numpy as np

    matrix = np.asarray(matrix)
    if ax is None:
        ax = new_figure(6.4, 5.6).add_subplot()
    n = matrix.shape[0]
    image = ax.imshow(matrix, cmap="Blues")
    ax.figure.colorbar(image, ax=ax, label="images")
    # Dark text on light cells and light text on dark ones keeps every count legible.
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(
                j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                color="white" if matrix[i, j] > threshold else "black",
            )  # fmt: skip
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title)
    return ax


def confusion_title(n_test: int, accuracy: float) -> str:
    """The title the report and the hook both give the matrix."""
    return f"Test split: {n_test} images, accuracy {accuracy:.1%}"


def extra_plots(study: Study, out_dir: Path) -> list[Path]:
    """The digits study's hook: ``confusion_matrix.png`` from the summary's matrix, if any."""
    summary = read_json(Path(study.study_dir) / SUMMARY_NAME)
    if not isinstance(summary, dict) or not summary.get("confusion_matrix"):
        return []
    title = confusion_title(int(summary.get("n_test", 0)), float(summary.get("test_accuracy", 0)))
    ax = plot_confusion(summary["confusion_matrix"], title=title)
    return write_pngs(out_dir, [(CONFUSION_PNG, lambda: ax.figure)])
