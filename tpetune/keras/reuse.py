"""Compiled-model reuse: trace a model's train, test and predict steps once per process, not once
per fit.

On TensorFlow, Keras traces a new model's train step, its validation step and its predict step
the first time each runs: 1.5–3.5 s per fit for this project's models, paid again for every fold
of a cross-validated trial and every re-fit of the same configuration, although the graphs are
the same. :func:`reuse_compiled` hands back the model the previous fit in this thread trained
when the new one is the *same compiled model* — equal architecture config and equal compile
config (optimizer, loss, metrics, ``steps_per_execution``), apart from a plain-float learning
rate, which Keras keeps in a variable the traced step reads — with the new model's state copied
into it:

- every model variable (weights, and the dropout layers' seed-generator states), so the
  initial weights and dropout masks are those the new model would have had;
- every optimizer variable, from the new model's optimizer built fresh (step counter 0, zeroed
  or initial slots, its learning rate), so no momentum or schedule step carries over;
- the metrics, reset; and the per-fit state callbacks leave on a model (the epoch a restored
  backup resumes from, a stop request), the new model's.

The reused model then trains, validates and predicts exactly as the new one would (tested to
the bit in ``tests/keras/test_reuse.py``), minus the tracing. Anything else differing — layer
sizes, an activation, a dropout rate, a learning-rate schedule, which variables are trainable
(a callback unfroze layers of the previous fit's model) — keeps the new model. (A new
batch size is not in either config: Keras retraces the reused model's step for the new input
shape, which is correct, only not faster.)

Only models made entirely of Keras' own objects are reused: an equal config means an equal
step only when every layer, loss, metric and schedule is fully described by its config. A
user's layer, model subclass, loss or metric function (a closure serialises by its name
alone: ``focal(gamma=2)`` and ``focal(gamma=5)`` look alike), a ``Lambda`` layer, a lookup
layer with an adapted table or a stateful RNN keeps the new model; so does any error while
comparing or copying (reuse only saves time).

The model a fit returns is the next matching fit's model: use it (predict, save, score)
before the next fit in the same thread, or copy its weights; :func:`forget` drops it.
In practice a process traces once per distinct compiled configuration: once per trial, and
a cross-validated trial's folds share it.

TensorFlow only: on JAX a reused model did not train to the bit what a fresh one does, and
JAX's persistent compilation cache already compiles a repeated shape once.

Anchor: what TensorFlow's ``tf.function`` itself does for a Python function called again with
the same input signature; Keras ties its traced functions to the model object, so the reuse
is of the object. One model is kept per thread (the last one trained), so memory holds one
extra model at most; workers are separate processes and keep their own.
"""

from __future__ import annotations

import json
import threading
from typing import Any

__all__ = ["compile_signature", "forget", "reuse_compiled"]

_last = threading.local()  # .model, .signature: the model the previous fit in this thread used


def compile_signature(model: Any) -> str | None:
    """A string equal for two compiled models whose traced steps are interchangeable, or
    ``None`` when ``model`` is not compiled (or its configs do not serialise)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        # JAX compiles once per shape through its own cache (tpetune.keras.backend), and its
        # trainer keeps state outside the variables between fits: reuse there is not exact.
        return None
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        return None
    try:
        if any(getattr(layer, "stateful", False) for layer in model._flatten_layers()):
            return None  # a stateful RNN's carried states are the user's to manage
        compile_config = dict(model.get_compile_config() or {})
        optimizer = compile_config.get("optimizer")
        if isinstance(optimizer, dict):
            inner = dict(optimizer.get("config") or {})
            if isinstance(inner.get("learning_rate"), float):
                inner.pop("learning_rate")  # a variable: read by the step, copied below
            compile_config["optimizer"] = {**optimizer, "config": inner}
        architecture = json.loads(model.to_json())
        architecture.pop("compile_config", None)  # compared below, without the learning rate
        if not _keras_only(architecture) or not _keras_only(compile_config):
            return None
        parts = [
            architecture,
            compile_config,
            int(getattr(model, "steps_per_execution", 1)),
            bool(getattr(model, "run_eagerly", False)),
        ]
        return json.dumps(parts, sort_keys=True, default=repr)
    except Exception:  # a config that does not serialise: reuse is only an optimisation
        return None


def reuse_compiled(model: Any) -> Any:
    """The previous fit's model of this thread carrying ``model``'s state, when both have the
    same :func:`compile_signature`; else ``model`` itself, remembered for the next call.

    Call it on a freshly built and compiled model, before ``fit``; train what it returns.
    """
    signature = compile_signature(model)
    previous = getattr(_last, "model", None)
    if signature is None or previous is None or getattr(_last, "signature", None) != signature:
        _last.model, _last.signature = (None, None) if signature is None else (model, signature)
        return model
    try:
        _copy_state(model, previous)
    except Exception:
        # A variable layout that does not line up (a model building lazily, say), or any
        # other surprise: use the new model, as if never cached (reuse only saves time).
        _last.model, _last.signature = model, signature
        return model
    return previous


#: Keras' own layers whose traced step depends on more than their config and variables: a
#: Lambda's Python function (serialised by name), a lookup layer's adapted table.
_NOT_BY_CONFIG = frozenset(
    {"Lambda", "StringLookup", "IntegerLookup", "IndexLookup", "TextVectorization", "TFSMLayer"}
)


def _keras_only(config: Any) -> bool:
    """Whether every object in a serialised config is Keras' own (module ``keras...``, no
    user registration) and none is in :data:`_NOT_BY_CONFIG`: only then does an equal config
    mean an equal traced step. A user's layer, loss, metric or function (a closure serialises
    by its name alone, so ``focal(gamma=2)`` and ``focal(gamma=5)`` look alike) is never
    reused."""
    if isinstance(config, list):
        return all(_keras_only(v) for v in config)
    if not isinstance(config, dict):
        return True
    name = config.get("class_name")
    if isinstance(name, str) and not name.startswith("__"):  # "__keras_tensor__": a link
        module = config.get("module")
        registered = config.get("registered_name")
        if not (isinstance(module, str) and (module == "keras" or module.startswith("keras."))):
            return False
        if registered not in (None, name) or name in _NOT_BY_CONFIG:
            return False
    return all(_keras_only(v) for v in config.values())


def forget() -> None:
    """Drop this thread's remembered model (its memory, and its traced steps)."""
    _last.model = _last.signature = None


def _copy_state(source: Any, target: Any) -> None:
    """Assign ``source``'s model and optimizer variables to ``target``'s; reset its metrics."""
    if [v.trainable for v in target.variables] != [v.trainable for v in source.variables]:
        # A callback froze or unfroze layers of the previous fit's model: its optimizer was
        # built for other variables. Checked before building ``source``'s optimizer below,
        # which would otherwise stay built for a fit that may change them again.
        raise ValueError("the models train different variables")
    pairs = list(zip(target.variables, source.variables, strict=True))
    for optimizer_owner in (source, target):
        optimizer = optimizer_owner.optimizer
        if not optimizer.built:
            optimizer.build(optimizer_owner.trainable_variables)
    pairs += zip(target.optimizer.variables, source.optimizer.variables, strict=True)
    for to, frm in pairs:
        if tuple(to.shape) != tuple(frm.shape):
            raise ValueError(f"variable {to.path} has shape {to.shape}, not {frm.shape}")
    for to, frm in pairs:
        to.assign(frm.value)
    target.reset_metrics()
    # Set by a restoring BackupAndRestore in on_train_begin and read by every later fit.
    target._initial_epoch = getattr(source, "_initial_epoch", None)
    target.stop_training = False
