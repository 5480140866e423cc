"""The SQLite study store and the study lock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tpetune.errors import StoreError, StudyInUseError
from tpetune.store import SCHEMA_VERSION, Store, StudyLock, TrialRecord, TrialState
from tpetune.study import load_study


def _record(tid: int, **kw: object) -> TrialRecord:
    base = TrialRecord(
        tid=tid,
        state=TrialState.RUNNING,
        loss=None,
        params={"lr": 0.1 * (tid + 1), "layers": 2, "opt": "adam"},
        vals={"lr": 0.1 * (tid + 1), "layers": 1, "opt": 0},
        args={"lr": 0.1 * (tid + 1), "layers": {"n": 2}},
        started=1000.0 + tid,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    store = Store.create(tmp_path, {"seed": 3, "max_evals": 10, "space": {"lr": "uniform(0, 1)"}})
    rec = _record(0)
    store.begin_trial(rec)
    done = replace(
        rec,
        state=TrialState.OK,
        loss=0.125,
        curves={"loss": [1.0, 0.5], "val_loss": [1.5, 0.75]},
        metrics={"acc": 0.9},
        finished=1002.5,
        duration_s=2.5,
    )
    store.finish_trial(done, meta={"elapsed_s": 2.5})
    store.begin_trial(_record(1))
    store.close()

    reopened = Store.open(tmp_path, readonly=True)
    assert reopened.records() == [done, _record(1)]
    meta = reopened.meta()
    assert meta["seed"] == 3 and meta["elapsed_s"] == 2.5
    assert meta["schema_version"] == SCHEMA_VERSION
    assert reopened.curves() == {0: done.curves}


def test_readers_see_commits_while_the_writer_is_open(tmp_path: Path) -> None:
    writer = Store.create(tmp_path, {"max_evals": 3})
    reader = Store.open(tmp_path, readonly=True)
    writer.begin_trial(_record(0))
    assert [r.tid for r in reader.records()] == [0]
    with pytest.raises(sqlite3.OperationalError):  # read-only means read-only
        reader._conn.execute("DELETE FROM trials")


def test_foreign_and_newer_databases_are_refused(tmp_path: Path) -> None:
    (tmp_path / "study.db").write_text("not a database")
    with pytest.raises(StoreError, match="not a readable tpetune study"):
        Store.open(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    conn = sqlite3.connect(other / "study.db")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    with pytest.raises(StoreError, match="not a readable tpetune study"):
        load_study(other)
    newer = tmp_path / "newer"
    Store.create(newer, {}).set_meta(schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="upgrade tpetune"):
        load_study(newer)


def test_second_driver_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from tpetune.store import StudyLock;"
            f"StudyLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StudyInUseError, match=f"in use by pid {holder.pid}"):
            StudyLock(tmp_path).acquire()
        assert StudyLock(tmp_path).is_held_elsewhere()
    finally:
        holder.kill()
        holder.wait()
    # The lock dies with its process: no stale lock after kill -9.
    deadline = time.time() + 5
    while StudyLock(tmp_path).is_held_elsewhere() and time.time() < deadline:
        time.sleep(0.05)
    with StudyLock(tmp_path).held():
        pass
