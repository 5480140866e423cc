"""State made before ``fit``: Keras traces the train step once instead of twice, and the fit is
the same to the bit (weights, dropout masks, optimizer slots, metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tests.digits.test_digits_objective import PARAMS  # noqa: E402
from tpetune.keras import reuse  # noqa: E402
from tpetune.keras.inputs import lean_fit_args  # noqa: E402
from tpetune.keras.prebuild import build_before_fit, trainables_guard  # noqa: E402
from tpetune.keras.trial import KerasTrial, fresh_session  # noqa: E402

pytestmark = [
    pytest.mark.keras,
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow", reason="the double trace is TensorFlow's"
    ),
]

RNG = np.random.default_rng(3)
X = RNG.normal(size=(80, 6, 3)).astype("float32")
LABELS = RNG.integers(0, 3, size=80)
TARGET = RNG.normal(size=(80, 1)).astype("float32")


def _dense() -> Any:
    model = keras.Sequential(
        [
            keras.Input((6, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 5, 0.9)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _lstm() -> Any:
    model = keras.Sequential(
        [
            keras.Input((6, 3)),
            keras.layers.LSTM(5, return_sequences=True),
            keras.layers.Dropout(0.2),
            keras.layers.LSTM(4),
            keras.layers.Dense(1),
        ]
    )
    optimizer = keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True, clipnorm=1.0)
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model


class LazyModel(keras.Model):  # type: ignore[misc]
    """Built lazily, on its first call: the symbolic build must build it as the trace would."""

    def __init__(self) -> None:
        super().__init__()
        self.flat = keras.layers.Flatten()
        self.hidden = keras.layers.Dense(6, activation="tanh")
        self.out = keras.layers.Dense(1)

    def call(self, x: Any, training: bool = False) -> Any:
        return self.out(self.hidden(self.flat(x)))


def _subclassed() -> Any:
    model = LazyModel()
    model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="mse")
    return model


def _args(y: np.ndarray, *, lean: bool) -> dict[str, Any]:
    args = {
        "x": X[16:],
        "y": y[16:],
        "validation_data": (X[:16], y[:16]),
        "epochs": 3,
        "batch_size": 16,
    }
    return lean_fit_args(args) if lean else args


def _fit(make: Callable[[], Any], y: np.ndarray, *, prebuild: bool, lean: bool) -> Any:
    """(history, weights, optimizer variables, train-step traces) of one seeded fit."""
    fresh_session(7)
    model = make()
    model.steps_per_execution = 4
    args = _args(y, lean=lean)
    built = build_before_fit(model, args) if prebuild else False
    traces = []
    train_step = model.train_step
    model.train_step = lambda data: (traces.append(1), train_step(data))[1]
    history = model.fit(**args, verbose=0).history
    weights = [w.copy() for w in model.get_weights()]
    slots = [np.asarray(v.value).copy() for v in model.optimizer.variables]
    return built, history, weights, slots, len(traces)


CASES = [(_dense, LABELS), (_lstm, TARGET), (_subclassed, TARGET)]


@pytest.mark.parametrize("lean", [False, True], ids=["arrays", "datasets"])
@pytest.mark.parametrize("make, y", CASES, ids=["dense-metrics", "lstm-momentum", "subclassed"])
def test_the_fit_is_the_same_and_traced_once(make: Any, y: np.ndarray, lean: bool) -> None:
    built, history, weights, slots, traces = _fit(make, y, prebuild=True, lean=lean)
    plain, history0, weights0, slots0, traces0 = _fit(make, y, prebuild=False, lean=lean)
    assert built and not plain
    assert (traces, traces0) == (1, 2)  # tf.function retraces a trace that made variables
    assert history == history0
    for a, b in zip([*weights, *slots], [*weights0, *slots0], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_generator_input_still_gets_its_optimizer_built() -> None:
    fresh_session(0)
    model = _lstm()

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            yield X[:16], TARGET[:16]

    assert build_before_fit(model, {"x": batches(), "steps_per_epoch": 2})
    assert model.optimizer.built
    model.fit(batches(), steps_per_epoch=2, epochs=1, verbose=0)


def test_what_it_cannot_build_is_left_to_keras() -> None:
    uncompiled = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    assert not build_before_fit(uncompiled, {"x": X, "y": TARGET})
    lazy = _subclassed()  # not built, and no shaped input to build it from
    assert not build_before_fit(lazy, {"x": iter([]), "steps_per_epoch": 1})
    assert not lazy.optimizer.built
    broken = _dense()
    assert not build_before_fit(broken, {"x": np.zeros((4, 5)), "y": np.zeros(4)})  # bad shape
    fresh_session(0)
    broken.fit(X, LABELS, epochs=1, verbose=0)  # still trains: Keras builds in the trace


def _frozen_base(optimizer: Callable[[], Any] | None = None) -> Any:
    model = _lstm()
    if optimizer is not None:
        model.compile(optimizer=optimizer(), loss="mse", metrics=["mae"])
    model.layers[0].trainable = False  # unfrozen by the callback below, as fine-tuning does
    return model


class Unfreeze(keras.callbacks.Callback):  # type: ignore[misc]
    def on_train_begin(self, logs: Any = None) -> None:
        self.model.layers[0].trainable = True


class Scaled(keras.optimizers.SGD):  # type: ignore[misc]
    """A user's optimizer with a setting its config leaves out."""

    def __init__(self, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = scale

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        super().update_step(gradient * self.scale, variable, learning_rate)


def _adamw() -> Any:
    optimizer = keras.optimizers.AdamW(0.05, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_names=["bias"])  # outside AdamW's config
    return optimizer


def _fit_unfreezing(
    *, prebuild: bool, optimizer: Callable[[], Any] | None = None, stateful: bool = False
) -> Any:
    fresh_session(7)
    model = _frozen_base(optimizer)
    args = _args(TARGET, lean=True)
    first = model.layers[0].get_weights()[0].copy()
    if prebuild:
        assert build_before_fit(model, args)
        if stateful:
            model.optimizer.iterations.assign(1)  # as a restored backup leaves it
    traces = []
    train_step = model.train_step
    model.train_step = lambda data: (traces.append(1), train_step(data))[1]
    callbacks = [Unfreeze(), *([trainables_guard()] if prebuild else [])]
    history = model.fit(**args, verbose=0, callbacks=callbacks).history
    assert not np.array_equal(first, model.layers[0].get_weights()[0])  # it trained
    return history, model.get_weights(), len(traces)


@pytest.mark.parametrize(
    "optimizer",
    [None, _adamw, lambda: keras.optimizers.Adam(0.01, use_ema=True, ema_overwrite_frequency=2)],
    ids=["sgd-momentum", "adamw-excluding-biases", "adam-ema"],
)
def test_a_callback_unfreezing_layers_gets_the_fit_keras_would_give(optimizer: Any) -> None:
    history, weights, traces = _fit_unfreezing(prebuild=True, optimizer=optimizer)
    history0, weights0, traces0 = _fit_unfreezing(prebuild=False, optimizer=optimizer)
    assert history == history0 and (traces, traces0) == (1, 2)  # still one trace
    for a, b in zip(weights, weights0, strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_optimizer_the_guard_cannot_rebuild_stops_the_fit_with_one_line() -> None:
    with pytest.raises(ValueError, match="set prebuild = False on the KerasTrial"):
        _fit_unfreezing(prebuild=True, stateful=True)  # its state cannot be rebuilt
    with pytest.raises(ValueError, match="its scale would not carry over"):
        _fit_unfreezing(prebuild=True, optimizer=lambda: Scaled(5.0, learning_rate=0.01))


class Window(keras.callbacks.Callback):  # type: ignore[misc]
    """Trains the frozen layer only while a fit runs."""

    def on_train_begin(self, logs: Any = None) -> None:
        self.model.layers[0].trainable = True

    def on_train_end(self, logs: Any = None) -> None:
        self.model.layers[0].trainable = False


def test_a_reused_model_s_optimizer_is_left_as_keras_left_it() -> None:
    """Fits of one compiled model reused across trials (tpetune.keras.reuse): the guard acts
    only on an optimizer built before this fit, never on the one the traced step holds."""

    def fits(prebuild: bool) -> list[Any]:
        reuse.forget()
        out = []
        for seed, lr in [(1, 0.01), (2, 0.01), (3, 0.2)]:
            fresh_session(seed)
            model = reuse.reuse_compiled(_frozen_base(lambda lr=lr: keras.optimizers.SGD(lr)))
            args = _args(TARGET, lean=True)
            if prebuild:
                build_before_fit(model, args)
            callbacks = [Window(), *([trainables_guard()] if prebuild else [])]
            model.fit(**args, verbose=0, callbacks=callbacks)
            out.append([*model.get_weights(), model.optimizer.iterations.numpy()])
        reuse.forget()
        return out

    for a, b in zip(fits(True), fits(False), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


class Unfreezing(KerasTrial):
    """A KerasTrial fine-tuning a frozen layer from the start of fit (a user's callback)."""

    def fold_data(self, params: Any) -> list[int]:
        return [0]

    def build(self, params: Any, fold: Any) -> Any:
        return _frozen_base()

    def fit_args(self, params: Any, fold: Any) -> dict[str, Any]:
        return _args(TARGET, lean=False)


def test_a_keras_trial_whose_callback_unfreezes_layers_trains_as_without_prebuild() -> None:
    def run(prebuild: bool) -> Any:
        objective = Unfreezing(patience=2, seed=3, callbacks=[Unfreeze])
        objective.prebuild = prebuild  # type: ignore[misc]
        result = objective({})
        result["metrics"].pop("train_seconds")
        return result

    assert run(True) == run(False)


@pytest.mark.xdist_group("digits_trials")  # one process: they share the defaults\' run
def test_cross_validated_digits_trials_are_the_same_with_prebuild(
    digits_trials: Callable[..., list[dict[str, Any]]],
) -> None:
    assert digits_trials(prebuild=True) == digits_trials(prebuild=False)


def test_the_digits_final_report_is_the_same_with_prebuild(
    digits_report: Callable[..., dict[str, Any]],
) -> None:
    point = {**PARAMS, "optimizer": {"name": "sgd", "momentum": 0.8, "nesterov": False}}
    assert digits_report(point, prebuild=True) == digits_report(point, prebuild=False)


STRATEGY = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
import keras
from tpetune.keras.prebuild import build_before_fit

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
x, y = np.ones((32, 3), "float32"), np.ones((32, 1), "float32")
assert not build_before_fit(model, {"x": x, "y": y})  # Keras builds it, in the scope
model.fit(x, y, epochs=1, verbose=0)
print("trained")
"""


def test_a_model_compiled_under_a_distribution_strategy_is_left_to_keras() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", STRATEGY], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "trained" in done.stdout, done.stderr[-2000:]
