"""tpetune.keras.results: fold results read back, best epochs, and folds combined (no Keras)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tpetune._io import write_json
from tpetune.keras.results import (
    best,
    best_epoch,
    combine_folds,
    fold_layout,
    merge_curves,
    read_fold_result,
)


def _fold(loss: float, val: list[float], **metrics: float) -> dict[str, object]:
    return {"loss": loss, "curves": {"loss": val, "val_loss": val}, "metrics": metrics}


def test_folds_combine_by_their_rules_and_keep_what_is_asked_per_fold() -> None:
    folds = [
        _fold(0.4, [0.9, 0.4], epochs_trained=2, best_epoch=2, acc=0.8),
        _fold(0.6, [0.8, 0.7, 0.6], epochs_trained=3, best_epoch=3, acc=0.7),
        _fold(0.2, [0.5], epochs_trained=1, best_epoch=1, acc=0.9),
    ]
    out = combine_folds(folds, {"epochs_trained": "sum", "best_epoch": "median"}, ("acc",))
    assert out["loss"] == pytest.approx(0.4)
    m = out["metrics"]
    assert (m["epochs_trained"], m["best_epoch"], m["acc"]) == (6.0, 2.0, pytest.approx(0.8))
    assert m["folds_run"] == 3 and m["fold_loss"] == [0.4, 0.6, 0.2]
    assert m["fold_acc"] == [0.8, 0.7, 0.9]
    # The curves: the mean over the folds still training at each epoch.
    assert out["curves"]["val_loss"] == pytest.approx([(0.9 + 0.8 + 0.5) / 3, 0.55, 0.6])
    assert merge_curves([f["curves"] for f in folds]) == out["curves"]  # type: ignore[misc]


def test_best_ignores_nan_and_its_epoch_counts_from_one() -> None:
    assert best([math.nan, 0.5, 0.3, 0.4]) == 0.3 and best_epoch([math.nan, 0.5, 0.3]) == 3
    assert math.isnan(best([math.nan])) and best_epoch([math.nan]) == 0


def test_a_stored_fold_reads_back_in_either_layout_and_a_torn_one_is_none(tmp_path: Path) -> None:
    flat = {"loss": 0.5, "curves": {"loss": [0.5]}, "val_accuracy": 0.8, "pruned_at_epoch": 1}
    write_json(tmp_path / "old.json", flat)
    assert read_fold_result(tmp_path / "old.json") == {
        "loss": 0.5, "curves": {"loss": [0.5]}, "pruned_at_epoch": 1,
        "metrics": {"val_accuracy": 0.8},
    }  # fmt: skip
    assert fold_layout(_fold(0.1, [0.1])) == _fold(0.1, [0.1])
    (tmp_path / "torn.json").write_text('{"loss": 0.5, "cur')
    assert read_fold_result(tmp_path / "torn.json") is None
