"""Create a compiled model's state before ``fit``, so Keras traces its train step once, not twice.

On TensorFlow without a distribution strategy, Keras 3 defers creating a model's remaining
state — the optimizer's slots and step counter, the compiled metrics' and loss's variables —
to the first trace of the train step. ``tf.function`` allows variables to be created only in
a first, "variable-creating" trace and then traces the function again without them: a new
model's train step is traced twice. On this project's models that second trace was about half
of the first epoch's set-up (a stock LSTM: 1.9 s of set-up, 1.0 s after this; a digits
classifier: 0.68 s, 0.42 s).

:func:`build_before_fit` creates that state beforehand, eagerly, with the call Keras itself
makes when a distribution strategy is set (``Trainer._symbolic_build``, on symbolic inputs
shaped like the fit's data; the optimizer is built on the model's trainable variables). The
values are those the trace would have created (zeros, the initial step and learning rate), so
the fit is the same to the bit (``tests/keras/test_prebuild.py``); only the duplicate trace
goes. Anything it cannot tell — another backend, inputs of no known shape, a Keras without
the private method, any error — leaves the model as it was, and Keras builds during the trace
as before (this only saves time). A model compiled under a ``tf.distribute`` strategy is left
alone: Keras builds it before ``fit`` already, in the strategy's scope.

The optimizer is built on the variables trainable when this is called, as Keras' own build
under a strategy does. A callback that unfreezes (or freezes) layers in ``on_train_begin``
would then meet Keras' "Unknown variable" error at the first step; :func:`trainables_guard`,
the last callback of a fit, sees that change and hands the model a fresh optimizer built
on the variables trainable now: what Keras would have built in the trace, so the fit is the
one ``prebuild = False`` gives (``tests/keras/test_prebuild.py``). The fresh optimizer comes
from the old one's config plus what AdamW keeps outside it (its weight-decay exclusions); where
the old one already holds state (a backup restored it) or a plain setting its config leaves
out (a user's subclass), the guard stops the fit with one line naming
``KerasTrial.prebuild = False`` instead. It acts only on an optimizer built here for this fit:
a reused model's (``keras/reuse.py``) was built by an earlier fit and is left to Keras.
"""

from __future__ import annotations

import functools
import math
import re
import weakref
from collections.abc import Mapping
from typing import Any

__all__ = ["build_before_fit", "trainables_guard"]

#: The ids of the variables each model's optimizer was built on here, for trainables_guard.
_BUILT_ON: weakref.WeakKeyDictionary[Any, tuple[int, ...]] = weakref.WeakKeyDictionary()


def build_before_fit(model: Any, fit_args: Mapping[str, Any]) -> bool:
    """Create ``model``'s metric, loss and optimizer state for a ``model.fit(**fit_args)``
    (see the module); return whether it did. Call it on the model ``fit`` will train."""
    try:
        import keras

        if keras.backend.backend() != "tensorflow":
            return False  # JAX and torch build before their first step already
        if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
            return False
        import tensorflow as tf

        if getattr(model, "_distribute_strategy", None) is not None or tf.distribute.has_strategy():
            # Keras builds before fit itself under a strategy, inside its scope; building
            # here, outside it, would leave the optimizer marked built without its slots.
            return False
        _BUILT_ON.pop(model, None)
        unbuilt = not model.optimizer.built  # a reused model's was built by an earlier fit
        batch = _symbolic_batch(fit_args)
        if batch is not None and hasattr(model, "_symbolic_build"):
            model._symbolic_build(data_batch=batch)
        elif getattr(model, "built", False) and unbuilt:
            model.optimizer.build(model.trainable_variables)  # metrics still build in the trace
        else:
            return False
        if unbuilt and model.optimizer.built:  # built here: the guard may rebuild it
            _BUILT_ON[model] = tuple(id(v) for v in model.trainable_variables)
        return True
    except Exception:  # Keras builds during the first trace, as without this call
        return False


