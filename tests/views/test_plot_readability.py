"""Plots a newcomer can read (issue 26, item 16): training and validation losses on their own
scales, a title that counts what is drawn, log-uniform axes by their real bounds, and one far
outlier that does not flatten every panel. Data checked exactly; drawings rendered."""

from __future__ import annotations

import io
import math
from pathlib import Path

from hyperopt import hp
from hyperopt.pyll import scope

from tpetune.search.space import Space
from tpetune.study.store import Store, TrialRecord, TrialState
from tpetune.study.study import Study, load_study
from tpetune.views import plot_data, plots

SPACE = Space(
    {
        "lr": hp.loguniform("lr", math.log(1e-4), math.log(1e-1)),
        "units": scope.int(hp.quniform("units", 8, 64, 8)),
        "opt": hp.choice("opt", ["adam", "rmsprop"]),
    }
)


def _study(path: Path) -> Study:
    """A stock-like study: training loss ~0.85, validation ~0.40; 6 ok, 2 pruned, one of
    them diverged (loss 40)."""
    store = Store.create(path, {"space": SPACE.describe(), "seed": 0, "max_evals": 8})
    for tid in range(8):
        vals = {"lr": 10 ** (-4 + tid * 0.4), "units": 8.0 * (1 + tid), "opt": tid % 2}
        pruned = tid in (3, 6)
        n = 4 if pruned else 20
        val = [0.40 + 0.05 * math.exp(-e / 3) + 0.004 * tid for e in range(n)]
        train = [0.85 + 0.1 * math.exp(-e / 3) + 0.002 * tid for e in range(n)]
        if tid == 6:
            val = [40.0 + e for e in range(n)]
        rec = TrialRecord(
            tid=tid,
            state=TrialState.PRUNED if pruned else TrialState.OK,
            loss=min(val),
            params=SPACE.params(vals),
            vals=vals,
            args=SPACE.evaluate(vals),
            curves={"loss": train, "val_loss": val},
            started=1.0 + tid,
            finished=2.0 + tid,
            duration_s=1.0,
        )
        store.begin_trial(rec)
        store.finish_trial(rec)
    store.close()
    return load_study(path)


def test_learning_curves_title_counts_what_is_drawn_in_two_panels(tmp_path: Path) -> None:
    study = _study(tmp_path / "s")
    data = plot_data.learning_curves_data(study)
    assert [(c.tid, c.pruned) for c in data.curves] == [
        (0, False), (1, False), (2, False), (4, False), (3, True)
    ]  # fmt: skip
    assert data.title == "learning curves of the 4 best trials and the best pruned one"
    fig = plots.plot_learning_curves(study)
    train_ax, val_ax = fig.axes
    assert (train_ax.get_title(), val_ax.get_title()) == ("training loss", "validation loss")
    low, high = val_ax.get_ylim()
    assert low > 0.39 and high < 0.48  # the validation curves fill their own panel
    fig.savefig(io.BytesIO(), format="png")


def test_params_use_real_log_bounds_and_an_outlier_does_not_squash_the_panels(
    tmp_path: Path,
) -> None:
    study = _study(tmp_path / "s")
    data = plot_data.params_data(study)
    panels = {p.label: p for p in data.panels}
    assert panels["lr"].description == "log-uniform 0.0001 .. 0.1" and panels["lr"].log_x
    assert data.clipped == 1 and data.y_limits is not None
    low, high = data.y_limits
    assert 0.39 < low < 0.40 and 0.428 < high < 0.44  # not stretched to 40
    fig = plots.plot_params(study)
    assert fig.axes[0].get_ylim() == data.y_limits
    fig.savefig(io.BytesIO(), format="png")


def test_robust_limits_keep_everything_without_far_outliers() -> None:
    limits, clipped = plot_data.robust_limits([1.0, 2.0, 3.0, 4.0])
    assert clipped == 0 and limits == (1.0 - 0.15, 4.0 + 0.15)
    assert plot_data.robust_limits([]) == (None, 0)
