"""The pruner seam: what every pruning rule implements (:class:`Pruner`) and what it may look
at (:class:`Board`). The rules themselves: :mod:`tpetune.pruners.policies` (median, ASHA and
the registry) and :mod:`tpetune.pruners.freeze_thaw`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tpetune.study.steps import Decision  # the record type the store keeps with each step

__all__ = ["Board", "Pruner"]


class Board(Protocol):
    """What a pruner may look at besides the trial's own curve."""

    def finished_curves(self) -> Sequence[Sequence[float]]:
        """The monitored curves of the study's finished (ok) trials."""
        ...

    def rung_values(self, rung: int) -> Sequence[float]:
        """The values recorded at ``rung`` by every trial so far (running ones included)."""
        ...

    def recorded(self, tid: int, rung: int) -> Decision | None:
        """The decision recorded earlier for trial ``tid`` at ``rung`` (a resumed trial)."""
        ...

    def decisions(self, tid: int) -> Mapping[int, str]:
        """The decisions recorded for trial ``tid`` at each step it reported before (a
        thawed or re-run trial): step -> ``continue``, ``pause``, ``prune`` or ``thawed``."""
        ...


class Pruner(Protocol):
    """A pruning rule (see the module docstring for the contract)."""

    @property
    def monitor(self) -> str:
        """The reported metric it judges (``val_loss`` for Keras objectives)."""
        ...

    def decide(self, tid: int, step: int, curve: Sequence[float], board: Board) -> Decision: ...

    def to_json(self) -> dict[str, Any]: ...
