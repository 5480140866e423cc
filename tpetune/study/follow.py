"""Follow a study that another process writes, reading only what changed.

Contract:
- :meth:`StudyFollower.poll` returns the whole study (a :class:`~tpetune.study.Study`, every
  trial) and the tids that changed since the previous poll, or ``None`` for "everything"
  (the first poll, and after the study was started afresh with ``--fresh``).
- A poll on a study nobody wrote to since costs one ``stat`` and one ``PRAGMA data_version``
  (SQLite's change counter, which moves whenever another connection commits): no trial row is
  read or decoded. After a commit it reads the meta table, the trials added since (tids above
  the highest seen) and the trials that were ``running`` (rows change only while running: the
  store's contract; a trial that appears below the highest tid is caught by the row count
  and answered by a full read), so one poll of a 20,000-trial study reads a handful of rows.
- Running trials are reported as changed whenever anything was committed, since their
  reported steps live in another table.
- The store is only read (read-only connection, kept open between polls); a study replaced on
  disk (``--fresh`` builds a new file) is noticed by its inode and reopened.
"""

from __future__ import annotations

import os
from pathlib import Path

from tpetune.errors import StoreError
from tpetune.study.store import DB_NAME, Store, TrialRecord, TrialState
from tpetune.study.study import Study


class StudyFollower:
    """Keeps an up-to-date :class:`Study` of ``study_dir`` by incremental reads."""

    def __init__(self, study_dir: str | Path) -> None:
        self.study_dir = Path(study_dir)
        self._store: Store | None = None
        self._inode: tuple[int, int] | None = None
        self._version: int | None = None
        self._meta: dict = {}
        self._records: dict[int, TrialRecord] = {}
        self._snapshot: Study | None = None

    def poll(self) -> tuple[Study, set[int] | None]:
        """The study now and the tids changed since the last poll (``None``: all of them).

        Raises:
            StoreError: the folder is not (or no longer) a readable study.
        """
        try:
            everything = self._reopen_if_replaced()
        except (FileNotFoundError, StoreError):
            if self._snapshot is None:
                raise
            return self._snapshot, set()  # replaced right now (--fresh): look again next poll
        assert self._store is not None
        version = self._store.data_version()
        if version == self._version and not everything and self._snapshot is not None:
            return self._snapshot, set()
        self._version = version
        meta = self._store.meta()
        if meta.get("created") != self._meta.get("created"):
            everything = True
        self._meta = meta
        if everything:
            self._records = {r.tid: r for r in self._store.records()}
            return self._study(), None
        running = {t for t, r in self._records.items() if r.state is TrialState.RUNNING}
        after = max(self._records, default=-1)
        fresh = self._store.records(after=after, tids=running)
        self._records.update((r.tid, r) for r in fresh)
        if self._store.count() != len(self._records):  # a tid below the highest appeared
            self._records = {r.tid: r for r in self._store.records()}
            return self._study(), None
        changed = {r.tid for r in fresh}
        changed |= {t for t, r in self._records.items() if r.state is TrialState.RUNNING}
        return self._study(), changed

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _reopen_if_replaced(self) -> bool:
        """(Re)open the store when first polled or when ``study.db`` is another file now.

        Raises:
            StoreError: no readable study there.
            FileNotFoundError: ``study.db`` vanished after the first poll.
        """
        if self._store is not None:
            st = os.stat(self.study_dir / DB_NAME)
            if (st.st_dev, st.st_ino) == self._inode:
                return False
            self.close()
        store = Store.open(self.study_dir, readonly=True)
        st = os.stat(self.study_dir / DB_NAME)
        self._store, self._inode, self._version = store, (st.st_dev, st.st_ino), None
        return True

    def _study(self) -> Study:
        records = [self._records[t] for t in sorted(self._records)]
        self._snapshot = Study(self.study_dir, self._meta, records)
        return self._snapshot
