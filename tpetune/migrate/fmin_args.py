"""hyperopt's ``fmin`` arguments in tpetune's terms: the algorithm, the seed, the study folder.

Used by :func:`tpetune.migrate.fmin.fmin` (the drop-in) and the Trials importer.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tpetune.errors import ConfigError
from tpetune.search.space import Space


def algo_spec(algo: Any) -> tuple[str, dict[str, Any]]:
    """tpetune's algorithm name and knobs for a hyperopt ``algo`` argument.

    Raises:
        ConfigError: anything but hyperopt's suggest functions (tpetune seeds each proposal
            from the study seed and the trial id, so it calls the algorithm itself).
    """
    from hyperopt import anneal, atpe, rand, tpe

    if algo is None:
        return "tpe", hyperopt_tpe_defaults()
    options: dict[str, Any] = {}
    func = algo
    while isinstance(func, functools.partial):
        if func.args:
            raise ConfigError(f"algo {algo!r}: give the knobs by keyword (n_startup_jobs=...)")
        options = {**func.keywords, **options}
        func = func.func
    known = {tpe.suggest: "tpe", rand.suggest: "rand", anneal.suggest: "anneal"}
    known[atpe.suggest] = "atpe"
    by_name = {f"{f.__module__}.{f.__name__}": n for f, n in known.items()}
    name = known.get(func) or by_name.get(
        f"{getattr(func, '__module__', '')}.{getattr(func, '__name__', '')}"
    )
    if name is None:
        raise ConfigError(
            f"algo {algo!r} is not one of hyperopt's tpe.suggest, rand.suggest, anneal.suggest, "
            "atpe.suggest (or functools.partial(tpe.suggest, n_startup_jobs=...)): tpetune "
            "calls the algorithm itself to seed each proposal"
        )
    if name == "tpe":  # tpetune's own default startup differs: keep hyperopt's, as fmin would
        options = {**hyperopt_tpe_defaults(), **options}
    return name, options


def hyperopt_tpe_defaults() -> dict[str, Any]:
    """``n_startup_jobs`` as ``tpe.suggest`` defaults it (tpetune's own default scales with
    ``max_evals``; a drop-in must propose what hyperopt.fmin proposes)."""
    from hyperopt import tpe

    default = inspect.signature(tpe.suggest).parameters["n_startup_jobs"].default
    return {"n_startup_jobs": int(default)}


def study_seed(rstate: Any) -> int | None:
    """The study seed tpetune.fmin uses for ``rstate`` (one draw of ``2**31 - 1``).

    ``None`` (the study's default: 0, or the stored seed on resume) when ``rstate`` is
    ``None`` and ``HYPEROPT_FMIN_SEED`` is not set.
    """
    import numpy as np

    if rstate is None:
        env = os.environ.get("HYPEROPT_FMIN_SEED", "")
        if not env:
            return None
        rstate = np.random.default_rng(int(env))
    if isinstance(rstate, int):
        return int(rstate)
    if hasattr(rstate, "integers"):
        return int(rstate.integers(2**31 - 1))
    if hasattr(rstate, "randint"):
        return int(rstate.randint(2**31 - 1))
    raise ConfigError(f"rstate must be a numpy.random.Generator; got {type(rstate).__name__}")


def default_study_dir(
    fn: Callable[..., Any],
    space: Space,
    seed: int | None = None,
    algo: str = "tpe",
    options: Mapping[str, Any] | None = None,
    points: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """``runs/fmin-<fn name>-<hash>``, the hash over the space's fingerprint, algo, its knobs,
    the seed and the points to evaluate first: another function, space, algo, rstate or
    points is another study, and re-running the same script resumes its own."""
    import hashlib
    import json

    name = getattr(fn, "__name__", type(fn).__name__).strip("<>") or "fn"
    from tpetune._io import jsonable

    key = json.dumps(
        jsonable([space.fingerprint, algo, dict(options or {}), seed, list(points)]),
        sort_keys=True,
    )
    return Path("runs") / f"fmin-{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
