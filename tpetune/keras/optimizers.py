"""Keras optimizers from a search space's ``optimizer`` branch, shared by the bundled studies.

A space gives ``{"name": "sgd", "momentum": ..., "nesterov": ...}``, ``{"name": "rmsprop"}``
or ``{"name": "adam"}`` (or the bare name); Keras is imported only when one is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tpetune.errors import SpaceError

OPTIMIZERS: tuple[str, ...] = ("sgd", "rmsprop", "adam")


def make_optimizer(spec: Mapping[str, Any] | str, lr: Any, *, clipnorm: float | None = None) -> Any:
    """A Keras optimizer for ``spec`` with learning rate (or schedule) ``lr``.

    Args:
        clipnorm: gradient-norm clipping for every optimizer (``None``: none).

    Raises:
        SpaceError: unknown optimizer name.
    """
    import keras

    opt = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = str(opt.get("name", "")).lower()
    common: dict[str, Any] = {"learning_rate": lr, "clipnorm": clipnorm}
    if name == "sgd":
        return keras.optimizers.SGD(
            momentum=float(opt.get("momentum", 0.0)),
            nesterov=bool(opt.get("nesterov", False)),
            **common,
        )
    if name == "rmsprop":
        return keras.optimizers.RMSprop(**common)
    if name == "adam":
        return keras.optimizers.Adam(**common)
    raise SpaceError(f"unknown optimizer {name!r}; use one of {', '.join(map(repr, OPTIMIZERS))}")
