"""SQLite connections for the study store: read-only folders, damaged files, full disks.

- Readers need no write access. A WAL database is first opened ``mode=ro``; where SQLite
  cannot create the shared-memory index beside it (a folder the reader cannot write, a
  read-only mount, an archive), a database without pending WAL content is opened
  ``immutable=1`` (nothing can be writing it: a writer would have created the ``-wal``), and
  one with a ``-wal`` left by a killed writer is read from a private copy of both files, so
  its last commits are not missed.
- Every SQLite error raised through a store connection that means damage, a full disk or an
  unwritable folder becomes the matching :class:`~tpetune.errors.StoreError` with one line
  saying what failed and what to do; other errors pass unchanged.
- Another program holding the write lock (a database browser with a transaction open, a
  stalled process, a network file system): a writer waits :data:`BUSY_TIMEOUT_S` inside
  SQLite, then says once that it waits, and keeps trying until :data:`BUSY_GIVE_UP_S`; then
  :class:`~tpetune.errors.StoreBusyError`, one line with the resume hint. Only a
  transaction's first write can meet the lock (a transaction holding it meets no other), so
  the retry rolls back nothing but that statement's implicit ``BEGIN``.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from tpetune.errors import NotWritableError, StorageFullError, StoreBusyError, StoreDamagedError

# SQLite's primary result codes (the low byte of an extended code).
_BUSY, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN = 5, 8, 10, 11, 13, 14
#: Seconds SQLite itself waits for another connection's write lock, per statement.
BUSY_TIMEOUT_S = 30.0
#: Seconds a writer keeps waiting for that lock in all, with a message, before it stops.
BUSY_GIVE_UP_S = 600.0
_T = TypeVar("_T")
log = logging.getLogger("tpetune")


def error_code(exc: BaseException) -> int | None:
    """SQLite's primary result code of ``exc`` (Python 3.11+ records it), or ``None``."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def damaged(db: Path, detail: str) -> StoreDamagedError:
    return StoreDamagedError(
        f"{db} is damaged ({detail}); nothing more is written to it. To keep its readable "
        f"trials: `mkdir NEW && sqlite3 {db} .dump | sed 's/^ROLLBACK.*/COMMIT;/' | sqlite3 "
        "NEW/study.db` makes NEW a study holding them (resume it with study_dir=NEW); or start "
        "over with fresh=True"
    )


def translate(exc: sqlite3.Error, db: Path, *, writer: bool) -> Exception:
    """The tpetune error for ``exc`` met on ``db``, or ``exc`` itself."""
    code = error_code(exc)
    if code == _CORRUPT:
        return damaged(db, str(exc))
    if code in (_FULL, _IOERR):
        return StorageFullError(
            f"could not write {db} ({exc}: the disk is full or a file-size limit was hit). "
            "Finished trials are kept; free space and run the same command again to resume"
        )
    if writer and code in (_READONLY, _CANTOPEN):
        return NotWritableError(
            f"study folder {db.parent} is not writable ({exc}): fix its permissions, or copy "
            "the study to a folder you can write; reading it needs no write access"
        )
    return exc


def _waiting_for_lock(conn: StoreConnection, run: Callable[[], _T]) -> _T:
    """``run()``, again while another connection holds the write lock (see the docstring).

    Raises:
        StoreBusyError: the lock was held for :data:`BUSY_GIVE_UP_S` seconds.
    """
    start = time.monotonic()
    told = False
    while True:
        try:
            return run()
        except sqlite3.OperationalError as exc:
            if not conn.writer or getattr(exc, "sqlite_errorcode", None) != _BUSY:
                raise
            waited = time.monotonic() - start
            if waited >= BUSY_GIVE_UP_S:
                raise StoreBusyError(
                    f"could not write {conn.db}: another program has held its write lock "
                    f"for {waited:.0f}s (a database browser with changes not saved, a stalled "
                    "process, a network file system). Finished trials are kept; close that "
                    "program and run the same command again to resume"
                ) from exc
            if not told:
                log.warning(
                    "\n%s is locked by another program (a database browser, a stalled "
                    "process?): waiting up to %.0fs for it; finished trials are safe",
                    conn.db,
                    BUSY_GIVE_UP_S,
                )
                told = True
            if conn.in_transaction:  # only the implicit BEGIN of this first write
                sqlite3.Connection.rollback(conn)


