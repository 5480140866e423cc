"""docs/examples/hyperopt_lstm.py: the seed article's script under tpetune.fmin, killed with
SIGKILL mid-study, resumed, and its best model loaded back reproducing its stored loss."""

from __future__ import annotations

import os
import re
import runpy
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tpetune
from tpetune.study.artifacts import best_model

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "hyperopt_lstm.py"
MAX_EVALS = 4

pytestmark = pytest.mark.keras


def _finished(db: Path) -> int:
    if not db.is_file():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(
            conn.execute("SELECT COUNT(*) FROM trials WHERE state != 'running'").fetchone()[0]
        )
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_only_the_import_line_is_tpetunes() -> None:
    text = SCRIPT.read_text()
    imports = [line for line in text.splitlines() if re.match(r"(from|import) tpetune", line)]
    assert imports == ["from tpetune import fmin  # was: from hyperopt import fmin"]
    for label in ("'bs'", "'units_lsmt1'", "'num_layers_lstm'", 'hp.uniform("lr", 0, 1)'):
        assert label.replace("'", '"') in text


def test_runs_resumes_after_kill_9_and_the_best_model_reproduces_its_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "MAX_EVALS": str(MAX_EVALS), "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen(
        [sys.executable, str(SCRIPT)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    runs = tmp_path / "runs"
    deadline = time.monotonic() + 600
    db = None
    while time.monotonic() < deadline and first.poll() is None:
        found = list(runs.glob("fmin-create_model_hypopt-*/study.db")) if runs.is_dir() else []
        if found and _finished(found[0]) >= 1:
            db = found[0]
            break
        time.sleep(0.5)
    assert db is not None and first.poll() is None, "the first run ended before the kill"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    study_dir = db.parent
    before = {r.tid: r for r in tpetune.load_study(study_dir).records if r.state.value != "running"}
    assert 1 <= len(before) < MAX_EVALS

    second = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"trials: {MAX_EVALS} best loss:" in second.stdout
    study = tpetune.load_study(study_dir)
    assert [r.tid for r in study.records] == list(range(MAX_EVALS))
    assert all(r.state.value != "running" for r in study.records)
    for tid, record in before.items():  # what finished before the kill is kept as it was
        assert study.records[tid].loss == record.loss and study.records[tid].params == record.params
    assert (tmp_path / "hyperopt_res").is_file()

    best = study.best
    assert best is not None
    kept = sorted(int(p.stem) for p in (study_dir / "models").glob("*.keras"))
    assert best.tid in kept and len(kept) <= 3
    model = best_model(study)  # safe mode
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAX_EVALS", str(MAX_EVALS))
    ns = runpy.run_path(str(SCRIPT))  # the study is complete: fmin returns without training
    _, _, x_val, y_val = ns["data_for"](study.best_args["time_steps"])
    assert float(model.evaluate(x_val, y_val, verbose=0)) == pytest.approx(best.loss, rel=1e-6)
