"""A fit's array inputs as a lean ``tf.data`` pipeline, in the batch order Keras itself uses.

Given NumPy arrays, Keras 3 (TensorFlow backend) builds a general pipeline (an index permutation
per epoch, then a parallel gather per batch) and makes a new iterator of it twice per epoch for
the training data and twice more for the validation data: about 11 ms each on 2 cores, whatever
the data's size. For a small model that is most of an epoch (a digits fold's epoch trains in
about 25 ms). :func:`lean_fit_args` hands ``fit`` the same batches as plain
``from_tensor_slices(...).batch(...)`` datasets instead, whose iterators cost about 1 ms.

"The same batches": Keras shuffles training arrays with a random op whose seed is fixed once
``keras.utils.set_random_seed`` was called (as :func:`tpetune.keras.trial.fresh_session` does
before every fit), so every epoch of a fit sees *one* permutation. :func:`keras_order` asks
Keras' own array adapter for it, once per fit, and the lean dataset holds the rows in that
order: the fit is the same to the bit (``tests/keras/test_inputs.py``). Where Keras' adapter
cannot be reached (another Keras version or backend) or the fit uses anything else (sample or
class weights, ``validation_split``, ``steps_per_epoch``, nested inputs, no global seed), the
arguments are left as they are. Floats other than Keras' ``floatx`` are cast to it, as Keras'
adapter does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["keras_order", "lean_fit_args"]

_PASS_THROUGH = {"sample_weight", "class_weight", "validation_split", "steps_per_epoch"}


def lean_fit_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` of ``model.fit`` with array ``x``/``y`` (and array ``validation_data``) as
    lean datasets in Keras' batch order; unchanged when that does not apply (see module)."""
    out = dict(args)
    x: Any = out.get("x")
    y: Any = out.get("y")
    if not _plain(x, y) or _PASS_THROUGH & {k for k, v in out.items() if v is not None}:
        return out
    val = out.get("validation_data")
    if val is not None and not (isinstance(val, tuple) and len(val) == 2 and _plain(*val)):
        return out
    shuffle = out.get("shuffle", True)
    if not isinstance(shuffle, bool):
        return out  # shuffle="batch" shuffles within batches: not one permutation
    batch = int(out.get("batch_size") or 32)
    order = keras_order(len(x), batch, shuffle=shuffle)
    if order is None:
        return out
    import tensorflow as tf

    # The permuted copy is temporary: the dataset holds one copy of the data, as Keras' does.
    rows = (_as_keras(x)[order], _as_keras(y)[order])
    out["x"] = tf.data.Dataset.from_tensor_slices(rows).batch(batch)
    out.pop("y")
    out["shuffle"] = False  # a dataset's order is its own: this only silences Keras' warning
    out.pop("batch_size", None)
    if val is not None:
        val_batch = int(out.pop("validation_batch_size", None) or batch)
        val = (_as_keras(val[0]), _as_keras(val[1]))
        out["validation_data"] = tf.data.Dataset.from_tensor_slices(val).batch(val_batch)
    return out


def keras_order(n: int, batch_size: int, *, shuffle: bool = True) -> np.ndarray | None:
    """The row order in which Keras' array adapter feeds ``n`` rows to every epoch of a fit
    started now, or ``None`` when it cannot tell (not TensorFlow, no global seed, a Keras
    without this adapter)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    if not shuffle:
        return np.arange(n)
    import tensorflow as tf
    from tensorflow.python.eager import context

    if context.global_seed() is None:
        return None  # unseeded, Keras draws a new order every epoch: nothing to copy
    try:
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

        adapter = ArrayDataAdapter(np.arange(n), batch_size=batch_size, shuffle=True)
        batches = [
            np.asarray(b[0] if isinstance(b, tuple) else b) for b in adapter.get_tf_dataset()
        ]
    except (ImportError, TypeError, ValueError, tf.errors.OpError):
        return None
    order = np.concatenate(batches) if batches else np.arange(0)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        return None
    return order


def _as_keras(a: np.ndarray) -> np.ndarray:
    """``a`` as Keras' array adapter hands it on: floats other than ``floatx`` cast to it."""
    import keras

    floatx = keras.backend.floatx()
    if np.issubdtype(a.dtype, np.floating) and a.dtype != np.dtype(floatx):
        return a.astype(floatx)
    return a


def _plain(x: Any, y: Any) -> bool:
    """Two NumPy arrays of the same length (what Keras' array adapter would slice)."""
    return (
        isinstance(x, np.ndarray)
        and isinstance(y, np.ndarray)
        and x.ndim >= 1
        and len(x) == len(y)
        and len(x) > 0
    )
