"""Which Keras backend trials train on: TensorFlow (the default) or JAX.

Keras 3 picks its backend once per process, when ``keras`` is first imported, from the
``KERAS_BACKEND`` environment variable. :func:`use_backend` sets it in this process before
Keras is imported; worker processes started afterwards inherit it (they copy the environment
when the executor is built), so a study's trials and its report's fits all train on it. A
process that already imported Keras with another backend cannot switch: that is refused with
a message saying so.

JAX compiles each train step with XLA the first time it meets a model's shapes (3–6 s per
trial on the stock LSTM, about twice TensorFlow's tracing), then runs each epoch several times
faster (docs/benchmarks.md, "Cheaper fits"). With ``cache_dir``, compiled programs are kept in a
persistent cache there (the bundled studies use ``STUDY/jax_cache``), so a shape met again,
in a later trial, a worker process or a resumed run, compiles once.

JAX is an optional extra: ``pip install 'tpetune[jax]'`` (or ``pip install jax``).

For your own objective (a :class:`~tpetune.keras.trial.KerasTrial` or any Keras code), call
``use_backend("jax", cache_dir=...)`` at the top of the script, before anything imports Keras,
or set ``KERAS_BACKEND=jax`` in the shell.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tpetune.errors import ConfigError, MissingDependencyError

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "add_backend_argument", "study_backend", "use_backend"]

#: The backends tpetune supports and tests, the default first.
BACKENDS = ("tensorflow", "jax")
DEFAULT_BACKEND = "tensorflow"
#: The bundled studies' persistent XLA cache, in the study folder.
JAX_CACHE = "jax_cache"


def use_backend(name: str, *, cache_dir: str | Path | None = None) -> None:
    """Train on Keras backend ``name`` in this process and the workers it starts later.

    Args:
        name: one of :data:`BACKENDS`.
        cache_dir: JAX only: a folder for the persistent compilation cache (created by JAX).

    Raises:
        ConfigError: an unknown name, or Keras is already imported with another backend.
        MissingDependencyError: ``jax`` is not installed.
    """
    if name not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    if name == "jax" and importlib.util.find_spec("jax") is None:
        raise MissingDependencyError(
            "the JAX backend needs jax: pip install 'tpetune[jax]' (or pip install jax)"
        )
    keras = sys.modules.get("keras")
    current = keras.backend.backend() if keras is not None else None
    if current is not None and current != name:
        raise ConfigError(
            f"Keras is already imported in this process with the {current} backend, and it "
            f"picks its backend once, at import: call use_backend({name!r}) (or set "
            f"KERAS_BACKEND={name}) before anything imports Keras"
        )
    os.environ["KERAS_BACKEND"] = name
    if name == "jax" and cache_dir is not None:
        # JAX's own threshold stays (programs compiling in over a second are kept): caching
        # the many tiny eager programs (initializers) as well writes hundreds of files.
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)


def add_backend_argument(group: Any) -> None:
    """The bundled studies' ``--backend`` flag."""
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        help="Keras backend the trials and the report train on (default tensorflow; jax needs "
        "pip install jax and keeps compiled steps in STUDY/jax_cache; stored on resume)",
    )


def study_backend(
    backend: str | None, stored: Mapping[str, Any], *, study_dir: Path
) -> dict[str, Any]:
    """Apply a bundled study's backend (``None``: the stored one, else the default) with
    :func:`use_backend`; return the ``objective_config`` entry to store: none for the
    default, so studies made before the flag resume unchanged, ``{"backend": name}`` else.

    Raises:
        ConfigError: as :func:`use_backend`, or resuming a study (``stored`` not empty) with
            another backend than it was made with (its trials would mix two backends).
        MissingDependencyError: as :func:`use_backend`.
    """
    made_with = stored.get("backend", DEFAULT_BACKEND) if stored else None  # None: a new study
    name = backend or made_with or DEFAULT_BACKEND
    if made_with is not None and name != made_with:
        raise ConfigError(
            f"study {study_dir} was made with the {made_with} backend, not {name}: leave "
            "--backend out to resume it, or use --fresh or another --study-dir"
        )
    use_backend(name, cache_dir=Path(study_dir) / JAX_CACHE if name == "jax" else None)
    return {} if name == DEFAULT_BACKEND else {"backend": name}