def _raise(exc: sqlite3.Error, mapped: Exception) -> NoReturn:
    """Raise ``mapped`` (chained to ``exc``), or ``exc`` itself when it was not mapped."""
    if mapped is exc:
        raise exc
    raise mapped from exc


class _Cursor(sqlite3.Cursor):
    """A cursor whose SQLite errors are translated (see :func:`translate`)."""

    connection: StoreConnection

    def _fail(self, exc: sqlite3.Error) -> Exception:
        conn = self.connection
        return translate(exc, conn.db, writer=conn.writer)

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        run = sqlite3.Cursor.execute
        try:
            return _waiting_for_lock(self.connection, lambda: run(self, sql, parameters))
        except sqlite3.Error as exc:
            _raise(exc, self._fail(exc))

    def executemany(self, sql: str, seq: Any, /) -> _Cursor:
        rows = list(seq)  # a generator could not be replayed after waiting for the lock
        run = sqlite3.Cursor.executemany
        try:
            return _waiting_for_lock(self.connection, lambda: run(self, sql, rows))
        except sqlite3.Error as exc:
            _raise(exc, self._fail(exc))

    def executescript(self, script: str, /) -> _Cursor:
        run = sqlite3.Cursor.executescript
        try:
            return _waiting_for_lock(self.connection, lambda: run(self, script))  # type: ignore[return-value]
        except sqlite3.Error as exc:
            _raise(exc, self._fail(exc))

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            _raise(exc, self._fail(exc))

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.Error as exc:
            _raise(exc, self._fail(exc))

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            _raise(exc, self._fail(exc))

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            _raise(exc, self._fail(exc))


class StoreConnection(sqlite3.Connection):
    """A connection to one study database whose errors are translated."""

    db: Path
    writer: bool

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, parameters)

    def executescript(self, script: str, /) -> Any:
        return self.cursor().executescript(script)

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as exc:
            _raise(exc, translate(exc, self.db, writer=self.writer))

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return super().__exit__(*exc_info)
        except sqlite3.Error as exc:
            _raise(exc, translate(exc, self.db, writer=self.writer))


def _open(uri: str, db: Path, *, writer: bool) -> StoreConnection:
    # check_same_thread=False: an objective may report from a thread of its own; SQLite is
    # built serialized and StepLog lets one thread at a time use its connection.
    conn = sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT_S, factory=StoreConnection, check_same_thread=False
    )
    conn.db, conn.writer = db, writer
    return conn


def connect_writer(db: Path) -> StoreConnection:
    """A read-write connection in WAL mode.

    Raises:
        NotWritableError: the folder (or the file) cannot be written.
    """
    conn = _open(db.absolute().as_uri(), db, writer=True)
    # WAL: readers never block the writer. NORMAL: commits reach the OS (kill -9 safe)
    # without an fsync each; Store.sync() adds power-loss durability at a bounded rate.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def connect_reader(db: Path) -> StoreConnection:
    """A read-only connection that needs no write access to ``db``'s folder (see above)."""
    uri = db.absolute().as_uri()
    conn = _open(f"{uri}?mode=ro", db, writer=False)
    try:
        sqlite3.Cursor(conn).execute("SELECT count(*) FROM sqlite_master").fetchall()  # raw
        return conn
    except sqlite3.OperationalError as exc:
        if error_code(exc) not in (_READONLY, _CANTOPEN, _IOERR, _FULL):
            _raise(exc, translate(exc, db, writer=False))
        conn.close()  # SQLite could not create the -shm index here (unwritable or full)
    wal = db.with_name(db.name + "-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        return _open(f"{uri}?mode=ro&immutable=1", db, writer=False)
    return _snapshot(db, wal)


def _snapshot(db: Path, wal: Path) -> StoreConnection:
    """Read a database and its pending WAL from a private copy (removed with the connection)."""
    folder = Path(tempfile.mkdtemp(prefix="tpetune-read-"))
    try:
        shutil.copyfile(db, folder / db.name)
        shutil.copyfile(wal, folder / wal.name)
        copy = _open((folder / db.name).as_uri() + "?mode=ro", db, writer=False)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(copy, shutil.rmtree, folder, ignore_errors=True)
    return copy
