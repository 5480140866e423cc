"""The LSTM built from each branch of the stock space, and the space files themselves."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hyperopt.pyll import stochastic

from tpetune.errors import SpaceError

ROOT = Path(__file__).resolve().parents[2]
SPACES = ["stock", "stock_small"]
TOP_LABELS = {
    "batch_size",
    "time_steps",
    "lstm1_nodes",
    "lstm1_dropout",
    "lstm_layers",
    "dense_layers",
    "optimizer",
    "lr",
}


def params(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "batch_size": 32,
        "time_steps": 8,
        "lstm1_nodes": 4,
        "lstm1_dropout": 0.1,
        "lstm_layers": {"layers": 1},
        "dense_layers": {"layers": 0},
        "optimizer": {"name": "adam"},
        "lr": 0.01,
    }
    return base | overrides


@pytest.mark.parametrize("name", SPACES)
def test_space_files_load_and_sample(name: str) -> None:
    space = runpy.run_path(str(ROOT / "spaces" / f"{name}.py"))["space"]
    assert set(space) == TOP_LABELS
    rng = np.random.default_rng(0)
    for _ in range(20):
        point = stochastic.sample(space, rng=rng)
        assert set(point) == TOP_LABELS
        assert point["lstm_layers"]["layers"] in (1, 2)
        assert point["dense_layers"]["layers"] in (0, 1)
        assert point["optimizer"]["name"] in ("sgd", "rmsprop", "adam")
        assert isinstance(point["lstm1_nodes"], int)
        assert 0 < point["lr"] < 0.1


def _count(model: Any, kind: str) -> int:
    return sum(type(layer).__name__ == kind for layer in model.layers)


@pytest.mark.keras
@pytest.mark.parametrize("lstm", [1, 2])
@pytest.mark.parametrize("dense", [0, 1])
def test_branches_build_the_right_stack(lstm: int, dense: int) -> None:
    from tpetune.stock.model import build_model

    lstm_branch = (
        {"layers": 1} if lstm == 1 else {"layers": 2, "lstm2_nodes": 3, "lstm2_dropout": 0.2}
    )
    dense_branch = {"layers": 0} if dense == 0 else {"layers": 1, "dense2_nodes": 5}
    model = build_model(
        params(lstm_layers=lstm_branch, dense_layers=dense_branch), time_steps=8, n_features=5
    )
    assert _count(model, "LSTM") == lstm
    assert _count(model, "Dense") == dense + 1
    assert model.input_shape == (None, 8, 5)
    assert model.output_shape == (None, 1)
    if lstm == 2:
        assert [layer.units for layer in model.layers if type(layer).__name__ == "LSTM"] == [4, 3]
    if dense == 1:
        assert model.layers[-2].units == 5


@pytest.mark.keras
@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ({"name": "sgd", "momentum": 0.7, "nesterov": True}, "SGD"),
        ({"name": "sgd", "momentum": 0.0, "nesterov": False}, "SGD"),
        ({"name": "rmsprop"}, "RMSprop"),
        ({"name": "adam"}, "Adam"),
    ],
)
def test_optimizer_branches(spec: dict[str, Any], cls: str) -> None:
    from tpetune.stock.model import build_model

    model = build_model(params(optimizer=spec, lr=0.003), time_steps=8, n_features=5)
    opt = model.optimizer
    assert type(opt).__name__ == cls
    assert float(opt.learning_rate) == pytest.approx(0.003)
    if cls == "SGD":
        assert opt.momentum == pytest.approx(spec["momentum"])
        assert opt.nesterov is spec["nesterov"]


@pytest.mark.keras
def test_untrained_model_is_the_naive_forecast() -> None:
    from tpetune.stock.model import build_model
    from tpetune.stock.windows import prepare

    rng = np.random.default_rng(0)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, 120)))
    prices = pd.DataFrame(
        {"Open": close, "High": close * 1.01, "Low": close * 0.99, "Close": close, "Volume": 1e6},
        index=pd.bdate_range("2021-01-01", periods=120),
    )
    ds = prepare(prices, 8)
    model = build_model(
        params(dense_layers={"layers": 1, "dense2_nodes": 4}), time_steps=8, n_features=5
    )
    x, _ = ds.part("test")
    out = model.predict(x, verbose=0).reshape(-1)
    assert np.all(out == 0)
    np.testing.assert_allclose(ds.to_price(out, "test"), ds.naive_price("test"))


@pytest.mark.keras
def test_small_space_samples_build() -> None:
    from tpetune.stock.model import build_model

    space = runpy.run_path(str(ROOT / "spaces" / "stock_small.py"))["space"]
    point = stochastic.sample(space, rng=np.random.default_rng(3))
    model = build_model(point, time_steps=point["time_steps"], n_features=5)
    assert model.input_shape == (None, point["time_steps"], 5)


@pytest.mark.keras
def test_missing_or_unknown_params_are_space_errors() -> None:
    from tpetune.stock.model import build_model

    bad = params()
    del bad["lr"]
    with pytest.raises(SpaceError, match="lr"):
        build_model(bad, time_steps=8, n_features=5)
    with pytest.raises(SpaceError, match="optimizer"):
        build_model(params(optimizer={"name": "adagrad"}), time_steps=8, n_features=5)
    with pytest.raises(SpaceError, match="lstm2_nodes"):
        build_model(params(lstm_layers={"layers": 2}), time_steps=8, n_features=5)
