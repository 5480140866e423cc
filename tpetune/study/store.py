"""The study store: one SQLite database per study folder.

Contract:
- ``study.db`` (stdlib sqlite3, WAL) holds a ``meta`` table (JSON values, ``schema_version``
  among them) and one ``trials`` row per trial. JSON columns only: opening a study executes
  no code, and any SQLite tool can read it.
- A trial row is written as ``running`` before its objective starts and updated to ``ok``,
  ``fail``, ``pruned`` or ``paused`` in one transaction when it ends (a ``paused`` trial keeps
  its workdir and may be thawed: set ``running`` again, see :meth:`Store.thaw_trial`). Every
  commit is in the OS before the call returns, so a kill -9 at any instant leaves every
  finished trial stored; a row left ``running`` by a dead process is re-run on resume.
- Power loss: finished trials are fsynced group-commit style, at once when the last sync is
  older than :data:`SYNC_INTERVAL_S` (so every trial of a real model is synced before the
  next one starts) and at most that often for sub-second trials. WAL never tears the file.
- Only the process holding :class:`StudyLock` writes. Readers (``show``, ``plot``,
  ``load_study``) open read-only and may do so while a study runs (WAL readers never block).
  Readers need no write access to the folder (see :mod:`tpetune.study.sqlite`).
- Creation is atomic (built under a temporary name, then renamed). A writer runs
  ``PRAGMA quick_check`` before writing anything, so a damaged file is never written to;
  damage, a full disk and an unwritable folder each raise one-line :class:`StoreError`
  subclasses (``StoreDamagedError``, ``StorageFullError``, ``NotWritableError``).
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpetune.errors import StoreError, TpetuneError, from_os_error
from tpetune.study.attachments import ATTACHMENTS_SCHEMA, AttachmentsMixin
from tpetune.study.lock import LOCK_NAME, StudyLock  # noqa: F401  (re-exported: its old home)
from tpetune.study.pausing import PausingMixin
from tpetune.study.sqlite import connect_reader, connect_writer, damaged, translate
from tpetune.study.steps import StepsMixin

# 2: the ``steps`` table (intermediate values and rung decisions). A version-1 study gains the
# table when a writer opens it (:meth:`Store.migrate`); readers treat a missing table as empty.
# 3: the ``paused`` state and ``steps.decision``; a writer migrates a version-1 or -2 study
# (study/pausing.py); readers of older studies see no paused trial and no decisions.
SCHEMA_VERSION = 3
SYNC_INTERVAL_S = 1.0
DB_NAME = "study.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL                  -- JSON
);
CREATE TABLE IF NOT EXISTS trials (
    tid        INTEGER PRIMARY KEY,
    state      TEXT NOT NULL CHECK (state IN ('running', 'ok', 'fail', 'pruned', 'paused')),
    loss       REAL,
    vals       TEXT NOT NULL,            -- hyperopt's flat assignment (choices as indices)
    params     TEXT NOT NULL,            -- active hyperparameters, label -> value
    args       TEXT,                     -- the nested structure the objective received
    curves     TEXT,                     -- {"loss": [...], "val_loss": [...]} per epoch
    metrics    TEXT,                     -- extra figures the objective returned
    error      TEXT,
    started    REAL NOT NULL,            -- unix time
    finished   REAL,
    duration_s REAL
);
CREATE TABLE IF NOT EXISTS steps (
    tid        INTEGER NOT NULL,
    step       INTEGER NOT NULL,         -- as reported: any non-negative integer
    value      REAL,                     -- the reported value (NULL for NaN)
    rung       INTEGER,                  -- set when a rung decision was made at this step
    rung_value REAL,                     -- the value judged at the rung (best so far)
    pruned     INTEGER,                  -- that decision: 1 prune, 0 continue
    decision   TEXT,                     -- the pruner's decision: continue, pause, prune, thawed
    PRIMARY KEY (tid, step)
);
"""
_SET_META = "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)"


class TrialState(enum.StrEnum):
    """Where a trial stands. ``pruned`` trials stopped early; TPE still sees their loss.
    ``paused`` ones too, but keep their workdir: the driver may thaw (continue) them."""

    RUNNING = "running"
    OK = "ok"
    FAIL = "fail"
    PRUNED = "pruned"
    PAUSED = "paused"


