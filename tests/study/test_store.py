"""The SQLite study store and the study lock."""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tpetune.errors import StoreDamagedError, StoreError, StudyInUseError
from tpetune.study.store import _SCHEMA, SCHEMA_VERSION, Store, StudyLock, TrialRecord, TrialState
from tpetune.study.study import load_study


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
    before = (other / "study.db").read_bytes()
    with pytest.raises(StoreError, match="not a readable .* or start over there with fresh=True"):
        Store.open(other, readonly=False)  # as a resume would: the file is left as it was
    assert (other / "study.db").read_bytes() == before  # not switched to WAL mode
    newer = tmp_path / "newer"
    Store.create(newer, {}).set_meta(schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="upgrade tpetune"):
        load_study(newer)


def test_second_driver_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from tpetune.study.store import StudyLock;"
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


# -- the real world: read-only folders, damaged files, full disks, interrupted creation ------
CURVY = """
from hyperopt import hp
space = {"x": hp.uniform("x", -5, 5), "opt": hp.choice("opt", ["a", "b"])}
def objective(p):
    return {"loss": (p["x"] - 1) ** 2, "curves": {"val_loss": [p["x"] ** 2] * 40}}
"""


def _tpetune(*args: str, preexec: Any = None, user: list[str] | None = None) -> Any:
    argv = [*(user or []), sys.executable, "-m", "tpetune", *args]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=300, preexec_fn=preexec, cwd="/"
    )


