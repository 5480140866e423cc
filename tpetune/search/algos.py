"""Search algorithms by name, from one table, with their knobs validated once at the boundary.

Every algorithm is a hyperopt ``suggest(new_ids, domain, trials, seed) -> docs`` function.
The driver calls it with a seed derived from (study seed, trial id), never from a running
random stream, so proposals do not depend on how often a study was interrupted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from tpetune._io import check_int
from tpetune.errors import ConfigError, MissingDependencyError

Suggest = Callable[[list[int], Any, Any, int], list[dict[str, Any]]]

#: Knobs of hyperopt's tpe.suggest that users may set (``--tpe-startup`` etc. in the CLI).
TPE_OPTIONS = ("n_startup_jobs", "gamma", "n_EI_candidates", "prior_weight")


def tpe_startup(max_evals: int) -> int:
    """Random trials before TPE models the history, for a new study of ``max_evals`` trials.

    hyperopt's fixed 20 makes a study of up to 20 trials pure random search; here at most half
    the budget is random (at least 5), and from 40 trials on it is hyperopt's 20. The
    recorded-curves benchmark (docs/benchmarks.md, "Recorded-curves replay") found no rule that
    beats 20 at 80 trials, and fewer random trials (8 at 80, 6 at 30) reaching the target later,
    so the rule keeps 20 wherever the budget allows it and only stops small studies from being
    random search.
    """
    return min(20, max(5, max_evals // 2))


def _tpe(options: Mapping[str, Any], space: Any) -> Suggest:
    from hyperopt import tpe

    return functools.partial(tpe.suggest, **options) if options else tpe.suggest


def _rand(options: Mapping[str, Any], space: Any) -> Suggest:
    from hyperopt import rand

    return rand.suggest


def _anneal(options: Mapping[str, Any], space: Any) -> Suggest:
    from hyperopt import anneal

    return anneal.suggest


def _atpe(options: Mapping[str, Any], space: Any) -> Suggest:
    try:
        import lightgbm  # noqa: F401  # atpe needs it at suggest time
        from hyperopt import atpe
    except ImportError:
        raise MissingDependencyError(
            "Search(algo='atpe') needs lightgbm and scikit-learn: pip install lightgbm scikit-learn"
        ) from None
    return atpe.suggest


def _grid(options: Mapping[str, Any], space: Any) -> Suggest:
    from tpetune.search.grid import GridSearch

    if space is None:
        raise ConfigError("Search(algo='grid') needs the space")
    return GridSearch(space)


class Algo(NamedTuple):
    """One algorithm: how to build its suggest function and which knobs it takes."""

    build: Callable[[Mapping[str, Any], Any], Suggest]
    options: tuple[str, ...] = ()


ALGO_TABLE: dict[str, Algo] = {
    "tpe": Algo(_tpe, TPE_OPTIONS),
    "rand": Algo(_rand),
    "anneal": Algo(_anneal),
    "atpe": Algo(_atpe),
    "grid": Algo(_grid),
}
ALGOS = tuple(ALGO_TABLE)


def check(name: str, options: Mapping[str, Any] | None = None) -> None:
    """Validate an algorithm name and its knobs.

    Raises:
        ConfigError: unknown name, or a knob the algorithm does not take or a bad value.
    """
    options = dict(options or {})
    if name not in ALGO_TABLE:
        raise ConfigError(f"unknown Search(algo={name!r}): choose one of {', '.join(ALGOS)}")
    known = ALGO_TABLE[name].options
    unknown = sorted(set(options) - set(known))
    if unknown and not known:
        raise ConfigError(
            f"Search(options={sorted(options)}) apply to Search(algo='tpe') only, not {name!r}"
        )
    if unknown:
        raise ConfigError(f"unknown TPE option(s) {unknown}: known are {list(known)}")
    if name == "tpe":
        _check_tpe(options)


def resolve(name: str, options: Mapping[str, Any] | None = None, *, space: Any = None) -> Suggest:
    """The suggest function for ``name`` with ``options``.

    Raises:
        ConfigError: see :func:`check`.
        MissingDependencyError: ``atpe`` without its extra packages.
    """
    check(name, options)
    return ALGO_TABLE[name].build(dict(options or {}), space)


def _check_tpe(options: Mapping[str, Any]) -> None:
    gamma = options.get("gamma")
    if gamma is not None and not 0 < float(gamma) < 1:
        raise ConfigError(f"TPE gamma must lie in (0, 1); got {gamma}")
    for key, low in (("n_startup_jobs", 0), ("n_EI_candidates", 1)):
        value = options.get(key)
        if value is not None:
            check_int(f"TPE {key}", value, low)
