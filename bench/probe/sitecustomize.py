"""Time probe of bench/breakdown.py, loaded by every Python process of a measured run.

``bench/breakdown.py`` puts this folder first on ``PYTHONPATH`` and sets
``TPETUNE_BREAKDOWN`` to a folder; Python then imports this file at start-up in the driver and
in every worker process (they inherit the environment). It changes nothing the run computes:
it wraps a few functions as their modules are first imported and appends one JSON line per
timed call to ``<folder>/<pid>.jsonl``: ``{"cat": ..., "t0": ..., "t1": ...}`` (``time.time``).

Categories: ``boot`` (this process started), ``import_keras`` (the first ``import`` of Keras,
TensorFlow or JAX; nested), ``fit`` (one ``Model.fit``), ``train_step`` / ``val_step`` / ``predict``
(one call of Keras' compiled train/test/predict function after its first), ``trace`` (a
first call: tracing and compiling; ``trace_fit`` inside ``fit``), ``clear_session``,
``save`` (``Model.save``), ``trial`` (``run_trial`` of ``tpetune.executors``), ``tune``
(``tpetune.tune``), ``report`` (``tpetune.bundled.best_trial_report``: the final
report, wherever its fits run). The same probe runs on the baseline commit's code, which has
the same functions.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import json
import os
import sys
import threading
import time
from typing import Any

_DIR = os.environ.get("TPETUNE_BREAKDOWN")
_LOCK = threading.Lock()
_STATE = threading.local()


def _emit(cat: str, t0: float, t1: float) -> None:
    if not _DIR:
        return
    line = json.dumps({"cat": cat, "t0": t0, "t1": t1}) + "\n"
    with _LOCK, open(os.path.join(_DIR, f"{os.getpid()}.jsonl"), "a") as out:
        out.write(line)


def _timed(cat: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            _emit(cat, t0, time.time())

    wrapper.__breakdown__ = True  # type: ignore[attr-defined]
    return wrapper


def _first_call_traces(cat: str, fn: Any) -> Any:
    """A compiled step function: its first call traces (and compiles), later ones run."""
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            calls[0] += 1
            traced = calls[0] == 1
            in_fit = getattr(_STATE, "in_fit", False)
            _emit(("trace_fit" if in_fit else "trace") if traced else cat, t0, time.time())

    wrapper.__breakdown__ = True  # type: ignore[attr-defined]
    return wrapper


def _patch_trainer(cls: Any) -> None:
    for maker, attr, cat in (
        ("make_train_function", "train_function", "train_step"),
        ("make_test_function", "test_function", "val_step"),
        ("make_predict_function", "predict_function", "predict"),
    ):
        original = getattr(cls, maker, None)
        if original is None or getattr(original, "__breakdown__", False):
            continue

        def make(self: Any, *args: Any, _o: Any = original, _a: str = attr, _c: str = cat,
                 **kwargs: Any) -> Any:  # fmt: skip
            made = _o(self, *args, **kwargs)
            fn = getattr(self, _a, None)
            if fn is not None and not getattr(fn, "__breakdown__", False):
                setattr(self, _a, _first_call_traces(_c, fn))
            return made

        make.__breakdown__ = True  # type: ignore[attr-defined]
        setattr(cls, maker, make)


def _patch_keras(keras: Any) -> None:
    model = keras.Model
    fit = model.fit

    @functools.wraps(fit)
    def timed_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        _STATE.in_fit = True
        t0 = time.time()
        try:
            return fit(self, *args, **kwargs)
        finally:
            _STATE.in_fit = False
            _emit("fit", t0, time.time())

    model.fit = timed_fit
    model.save = _timed("save", model.save)
    keras.backend.clear_session = _timed("clear_session", keras.backend.clear_session)
    for name in ("tensorflow", "jax", "torch"):
        module = sys.modules.get(f"keras.src.backend.{name}.trainer")
        for value in vars(module).values() if module else ():
            if isinstance(value, type) and value.__name__.endswith("Trainer"):
                _patch_trainer(value)


def _patch_module(name: str, module: Any) -> None:
    if name == "keras":
        _patch_keras(module)
    elif name in ("tpetune.executors", "tpetune.executors.base"):
        if hasattr(module, "run_trial"):  # the package itself after issue 22's layout
            module.run_trial = _timed("trial", module.run_trial)
    elif name in ("tpetune.tuning", "tpetune.engine.tuning"):
        module.tune = _timed("tune", module.tune)
    elif name == "tpetune.bundled":
        module.best_trial_report = _timed("report", module.best_trial_report)


#: Flat layout (the baseline) and issue 22's folders.
_IMPORTS = ("keras", "tensorflow", "jax")  # nested imports: bench/breakdown.py takes the union
_WATCHED = {
    *_IMPORTS,
    "tpetune.executors",
    "tpetune.executors.base",
    "tpetune.tuning",
    "tpetune.engine.tuning",
    "tpetune.bundled",
}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs :func:`_patch_module` right after a watched module is first executed."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in _WATCHED:
            return None
        _WATCHED.discard(name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        execute = loader.exec_module

        def exec_module(module: Any) -> None:
            t0 = time.time()
            execute(module)
            if name in _IMPORTS:
                _emit("import_keras", t0, time.time())
            _patch_module(name, module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if _DIR:
    _emit("boot", time.time(), time.time())
    sys.meta_path.insert(0, _AfterImport())
