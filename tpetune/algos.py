"""Search algorithms by name, with their knobs validated once at the boundary.

Every algorithm is a hyperopt ``suggest(new_ids, domain, trials, seed) -> docs`` function.
The driver calls it with a seed derived from (study seed, trial id), never from a running
random stream, so proposals do not depend on how often a study was interrupted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from tpetune.errors import ConfigError, MissingDependencyError

Suggest = Callable[[list[int], Any, Any, int], list[dict[str, Any]]]

ALGOS = ("tpe", "rand", "anneal", "atpe", "grid")
#: Knobs of hyperopt's tpe.suggest that users may set (``--tpe-startup`` etc. in the CLI).
TPE_OPTIONS = ("n_startup_jobs", "gamma", "n_EI_candidates", "prior_weight")


def resolve(name: str, options: Mapping[str, Any] | None = None, *, space: Any = None) -> Suggest:
    """The suggest function for ``name``.

    Args:
        name: one of :data:`ALGOS`.
        options: algorithm knobs (only TPE has any: :data:`TPE_OPTIONS`).
        space: the :class:`tpetune.space.Space`, needed by ``grid``.

    Raises:
        ConfigError: unknown name or knob.
        MissingDependencyError: ``atpe`` without its extra packages.
    """
    options = dict(options or {})
    if name not in ALGOS:
        raise ConfigError(f"unknown algo {name!r}: choose one of {', '.join(ALGOS)}")
    if options and name != "tpe":
        raise ConfigError(f"options {sorted(options)} apply to --algo tpe only, not {name!r}")
    unknown = sorted(set(options) - set(TPE_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown TPE option(s) {unknown}: known are {list(TPE_OPTIONS)}")
    if name == "tpe":
        from hyperopt import tpe

        _check_tpe(options)
        return functools.partial(tpe.suggest, **options) if options else tpe.suggest
    if name == "rand":
        from hyperopt import rand

        return rand.suggest
    if name == "anneal":
        from hyperopt import anneal

        return anneal.suggest
    if name == "atpe":
        try:
            import lightgbm  # noqa: F401  # atpe needs it at suggest time
            from hyperopt import atpe
        except ImportError:
            raise MissingDependencyError(
                "--algo atpe needs lightgbm and scikit-learn: pip install lightgbm scikit-learn"
            ) from None
        return atpe.suggest
    from tpetune.grid import GridSearch

    if space is None:
        raise ConfigError("--algo grid needs the space")
    return GridSearch(space)


def _check_tpe(options: Mapping[str, Any]) -> None:
    gamma = options.get("gamma")
    if gamma is not None and not 0 < float(gamma) < 1:
        raise ConfigError(f"TPE gamma must lie in (0, 1); got {gamma}")
    for key in ("n_startup_jobs", "n_EI_candidates"):
        value = options.get(key)
        if value is not None and (int(value) != value or value < (0 if key[2] == "s" else 1)):
            raise ConfigError(f"TPE {key} must be a non-negative integer; got {value}")
