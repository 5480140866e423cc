"""tpetune.bundled: the runner and the plot hooks, on a digits study made by the commit before
the shared Keras machinery (tests/fixtures/v1_digits: 2 trials of ``tpetune digits --space
digits_small --folds 2``, its summary without a confusion matrix)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tpetune import MedianPruner, Serial
from tpetune.bundled import BUNDLED, Settings, bundled_study, run_bundled, write_plots
from tpetune.cli.main import main
from tpetune.pruners.policies import default_pruner
from tpetune.study.study import load_study

V1_DIGITS = Path(__file__).parent / "fixtures" / "v1_digits"


@pytest.fixture
def v1_digits(tmp_path: Path) -> Path:
    study_dir = tmp_path / "digits"
    shutil.copytree(V1_DIGITS, study_dir)
    return study_dir


def test_every_bundled_study_implements_the_protocol() -> None:
    for name in BUNDLED:
        study = bundled_study(name)
        assert study.name == name and study.default_max_evals > 0
        assert callable(study.settings) and callable(study.extra_plots)


def test_an_old_digits_study_shows_and_plots(
    v1_digits: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = load_study(v1_digits)
    assert [r.metrics["folds_run"] for r in study.records] == [2, 2]
    assert study.best_params == study.best.params  # type: ignore[union-attr]
    assert main(["show", str(v1_digits)]) == 0
    assert "best: trial" in capsys.readouterr().out
    before = (v1_digits / "confusion_matrix.png").read_bytes()
    assert main(["plot", str(v1_digits)]) == 0
    printed = capsys.readouterr().out.split()
    # The old summary has no matrix: the generic plots only, the report's PNG left as it was.
    assert [Path(p).name for p in printed] == [
        "loss_history.png",
        "learning_curves.png",
        "params.png",
    ]
    assert (v1_digits / "confusion_matrix.png").read_bytes() == before


def test_a_digits_summary_with_its_matrix_redraws_it(v1_digits: Path, tmp_path: Path) -> None:
    summary = json.loads((v1_digits / "summary.json").read_text())
    summary["confusion_matrix"] = [[3, 1], [0, 4]]
    (v1_digits / "summary.json").write_text(json.dumps(summary))
    written = write_plots(load_study(v1_digits), tmp_path / "out")
    assert [p.name for p in written][-1] == "confusion_matrix.png"
    assert (tmp_path / "out" / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.keras
def test_an_old_digits_study_resumes_and_extends(v1_digits: Path) -> None:
    pytest.importorskip("keras")
    from tpetune.digits.study import format_summary, run_digits_study

    old_summary = json.loads((v1_digits / "summary.json").read_text())
    model_mtime = (v1_digits / "best_model.keras").stat().st_mtime_ns
    study, summary = run_digits_study(study_dir=v1_digits, space="digits_small", progress=False)
    assert len(study.records) == 2 and summary == old_summary  # nothing to do, report reused
    assert (v1_digits / "best_model.keras").stat().st_mtime_ns == model_mtime
    assert "test accuracy" in format_summary(summary)

    more, _ = run_digits_study(
        study_dir=v1_digits, space="digits_small", max_evals=3, progress=False
    )
    assert [r.tid for r in more.records] == [0, 1, 2]
    assert [r.params for r in more.records[:2]] == [r.params for r in study.records]
    new = more.records[2].metrics
    assert new["folds_run"] == 2 and len(new["fold_loss"]) == 2  # the same metric names
    assert more.meta["objective_config"] == study.meta["objective_config"]


def test_an_old_stock_study_with_fold_metrics_shows_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Made by the previous commit with --folds 2, when folds were stored as fold{i}_loss.
    study_dir = tmp_path / "stock"
    shutil.copytree(Path(__file__).parent / "fixtures" / "v1_stock_folds", study_dir)
    assert main(["show", str(study_dir), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {"fold0_loss", "fold1_loss"} <= set(shown["trials"][0]["metrics"])
    assert load_study(study_dir).meta["objective_config"]["folds"] == 2
    assert main(["plot", str(study_dir)]) == 0
    printed = [Path(p).name for p in capsys.readouterr().out.split()]
    assert printed[-1] == "predictions.png"  # the stock study's own plot, through its hook


@dataclass(frozen=True)
class _Quadratic:
    """A bundled study with no framework: its default pruner is what is under test."""

    default_space: str
    default_pruner: str
    name: str = "quadratic"
    default_max_evals: int = 3
    report_files: tuple[str, ...] = ()

    def settings(self, stored: Any, *, study_dir: Path) -> Settings:
        return Settings({})

    def make_objective(self, settings: Settings) -> Any:
        return lambda params: (params["x"] - 1.0) ** 2

    def validate(self, space: Any, objective: Any) -> None:
        pass

    def final_report(self, objective: Any, best: Any, **_: Any) -> dict[str, Any]:
        return {"loss": best.loss}

    def format_summary(self, summary: Any) -> str:
        return str(summary)

    def extra_plots(self, study: Any, out_dir: Path) -> list[Path]:
        return []


def test_a_new_study_gets_its_bundles_pruner_and_a_resume_keeps_the_stored_one(
    tmp_path: Path,
) -> None:
    space = tmp_path / "quadratic.py"
    space.write_text('from hyperopt import hp\nspace = {"x": hp.uniform("x", -2, 2)}\n')
    unpruned = _Quadratic(str(space), default_pruner="none")
    run_bundled(unpruned, study_dir=tmp_path / "a", executor=Serial(), progress=False)
    assert load_study(tmp_path / "a").meta["pruner"]["name"] == "none"
    # A study made with the median rule keeps it when the bundle's default says otherwise.
    run_bundled(
        unpruned, study_dir=tmp_path / "b", pruner=MedianPruner(), executor=Serial(), progress=False
    )
    study, _ = run_bundled(
        unpruned, study_dir=tmp_path / "b", max_evals=5, executor=Serial(), progress=False
    )
    assert len(study.records) == 5 and study.meta["pruner"]["name"] == "median"
    assert bundled_study("digits").default_pruner == "none"
    assert bundled_study("stock").default_pruner == default_pruner().to_json()["name"]


def test_a_new_study_runs_two_lagged_workers_and_an_old_one_keeps_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tpetune.bundled as bundled
    from tpetune import FreezeThawPruner, Workers, tune

    space = tmp_path / "quadratic.py"
    space.write_text('from hyperopt import hp\nspace = {"x": hp.uniform("x", -2, 2)}\n')
    bundle = _Quadratic(str(space), default_pruner="median")
    given: list[dict[str, Any]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        given.append(kwargs)
        return tune(*args, **{**kwargs, "executor": Serial()})  # a lambda stays in-process

    monkeypatch.setattr(bundled, "tune", spy)
    run_bundled(bundle, study_dir=tmp_path / "new", progress=False)
    assert given[-1]["search"].lag == 2 and given[-1]["executor"] == Workers(2, recycle_after=10)
    assert load_study(tmp_path / "new").meta["lag"] == 2
    run_bundled(bundle, study_dir=tmp_path / "new", max_evals=4, progress=False)  # resume
    assert given[-1]["executor"] == Workers(2, recycle_after=10)
    # Workers without a number (the CLI's --no-spare alone): as many as the stored lag
    no_spare = Workers(recycle_after=10, spare=False)
    run_bundled(bundle, study_dir=tmp_path / "new", max_evals=5, executor=no_spare,
                progress=False)  # fmt: skip
    assert given[-1]["executor"] == Workers(2, recycle_after=10, spare=False)

    # freeze-thaw has no lag: one worker, as before lags existed
    run_bundled(bundle, study_dir=tmp_path / "ft", pruner=FreezeThawPruner(), progress=False)
    assert load_study(tmp_path / "ft").meta["lag"] is None
    assert given[-1]["executor"] == Workers(1, recycle_after=10)

    # a study made before lags (no lag stored) resumes on one worker, as it was made
    from hyperopt import hp

    tune(lambda p: p["x"] ** 2, {"x": hp.uniform("x", -2, 2)},
         study_dir=tmp_path / "old", max_evals=2, progress=False)  # fmt: skip
    run_bundled(bundle, study_dir=tmp_path / "old", space=str(space), max_evals=3, progress=False)
    assert given[-1]["executor"] == Workers(1, recycle_after=10)
    assert "search" not in given[-1]  # nothing added to what the study was made with


def test_the_cached_report_is_made_again_when_its_options_change(tmp_path: Path) -> None:
    from hyperopt import hp

    from tpetune import tune
    from tpetune.bundled import best_trial_report

    study = tune(lambda p: (p["x"] - 1.0) ** 2, {"x": hp.uniform("x", -2, 2)},
                 study_dir=tmp_path, max_evals=2, progress=False)  # fmt: skip
    made: list[int] = []

    def make(best: Any, seed: int) -> dict[str, Any]:
        made.append(best.tid)
        return {"blocks": len(made)}

    first = best_trial_report(study, (), make)
    assert best_trial_report(study, (), make) == first and len(made) == 1  # kept
    again = best_trial_report(study, (), make, {"test_folds": 2})  # --test-folds 2: made again
    assert len(made) == 2 and again is not None and again["report_options"] == {"test_folds": 2}
    assert best_trial_report(study, (), make, {"test_folds": 2}) == again and len(made) == 2


def test_a_folder_of_the_other_bundled_study_is_refused_with_the_command_for_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hyperopt import hp

    from tpetune import tune

    config = {"epochs": 2, "folds": None, "data": "bundled:sp500"}  # what `tpetune stock` stores
    tune(lambda p: p["x"] ** 2, {"x": hp.uniform("x", -1, 1)}, study_dir=tmp_path,
         max_evals=1, objective_config=config, progress=False)  # fmt: skip
    before = load_study(tmp_path).records
    assert main(["digits", "--study-dir", str(tmp_path), "--max-evals", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a `tpetune stock` study, not a digits one" in err[0], err
    assert f"tpetune stock --study-dir {tmp_path}" in err[0] and "--fresh" in err[0]
    assert load_study(tmp_path).records == before


def test_the_stock_report_s_default_test_folds_spelled_out_keeps_the_cached_report(
    tmp_path: Path,
) -> None:
    from tpetune.stock.evaluation import DEFAULT_TEST_FOLDS

    stock = bundled_study("stock")
    default = stock.settings({}, study_dir=tmp_path)  # type: ignore[call-arg]
    spelled = stock.settings({}, study_dir=tmp_path, test_folds=DEFAULT_TEST_FOLDS)  # type: ignore[call-arg]
    other = stock.settings({}, study_dir=tmp_path, test_folds=2)  # type: ignore[call-arg]
    assert default.report == spelled.report == {} and other.report == {"test_folds": 2}
