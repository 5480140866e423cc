"""Intermediate values and rung decisions: the ``steps`` table of a study store.

Trial processes (the driver's own, a worker, a Spark executor on this machine) write their
own trial's rows here, each step in one ``BEGIN IMMEDIATE`` transaction, so that two trials
reaching the same rung at once are decided one after the other, and a decision is stored with
the step it was taken at (a re-run trial replays it). Everything else in the store is written
by the holder of the study lock only. :class:`tpetune.study.store.Store` includes these methods.

The store records decisions but takes none: :meth:`StepsMixin.record_step` calls the trial
side's ``decide`` inside its transaction, so nothing here knows which pruner is in use.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


class Decision(NamedTuple):
    """A pruner's answer at one step, as recorded with it; ``rung``/``value`` are set at a
    rung (ASHA).

    ``pause`` (freeze-thaw) stops the trial as ``prune`` does, but keeps it for a later thaw;
    ``prune`` is then True as well, so every objective that stops on ``should_prune()``
    stops on a pause too."""

    prune: bool
    rung: int | None = None
    value: float | None = None
    pause: bool = False

    @property
    def kind(self) -> str:
        """``continue``, ``pause`` or ``prune``: what the store records with the step."""
        return "pause" if self.pause else "prune" if self.prune else "continue"

    @classmethod
    def of(cls, kind: str) -> Decision:
        """The decision a recorded ``kind`` replays (``thawed``: the pause was lifted)."""
        return cls(kind in ("prune", "pause"), pause=kind == "pause")


class StepsMixin:
    """The ``steps`` methods of :class:`tpetune.study.store.Store` (over its connection)."""

    _conn: sqlite3.Connection

    def steps(self, tid: int) -> list[tuple[int, float]]:
        """The values trial ``tid`` reported, as (step, value) in step order (NaN for NULL)."""
        rows = self._rows("SELECT step, value FROM steps WHERE tid=? ORDER BY step", (tid,))
        return [(int(s), math.nan if v is None else float(v)) for s, v in rows]

    def record_step(
        self,
        tid: int,
        step: int,
        value: float,
        *,
        decide: Callable[[StepBoard], Decision] | None = None,
        finished: Sequence[Sequence[float]] = (),
        keep_judged: bool = False,
        upto: int | None = None,
    ) -> Decision | None:
        """Store ``value`` at ``step`` of trial ``tid`` and, when ``decide`` is given, the
        decision it takes on a :class:`StepBoard` over this store, in one transaction.
        ``keep_judged`` (freeze-thaw): a step judged before keeps its value and replays its
        recorded decision (``thawed`` as *continue*) instead.

        ``finished`` are the finished trials' monitored curves, which the trial side reads
        once per trial (they cannot change during a serial trial; with workers it is a fair
        reference), while rung values are read here, inside the transaction; ``upto``: only
        those of trials up to that id (a lagged study, ``TrialContext.board_upto``)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if keep_judged:  # freeze-thaw: a judged step stays
                kept = self._judged(tid, step)
                if kept is not None:
                    conn.commit()
                    return Decision.of(kept)
            stored = None if math.isnan(value) else value
            conn.execute(
                "INSERT OR REPLACE INTO steps(tid, step, value) VALUES (?, ?, ?)",
                (tid, step, stored),
            )
            decision = None
            if decide is not None:
                decision = decide(StepBoard(self, finished, upto))
                conn.execute(
                    "UPDATE steps SET decision=? WHERE tid=? AND step=?",
                    (decision.kind, tid, step),
                )
            if decision is not None and decision.rung is not None:
                rung_value = decision.value
                if rung_value is not None and math.isnan(rung_value):
                    rung_value = None
                conn.execute(
                    "UPDATE steps SET rung=?, rung_value=?, pruned=? WHERE tid=? AND step=?",
                    (decision.rung, rung_value, int(decision.prune), tid, step),
                )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return decision

    def write_steps(self, tid: int, rows: Sequence[Sequence[Any]]) -> None:
        """Store steps that travelled back with a trial's outcome: [step, value, rung,
        rung_value, pruned(, decision)] rows (a trial that ran where it could not see the
        store)."""

        def null(v: Any) -> Any:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO steps(tid, step, value, rung, rung_value, pruned, "
                "decision) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (tid, s, null(v), r, null(rv), None if r is None else int(bool(p)), d)
                    for s, v, r, rv, p, d in (list(row) + [None] * (6 - len(row)) for row in rows)
                ],
            )

    def drop_steps_after(self, tid: int, step: int) -> None:
        """Forget steps after ``step`` of trial ``tid``: left by a crashed earlier attempt that
        got further than this one, which started over and ended sooner."""
        with self._conn:
            self._conn.execute("DELETE FROM steps WHERE tid=? AND step>?", (tid, step))

    def rung_table(self) -> dict[int, dict[int, list[Any]]]:
        """Every recorded rung decision: rung -> tid -> [pruned, value]."""
        table: dict[int, dict[int, list[Any]]] = {}
        rows = self._rows(
            "SELECT rung, tid, pruned, rung_value FROM steps WHERE rung IS NOT NULL", ()
        )
        for rung, tid, pruned, value in rows:
            table.setdefault(int(rung), {})[int(tid)] = [bool(pruned), value]
        return table

    def rung_values(self, rung: int, upto: int | None = None) -> list[float]:
        if upto is None:
            rows = self._rows("SELECT rung_value FROM steps WHERE rung=?", (rung,))
        else:
            rows = self._rows("SELECT rung_value FROM steps WHERE rung=? AND tid<=?", (rung, upto))
        return [math.nan if v is None else float(v) for (v,) in rows]

    def recorded(self, tid: int, rung: int) -> Decision | None:
        rows = self._rows(
            "SELECT pruned, rung_value FROM steps WHERE tid=? AND rung=?", (tid, rung)
        )
        for pruned, value in rows:
            return Decision(bool(pruned), rung, math.nan if value is None else float(value))
        return None

    def _judged(self, tid: int, step: int) -> str | None:
        """The decision recorded at ``step`` of trial ``tid``, if the step was judged."""
        rows = self._rows("SELECT decision FROM steps WHERE tid=? AND step=?", (tid, step))
        return rows[0][0] if rows and rows[0][0] is not None else None

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return list(self._conn.execute(sql, args))
        except sqlite3.OperationalError as exc:
            if "no such" in str(exc):
                return []  # an older study opened read-only: no steps or decisions recorded
            raise


class StepBoard:
    """The pruners' :class:`~tpetune.pruners.policies.Board` over a store (inside a step's
    transaction).

    ``finished`` (the finished trials' curves) comes from the caller; see :meth:`record_step`.
    ``upto``: rung values of trials up to that id only (a lagged study).
    """

    def __init__(
        self,
        store: StepsMixin,
        finished: Sequence[Sequence[float]] = (),
        upto: int | None = None,
    ) -> None:
        self._store = store
        self._finished = finished
        self._upto = upto

    def finished_curves(self) -> Sequence[Sequence[float]]:
        return self._finished

    def rung_values(self, rung: int) -> list[float]:
        return self._store.rung_values(rung, self._upto)

    def recorded(self, tid: int, rung: int) -> Decision | None:
        return self._store.recorded(tid, rung)

    def decisions(self, tid: int) -> dict[int, str]:
        return self._store.decisions(tid)  # type: ignore[attr-defined]
