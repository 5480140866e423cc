"""``tpetune dashboard`` follows a running study: real processes, HTTP to 127.0.0.1 only."""

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

pytest.importorskip("optuna_dashboard")

OBJECTIVE = """
import time
from hyperopt import hp

space = {
    "x": hp.uniform("x", -2, 2),
    "model": hp.choice("model", [{"kind": "wide", "w": hp.uniform("w", 0, 1)}, {"kind": "flat"}]),
}


def objective(params):
    time.sleep(0.4)  # slow enough that the dashboard sees the study grow
    return params["x"] ** 2
"""


def _start(*args: str, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tpetune", *args],
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        # The driver and the dashboard must get SIGINT even from a backgrounded test run.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(check: Any, what: str, proc: subprocess.Popen[bytes], log: Path) -> Any:
    """Poll ``check()`` until it returns something truthy (bounded: 120 tries, 0.5 s apart)."""
    for _ in range(240):
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"{what}: process exited {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.5)
    pytest.fail(f"{what}: not seen; output so far:\n{log.read_text()}")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def test_dashboard_serves_a_running_study_and_follows_its_growing_trial_count(
    tmp_path: Path,
) -> None:
    objective = tmp_path / "slow.py"
    objective.write_text(OBJECTIVE)
    study_dir = tmp_path / "live"
    run_log, dash_log = tmp_path / "run.log", tmp_path / "dashboard.log"
    args = ["run", str(objective), "--study-dir", str(study_dir), "--max-evals", "60", "--quiet"]
    run = _start(*args, "--no-plots", out=run_log)
    dash = None
    try:
        _wait_for(lambda: (study_dir / "study.db").is_file(), "study created", run, run_log)
        dash = _start("dashboard", str(study_dir), "--port", "0", "--poll", "0.2", out=dash_log)

        def url() -> str | None:
            for word in dash_log.read_text().split():
                if word.startswith("http://127.0.0.1:"):
                    return word
            return None

        page = _wait_for(url, "dashboard URL", dash, dash_log)
        base = page.split("/dashboard/")[0]
        study_id = int(page.rsplit("/", 1)[1])

        studies = _get(f"{base}/api/studies")["study_summaries"]
        assert [(s["study_id"], s["study_name"]) for s in studies] == [(study_id, "live")]

        def trials() -> list[dict]:
            return list(_get(f"{base}/api/studies/{study_id}")["trials"])

        first = len(_wait_for(trials, "a first trial", dash, dash_log))
        grown = _wait_for(lambda: len(trials()) > first and trials(), "more trials", dash, dash_log)
        assert len(grown) > first
        done = [t for t in grown if t["state"] == "Complete"]
        assert done, grown
        for t in done:  # active parameters only: "w" exactly when the branch is "wide"
            names = {p["name"]: p["param_external_value"] for p in t["params"]}
            assert ("w" in names) == (names["model"] == "wide"), names
        with urllib.request.urlopen(page, timeout=10) as response:  # the page itself
            assert response.status == 200 and b"<html" in response.read().lower()
    finally:
        dash_rc = _stop(dash) if dash is not None else None
        run_rc = _stop(run)
    assert dash_rc == 0, dash_log.read_text()
    assert "dashboard stopped" in dash_log.read_text()
    assert run_rc in (0, 130), run_log.read_text()


def test_dashboard_stops_on_sigterm_with_exit_code_0(tmp_path: Path) -> None:
    from tpetune.study.store import Store

    Store.create(tmp_path / "empty", {"space": {"x": "uniform(0, 1)"}, "max_evals": 1}).close()
    log = tmp_path / "out.log"
    proc = _start("dashboard", str(tmp_path / "empty"), "--port", "0", out=log)
    try:
        _wait_for(lambda: "http://127.0.0.1:" in log.read_text(), "dashboard URL", proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dashboard_refuses_a_folder_that_is_no_study_in_one_line(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    proc = _start("dashboard", str(tmp_path / "nothing"), "--port", "0", out=log)
    assert proc.wait(timeout=120) == 2
    lines = log.read_text().strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0], lines