@dataclass(frozen=True)
class TrialRecord:
    """One trial as stored. ``params`` holds values (never choice indices)."""

    tid: int
    state: TrialState
    loss: float | None
    params: dict[str, Any]
    vals: dict[str, Any]
    args: Any = None
    curves: dict[str, list[float]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started: float = 0.0
    finished: float | None = None
    duration_s: float | None = None

    @property
    def finished_ok(self) -> bool:
        return self.state is TrialState.OK and self.loss is not None


class Store(StepsMixin, AttachmentsMixin, PausingMixin):
    """Read and write one study database. Use :meth:`create` or :meth:`open`."""

    schema, schema_version = (
        _SCHEMA + ATTACHMENTS_SCHEMA,
        SCHEMA_VERSION,
    )  # what ``migrate`` brings a study to

    def __init__(self, study_dir: Path, conn: sqlite3.Connection, *, readonly: bool) -> None:
        self.study_dir = study_dir
        self.readonly = readonly
        self._conn = conn
        self._last_sync = time.monotonic()

    # -- opening ---------------------------------------------------------------------------
    @staticmethod
    def exists(study_dir: str | Path) -> bool:
        return (Path(study_dir) / DB_NAME).is_file()

    @classmethod
    def create(cls, study_dir: str | Path, meta: Mapping[str, Any]) -> Store:
        """Create a new study database; ``meta`` is stored as JSON values.

        Atomic: the database is built under a temporary name and renamed into place once its
        tables and meta are committed, so an interrupted creation leaves no ``study.db``.

        Raises:
            NotWritableError: the folder cannot be created or written.
            StorageFullError: no space for the new database.
        """
        study_dir = Path(study_dir)
        db, tmp = study_dir / DB_NAME, study_dir / f".{DB_NAME}.new"
        try:
            study_dir.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm", "-journal"):  # a creation interrupted earlier
                tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
        except OSError as exc:
            raise from_os_error(exc, study_dir, "create the study") from None
        conn = _connect(tmp, readonly=False)
        try:
            with conn:
                conn.executescript(_SCHEMA + ATTACHMENTS_SCHEMA)
                rows = {**meta, "schema_version": SCHEMA_VERSION, "created": time.time()}
                conn.executemany(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    [(k, json.dumps(v)) for k, v in rows.items()],
                )
        finally:
            conn.close()  # checkpoints the WAL into the file and removes it
        try:
            _fsync(tmp)
            os.replace(tmp, db)
            _fsync(study_dir)
        except OSError as exc:
            raise from_os_error(exc, study_dir, "create the study") from None
        return cls(study_dir, _connect(db, readonly=False), readonly=False)

    @classmethod
    def open(cls, study_dir: str | Path, *, readonly: bool = True) -> Store:
        """Open an existing study.

        Raises:
            StoreError: no study there, not a SQLite file, not a tpetune study, or a newer schema.
        """
        study_dir = Path(study_dir)
        db = study_dir / DB_NAME
        if study_dir.is_file():
            raise StoreError(
                f"{study_dir} is a file, not a study folder: give the folder a run wrote"
            )
        if not study_dir.is_dir():
            raise StoreError(f"study folder {study_dir} does not exist: check the path")
        if not db.is_file():
            raise StoreError(
                f"{study_dir} is not a tpetune study (no {DB_NAME}): give the folder a run wrote"
            )
        try:
            if not readonly:  # a writer turns WAL mode on: refuse a foreign file before that
                probe = _connect(db, readonly=True)
                try:
                    version = probe.execute(_VERSION).fetchone()
                finally:
                    probe.close()
            if readonly or version is not None:
                conn = _connect(db, readonly=readonly)
                if not readonly:
                    _check_intact(conn, db)
                version = conn.execute(_VERSION).fetchone()
        except sqlite3.Error as exc:
            known = translate(exc, db, writer=not readonly)  # a damaged file: how to save it
            if isinstance(known, TpetuneError):
                raise known from None
            raise StoreError(
                f"{db} is not a readable tpetune study ({exc}): give the folder a tpetune run "
                "wrote" + ("" if readonly else ", or start over there with fresh=True")
            ) from None
        if version is None:
            raise StoreError(
                f"{db} has no schema version: not a tpetune study, or one whose creation was "
                "interrupted; start over with fresh=True, or use another study_dir"
            )
        if json.loads(version[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"{db} has schema version {version[0]}, newer than this tpetune "
                f"({SCHEMA_VERSION}): upgrade tpetune to open it"
            )
        return cls(study_dir, conn, readonly=readonly)

    def close(self) -> None:
        self.sync()
        self._conn.close()

    # -- meta ------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}

    def set_meta(self, **items: Any) -> None:
        with self._conn:
            self._conn.executemany(_SET_META, [(k, json.dumps(v)) for k, v in items.items()])

    # -- trials ----------------------------------------------------------------------------
    def begin_trial(self, record: TrialRecord) -> None:
        """Store a trial as ``running`` (or replace a stale ``running`` row being re-run)."""
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO trials(tid, state, loss, vals, params, args, started) "
                "VALUES (?, 'running', NULL, ?, ?, ?, ?)",
                (
                    record.tid,
                    json.dumps(record.vals),
                    json.dumps(record.params),
                    json.dumps(record.args),
                    record.started,
                ),
            )

    def finish_trial(
        self, record: TrialRecord, *, meta: Mapping[str, Any] | None = None, attachments: Any = None
    ) -> None:
        """Commit a finished trial (with meta updates and attachments) in one transaction."""
        if record.state is TrialState.RUNNING:
            raise ValueError("finish_trial needs a final state")
        with self._conn:
            self._conn.execute(
                "UPDATE trials SET state=?, loss=?, curves=?, metrics=?, error=?, finished=?, "
                "duration_s=? WHERE tid=?",
                (
                    record.state.value,
                    record.loss,
                    json.dumps(record.curves),
                    json.dumps(record.metrics),
                    record.error,
                    record.finished,
                    record.duration_s,
                    record.tid,
                ),
            )
            self._conn.executemany(_SET_META, [(k, json.dumps(v)) for k, v in (meta or {}).items()])
            self._put_attachments(record.tid, attachments)  # name -> bytes/str
        if time.monotonic() - self._last_sync >= SYNC_INTERVAL_S:
            self.sync()

    def mark_interrupted(self, tids: list[int], why: str) -> None:
        """Note on ``running`` trials that a clean stop (Ctrl-C, SIGTERM), not a crash, ended
        them; they stay ``running`` and re-run on resume (:meth:`begin_trial` clears it)."""
        if not tids:
            return
        with self._conn:
            self._conn.executemany(
                "UPDATE trials SET error=? WHERE tid=? AND state='running'",
                [(why, tid) for tid in tids],
            )

    def sync(self) -> None:
        """fsync the write-ahead log: what is committed now survives power loss."""
        wal = self.study_dir / f"{DB_NAME}-wal"
        if self.readonly or not wal.exists():
            return
        fd = os.open(wal, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._last_sync = time.monotonic()

    def records(self, *, after: int | None = None, tids: Iterable[int] = ()) -> list[TrialRecord]:
        """All trials in id order; or, given ``after``, only those with a greater tid plus
        those in ``tids`` (what a reader that follows the study needs: rows change only
        while ``running``)."""
        query = (
            "SELECT tid, state, loss, params, vals, args, curves, metrics, error, started, "
            "finished, duration_s FROM trials"
        )
        args: list[int] = []
        if after is not None:
            wanted = sorted(set(tids))
            query += f" WHERE tid > ? OR tid IN ({','.join('?' * len(wanted))})"
            args = [after, *wanted]
        rows = self._conn.execute(query + " ORDER BY tid", args)
        try:
            return [_record(row) for row in rows]
        except (ValueError, TypeError) as exc:  # a row SQLite reads but we cannot decode
            raise damaged(self.study_dir / DB_NAME, f"a trial row does not decode: {exc}") from None

    def curves(
        self, states: tuple[TrialState, ...] = (TrialState.OK,), *, upto: int | None = None
    ) -> dict[int, dict]:
        """Per-epoch curves of trials in ``states`` (what the pruner reads), by tid; ``upto``:
        of trials up to that id only (a lagged study's board, ``TrialContext.board_upto``)."""
        marks = ",".join("?" * len(states))
        rows = self._conn.execute(
            f"SELECT tid, curves FROM trials WHERE state IN ({marks}) AND curves IS NOT NULL"
            + ("" if upto is None else " AND tid<=?"),
            [s.value for s in states] + ([] if upto is None else [upto]),
        )
        return {tid: json.loads(c) for tid, c in rows}

    def count(self) -> int:
        """How many trials the study holds."""
        return int(self._conn.execute("SELECT count(*) FROM trials").fetchone()[0])

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: changes whenever another connection commits, so
        a reader can tell in one statement that nothing changed since it last looked."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    # the steps table: tpetune/study/steps.py; pause, thaw and ``migrate``: study/pausing.py


_VERSION = "SELECT value FROM meta WHERE key='schema_version'"


def _connect(db: Path, *, readonly: bool) -> sqlite3.Connection:
    """See :mod:`tpetune.study.sqlite`: readers need no write access; damage, full disks and
    unwritable folders raise one-line :class:`StoreError` subclasses."""
    return connect_reader(db) if readonly else connect_writer(db)


def _check_intact(conn: sqlite3.Connection, db: Path) -> None:
    """Refuse a damaged database before anything is written to it (``PRAGMA quick_check``)."""
    problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)").fetchall()]
    if problems != ["ok"]:
        raise damaged(db, "; ".join(" ".join(p.split()) for p in problems)[:200])


def _record(row: tuple[Any, ...]) -> TrialRecord:
    tid, state, loss, params, vals, args, curves, metrics, error, started, finished, dur = row
    return TrialRecord(
        tid=tid,
        state=TrialState(state),
        loss=loss,
        params=json.loads(params),
        vals=json.loads(vals),
        args=json.loads(args) if args is not None else None,
        curves=json.loads(curves) if curves else {},
        metrics=json.loads(metrics) if metrics else {},
        error=error,
        started=started,
        finished=finished,
        duration_s=dur,
    )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
