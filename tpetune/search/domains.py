"""What each hyperparameter of a space is: its label, distribution, options, bounds and grid.

:func:`collect_params` reads them off a hyperopt graph once (refusing one no value can be
drawn from: low above high, an empty choice, a step ``q <= 0``, before any study exists), and
:func:`numeric_value` checks a value a person gives (a warm-start point) against them: a
number, finite, inside the bounds, and on a quantised distribution's grid, so the params a
study stores are the ones its objective receives.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from tpetune._io import jsonable
from tpetune.errors import SpaceError

__all__ = ["Param", "collect_params", "numeric_value"]

#: hyperopt distributions whose samples are whole numbers when their ``q`` is whole.
QUANTISED = {"quniform", "qloguniform", "qnormal", "qlognormal"}


@dataclass(frozen=True)
class Param:
    """One hyperparameter of a space, as a person reads it (``description``) and checks it."""

    label: str
    dist: str
    description: str
    integer: bool
    options: tuple[Any, ...] | None  # a choice's option values; None for numeric params
    bounds: tuple[float, float] | None = None  # the values a bounded distribution can take
    q: float | None = None  # a quantised distribution's step: its values are multiples of it


def numeric_value(p: Param, value: Any, *, bounds: bool = True) -> float:
    """``value`` for numeric param ``p`` as a float, refused when it cannot be one of its."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpaceError(f"{p.label}={value!r} must be a number ({p.label} is {p.description})")
    number = float(value)
    if not math.isfinite(number):
        raise SpaceError(f"{p.label}={value!r} must be a finite number")
    if bounds and p.bounds is not None and not p.bounds[0] <= number <= p.bounds[1]:
        low, high = p.bounds
        raise SpaceError(
            f"{p.label}={value!r} is outside the values {p.description} can take "
            f"[{low:g}, {high:g}]"
        )
    if bounds and p.q is not None and not _on_grid(number, p.q):
        below = math.floor(number / p.q) * p.q
        raise SpaceError(
            f"{p.label}={value!r} is not a value {p.description} takes (multiples of {p.q:g}; "
            f"{below:g} or {below + p.q:g}): give one of them"
        )
    return number


def _on_grid(number: float, q: float) -> bool:
    steps = number / q
    return abs(steps - round(steps)) <= 1e-9 * max(1.0, abs(steps))


def collect_params(expr: Any) -> dict[str, Param]:
    from hyperopt import pyll

    nodes = pyll.toposort(expr)
    choice_options: dict[int, tuple[Any, ...]] = {}
    for node in nodes:
        # hp.choice / hp.pchoice are switch(hyperopt_param(label, randint|categorical), *options)
        if node.name == "switch" and node.pos_args and node.pos_args[0].name == "hyperopt_param":
            opts = node.pos_args[1:]
            choice_options[id(node.pos_args[0])] = tuple(
                _option_value(opt, i) for i, opt in enumerate(opts)
            )
    params: dict[str, Param] = {}
    for node in nodes:
        if node.name != "hyperopt_param":
            continue
        label = str(node.arg["label"].obj)
        dist = node.arg["obj"]
        args = [jsonable(a.obj) if isinstance(a, pyll.Literal) else "?" for a in dist.pos_args]
        args += [
            f"{k}={jsonable(v.obj) if isinstance(v, pyll.Literal) else '?'}"
            for k, v in dist.named_args
        ]
        options = choice_options.get(id(node))
        if options is not None:
            description = f"choice{json.dumps(list(options))}"
        else:
            description = f"{dist.name}({', '.join(map(str, args))})"
        q = args[-1] if dist.name in QUANTISED and args else None
        step = float(q) if isinstance(q, int | float) and not isinstance(q, bool) else None
        integer = dist.name == "randint" or (step is not None and step.is_integer())
        param = Param(label, dist.name, description, integer, options, _bounds(dist), step)
        _check_possible(param)
        params[label] = param
    return params


def _check_possible(p: Param) -> None:
    """Refuse a hyperparameter no value can be drawn from (hyperopt fails at its first draw,
    deep in TPE, after the study exists)."""
    if p.options is not None and not p.options:
        raise SpaceError(f"{p.label}: {p.description} has no options; give it at least one")
    if p.bounds is not None and p.bounds[0] > p.bounds[1]:
        if p.dist == "randint":
            raise SpaceError(f"{p.label}: {p.description} has no values: raise its upper bound")
        raise SpaceError(
            f"{p.label}: {p.description} has its low end above its high end; swap them"
        )
    if p.q is not None and not p.q > 0:
        raise SpaceError(f"{p.label}: {p.description} needs a step q > 0")


def _bounds(dist: Any) -> tuple[float, float] | None:
    """[low, high] of a bounded distribution node (``None``: unbounded or not literal)."""
    from hyperopt import pyll

    args = [a.obj for a in dist.pos_args if isinstance(a, pyll.Literal)]
    if len(args) != len(dist.pos_args) or not all(isinstance(a, int | float) for a in args):
        return None
    if dist.name in ("uniform", "quniform") and len(args) >= 2:
        return float(args[0]), float(args[1])
    if dist.name in ("loguniform", "qloguniform") and len(args) >= 2:
        return math.exp(args[0]), math.exp(args[1])
    if dist.name == "randint" and args:
        low, high = (0, args[0]) if len(args) == 1 else (args[0], args[1])
        return float(low), float(high) - 1
    return None


def _option_value(opt: Any, index: int) -> Any:
    """What a person calls a choice's option: the constant itself, or a branch's constant part."""
    from hyperopt import pyll

    def has_hp(node: Any) -> bool:
        return any(n.name == "hyperopt_param" for n in pyll.dfs(node))

    if opt.name == "dict":
        const = {k: jsonable(pyll.rec_eval(v)) for k, v in opt.named_args if not has_hp(v)}
        if len(const) == 1:
            return next(iter(const.values()))
        return const if const else f"option {index}"
    if not has_hp(opt):
        return jsonable(pyll.rec_eval(opt))
    return f"option {index}"
