"""scikit-learn's ``param_distributions`` as a hyperopt space, for :class:`TPESearchCV`.

``RandomizedSearchCV`` takes a dict (or a list of dicts) mapping estimator parameter names
to a list of values (sampled uniformly) or a ``scipy.stats`` distribution (sampled with
``rvs``). TPE needs to know the shape of each range, so each entry becomes the ``hp.*`` node
that samples the same values with the same probabilities at TPE's random start:

====================================  ===================================================
scikit-learn                          hyperopt
====================================  ===================================================
list, tuple or 1-d array              ``hp.choice`` of its items
``uniform(loc, scale)``               ``hp.uniform`` on ``[loc, loc + scale]``
``loguniform(a, b)`` / ``reciprocal`` ``hp.loguniform`` on ``[log a, log b]``
``randint(low, high)``                integers ``low .. high - 1``: ``quniform`` on
                                      ``[low - 0.5, high - 0.5]``, step 1, as ``int``
                                      (ordered, so TPE learns "larger is better")
``norm(loc, scale)``                  ``hp.normal(loc, scale)``
``lognorm(s, scale=e**mu)``           ``hp.lognormal(mu, s)``
an ``hp.*`` node                      itself (its label is kept)
====================================  ===================================================

A list of dicts becomes an ``hp.choice`` between the dicts (``RandomizedSearchCV`` also picks
a dict uniformly first); a name used in several dicts gets the label ``name[i]`` there.

A whole hyperopt space is accepted too: a dict whose values are ``hp.*`` nodes (nested
choices included) or one ``hp.*`` expression giving such a dict. A sampled value that is a
dict, under a key that is not one of the estimator's parameters, is merged into the candidate
(so ``{"model": hp.choice("model", [{"clf": SVC(), "clf__C": ...}, ...])}`` works), see
:func:`flatten_candidate`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tpetune.errors import SpaceError

#: The label of the choice between the dicts of a list of ``param_distributions``.
DICT_LABEL = "param_distributions"


def to_hyperopt(param_distributions: Any) -> Any:
    """The hyperopt space (an ``hp.*`` tree) for ``param_distributions``.

    Raises:
        SpaceError: an entry that is neither a list, a supported ``scipy.stats`` frozen
            distribution nor an ``hp.*`` node; the message names the entry and the fix.
    """
    from hyperopt import hp, pyll

    if isinstance(param_distributions, pyll.Apply):
        return param_distributions  # a whole hyperopt space
    if isinstance(param_distributions, Mapping):
        return _dict_space(param_distributions, {})
    if isinstance(param_distributions, Sequence) and not isinstance(param_distributions, str):
        dicts = list(param_distributions)
        if not dicts or not all(isinstance(d, Mapping) for d in dicts):
            raise SpaceError(
                "param_distributions must be a dict or a non-empty list of dicts; got "
                f"{param_distributions!r}"
            )
        seen: dict[str, int] = {}
        for d in dicts:
            for name in d:
                seen[name] = seen.get(name, 0) + 1
        branches = [
            _dict_space(d, {n: f"{n}[{i}]" for n in d if seen[n] > 1}) for i, d in enumerate(dicts)
        ]
        return branches[0] if len(branches) == 1 else hp.choice(DICT_LABEL, branches)
    raise SpaceError(
        "param_distributions must be a dict (name -> list or distribution), a list of such "
        f"dicts, or a hyperopt space; got {type(param_distributions).__name__}"
    )


def _dict_space(dist: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    if not dist:
        raise SpaceError("param_distributions holds an empty dict: give each one a parameter")
    return {str(name): node(labels.get(name, str(name)), value) for name, value in dist.items()}


def node(label: str, value: Any) -> Any:
    """The ``hp.*`` node sampling as ``RandomizedSearchCV`` samples ``value``.

    Raises:
        SpaceError: ``value`` has no hyperopt equivalent.
    """
    from hyperopt import hp, pyll

    if isinstance(value, pyll.Apply | Mapping):
        return value  # already hyperopt (a node, or a nested dict of nodes)
    if hasattr(value, "rvs"):
        return _distribution(label, value)
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1:
        value = value.tolist()  # numpy arrays (np.logspace(...)): plain Python values
    if isinstance(value, list | tuple) and not isinstance(value, str):
        if not value:
            raise SpaceError(f"param_distributions[{label!r}] is an empty list: give it values")
        return hp.choice(label, list(value))
    raise SpaceError(
        f"param_distributions[{label!r}] must be a list of values or a scipy.stats "
        f"distribution; got {value!r} (write [{value!r}] for a single value)"
    )


def _distribution(label: str, dist: Any) -> Any:
    """The hp node for a frozen ``scipy.stats`` distribution (see the module table)."""
    from hyperopt import hp
    from hyperopt.pyll import scope

    gen = getattr(dist, "dist", None)
    name = getattr(gen, "name", type(dist).__name__)
    try:
        shapes, loc, scale = gen._parse_args(*dist.args, **dist.kwds)  # type: ignore[union-attr]
    except Exception:
        shapes, loc, scale = None, None, None
    if shapes is not None:
        if name == "uniform":
            return hp.uniform(label, float(loc), float(loc + scale))
        if name in ("loguniform", "reciprocal") and loc == 0:
            low, high = dist.support()
            return hp.loguniform(label, math.log(low), math.log(high))
        if name == "randint":
            low, high = dist.support()  # inclusive integers
            return scope.int(hp.quniform(label, float(low) - 0.5, float(high) + 0.5, 1))
        if name == "norm":
            return hp.normal(label, float(loc), float(scale))
        if name == "lognorm" and loc == 0:
            return hp.lognormal(label, math.log(scale), float(shapes[0]))
    raise SpaceError(
        f"param_distributions[{label!r}] is a {name} distribution, which TPE cannot model: "
        "use uniform, loguniform, randint, norm or lognorm (loc 0 for the log ones) from "
        "scipy.stats, a list of values, or an hp.* node from hyperopt"
    )


def flatten_candidate(sample: Any, param_names: set[str]) -> dict[str, Any]:
    """The estimator parameters of one sampled point of the space.

    ``sample`` must be a dict; a value that is itself a dict is merged in (recursively) when
    its key is not an estimator parameter, so nested hyperopt choices of dicts become flat
    ``step__param`` candidates. A dict under a real parameter name (``class_weight``) stays.

    Raises:
        SpaceError: the point is not a dict, or two branches set the same parameter.
    """
    if not isinstance(sample, Mapping):
        raise SpaceError(
            "the space must give a dict of estimator parameters (name -> value); it gave "
            f"{sample!r}"
        )
    out: dict[str, Any] = {}
    for key, value in sample.items():
        parts = (
            flatten_candidate(value, param_names)
            if isinstance(value, Mapping) and key not in param_names
            else {key: value}
        )
        for name, item in parts.items():
            if name in out:
                raise SpaceError(f"the space sets estimator parameter {name!r} twice")
            out[name] = item
    return out