def trainables_guard() -> Any:
    """A Keras callback to pass last to a ``fit`` after :func:`build_before_fit`: when the
    callbacks before it changed which variables are trainable, it rebuilds the optimizer for
    them (see the module); otherwise it does nothing."""
    return _guard_class()()


@functools.cache
def _guard_class() -> type:
    import keras  # here, not at import: the driver of a study never imports Keras

    class TrainablesGuard(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            model = self.model
            built_on = _BUILT_ON.get(model)
            now = list(model.trainable_variables)
            if built_on is None or tuple(id(v) for v in now) == built_on:
                return
            old = model.optimizer
            try:
                fresh = _rebuilt(old, now)
            except Exception as e:
                raise ValueError(
                    "a callback changed which layers are trainable at the start of fit, after "
                    "tpetune built the optimizer for the others, and it cannot be rebuilt "
                    f"({e}): set prebuild = False on the KerasTrial, or change them before fit"
                ) from e
            model.optimizer = fresh
            _BUILT_ON[model] = tuple(id(v) for v in now)

    return TrainablesGuard


#: Set on an optimizer outside its config (AdamW's ``exclude_from_weight_decay``), so copied.
_OUTSIDE_CONFIG = ("_exclude_from_weight_decay", "_exclude_from_weight_decay_pattern")
_PLAIN = (bool, int, float, str, bytes, tuple, frozenset, set, re.Pattern)


def _rebuilt(old: Any, variables: list[Any]) -> Any:
    """A fresh optimizer like ``old`` (made from its config, plus what lives outside it),
    built on ``variables``; raises when ``old`` holds state or a plain setting its config
    does not carry (a subclass's own attribute): the fresh one would train differently."""
    if int(old.iterations.numpy()) != 0:
        raise ValueError("the optimizer already holds state")
    fresh = type(old).from_config(old.get_config())
    for name in _OUTSIDE_CONFIG:
        if hasattr(old, name):
            setattr(fresh, name, getattr(old, name))
    lost = sorted(
        name
        for name, value in vars(old).items()
        if name != "built"
        and (value is None or isinstance(value, _PLAIN))
        and not _same(getattr(fresh, name, _MISSING), value)
    )
    if lost:
        raise ValueError(f"its {', '.join(lost)} would not carry over")
    fresh.build(variables)
    return fresh


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except Exception:
        return False


def _symbolic_batch(fit_args: Mapping[str, Any]) -> tuple[Any, Any, Any] | None:
    """``(x, y, sample_weight)`` of one batch as Keras tensors of unknown batch size, from
    arrays or a ``tf.data.Dataset``'s element spec; ``None`` for any other input."""
    import keras

    x = fit_args.get("x")
    if _has_shape(x):
        y, weight = fit_args.get("y"), fit_args.get("sample_weight")
        if not _has_shape(y) or (weight is not None and not _has_shape(weight)):
            return None
        parts: tuple[Any, ...] = (x, y, weight)
    else:
        spec = getattr(x, "element_spec", None)
        if not isinstance(spec, tuple) or not 2 <= len(spec) <= 3:
            return None
        parts = (*spec, None)[:3]
        if not all(_has_shape(p) for p in parts if p is not None):
            return None

    arrays = parts[0] is x

    def symbolic(a: Any) -> Any:
        if a is None:
            return None
        dtype = keras.backend.standardize_dtype(a.dtype)
        if arrays and "float" in dtype:
            dtype = keras.backend.floatx()  # as Keras' array adapter casts them
        return keras.KerasTensor((None, *tuple(a.shape)[1:]), dtype=dtype)

    x_, y_, w_ = (symbolic(p) for p in parts)
    return x_, y_, w_


def _has_shape(a: Any) -> bool:
    """A single tensor-like (array, tensor or ``TensorSpec``) with a batch axis."""
    shape = getattr(a, "shape", None)
    return shape is not None and getattr(a, "dtype", None) is not None and len(shape) >= 1
