"""Paused trials in the study store: thawing, recorded decisions, the schema-3 migration.

A pruner may pause a trial instead of pruning it (:class:`tpetune.FreezeThawPruner`): the
trial is stored ``paused`` with its loss so far (TPE sees it as a pruned trial) and keeps its
workdir. The driver may later *thaw* it: :meth:`PausingMixin.thaw_trial` sets it ``running``
again and marks the step it paused at ``thawed``, in one transaction, so that a kill -9 during
the thaw leaves a ``running`` trial that the next run re-runs from its last recorded step and
whose recorded decisions replay as they were taken (``thawed`` replays as *continue*).

Every step a pruner judged carries its decision (``steps.decision``): ``continue``, ``pause``,
``prune`` or ``thawed``. :class:`tpetune.study.store.Store` includes these methods, and the
schema migration of older studies (:meth:`PausingMixin.migrate`).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, ClassVar

DECISIONS = ("continue", "pause", "prune", "thawed")


class PausingMixin:
    """The pause/thaw methods of :class:`tpetune.store.Store` (over its connection)."""

    _conn: sqlite3.Connection
    schema: ClassVar[str]
    schema_version: ClassVar[int]

    def migrate(self) -> None:
        """Bring a study made by an older tpetune to this schema, in one transaction: adds the
        ``steps`` table (1 -> 2), widens ``trials.state`` to ``paused`` and adds
        ``steps.decision`` (2 -> 3). A kill -9 midway leaves the old schema intact."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrate_to_3(conn, self.schema)
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                (json.dumps(self.schema_version),),
            )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def thaw_trial(self, tid: int) -> None:
        """Set paused trial ``tid`` running again and mark its pause ``thawed`` (one commit).

        Raises:
            ValueError: ``tid`` is not a paused trial.
        """
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            changed = conn.execute(
                "UPDATE trials SET state='running' WHERE tid=? AND state='paused'", (tid,)
            ).rowcount
            if changed != 1:
                raise ValueError(f"trial {tid} is not paused; only a paused trial can be thawed")
            conn.execute(
                "UPDATE steps SET decision='thawed' WHERE tid=? AND decision='pause'", (tid,)
            )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def decisions(self, tid: int) -> dict[int, str]:
        """The decisions recorded for trial ``tid``: step -> ``continue``/``pause``/..."""
        rows = self._decision_rows(
            "SELECT step, decision FROM steps WHERE tid=? AND decision IS NOT NULL", (tid,)
        )
        return {int(step): str(d) for step, d in rows}

    def pauses(self) -> dict[int, list[int]]:
        """Every trial that was ever paused: tid -> the steps it paused at (plots, show)."""
        out: dict[int, list[int]] = {}
        rows = self._decision_rows(
            "SELECT tid, step FROM steps WHERE decision IN ('pause', 'thawed') ORDER BY step", ()
        )
        for tid, step in rows:
            out.setdefault(int(tid), []).append(int(step))
        return out

    def last_step(self, tid: int) -> int | None:
        """The last step trial ``tid`` recorded (``None``: it reported nothing yet)."""
        rows = self._decision_rows("SELECT max(step) FROM steps WHERE tid=?", (tid,))
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def _decision_rows(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return list(self._conn.execute(sql, args))
        except sqlite3.OperationalError as exc:
            if "no such" in str(exc):  # an older study opened read-only: none recorded
                return []
            raise


def migrate_to_3(conn: sqlite3.Connection, schema: str) -> None:
    """Inside the caller's transaction: create missing tables, widen ``trials.state`` to
    ``paused`` (rebuilding the table: SQLite cannot alter a CHECK) and add
    ``steps.decision``. Idempotent."""
    for statement in schema.split(";"):
        if statement.strip():
            conn.execute(statement)  # CREATE TABLE IF NOT EXISTS ...
    (trials_sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='trials'"
    ).fetchone()
    if "'paused'" not in trials_sql:
        conn.execute("ALTER TABLE trials RENAME TO trials_old")
        create = schema[schema.index("CREATE TABLE IF NOT EXISTS trials") :]
        conn.execute(create[: create.index(";")])
        conn.execute("INSERT INTO trials SELECT * FROM trials_old")
        conn.execute("DROP TABLE trials_old")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(steps)")}
    if "decision" not in columns:
        conn.execute("ALTER TABLE steps ADD COLUMN decision TEXT")
