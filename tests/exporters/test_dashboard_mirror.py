"""The dashboard's mirror (issue 26, item 13): outside the study folder, incremental, written
in bulk, and rebuilt (not a crash) when the study is deleted in the dashboard's own UI.
Real processes, real SQLite, HTTP to 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from hyperopt import hp

from tpetune.search.space import Space
from tpetune.study.store import Store, TrialRecord, TrialState
from tpetune.study.study import load_study

SPACE = Space(
    {
        "x": hp.uniform("x", -2, 2),
        "model": hp.choice("model", [{"w": hp.quniform("w", 1, 9, 1)}, {"kind": "flat"}]),
    }
)
T0 = 1_700_000_000.0
PORT_0 = ("--port", "0", "--poll", "0.2")


def _record(tid: int, state: TrialState) -> TrialRecord:
    vals = {"x": tid / 10 - 1, "model": tid % 2, **({"w": 3.0} if tid % 2 == 0 else {})}
    done = state is not TrialState.RUNNING
    return TrialRecord(
        tid=tid,
        state=state,
        loss=(tid / 10 - 1) ** 2 if done else None,
        params=SPACE.params(vals),
        vals=vals,
        args=SPACE.evaluate(vals),
        curves={"val_loss": [1.0, 0.5]} if done else {},
        metrics={"mae": 0.1} if done else {},
        started=T0 + 10 * tid,
        finished=T0 + 10 * tid + 5 if done else None,
        duration_s=5.0 if done else None,
    )


def _study(path: Path, n: int) -> Path:
    store = Store.create(path, {"space": SPACE.describe(), "seed": 0, "max_evals": 100})
    for tid in range(n):
        store.begin_trial(_record(tid, TrialState.RUNNING))
        store.finish_trial(_record(tid, TrialState.OK))
    store.close()
    return path


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait(check: Any, what: str, proc: subprocess.Popen[bytes], log: Path) -> Any:
    for _ in range(240):
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"{what}: process exited {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.5)
    pytest.fail(f"{what}: not seen; output so far:\n{log.read_text()}")


def _urls(log: Path) -> list[str]:
    return [w for w in log.read_text().split() if w.startswith("http://127.0.0.1:")]


def test_dashboard_keeps_its_mirror_out_of_the_study_and_survives_a_delete_in_its_ui(
    tmp_path: Path,
) -> None:
    pytest.importorskip("optuna_dashboard")
    study_dir = _study(tmp_path / "live", 6)
    before = {p.name for p in study_dir.iterdir()}
    log = tmp_path / "dashboard.log"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tpetune", "dashboard", str(study_dir), *PORT_0],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    try:
        page = _wait(lambda: _urls(log), "dashboard URL", proc, log)[0]
        base, study_id = page.split("/dashboard/")[0], int(page.rsplit("/", 1)[1])
        assert len(_get(f"{base}/api/studies/{study_id}")["trials"]) == 6
        written = {p.name for p in study_dir.iterdir()} - before - {"study.db-shm", "study.db-wal"}
        assert written == set(), written  # the study folder is only read
        assert list((tmp_path / "cache" / "tpetune" / "dashboard").glob("live-*/optuna.db"))

        request = urllib.request.Request(f"{base}/api/studies/{study_id}", method="DELETE")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204
        again = _wait(lambda: _urls(log)[1:], "the study written again", proc, log)[0]
        new_id = int(again.rsplit("/", 1)[1])
        trials = _get(f"{base}/api/studies/{new_id}")["trials"]
        assert [t["state"] for t in trials] == ["Complete"] * 6
        store = Store.open(study_dir, readonly=False)  # the study goes on: the mirror follows
        store.begin_trial(_record(6, TrialState.RUNNING))
        store.finish_trial(_record(6, TrialState.OK))
        store.close()
        _wait(
            lambda: len(_get(f"{base}/api/studies/{new_id}")["trials"]) == 7, "trial 6", proc, log
        )
        assert proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    text = log.read_text()
    assert rc == 0 and "Traceback" not in text, text
    assert "deleted in its UI and written again from the study" in text


def test_follower_reads_only_what_changed_since_its_last_poll(tmp_path: Path) -> None:
    from tpetune.study.follow import StudyFollower

    study_dir = _study(tmp_path / "s", 3)
    follower = StudyFollower(study_dir)
    study, changed = follower.poll()
    assert changed is None and [r.tid for r in study.records] == [0, 1, 2]
    assert follower.poll()[1] == set()  # nothing committed since: no row read

    writer = Store.open(study_dir, readonly=False)
    writer.begin_trial(_record(3, TrialState.RUNNING))
    study, changed = follower.poll()
    assert changed == {3} and study.records[3].state is TrialState.RUNNING
    writer.record_step(3, 1, 0.7)  # a reported step: the running trial is changed
    assert follower.poll()[1] == {3}
    writer.finish_trial(_record(3, TrialState.OK))
    study, changed = follower.poll()
    assert changed == {3} and study.records[3].state is TrialState.OK
    assert follower.poll()[1] == set()
    writer.close()
    assert [r.tid for r in study.records] == [r.tid for r in load_study(study_dir).records]

    for name in ("study.db", "study.db-wal", "study.db-shm"):  # --fresh: a new file
        (study_dir / name).unlink(missing_ok=True)
    _study(study_dir, 1)
    study, changed = follower.poll()
    assert changed is None and [r.tid for r in study.records] == [0]
    follower.close()


def test_bulk_export_equals_optunas_own_per_trial_writes(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    from tpetune.exporters._params import domains
    from tpetune.exporters.optuna import OptunaExport, _frozen, storage_url

    study_dir = _study(tmp_path / "s", 8)
    store = Store.open(study_dir, readonly=False)
    store.begin_trial(_record(8, TrialState.RUNNING))
    store.close()
    study = load_study(study_dir)
    OptunaExport(tmp_path / "bulk.db").sync(study)

    storage = optuna.storages.RDBStorage(storage_url(tmp_path / "api.db"))
    sid = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    doms = domains(study.meta["space"])
    for record in study.records:
        storage.create_new_trial(sid, template_trial=_frozen(record, doms))

    def trials(path: Path) -> list[tuple]:
        s = optuna.load_study(study_name="s", storage=storage_url(path))
        return [
            (
                t.number,
                t.state,
                t.value,
                t.params,
                t.distributions,
                t.user_attrs,
                t.intermediate_values,
                t.datetime_start,
                t.datetime_complete,
            )
            for t in s.trials
        ]

    assert trials(tmp_path / "bulk.db") == trials(tmp_path / "api.db")
