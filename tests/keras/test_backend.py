"""tpetune.keras.backend: choosing Keras' backend for a study's trials (``--backend``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tpetune.errors import ConfigError
from tpetune.keras.backend import study_backend, use_backend

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the tests set in os.environ is undone afterwards."""
    for var in ("KERAS_BACKEND", "JAX_COMPILATION_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delitem(sys.modules, "keras", raising=False)  # as if not yet imported


@pytest.mark.usefixtures("env")
def test_a_new_study_stores_only_a_non_default_backend(tmp_path: Path) -> None:
    pytest.importorskip("jax")
    assert study_backend(None, {}, study_dir=tmp_path) == {}
    assert os.environ["KERAS_BACKEND"] == "tensorflow"
    assert study_backend("jax", {}, study_dir=tmp_path) == {"backend": "jax"}
    assert os.environ["KERAS_BACKEND"] == "jax"
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "jax_cache")


@pytest.mark.usefixtures("env")
def test_a_resumed_study_keeps_the_backend_it_was_made_with(tmp_path: Path) -> None:
    pytest.importorskip("jax")
    made_with_jax = {"backend": "jax", "max_evals": 3}
    assert study_backend(None, made_with_jax, study_dir=tmp_path) == {"backend": "jax"}
    with pytest.raises(ConfigError, match="made with the jax backend, not tensorflow.*--fresh"):
        study_backend("tensorflow", made_with_jax, study_dir=tmp_path)
    before_the_flag = {"epochs": 12, "max_evals": 30}  # a study made with TensorFlow
    with pytest.raises(ConfigError, match="made with the tensorflow backend, not jax"):
        study_backend("jax", before_the_flag, study_dir=tmp_path)
    assert study_backend(None, before_the_flag, study_dir=tmp_path) == {}


@pytest.mark.usefixtures("env")
def test_unknown_backends_and_a_loaded_keras_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="backend must be one of tensorflow, jax; got 'torch'"):
        use_backend("torch")

    class Loaded:  # keras, imported with TensorFlow
        class backend:  # mirrors keras.backend
            @staticmethod
            def backend() -> str:
                return "tensorflow"

    monkeypatch.setitem(sys.modules, "keras", Loaded)
    with pytest.raises(ConfigError, match="already imported .* tensorflow backend"):
        use_backend("jax")
    use_backend("tensorflow")  # the one loaded: fine


SCRIPT = """
import json, sys
from tpetune.keras.backend import use_backend
use_backend("jax", cache_dir=sys.argv[1] + "/jax_cache")  # before anything imports Keras
import tpetune
from tpetune.search.space import load_space
from tpetune.stock.objective import StockObjective
from tests.stock.test_stock_evaluation import synthetic


class Probe(StockObjective):
    def fold_metrics(self, params, fold, model, history):
        import keras
        return {**super().fold_metrics(params, fold, model, history),
                "jax": float(keras.backend.backend() == "jax")}


study = tpetune.tune(Probe(prices=synthetic(200), epochs=1), load_space("stock_small"),
                     study_dir=sys.argv[1] + "/study", max_evals=1, progress=False,
                     executor=tpetune.Workers(1))
record = study.records[0]
print(json.dumps({"state": record.state.value, "jax": record.metrics.get("jax"),
                  "model": record.metrics.get("model")}))
"""


@pytest.mark.keras
def test_a_study_trains_in_workers_on_jax(tmp_path: Path) -> None:
    """The worker inherits the backend the driver chose, and keeps the model on JAX too."""
    pytest.importorskip("jax")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("KERAS_BACKEND", None)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"state": "ok", "jax": 1.0, "model": "models/0.keras"}
    assert (tmp_path / "study" / "models" / "0.keras").is_file()