def _one_line_error(result: Any, code: int, *needles: str) -> str:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("tpetune: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder any user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="tpetune-test-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


def _study(root: Path, name: str, evals: int = 100) -> Path:
    script = root / "curvy.py"
    script.write_text(CURVY)
    study = root / name
    done = _tpetune("run", str(script), "--study-dir", str(study), "--max-evals", str(evals),
                    "--quiet", "--no-plots")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return study


def _reader() -> list[str]:
    """The command prefix that runs as an unprivileged user (root ignores permissions);
    skips where that user cannot import tpetune (a checkout in a folder private to root,
    such as one made by ``mktemp -d``)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run([*user, sys.executable, "-c", "import tpetune"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("the unprivileged user cannot import tpetune from this checkout")
    return user


def _read_only(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        path.chmod(0o555 if path.is_dir() else 0o444)


def test_a_read_only_study_is_read_by_another_user_and_writers_get_one_line(
    open_dir: Path,
) -> None:
    study = _study(open_dir, "study", evals=30)
    assert sorted(p.name for p in study.iterdir()) == ["study.db"]  # no -wal, -shm, lock
    _read_only(study)
    user = _reader()
    shown = _tpetune("show", str(study), user=user)
    assert shown.returncode == 0, shown.stderr
    assert "30/30 trials done" in shown.stdout
    as_json = _tpetune("show", "--json", str(study), user=user)
    assert as_json.returncode == 0 and len(json.loads(as_json.stdout)["trials"]) == 30
    out = open_dir / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    exported = _tpetune("export", str(study), "-o", str(out / "t.csv"), user=user)
    assert exported.returncode == 0, exported.stderr
    assert len((out / "t.csv").read_text().splitlines()) == 31
    loaded = subprocess.run(
        [*user, sys.executable, "-c",
         f"from tpetune import load_study; print(len(load_study({str(study)!r}).records))"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert loaded.stdout.strip() == "30", loaded.stderr
    # Writers: one line naming the folder, exit 2, nothing created.
    script = str(open_dir / "curvy.py")
    for args in (
        ["run", script, "--study-dir", str(study), "--max-evals", "31", "--quiet"],
        ["plot", str(study)],
        ["export", str(study)],
    ):
        _one_line_error(_tpetune(*args, user=user), 2, f"study folder {study} is not writable")
    assert sorted(p.name for p in study.iterdir()) == ["study.db"]


def test_a_study_left_with_a_wal_by_a_killed_writer_reads_fully_from_a_read_only_folder(
    open_dir: Path,
) -> None:
    """No -shm and an unwritable folder: SQLite cannot open it mode=ro, and immutable=1
    would silently skip the commits still in the -wal."""
    study = open_dir / "killed"
    writer = (
        "import os, sys; from dataclasses import replace; sys.path[:0] = [sys.argv[2]];"
        "from tests.study.test_store import _record;"
        "from tpetune.study.store import Store, TrialState;"
        "s = Store.create(sys.argv[1], {'max_evals': 9});"
        "s._conn.execute('PRAGMA wal_autocheckpoint=0');"
        "[s.begin_trial(_record(t)) for t in range(7)];"
        "s.finish_trial(replace(_record(0), state=TrialState.OK, loss=0.5, finished=1.0));"
        "os._exit(0)"  # no close: the WAL is not checkpointed
    )  # fmt: skip
    repo = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", writer, str(study), repo], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert (study / "study.db-wal").stat().st_size > 0
    (study / "study.db-shm").unlink()  # as after copying the folder to an archive
    _read_only(study)
    user = _reader()
    shown = _tpetune("show", "--json", str(study), user=user)
    assert shown.returncode == 0, shown.stderr
    trials = json.loads(shown.stdout)["trials"]
    assert len(trials) == 7 and trials[0]["state"] == "ok"


@pytest.mark.parametrize("garbage", ["zeros", "random"])
def test_a_damaged_store_gives_one_line_from_every_command_and_is_not_written(
    tmp_path: Path, garbage: str
) -> None:
    study = _study(tmp_path, "study")
    db = study / "study.db"
    assert db.stat().st_size > 16 * 4096
    data = bytes(4096) if garbage == "zeros" else random.Random(7).randbytes(4096)
    with db.open("r+b") as fh:
        fh.seek(10 * 4096)  # a trials page, well past the header and schema pages
        fh.write(data)
    before = db.read_bytes()
    script = str(tmp_path / "curvy.py")
    for args in (
        ["show", str(study)],
        ["show", "--json", str(study)],
        ["plot", str(study)],
        ["export", str(study)],
        ["run", script, "--study-dir", str(study), "--max-evals", "120", "--quiet"],
    ):
        line = _one_line_error(_tpetune(*args), 2, f"{db} is damaged", "--fresh")
    assert db.read_bytes() == before  # nothing written into it, not even meta
    assert sorted(p.name for p in study.iterdir()) == ["study.db"]
    if shutil.which("sqlite3") and shutil.which("sed"):  # the recovery the message names
        recipe = line.split("`")[1].replace("NEW", str(tmp_path / "new"))
        subprocess.run(recipe, shell=True, check=True, capture_output=True)
        kept = load_study(tmp_path / "new").records
        assert 50 < len(kept) < 100  # the rows on the damaged page are lost, the rest kept
        resumed = _tpetune("run", script, "--study-dir", str(tmp_path / "new"),
                           "--max-evals", "110", "--quiet", "--no-plots")  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr


def test_a_store_damaged_where_it_opens_is_named_damaged_not_foreign(tmp_path: Path) -> None:
    """Damage in the schema page fails at open: the same "is damaged" line and recipe as
    damage found later, for readers and writers; the library says fresh=True, the CLI
    --fresh."""
    study = _study(tmp_path, "study")
    db = study / "study.db"
    with db.open("r+b") as fh:
        fh.seek(100)  # past SQLite's file header, into page 1's b-tree (sqlite_master)
        fh.write(bytes(3900))
    before = db.read_bytes()
    for readonly in (True, False):
        with pytest.raises(StoreDamagedError, match=f"{db} is damaged .*sqlite3 {db} .dump") as e:
            Store.open(study, readonly=readonly)
        assert "study_dir=NEW" in str(e.value) and "--" not in str(e.value)
    shown = _tpetune("show", str(study))
    _one_line_error(shown, 2, f"{db} is damaged", "--fresh")
    assert db.read_bytes() == before


def test_a_row_that_does_not_decode_is_reported_as_damage(tmp_path: Path) -> None:
    store = Store.create(tmp_path, {"max_evals": 3})
    store.begin_trial(_record(0))
    store.close()
    conn = sqlite3.connect(tmp_path / "study.db")
    conn.execute("PRAGMA ignore_check_constraints=1")
    conn.execute("UPDATE trials SET state='zz'")  # as flipped bits in a cell would
    conn.commit()
    conn.close()
    with pytest.raises(StoreDamagedError, match="is damaged .*does not decode"):
        load_study(tmp_path)


def test_an_interrupted_creation_leaves_no_study_and_the_next_run_creates_it(
    tmp_path: Path,
) -> None:
    study = tmp_path / "study"
    killed = subprocess.run(
        [sys.executable, "-c",
         "import os; os.replace = lambda *a: os._exit(9);"  # killed right before the rename
         "from tpetune.study.store import Store;"
         f"Store.create({str(study)!r}, {{'max_evals': 3}})"],
        capture_output=True,
    )  # fmt: skip
    assert killed.returncode == 9
    assert not Store.exists(study)
    script = tmp_path / "curvy.py"
    script.write_text(CURVY)
    run = _tpetune("run", str(script), "--study-dir", str(study), "--max-evals", "3", "--quiet",
                   "--no-plots")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert not list(study.glob(".study.db.new*"))  # the half-made file was cleared
    assert len(load_study(study).records) == 3


def test_a_study_bricked_by_an_old_interrupted_creation_says_to_use_fresh(
    tmp_path: Path,
) -> None:
    conn = sqlite3.connect(tmp_path / "study.db")  # tables committed, meta rows not
    conn.executescript(_SCHEMA)
    conn.close()
    with pytest.raises(StoreError, match="creation was interrupted; start over with fresh=True"):
        load_study(tmp_path)


def _fsize_limit(limit: int) -> Any:
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return set_limit


def test_a_file_size_limit_mid_study_is_one_line_and_the_study_resumes(tmp_path: Path) -> None:
    study = _study(tmp_path, "study", evals=20)
    script = str(tmp_path / "curvy.py")
    size = (study / "study.db").stat().st_size
    args = ["run", script, "--study-dir", str(study), "--max-evals", "400", "--quiet", "--no-plots"]
    full = _tpetune(*args, preexec=_fsize_limit(size + 64 * 1024))
    _one_line_error(full, 1, f"could not write {study / 'study.db'}", "Finished trials are kept",
                    "run the same command again")  # fmt: skip
    kept = [r for r in load_study(study).records if r.state is not TrialState.RUNNING]
    assert 20 < len(kept) < 400
    resumed = _tpetune(*args[:5], "60", "--quiet", "--no-plots")
    assert resumed.returncode == 0, resumed.stderr
    records = load_study(study).records
    assert [r.tid for r in records] == list(range(60))
    assert records[: len(kept)] == kept


def test_plots_into_a_full_folder_leave_no_temporary_file(tmp_path: Path) -> None:
    study = _study(tmp_path, "study", evals=12)
    out = tmp_path / "plots"
    out.mkdir()
    full = _tpetune("plot", str(study), "--out", str(out), preexec=_fsize_limit(4096))
    _one_line_error(full, 1, "could not write loss_history.png", "File too large")
    assert list(out.iterdir()) == []


def test_plots_on_a_full_small_filesystem_leave_no_temporary_file(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        (mnt / "filler").write_bytes(b"x" * 56 * 1024)
        study = _study(tmp_path, "study", evals=12)
        full = _tpetune("plot", str(study), "--out", str(mnt))
        _one_line_error(full, 1, "No space left on device")
        assert sorted(p.name for p in mnt.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
