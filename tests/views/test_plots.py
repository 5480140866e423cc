"""tpetune.views.plot_data and tpetune.views.plots: the computed data exactly, the drawing as a
smoke test
(PNG renders)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest

from tpetune import bundled
from tpetune.errors import DataError
from tpetune.study.store import TrialState
from tpetune.study.study import Study
from tpetune.views import plot_data, plots
from tpetune.views.plot_data import Point

MakeStudy = Callable[..., Study]


def _png(fig: object) -> bytes:
    buf = BytesIO()
    fig.savefig(buf, format="png")  # type: ignore[attr-defined]
    return buf.getvalue()


def _write_predictions(study_dir: Path, days: int = 80) -> None:
    rows = ["date,actual,predicted,naive"]
    for i in range(days):
        actual = 100.0 + i
        rows.append(f"2024-01-{1 + i % 28:02d},{actual},{actual + 1.0},{actual - 2.0}")
    # Dates repeat across months here on purpose: only the order and the numbers matter.
    (study_dir / "predictions.csv").write_text("\n".join(rows) + "\n")


def test_import_is_light() -> None:
    code = (
        "import sys, tpetune.views.plots, tpetune.views.plot_data; "
        "heavy = ('matplotlib', 'tensorflow', 'hyperopt', 'pandas'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_branch_label_is_the_choice_other_labels_depend_on(make_study: MakeStudy) -> None:
    study = make_study()
    assert plot_data.branch_label(study) == "lstm_layers"


def test_branch_label_falls_back_to_a_choice_active_everywhere_then_none(
    make_study: MakeStudy,
) -> None:
    flat = [
        (0, TrialState.OK, 1.0, {"optimizer": "adam", "lr": 0.1}, {}, None),
        (1, TrialState.OK, 2.0, {"optimizer": "sgd", "lr": 0.2}, {}, None),
    ]
    assert plot_data.branch_label(make_study(flat, name="flat")) == "optimizer"
    numeric = [(0, TrialState.OK, 1.0, {"lr": 0.1}, {}, None)]
    study = make_study(numeric, name="num", space={"lr": "uniform(0, 1)"})
    assert plot_data.branch_label(study) is None


def test_loss_history_data(make_study: MakeStudy) -> None:
    data = plot_data.loss_history_data(make_study())
    assert data.ok == (
        Point(0, 0.50, "1"),
        Point(1, 0.80, "2"),
        Point(3, 0.30, "2"),
        Point(5, 0.40, "1"),
        Point(6, 0.35, "2"),
    )
    assert data.best_so_far == ((0, 0.50), (1, 0.50), (3, 0.30), (5, 0.30), (6, 0.30))
    assert data.pruned == (Point(4, 0.90, "1"),)
    assert data.failed == (2,)
    assert data.running == (7,)
    assert data.branch_label == "lstm_layers"
    assert data.branches == ("1", "2")
    assert data.log_y is False


@pytest.mark.parametrize(
    ("losses", "log_y"),
    [
        ([0.001, 0.5, 1.0], True),  # three decades
        ([0.01, 0.5, 1.0], False),  # exactly two decades is not more than two
        ([-1.0, 0.001, 1.0], False),  # a negative loss cannot go on a log axis
    ],
)
def test_log_scale_decision(make_study: MakeStudy, losses: list[float], log_y: bool) -> None:
    trials = [(i, TrialState.OK, x, {"lr": 0.1}, {}, None) for i, x in enumerate(losses)]
    study = make_study(trials, name="wide", space={"lr": "uniform(0, 1)"})
    assert plot_data.loss_history_data(study).log_y is log_y
    assert plot_data.params_data(study).log_y is log_y


def test_learning_curves_selection(make_study: MakeStudy) -> None:
    study = make_study()
    data = plot_data.learning_curves_data(study)
    # trial 6 is the second best but stored no curves: skipped, the next best moves up.
    assert [c.name for c in data.curves] == [
        "trial 3 (best)",
        "trial 5",
        "trial 0",
        "trial 1",
        "trial 4 (pruned)",
    ]
    assert [c.tid for c in plot_data.learning_curves_data(study, n=2).curves] == [3, 5, 4]
    pruned = data.curves[-1]
    assert len(pruned.loss) == len(pruned.val_loss) == 2
    assert pruned.val_loss[0] == pytest.approx(1.3 * 1.1)


def test_params_data_uses_only_trials_where_the_label_was_active(make_study: MakeStudy) -> None:
    data = plot_data.params_data(make_study())
    panels = {p.label: p for p in data.panels}
    assert list(panels) == [
        "lstm_layers",
        "lstm1_nodes",
        "lstm2_nodes",
        "lr",
        "optimizer",
        "dropout",
    ]
    # failed (2) and running (7) have no loss; lstm2_nodes is inactive in the 1-layer trials.
    assert panels["lstm_layers"].tids == (0, 1, 3, 4, 5, 6)
    assert panels["lstm2_nodes"].tids == (1, 3, 6)
    assert panels["lstm2_nodes"].values == (4.0, 16.0, 12.0)
    assert panels["lstm_layers"].categorical and panels["lstm_layers"].categories == ("1", "2")
    assert panels["optimizer"].categories == ("adam", "rmsprop")
    assert panels["optimizer"].values == ("adam", "rmsprop", "adam", "rmsprop", "rmsprop", "adam")
    assert panels["lr"].log_x and not panels["lr"].categorical
    assert not panels["dropout"].log_x
    assert data.best_tid == 3
    assert data.pruned_tids == frozenset({4})


def test_params_data_stringifies_dict_choices(make_study: MakeStudy) -> None:
    trials = [
        (0, TrialState.OK, 1.0, {"act": {"name": "relu"}}, {}, None),
        (1, TrialState.OK, 2.0, {"act": "tanh"}, {}, None),
    ]
    study = make_study(trials, name="dicts", space={"act": 'choice["tanh", {"name": "relu"}]'})
    (panel,) = plot_data.params_data(study).panels
    assert panel.categories == ("tanh", "name=relu")
    assert panel.values == ("name=relu", "tanh")
    _png(plots.plot_params(study))


def test_predictions(make_study: MakeStudy) -> None:
    from tpetune.stock import plots as stock_plots

    study = make_study()
    assert stock_plots.plot_predictions(study.study_dir) is None
    _write_predictions(study.study_dir)
    data = stock_plots.predictions_data(study.study_dir)
    assert data is not None
    assert (data.rmse_model, data.rmse_naive) == (pytest.approx(1.0), pytest.approx(2.0))
    fig = stock_plots.plot_predictions(study.study_dir)
    assert fig is not None and _png(fig).startswith(b"\x89PNG")
    (study.study_dir / "predictions.csv").write_text("date,actual\n2024-01-02,1.0\n")
    with pytest.raises(DataError, match="predicted, naive"):
        stock_plots.predictions_data(study.study_dir)


def test_write_all_renders_every_figure(make_study: MakeStudy) -> None:
    study = make_study()
    _write_predictions(study.study_dir)
    names = ["loss_history.png", "learning_curves.png", "params.png", "predictions.png"]
    assert bundled.write_plots(study) == [study.study_dir / n for n in names]
    assert all((study.study_dir / n).read_bytes().startswith(b"\x89PNG") for n in names)
    assert not list(study.study_dir.glob(".*.tmp"))


def test_write_all_without_predictions_into_out_dir(make_study: MakeStudy, tmp_path: Path) -> None:
    tiny = make_study([(0, TrialState.OK, 1.0, {"lr": 0.1}, {}, None)], name="tiny", space={})
    written = plots.write_all(tiny, tmp_path / "out")
    assert [p.name for p in written] == ["loss_history.png", "learning_curves.png", "params.png"]
    assert all(p.parent == tmp_path / "out" and p.is_file() for p in written)


def test_empty_and_unscored_studies_render(make_study: MakeStudy) -> None:
    empty = make_study([], name="empty")
    assert plot_data.loss_history_data(empty).ok == ()
    assert plot_data.learning_curves_data(empty).curves == ()
    assert all(p.is_file() for p in plots.write_all(empty))
    only_failed = [
        (0, TrialState.FAIL, None, {"lstm_layers": 1}, {}, "boom"),
        (1, TrialState.RUNNING, None, {"lstm_layers": 2}, {}, None),
    ]
    study = make_study(only_failed, name="failed")
    data = plot_data.loss_history_data(study)
    assert (data.failed, data.running, data.best_so_far) == ((0,), (1,), ())
    assert _png(plots.plot_loss_history(study)).startswith(b"\x89PNG")
