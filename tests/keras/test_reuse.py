"""Compiled-model reuse: a fit on the previous fit's (already traced) model gives, to the bit,
what a fit on the freshly built model gives — weights, dropout masks, optimizer state and
schedule — and a different compiled model is never reused."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tpetune.keras import reuse  # noqa: E402
from tpetune.keras.trial import fresh_session  # noqa: E402

pytestmark = [
    pytest.mark.keras,
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow", reason="reuse is TensorFlow-only (see module)"
    ),
]

RNG = np.random.default_rng(1)
X = RNG.normal(size=(96, 4)).astype("float32")
Y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * RNG.normal(size=96)).astype("float32")


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    reuse.forget()
    yield
    reuse.forget()


def _model(
    *, units: int = 8, dropout: float = 0.3, optimizer: Callable[[], Any] | None = None
) -> Any:
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(units, activation="tanh"),
            keras.layers.BatchNormalization(),  # moving statistics: non-trainable variables
            keras.layers.Dropout(dropout),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=(optimizer or (lambda: keras.optimizers.Adam(0.01)))(), loss="mse")
    return model


def _fit(model: Any, rows: slice, *, epochs: int = 4) -> tuple[list[float], list[np.ndarray]]:
    history = model.fit(
        X[rows], Y[rows], validation_data=(X[:16], Y[:16]), epochs=epochs, batch_size=16,
        verbose=0,
    )  # fmt: skip
    return history.history["val_loss"], [w.copy() for w in model.get_weights()]


def _fits(
    specs: Sequence[tuple[int, slice, Mapping[str, Any]]], *, reused: bool
) -> tuple[list[Any], list[Any]]:
    """Fit each (seed, rows, model kwargs) on a fresh session, through reuse or not."""
    results, models = [], []
    for seed, rows, kwargs in specs:
        fresh_session(seed)
        model = _model(**kwargs)
        if reused:
            model = reuse.reuse_compiled(model)
        results.append(_fit(model, rows))
        models.append(model)
    return results, models


def _assert_same(a: Sequence[Any], b: Sequence[Any]) -> None:
    for (loss_a, weights_a), (loss_b, weights_b) in zip(a, b, strict=True):
        assert loss_a == loss_b
        for wa, wb in zip(weights_a, weights_b, strict=True):
            np.testing.assert_array_equal(wa, wb)


def test_a_reused_model_trains_to_the_bit_what_a_fresh_one_does() -> None:
    # Other seeds (initial weights, dropout masks), other rows, another learning rate; adam's
    # moments and step count must not carry over from the previous fit.
    specs = [
        (0, slice(16, 96), {}),
        (1, slice(0, 80), {}),
        (2, slice(8, 88), {"optimizer": lambda: keras.optimizers.Adam(0.003)}),
    ]
    fresh, fresh_models = _fits(specs, reused=False)
    again, models = _fits(specs, reused=True)
    _assert_same(fresh, again)
    assert models[0] is models[1] is models[2]  # one model, traced once
    assert len({id(m) for m in fresh_models}) == 3


def test_schedules_and_momentum_restart_with_each_fit() -> None:
    def sgd() -> Any:
        schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 5, 0.5)
        return keras.optimizers.SGD(schedule, momentum=0.9)

    specs = [(3, slice(16, 96), {"optimizer": sgd}), (3, slice(0, 80), {"optimizer": sgd})]
    fresh, _ = _fits(specs, reused=False)
    again, models = _fits(specs, reused=True)
    _assert_same(fresh, again)
    assert models[0] is models[1]


@pytest.mark.parametrize(
    "other",
    [
        {"units": 6},
        {"dropout": 0.1},
        {"optimizer": lambda: keras.optimizers.SGD(0.01)},
        {
            "optimizer": lambda: keras.optimizers.Adam(
                keras.optimizers.schedules.ExponentialDecay(0.01, 5, 0.5)
            )
        },
    ],
    ids=["units", "dropout", "optimizer", "schedule"],
)
def test_another_compiled_model_is_not_reused(other: Mapping[str, Any]) -> None:
    specs = [(0, slice(16, 96), {}), (1, slice(0, 80), other)]
    fresh, _ = _fits(specs, reused=False)
    again, models = _fits(specs, reused=True)
    _assert_same(fresh, again)
    assert models[0] is not models[1]


def test_the_previous_fits_resume_epoch_does_not_carry_over() -> None:
    # A fit that restored a backup leaves model._initial_epoch set (Keras' BackupAndRestore);
    # a later fit on the reused model must still train all its epochs.
    fresh_session(0)
    first = reuse.reuse_compiled(_model())
    _fit(first, slice(16, 96))
    first._initial_epoch, first.stop_training = 3, True
    fresh_session(1)
    again = reuse.reuse_compiled(_model())
    assert again is first
    losses, _ = _fit(again, slice(0, 80))
    assert len(losses) == 4


def test_a_model_a_callback_unfroze_is_not_reused_for_a_frozen_one() -> None:
    def frozen() -> Any:
        model = _model()
        model.layers[0].trainable = False
        return model

    fresh_session(0)
    first = reuse.reuse_compiled(frozen())
    first.layers[0].trainable = True  # what a fine-tuning callback does in on_train_begin
    _fit(first, slice(16, 96))
    fresh_session(1)
    again = frozen()
    assert reuse.reuse_compiled(again) is again
    assert not again.optimizer.built  # left for the fit, which may unfreeze the layer again
    again.layers[0].trainable = True
    _fit(again, slice(0, 80))


def test_a_stateful_rnn_is_never_reused() -> None:
    def rnn() -> Any:
        model = keras.Sequential(
            [keras.Input((3, 4), batch_size=2), keras.layers.LSTM(2, stateful=True)]
        )
        model.compile(optimizer="adam", loss="mse")
        return model

    assert reuse.compile_signature(rnn()) is None


def _focal(gamma: float) -> Any:
    def loss(y_true: Any, y_pred: Any) -> Any:
        return keras.ops.mean(keras.ops.square(y_true - y_pred)) * gamma

    return loss


class Scale(keras.layers.Layer):  # type: ignore[misc]
    """A user's layer: its config does not have to describe its step."""

    def call(self, x: Any) -> Any:
        return x * 2.0


