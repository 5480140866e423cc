"""Lean fit inputs: array inputs handed to ``fit`` as plain datasets in Keras' own batch order
train to the bit what the arrays train, and anything else is left as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tests.digits.test_digits_objective import PARAMS  # noqa: E402
from tpetune.keras.inputs import keras_order, lean_fit_args  # noqa: E402
from tpetune.keras.trial import fresh_session  # noqa: E402

pytestmark = [
    pytest.mark.keras,
    pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's adapter"),
]

RNG = np.random.default_rng(0)
X = RNG.normal(size=(203, 6)).astype("float32")  # 203: a partial last batch
Y = RNG.integers(0, 3, 203)
XV = RNG.normal(size=(50, 6)).astype("float32")
YV = RNG.integers(0, 3, 50)


def _fit(seed: int, args: dict[str, Any], *, lean: bool) -> dict[str, list[float]]:
    fresh_session(seed)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.steps_per_execution = 8  # as KerasTrial runs it: 7 batches per epoch, not a multiple
    if lean:
        args = lean_fit_args(args)
        assert isinstance(args["x"], tf.data.Dataset)
    return model.fit(**args, verbose=0).history  # type: ignore[no-any-return]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("seed", [0, 7])
def test_lean_inputs_train_to_the_bit_what_arrays_train(seed: int, shuffle: bool) -> None:
    args = {
        "x": X, "y": Y, "validation_data": (XV, YV), "epochs": 4, "batch_size": 32,
        "validation_batch_size": 16, "shuffle": shuffle,
    }  # fmt: skip
    assert _fit(seed, args, lean=True) == _fit(seed, args, lean=False)


def test_float64_inputs_are_cast_as_keras_casts_them() -> None:
    # NumPy and pandas default to float64; Keras' adapter hands floatx on, and so must we.
    args = {
        "x": X.astype("float64"), "y": Y.astype("float64"), "epochs": 3, "batch_size": 32,
        "validation_data": (XV.astype("float64"), YV.astype("float64")),
    }  # fmt: skip
    lean = lean_fit_args(args)
    assert lean["x"].element_spec[0].dtype == tf.float32
    assert lean["validation_data"].element_spec[1].dtype == tf.float32
    assert "validation_batch_size" not in lean  # None: the training batch size, as in Keras
    assert _fit(5, args, lean=True) == _fit(5, args, lean=False)


def test_keras_order_is_one_permutation_for_every_epoch_of_a_seeded_fit() -> None:
    keras.utils.set_random_seed(3)
    first = keras_order(203, 32)
    keras.utils.set_random_seed(3)
    assert first is not None and np.array_equal(first, keras_order(203, 32))
    assert sorted(first) == list(range(203)) and not np.array_equal(first, np.arange(203))
    assert np.array_equal(keras_order(5, 2, shuffle=False), np.arange(5))


@pytest.mark.parametrize(
    "change",
    [
        {"sample_weight": np.ones(203)},
        {"class_weight": {0: 1.0, 1: 2.0, 2: 1.0}},
        {"validation_split": 0.2, "validation_data": None},
        {"steps_per_epoch": 3},
        {"x": {"pixels": X}},
        {"x": tf.data.Dataset.from_tensor_slices((X, Y)).batch(8), "y": None},
        {"validation_data": (XV, YV, np.ones(50))},
        {"y": Y[:-1]},
        {"shuffle": "batch"},
    ],
    ids=[
        "sample_weight",
        "class_weight",
        "split",
        "steps",
        "dict",
        "dataset",
        "val3",
        "len",
        "batch_shuffle",
    ],
)
def test_anything_else_is_left_as_it_was(change: dict[str, Any]) -> None:
    args = {"x": X, "y": Y, "validation_data": (XV, YV), "epochs": 1, "batch_size": 32}
    args |= change
    keras.utils.set_random_seed(0)
    out = lean_fit_args(args)
    assert out == args or all(out[k] is args[k] for k in args)


def test_an_unseeded_fit_keeps_its_arrays() -> None:
    tf.random.set_seed(None)
    try:
        assert keras_order(10, 4) is None
        args = {"x": X, "y": Y, "batch_size": 32}
        assert lean_fit_args(args)["x"] is X
    finally:
        keras.utils.set_random_seed(0)


@pytest.mark.xdist_group("digits_trials")  # one process: they share the defaults\' run
def test_cross_validated_digits_trials_are_the_same_with_lean_inputs(
    digits_trials: Callable[..., list[dict[str, Any]]],
) -> None:
    assert digits_trials(lean_inputs=True) == digits_trials(lean_inputs=False)


def test_the_digits_final_report_is_the_same_with_lean_inputs(
    digits_report: Callable[..., dict[str, Any]],
) -> None:
    point = {**PARAMS, "activation": "tanh", "optimizer": {"name": "rmsprop"}, "batch_size": 64}
    assert digits_report(point, lean_inputs=True) == digits_report(point, lean_inputs=False)
