"""Models kept with their trials: saved where the trial runs, best K retained, loaded safely."""

from __future__ import annotations

import logging
import runpy
from pathlib import Path
from typing import Any

import pytest

import tpetune
from tpetune.cli.main import main
from tpetune.study.artifacts import (
    Retention,
    best_model,
    best_model_path,
    capture,
    is_keras_model,
    model_path,
    report_non_json,
)
from tpetune.study.store import TrialRecord, TrialState
from tpetune.trial.context import TrialContext

#: A tiny Keras objective in the hyperopt style: the model travels in the result dict.
KERAS_SPACE = """
import numpy as np
from hyperopt import hp

space = {"units": hp.choice("units", [2, 4, 8]), "lr": hp.loguniform("lr", -6, -1)}

rng = np.random.default_rng(0)
X = rng.normal(size=(48, 3)).astype("float32")
Y = (X @ np.array([1.0, -2.0, 0.5], dtype="float32"))[:, None]


def objective(p):
    import keras

    ctx = __import__("tpetune").current_trial()
    keras.utils.set_random_seed(ctx.seed if ctx else 0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(p["units"]),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(p["lr"]), loss="mse")
    hist = model.fit(X[:32], Y[:32], validation_data=(X[32:], Y[32:]), epochs=2, verbose=0)
    val = [float(v) for v in hist.history["val_loss"]]
    return {"loss": val[-1], "status": "ok", "model": model, "curves": {"val_loss": val}}
"""


class _FakeModel:
    """Looks like a Keras model to the detector (class name and module), saves a stub."""

    def save(self, path: str) -> None:
        Path(path).write_bytes(b"model")


_FakeModel.__name__ = "Model"
_FakeModel.__module__ = "keras.src.models.model"


def test_detection_without_importing_keras() -> None:
    assert is_keras_model(_FakeModel())
    assert not is_keras_model(object()) and not is_keras_model({"model": 1})


def test_capture_saves_and_replaces_by_the_path(tmp_path: Path) -> None:
    ctx = TrialContext(7, 1, tmp_path)
    out = capture({"loss": 1.0, "model": _FakeModel(), "other": 2}, ctx)
    assert out == {"loss": 1.0, "model": "models/7.keras", "other": 2}
    assert (tmp_path / "models" / "7.keras").read_bytes() == b"model"
    assert not list((tmp_path / "models").glob(".*"))  # no partial file left
    ctx2 = TrialContext(8, 1, tmp_path)
    assert ctx2.save_model(_FakeModel(), "encoder") == "models/8-encoder.keras"
    assert capture(0.5, ctx2) == {"loss": 0.5, "encoder": "models/8-encoder.keras"}
    # a trial that runs where the study folder does not exist (a remote Spark executor)
    far = TrialContext(9, 1, tmp_path / "elsewhere")
    assert capture({"loss": 1.0, "model": _FakeModel()}, far)["model"].startswith("unavailable:")


def test_other_objects_are_reported_once_not_stored(tmp_path: Path) -> None:
    space = tmp_path / "space.py"
    space.write_text(
        "from hyperopt import hp\nspace = {'x': hp.uniform('x', 0, 1)}\n"
        "class Thing: pass\n"
        "def objective(p):\n    return {'loss': p['x'], 'thing': Thing(), 'n': 3}\n"
    )
    study_dir = tmp_path / "s"
    args = ["run", str(space), "--study-dir", str(study_dir), "--max-evals", "3"]
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("tpetune").addHandler(handler)
    try:
        assert main([*args, "--quiet", "--no-plots"]) == 0
    finally:
        logging.getLogger("tpetune").removeHandler(handler)
    reports = [m for m in seen if "result key 'thing' holds a" in m]
    assert len(reports) == 1 and "Thing" in reports[0]  # once, for 3 trials
    for record in tpetune.load_study(study_dir).records:
        assert record.metrics == {"n": 3}


def test_report_non_json_keeps_plain_data() -> None:
    import numpy as np

    kept = report_non_json({"a": [1, 2.0], "b": np.float32(1), "c": {"d": "e"}, "f": object()})
    assert set(kept) == {"a", "b", "c"}


def _record(tid: int, loss: float | None, state: TrialState = TrialState.OK) -> TrialRecord:
    return TrialRecord(tid, state, loss, {}, {})


def test_retention_keeps_the_best_k_and_spares_running_trials(tmp_path: Path) -> None:
    from tpetune.study.store import Store

    Store.create(tmp_path, {"max_evals": 9}).close()
    for tid in range(6):
        path = model_path(tmp_path, tid)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"m")
    keeper = Retention(tmp_path, keep=2)
    losses = {0: 0.5, 1: 0.2, 2: 0.9, 3: None, 4: 0.1}  # 3 failed, 5 still running
    for tid, loss in losses.items():
        state = TrialState.FAIL if loss is None else TrialState.OK
        keeper(None, _record(tid, loss, state))
    left = sorted(int(p.stem) for p in (tmp_path / "models").glob("*.keras"))
    assert left == [1, 4, 5]


@pytest.mark.keras
def test_best_k_models_under_two_workers_and_the_best_loads_back(tmp_path: Path) -> None:
    """`tpetune run FILE --workers 2 --keep-models 2`: the models are saved in the workers."""
    space_file = tmp_path / "keras_space.py"
    space_file.write_text(KERAS_SPACE)
    ns: dict[str, Any] = runpy.run_path(str(space_file))
    study_dir = tmp_path / "study"
    run = ["run", str(space_file), "--study-dir", str(study_dir), "--max-evals", "5"]
    assert main([*run, "--workers", "2", "--keep-models", "2", "--quiet", "--no-plots"]) == 0
    study = tpetune.load_study(study_dir)
    ok = sorted((r for r in study.records if r.finished_ok), key=lambda r: (r.loss, r.tid))
    assert len(ok) == 5
    kept = sorted(int(p.stem) for p in (study_dir / "models").glob("*.keras"))
    assert kept == sorted(r.tid for r in ok[:2])
    assert all(r.metrics["model"] == f"models/{r.tid}.keras" for r in study.records)
    loaded = tpetune.load_study(study_dir)
    assert best_model_path(loaded) == study_dir / "models" / f"{ok[0].tid}.keras"
    model = loaded.best_model()  # keras.saving.load_model(..., safe_mode=True)
    assert type(model) is type(best_model(loaded))
    x, y = ns["X"][32:], ns["Y"][32:]
    assert float(model.evaluate(x, y, verbose=0)) == pytest.approx(ok[0].loss, rel=1e-5)
    out = tmp_path / "best.keras"
    assert main(["best-model", str(study_dir), "-o", str(out)]) == 0
    assert out.read_bytes() == best_model_path(loaded).read_bytes()


def test_best_model_missing_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.py"
    space.write_text(
        "from hyperopt import hp\nspace = {'x': hp.uniform('x', 0, 1)}\n"
        "def objective(p):\n    return p['x']\n"
    )
    args = ["run", str(space), "--study-dir", str(tmp_path / "s"), "--max-evals", "2"]
    assert main([*args, "--quiet", "--no-plots"]) == 0
    capsys.readouterr()
    assert main(["best-model", str(tmp_path / "s")]) == 2
    assert "kept no model" in capsys.readouterr().err
