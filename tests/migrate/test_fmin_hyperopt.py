"""tpetune.fmin against hyperopt.fmin in real processes, and hyperopt's attachments.

- A script killed with SIGKILL mid-study and re-run gives hyperopt.fmin's uninterrupted
  answer, trial by trial, and leaves ``rstate`` where hyperopt leaves it.
- hyperopt's own "Trials object" docs example (attachments) runs with only its import changed.
- ``ctrl.attachments`` in an ``fn`` marked ``fmin_pass_expr_memo_ctrl``; bytes and str kept in
  the study and served after a resume; a study made before the attachments table reads none.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hyperopt
import numpy as np
import pytest
from hyperopt import STATUS_OK, Trials, fmin_pass_expr_memo_ctrl, hp, tpe
from hyperopt.pyll import rec_eval

import tpetune
from tpetune.study.store import Store

SCRIPT = """
import functools, json, sys, time
import numpy as np
from hyperopt import hp, tpe, Trials
from tpetune import fmin  # was: from hyperopt import fmin

def loss(p):
    time.sleep(0.15)  # a window for the kill
    return (p["x"] - 1) ** 2 + (0.3 if p["act"] == "relu" else 0.0)

space = {"x": hp.uniform("x", -4, 4), "act": hp.choice("act", ["relu", "tanh"])}
rstate = np.random.default_rng(42)
trials = Trials()
best = fmin(loss, space, algo=functools.partial(tpe.suggest, n_startup_jobs=5),
            max_evals=24, trials=trials, rstate=rstate, show_progressbar=False)
print(json.dumps({"best": {k: float(v) for k, v in best.items()},
                  "vals": [{k: float(v[0]) for k, v in t["misc"]["vals"].items()} for t in trials],
                  "next": int(rstate.integers(2**31 - 1))}))
"""


def _finished(db: Path) -> int:
    if not db.is_file():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM trials WHERE state='ok'").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_a_script_killed_and_rerun_gives_hyperopts_uninterrupted_answer(tmp_path: Path) -> None:
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    db, deadline = None, time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        found = list((tmp_path / "runs").glob("fmin-loss-*/study.db"))
        if found and _finished(found[0]) >= 8:  # past TPE's 5 random trials
            db = found[0]
            break
        time.sleep(0.05)
    assert db is not None and first.poll() is None, "the first run ended before the kill"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert _finished(db) < 24
    second = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    ours = json.loads(second.stdout.strip().splitlines()[-1])

    plain = tmp_path / "plain.py"  # the same script under hyperopt.fmin, never interrupted
    plain.write_text(
        SCRIPT.replace("from tpetune import fmin", "from hyperopt import fmin").replace(
            "time.sleep(0.15)", "pass"
        )
    )
    done = subprocess.run(
        [sys.executable, str(plain)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    assert ours["vals"] == theirs["vals"]  # trial by trial
    assert ours["best"] == theirs["best"]
    assert ours["next"] == theirs["next"]  # rstate left where hyperopt leaves it


def test_hyperopts_trials_object_docs_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hyperopt's docs, "The Trials Object" (docs/templates/getting-started/minimizing_functions
    .md), with `fmin` imported from tpetune; its attachments read back after a resume too."""
    monkeypatch.chdir(tmp_path)
    from tpetune import fmin

    def objective(x: float) -> dict[str, Any]:
        return {
            "loss": x**2,
            "status": STATUS_OK,
            # -- store other results like this
            "eval_time": time.time(),
            "other_stuff": {"type": None, "value": [0, 1, 2]},
            # -- attachments are handled differently
            "attachments": {"time_module": pickle.dumps(time.time)},
        }

    trials = Trials()
    best = fmin(objective, space=hp.uniform("x", -10, 10), algo=tpe.suggest, max_evals=100,
                trials=trials)  # fmt: skip
    print(best)
    msg = trials.trial_attachments(trials.trials[5])["time_module"]
    time_module = pickle.loads(msg)
    assert time_module is time.time

    again = Trials()  # a re-run of the script: the study is complete, read back from the store
    fmin(objective, space=hp.uniform("x", -10, 10), algo=tpe.suggest, max_evals=100,
         trials=again)  # fmt: skip
    assert len(again.trials) == 100
    assert again.trial_attachments(again.trials[5])["time_module"] == msg
    assert again.attachments == trials.attachments


