"""A fold's result as the Keras trial machinery keeps it: the stored layout (read back after a
crash, old layouts included), the best value and epoch of a curve, and the results of several
folds combined into one trial's.

Pure NumPy and JSON: no Keras import.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tpetune._io import read_json

__all__ = [
    "CURVES",
    "best",
    "best_epoch",
    "combine_folds",
    "fold_layout",
    "merge_curves",
    "read_fold_result",
]

#: The curves a fold reports, one value per epoch.
CURVES = ("loss", "val_loss")
_REDUCE: dict[str, Callable[[Sequence[float]], Any]] = {"sum": np.sum, "median": np.median}


def read_fold_result(path: Path) -> dict[str, Any] | None:
    """A finished fold's stored result, or ``None`` when there is none (or it is torn).

    Also reads the flat layout the digits study wrote before the machinery was shared
    (``loss``, ``curves`` and the metrics side by side).
    """
    data = read_json(path)
    if not isinstance(data, dict) or "loss" not in data or "curves" not in data:
        return None
    return fold_layout(data)


def fold_layout(result: Mapping[str, Any]) -> dict[str, Any]:
    """``{"loss", "curves", "metrics"}`` (plus ``pruned_at_epoch``) from either layout."""
    if "metrics" in result:
        return dict(result)
    skip = {"loss", "curves", "pruned_at_epoch"}
    metrics = {k: v for k, v in result.items() if k not in skip}
    return {**{k: result[k] for k in skip if k in result}, "metrics": metrics}


def merge_curves(curves: Sequence[Mapping[str, Sequence[float]]]) -> dict[str, list[float]]:
    """Per-epoch mean of ``loss`` and ``val_loss`` over the folds still training then."""
    merged = {}
    for key in CURVES:
        series = [list(c.get(key, [])) for c in curves]
        longest = max((len(s) for s in series), default=0)
        merged[key] = [float(np.mean([s[e] for s in series if e < len(s)])) for e in range(longest)]
    return merged


def best(values: Sequence[float]) -> float:
    """Best (lowest) finite value; NaN when training never produced one."""
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else math.nan


def best_epoch(values: Sequence[float]) -> int:
    """1-based epoch of :func:`best` (0 when there is none)."""
    value = best(values)
    return 0 if math.isnan(value) else list(values).index(value) + 1


def combine_folds(
    results: Sequence[Mapping[str, Any]],
    rules: Mapping[str, str],
    per_fold: Sequence[str] = (),
) -> dict[str, Any]:
    """One trial's result from its folds' ``{"loss", "curves", "metrics"}``: the mean loss,
    :func:`merge_curves`, each metric reduced by its rule in ``rules`` (``"sum"``,
    ``"median"``, else the mean), ``folds_run``, ``fold_loss`` and a ``fold_<name>`` list for
    each name in ``per_fold``."""
    metrics: dict[str, Any] = {}
    for key in results[0]["metrics"]:
        values = [float(r["metrics"][key]) for r in results if key in r["metrics"]]
        metrics[key] = float(_REDUCE.get(rules.get(key, "mean"), np.mean)(values))
    metrics["folds_run"] = len(results)
    metrics["fold_loss"] = [float(r["loss"]) for r in results]
    for key in per_fold:
        metrics[f"fold_{key}"] = [r["metrics"].get(key) for r in results]
    return {
        "loss": float(np.mean(metrics["fold_loss"])),
        "curves": merge_curves([r["curves"] for r in results]),
        "metrics": metrics,
    }
