"""Grid search over a space whose every parameter is discrete.

Discrete means ``hp.choice``/``hp.pchoice``, ``hp.randint`` and the bounded quantised
ranges ``hp.quniform``/``hp.qloguniform``. Nested branches expand per branch: a parameter
inside a choice's option is enumerated only with that option, so
``choice(a: {x in 1..3}, b: {})`` has 3 + 1 = 4 combinations, not 6.

:class:`GridSearch` is a hyperopt ``suggest`` function. It proposes the first combination
not yet in the study, so warm-start points and resumed studies are never repeated, and
proposes nothing once every combination was tried.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

from tpetune.errors import ConfigError
from tpetune.search.documents import vals_key, vals_of

log = logging.getLogger("tpetune")

#: Above this many combinations the grid is refused (enumerating it would not end).
MAX_COMBINATIONS = 1_000_000


def _literal(node: Any) -> Any:
    from hyperopt import pyll

    if not isinstance(node, pyll.Literal):
        raise ConfigError("grid search needs literal bounds for every hp.* range")
    return node.obj


def _values(label: str, dist: Any) -> list[Any]:
    """Every value a discrete distribution can take, in hyperopt's own encoding."""
    args = [_literal(a) for a in dist.pos_args]
    named = {k: _literal(v) for k, v in dist.named_args}
    if dist.name == "randint":
        low, high = (0, args[0]) if len(args) == 1 else (args[0], args[1])
        return list(range(int(low), int(high)))
    if dist.name == "categorical":
        return list(range(len(args[0])))
    if dist.name == "quniform":
        low, high, q = args
        return [k * q for k in range(round(low / q), round(high / q) + 1)]
    if dist.name == "qloguniform":
        low, high, q = args
        ks = range(round(math.exp(low) / q), round(math.exp(high) / q) + 1)
        return [k * q for k in ks if k > 0]
    raise ConfigError(
        f"grid search needs every parameter discrete, but {label} is continuous "
        f"({dist.name}{tuple(args) if args else ''}{named or ''}): make it hp.choice or "
        "hp.quniform, or use another Search(algo=...)"
    )


def enumerate_space(expr: Any) -> list[dict[str, Any]]:
    """All combinations as hyperopt flat assignments (choices as indices), in a stable order.

    Raises:
        ConfigError: a continuous parameter, or more than :data:`MAX_COMBINATIONS`.
    """
    memo: dict[int, list[dict[str, Any]]] = {}

    def walk(node: Any) -> list[dict[str, Any]]:
        if id(node) in memo:
            return memo[id(node)]
        if node.name == "switch" and node.pos_args[0].name == "hyperopt_param":
            param = node.pos_args[0]
            label = str(param.arg["label"].obj)
            out = [
                {label: i, **combo}
                for i, option in enumerate(node.pos_args[1:])
                for combo in walk(option)
            ]
        elif node.name == "hyperopt_param":
            label = str(node.arg["label"].obj)
            out = [{label: v} for v in _values(label, node.arg["obj"])]
        else:
            out = [{}]
            for child in node.inputs():
                sub = walk(child)
                if len(out) * len(sub) > MAX_COMBINATIONS:
                    raise ConfigError(
                        f"the grid has more than {MAX_COMBINATIONS:,} combinations: narrow "
                        "the space or use Search(algo='tpe')"
                    )
                out = [{**a, **b} for a, b in itertools.product(out, sub)]
        memo[id(node)] = out
        return out

    unique: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
    for combo in walk(expr):
        unique.setdefault(tuple(sorted(combo.items())), combo)
    return list(unique.values())


class GridSearch:
    """A hyperopt ``suggest`` function walking the grid of a :class:`tpetune.search.space.Space`.

    It reads which points were proposed, never a loss, so it must see every proposed trial,
    running ones included (``reads_losses`` False: a lagged driver shows it all of them).
    """

    reads_losses = False

    def __init__(self, space: Any) -> None:
        self.combinations = enumerate_space(space.expr)
        log.info("grid search: %d combinations", len(self.combinations))

    def __len__(self) -> int:
        return len(self.combinations)

    def __call__(self, new_ids: list[int], domain: Any, trials: Any, seed: int) -> list[dict]:
        tried = {vals_key(vals_of(doc)) for doc in trials.trials}
        pending = (c for c in self.combinations if vals_key(c) not in tried)
        return [
            combination_doc(combo, tid, domain, trials)
            for tid, combo in zip(new_ids, pending, strict=False)
        ]


def combination_doc(combo: dict[str, Any], tid: int, domain: Any, trials: Any) -> dict[str, Any]:
    """hyperopt's proposal document for trial ``tid`` at ``combo`` (an :func:`enumerate_space`
    combination)."""
    labels = domain.params.keys()
    misc = {
        "tid": tid,
        "cmd": domain.cmd,
        "workdir": domain.workdir,
        "idxs": {k: [tid] if k in combo else [] for k in labels},
        "vals": {k: [combo[k]] if k in combo else [] for k in labels},
    }
    return dict(trials.new_trial_docs([tid], [None], [domain.new_result()], [misc])[0])
