"""The stock LSTM, built from the *values* of one point of ``spaces/stock.py``.

Stack: ``LSTM(lstm1_nodes)`` → Dropout → [``LSTM(lstm2_nodes)`` → Dropout] →
[``Dense(dense2_nodes, relu)``] → ``Dense(1)``. The model predicts the next day's relative
close change in model units (see :mod:`tpetune.stock.windows`), where ``0`` is the naive
forecast "tomorrow = today". The final Dense layer starts with a zero kernel and zero bias, so an
untrained model *is* the naive forecast and training can only move away from it where the
validation loss says so; that is why a tuned model can match or beat naive on the test split
instead of starting far worse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from tpetune.errors import SpaceError
from tpetune.keras.optimizers import make_optimizer
from tpetune.search.space import require_labels

__all__ = ["REQUIRED_PARAMS", "build_model", "make_optimizer"]

#: Top-level params the stock objective reads (labels of ``spaces/stock.py``).
REQUIRED_PARAMS: tuple[str, ...] = (
    "batch_size",
    "time_steps",
    "lstm1_nodes",
    "lstm1_dropout",
    "lstm_layers",
    "dense_layers",
    "optimizer",
    "lr",
)

# A large learning rate from the loguniform tail can blow an LSTM up to NaN in one step; clipping
# the gradient norm keeps such trials finite (and thus comparable) at no cost to sane ones.
_CLIPNORM = 1.0


def build_model(params: Mapping[str, Any], *, time_steps: int, n_features: int) -> Any:
    """Build and compile the LSTM described by ``params``.

    Args:
        params: values (never choice indices) with the keys of :data:`REQUIRED_PARAMS`;
            ``lstm_layers`` is ``{"layers": 1}`` or ``{"layers": 2, "lstm2_nodes": int,
            "lstm2_dropout": float}``; ``dense_layers`` is ``{"layers": 0}`` or
            ``{"layers": 1, "dense2_nodes": int}``; ``optimizer`` is ``{"name": "sgd",
            "momentum": float, "nesterov": bool}``, ``{"name": "rmsprop"}`` or
            ``{"name": "adam"}`` (a bare name string is accepted too).
        time_steps: days per input window.
        n_features: features per day.

    Returns:
        A compiled ``keras.Model`` with MSE loss, input ``(time_steps, n_features)`` and one
        output that is exactly 0 (the naive forecast) before training.

    Raises:
        SpaceError: a required param is missing or has an unknown value.
    """
    require_labels(params, REQUIRED_PARAMS, objective="stock objective", like="spaces/stock.py")
    lstm = _branch(params, "lstm_layers", (1, 2))
    dense = _branch(params, "dense_layers", (0, 1))

    inputs = keras.Input(shape=(time_steps, n_features))
    two_lstm = lstm["layers"] == 2
    x = keras.layers.LSTM(int(params["lstm1_nodes"]), return_sequences=two_lstm)(inputs)
    x = keras.layers.Dropout(float(params["lstm1_dropout"]))(x)
    if two_lstm:
        x = keras.layers.LSTM(int(_get(lstm, "lstm2_nodes", "lstm_layers")))(x)
        x = keras.layers.Dropout(float(_get(lstm, "lstm2_dropout", "lstm_layers")))(x)
    if dense["layers"] == 1:
        x = keras.layers.Dense(int(_get(dense, "dense2_nodes", "dense_layers")), activation="relu")(
            x
        )
    outputs = keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer="zeros")(x)
    model = keras.Model(inputs, outputs, name="stock_lstm")
    model.compile(
        optimizer=make_optimizer(params["optimizer"], float(params["lr"]), clipnorm=_CLIPNORM),
        loss="mse",
    )
    return model


def _branch(params: Mapping[str, Any], key: str, allowed: tuple[int, ...]) -> Mapping[str, Any]:
    value = params[key]
    branch = {"layers": value} if isinstance(value, int) else value
    if not isinstance(branch, Mapping) or branch.get("layers") not in allowed:
        raise SpaceError(
            f"param {key} must be a dict with 'layers' in {allowed}, got {value!r}; "
            "see spaces/stock.py"
        )
    return branch


def _get(branch: Mapping[str, Any], key: str, parent: str) -> Any:
    if key not in branch:
        raise SpaceError(f"param {parent} lacks {key!r}; see spaces/stock.py for its shape")
    return branch[key]