def _compiled(layers: list[Any], loss: Any = "mse") -> Any:
    model = keras.Sequential([keras.Input((4,)), *layers, keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss=loss)
    return model


@pytest.mark.parametrize(
    "make",
    [
        lambda: _compiled([keras.layers.Dense(3)], loss=_focal(2.0)),
        lambda: _compiled([keras.layers.Lambda(lambda x: x * 2.0)]),
        lambda: _compiled([Scale()]),
    ],
    ids=["closure-loss", "lambda-layer", "user-layer"],
)
def test_what_a_config_does_not_describe_is_never_reused(make: Callable[[], Any]) -> None:
    # focal(2.0) and focal(5.0) serialise alike (by the function's name): reusing the first
    # model's traced step would train the second with gamma 2. Only Keras' own objects count.
    fresh_session(0)
    first = make()
    assert reuse.compile_signature(first) is None
    assert reuse.reuse_compiled(first) is first
    assert reuse.reuse_compiled(make()) is not first


def test_a_config_that_fails_to_serialise_means_no_reuse() -> None:
    class Broken(keras.layers.Dense):  # type: ignore[misc]
        def get_config(self) -> Any:
            raise RuntimeError("a user's get_config that fails")

    fresh_session(0)
    model = _compiled([Broken(3)])
    assert reuse.compile_signature(model) is None
    assert reuse.reuse_compiled(model) is model


def test_a_model_that_is_not_compiled_is_passed_through_and_forgets() -> None:
    fresh_session(0)
    first = reuse.reuse_compiled(_model())
    bare = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    assert reuse.compile_signature(bare) is None
    assert reuse.reuse_compiled(bare) is bare
    assert reuse.reuse_compiled(_model()) is not first  # the uncompiled one broke the chain


@pytest.mark.xdist_group("digits_trials")  # one process: they share the defaults\' run
def test_cross_validated_digits_trials_are_the_same_with_and_without_reuse(
    digits_trials: Callable[..., list[dict[str, Any]]],
) -> None:
    assert digits_trials(reuse_compiled=False) == digits_trials(reuse_compiled=True)
