"""build_model: each branch of spaces/digits.py builds the stack, optimizer and schedule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tpetune.errors import SpaceError
from tpetune.search.space import load_space

keras = pytest.importorskip("keras")

from tpetune.digits.model import build_model, hidden_units, make_schedule  # noqa: E402

pytestmark = pytest.mark.keras

BASE: dict[str, Any] = {
    "hidden_layers": {"layers": 1, "units1": 32},
    "activation": "relu",
    "initializer": "glorot_uniform",
    "optimizer": {"name": "adam"},
    "schedule": {"name": "constant"},
    "lr": 0.01,
    "batch_size": 32,
    "epochs": 10,
}


def build(**change: Any) -> Any:
    return build_model({**BASE, **change}, n_features=64, steps_per_epoch=10)


def dense_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


@pytest.mark.parametrize(
    "hidden",
    [
        {"layers": 1, "units1": 32},
        {"layers": 2, "units1": 48, "units2": 16},
        {"layers": 3, "units1": 64, "units2": 32, "units3": 16},
    ],
)
@pytest.mark.parametrize(
    ("activation", "initializer", "init_class"),
    [
        ("relu", "he_normal", "HeNormal"),
        ("selu", "lecun_normal", "LecunNormal"),
        ("tanh", "glorot_uniform", "GlorotUniform"),
    ],
)
def test_hidden_layers_units_activation_and_initializer(
    hidden: dict[str, int], activation: str, initializer: str, init_class: str
) -> None:
    model = build(hidden_layers=hidden, activation=activation, initializer=initializer)
    *hidden_dense, output = dense_layers(model)
    assert [d.name for d in hidden_dense] == [f"hidden{i}" for i in range(1, hidden["layers"] + 1)]
    assert [d.units for d in hidden_dense] == [hidden[f"units{i}"] for i in range(1, len(hidden))]
    assert {d.activation.__name__ for d in hidden_dense} == {activation}
    assert {type(d.kernel_initializer).__name__ for d in hidden_dense} == {init_class}
    assert output.units == 10 and output.activation.__name__ == "softmax"
    assert model.input_shape == (None, 64) and model.output_shape == (None, 10)
    assert model.loss == "sparse_categorical_crossentropy"


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_branch_has_momentum_and_nesterov(nesterov: bool) -> None:
    model = build(optimizer={"name": "sgd", "momentum": 0.7, "nesterov": nesterov})
    opt = model.optimizer
    assert isinstance(opt, keras.optimizers.SGD)
    assert opt.momentum == pytest.approx(0.7) and opt.nesterov is nesterov


@pytest.mark.parametrize(
    ("spec", "cls"),
    [({"name": "rmsprop"}, "RMSprop"), ({"name": "adam"}, "Adam"), ("adam", "Adam")],
)
def test_other_optimizers(spec: Any, cls: str) -> None:
    assert type(build(optimizer=spec).optimizer).__name__ == cls


def test_schedules_count_epochs() -> None:
    assert make_schedule({"name": "constant"}, 0.1, 30) == 0.1
    time_based = make_schedule({"name": "time", "decay": 0.5}, 0.1, 30)
    assert isinstance(time_based, keras.optimizers.schedules.InverseTimeDecay)
    # lr / (1 + decay * epoch): after 2 epochs of 30 steps, 0.1 / (1 + 0.5 * 2).
    assert float(time_based(60)) == pytest.approx(0.05)
    exponential = make_schedule({"name": "exponential", "rate": 0.9}, 0.1, 30)
    assert isinstance(exponential, keras.optimizers.schedules.ExponentialDecay)
    assert float(exponential(60)) == pytest.approx(0.1 * 0.9**2)
    model = build(schedule={"name": "time", "decay": 0.5})
    assert model.optimizer.get_config()["learning_rate"]["class_name"] == "InverseTimeDecay"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lr": None}, "params lack lr"),
        ({"optimizer": {"name": "adagrad"}}, "unknown optimizer 'adagrad'"),
        ({"schedule": {"name": "cosine"}}, "unknown schedule 'cosine'"),
        ({"schedule": {"name": "time"}}, "param schedule lacks 'decay'"),
        ({"activation": "wiggle"}, "activation='wiggle' is not a Keras activation"),
        ({"initializer": "magic"}, "initializer='magic' is not a Keras initializer"),
        ({"hidden_layers": {"layers": 2, "units1": 8}}, "layers=2 lacks units2"),
        ({"hidden_layers": 2}, "must be a dict with 'layers' >= 1"),
    ],
)
def test_bad_params_are_space_errors(change: dict[str, Any], message: str) -> None:
    params = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(SpaceError, match=message):
        build_model(params, n_features=64, steps_per_epoch=10)


@pytest.mark.parametrize("name", ["digits", "digits_small"])
def test_every_point_of_the_bundled_spaces_builds(name: str) -> None:
    from hyperopt.pyll import stochastic

    space = load_space(name)
    for seed in range(6):
        params = stochastic.sample(space.expr, rng=np.random.default_rng(seed))
        units = hidden_units(params["hidden_layers"])
        model = build_model(params, n_features=64, steps_per_epoch=5)
        assert [d.units for d in dense_layers(model)] == [*units, 10]