def test_ctrl_attachments_bytes_and_str_kept_and_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    @fmin_pass_expr_memo_ctrl
    def fn(expr: Any, memo: Any, ctrl: Any) -> dict[str, Any]:
        x = rec_eval(expr, memo=memo)
        ctrl.attachments["note"] = f"x={x!r}"  # str, written through ctrl
        assert ctrl.current_trial["misc"]["vals"]["x"] == [x]
        return {
            "loss": x**2,
            "status": STATUS_OK,
            "attachments": {"raw": b"\x00\xff" + str(x).encode(), "obj": {"not": "bytes"}},
        }

    space = hp.uniform("x", -1, 1)
    kwargs: dict[str, Any] = dict(algo=tpe.suggest, show_progressbar=False, study_dir=tmp_path)
    trials = Trials()
    tpetune.fmin(fn, space, max_evals=4, trials=trials, rstate=np.random.default_rng(0), **kwargs)
    theirs = Trials()
    hyperopt.fmin(fn, space, algo=tpe.suggest, max_evals=4, trials=theirs, show_progressbar=False,
                  rstate=np.random.default_rng(0))  # fmt: skip
    assert trials.attachments == theirs.attachments  # this run: every value, as hyperopt
    assert "obj" in caplog.text and "not bytes or str" in caplog.text

    later = Trials()
    tpetune.fmin(fn, space, max_evals=6, trials=later, rstate=np.random.default_rng(0), **kwargs)
    for trial in later.trials[:4]:  # earlier run: bytes and str from the store, types kept
        stored = later.trial_attachments(trial)
        x = trial["misc"]["vals"]["x"][0]
        assert stored["note"] == f"x={float(x)!r}" and isinstance(stored["note"], str)
        assert stored["raw"] == b"\x00\xff" + str(float(x)).encode()
        assert "obj" not in stored
    store = Store.open(tmp_path)
    try:
        assert sorted(store.attachments()) == list(range(6))
        assert set(store.attachments(5)[5]) == {"note", "raw"}
    finally:
        store.close()
    assert tpetune.load_study(tmp_path).best_loss == min(later.losses())
    view = tpetune.load_study(tmp_path).trials  # the study's own Trials view serves them too
    assert (
        view.trial_attachments(view.trials[5])["raw"]
        == later.trial_attachments(later.trials[5])["raw"]
    )


def test_a_study_without_the_attachments_table_reads_none_and_gains_it(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = dict(show_progressbar=False, study_dir=tmp_path)
    fn = functools.partial(_quadratic, attach=False)
    tpetune.fmin(fn, hp.uniform("x", -1, 1), max_evals=3, **kwargs)
    with sqlite3.connect(tmp_path / "study.db") as conn:  # as a study made before the table
        conn.execute("DROP TABLE attachments")
    store = Store.open(tmp_path)
    try:
        assert store.attachments() == {}
    finally:
        store.close()
    trials = Trials()
    tpetune.fmin(functools.partial(_quadratic, attach=True), hp.uniform("x", -1, 1),
                 max_evals=5, trials=trials, **kwargs)  # fmt: skip
    assert trials.trial_attachments(trials.trials[4])["x"] == b"yes"
    assert "ATTACH::0::x" not in trials.attachments


def _quadratic(x: float, attach: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"loss": x**2, "status": STATUS_OK}
    if attach:
        out["attachments"] = {"x": b"yes"}
    return out


def test_a_pickled_hyperopt_trials_continues_as_hyperopt_with_its_attachments(
    tmp_path: Path,
) -> None:
    """hyperopt's save-and-resume block: pickle the Trials, load it, call fmin again with a
    larger max_evals. tpetune.fmin continues as hyperopt.fmin does (same rstate, same new
    trials) and keeps the earlier trials' attachments."""

    def fn(x: float) -> dict[str, Any]:
        return {"loss": (x - 0.2) ** 2, "status": STATUS_OK, "attachments": {"x": repr(x)}}

    space = hp.uniform("x", -1, 1)
    old = Trials()
    hyperopt.fmin(fn, space, algo=tpe.suggest, max_evals=8, trials=old,
                  rstate=np.random.default_rng(2), show_progressbar=False)  # fmt: skip
    saved = pickle.dumps(old)
    theirs, ours = pickle.loads(saved), pickle.loads(saved)
    hyperopt.fmin(fn, space, algo=tpe.suggest, max_evals=14, trials=theirs,
                  rstate=np.random.default_rng(5), show_progressbar=False)  # fmt: skip
    tpetune.fmin(fn, space, algo=tpe.suggest, max_evals=14, trials=ours,
                 rstate=np.random.default_rng(5), show_progressbar=False,
                 study_dir=tmp_path)  # fmt: skip
    assert [t["misc"]["vals"] for t in ours.trials] == [t["misc"]["vals"] for t in theirs.trials]
    assert ours.losses() == theirs.losses()
    assert ours.attachments == theirs.attachments
