"""The dense digit classifier, built from the *values* of one point of ``spaces/digits.py``.

Stack: ``Input(n_features)`` → ``Dense(units1, activation, initializer)`` → … one per hidden
layer … → ``Dense(10, softmax)``, compiled with sparse categorical cross-entropy and accuracy.

Learning-rate schedules count *epochs*, not optimizer steps: ``time`` is
``lr / (1 + decay * epoch)`` (Keras' ``InverseTimeDecay``) and ``exponential`` is
``lr * rate ** epoch`` (``ExponentialDecay``), both smooth (a fractional epoch within an
epoch). Counted in steps, the same ``decay`` would act 40 times faster on MNIST (1,250 steps
per epoch at batch 32 in a fold) than on the 8x8 digits (30), and would change with the batch
size; counted in epochs, a tuned value means the same for any data and batch size, and the
final retrain on all training images decays exactly as the folds did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from tpetune.digits.data import N_CLASSES
from tpetune.errors import SpaceError
from tpetune.keras.optimizers import OPTIMIZERS, make_optimizer
from tpetune.search.space import require_labels

__all__ = [
    "OPTIMIZERS",
    "REQUIRED_PARAMS",
    "SCHEDULES",
    "build_model",
    "hidden_units",
    "make_optimizer",
    "make_schedule",
]

#: Top-level params the digits objective reads (labels of ``spaces/digits.py``).
REQUIRED_PARAMS: tuple[str, ...] = (
    "hidden_layers",
    "activation",
    "initializer",
    "optimizer",
    "schedule",
    "lr",
    "batch_size",
    "epochs",
)
#: Optimizer names the ``optimizer`` branch may hold.
#: Schedule names the ``schedule`` branch may hold.
SCHEDULES: tuple[str, ...] = ("constant", "time", "exponential")


def build_model(
    params: Mapping[str, Any], *, n_features: int, steps_per_epoch: int, n_classes: int = N_CLASSES
) -> Any:
    """Build and compile the classifier described by ``params``.

    Args:
        params: values (never choice indices) with the keys of :data:`REQUIRED_PARAMS`;
            ``hidden_layers`` is ``{"layers": k, "units1": int, ..., "unitsk": int}``;
            ``optimizer`` is ``{"name": "sgd", "momentum": float, "nesterov": bool}``,
            ``{"name": "rmsprop"}`` or ``{"name": "adam"}``; ``schedule`` is
            ``{"name": "constant"}``, ``{"name": "time", "decay": float}`` or
            ``{"name": "exponential", "rate": float}`` (bare name strings are accepted for
            optimizer and constant schedule).
        n_features: inputs per image (64 for 8x8 digits, 784 for MNIST).
        steps_per_epoch: optimizer steps per epoch, so schedules can count epochs.
        n_classes: output classes.

    Returns:
        A compiled ``keras.Model`` named ``digits_mlp`` with hidden layers ``hidden1`` …
        and a softmax layer ``output``.

    Raises:
        SpaceError: a required param is missing or has an unknown value.
    """
    require_labels(params, REQUIRED_PARAMS, objective="digits objective", like="spaces/digits.py")
    activation = _known("activation", params["activation"], keras.activations.get)
    initializer = _known("initializer", params["initializer"], keras.initializers.get)
    inputs = keras.Input(shape=(n_features,), name="pixels")
    x = inputs
    for i, units in enumerate(hidden_units(params["hidden_layers"]), start=1):
        x = keras.layers.Dense(
            units, activation=activation, kernel_initializer=initializer, name=f"hidden{i}"
        )(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="output")(x)
    model = keras.Model(inputs, outputs, name="digits_mlp")
    lr = make_schedule(params["schedule"], float(params["lr"]), steps_per_epoch)
    model.compile(
        optimizer=make_optimizer(params["optimizer"], lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # XLA compiles every new model for seconds; these small models train faster without.
        jit_compile=False,
    )
    return model


def hidden_units(spec: Mapping[str, Any]) -> list[int]:
    """Units per hidden layer from the ``hidden_layers`` branch, first layer first.

    Raises:
        SpaceError: not a dict with a positive ``layers`` and ``units1`` … ``units<layers>``.
    """
    layers = spec.get("layers") if isinstance(spec, Mapping) else None
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise SpaceError(
            f"param hidden_layers must be a dict with 'layers' >= 1, got {spec!r}; "
            "see spaces/digits.py"
        )
    keys = [f"units{i}" for i in range(1, layers + 1)]
    missing = [k for k in keys if k not in spec]
    if missing:
        raise SpaceError(
            f"param hidden_layers with layers={layers} lacks {', '.join(missing)}; "
            "see spaces/digits.py for its shape"
        )
    units = [int(spec[k]) for k in keys]
    if min(units) < 1:
        raise SpaceError(f"param hidden_layers has a layer of {min(units)} units; need >= 1")
    return units


def make_schedule(spec: Mapping[str, Any] | str, lr: float, steps_per_epoch: int) -> Any:
    """The learning rate: a float (constant) or a Keras schedule counting epochs.

    Raises:
        SpaceError: unknown schedule name, or its knob is missing.
    """
    sched = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = str(sched.get("name", "")).lower()
    steps = max(1, int(steps_per_epoch))
    if name == "constant":
        return lr
    if name == "time":
        return keras.optimizers.schedules.InverseTimeDecay(
            lr, decay_steps=steps, decay_rate=float(_knob(sched, "decay", "schedule"))
        )
    if name == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=steps, decay_rate=float(_knob(sched, "rate", "schedule"))
        )
    raise SpaceError(f"unknown schedule {name!r}; use one of {', '.join(map(repr, SCHEDULES))}")


def _known(key: str, value: Any, lookup: Any) -> str:
    """``value`` if Keras knows it as an ``activation``/``initializer`` name."""
    try:
        lookup(str(value))
    except (ValueError, TypeError):
        raise SpaceError(
            f"param {key}={value!r} is not a Keras {key} name (e.g. 'relu', 'glorot_uniform'); "
            "see spaces/digits.py"
        ) from None
    return str(value)


def _knob(branch: Mapping[str, Any], key: str, parent: str) -> Any:
    if key not in branch:
        raise SpaceError(f"param {parent} lacks {key!r}; see spaces/digits.py for its shape")
    return branch[key]
