"""`tpetune import` unpickles only what a hyperopt Trials pickle holds (issue 26, item 19).

The pickles in tests/fixtures/hyperopt_pickles were written by hyperopt 0.2.7 and 0.3.0
(tests/fixtures/hyperopt_pickles/make.py says how); the payload is built here."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tpetune

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hyperopt_pickles"
PICKLES = sorted(FIXTURES.glob("h*.pkl"))


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _tpetune(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-m", "tpetune", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_the_fixtures_are_from_both_hyperopt_versions_with_and_without_attachments() -> None:
    names = {p.name for p in PICKLES}
    assert names == {f"h{v}_{k}.pkl" for v in ("0.2.7", "0.3.0") for k in ("plain", "attachments")}


@pytest.mark.parametrize("pkl", PICKLES, ids=lambda p: p.stem)
def test_real_hyperopt_pickles_import_without_trusting_them(pkl: Path, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "space.py", tmp_path / "space.py")
    done = _tpetune("import", str(pkl), "--space", "space.py", "--study-dir", "s", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "imported 8 trials" in done.stdout and "--trust-pickle" not in done.stderr
    study = tpetune.load_study(tmp_path / "s")
    with open(pkl, "rb") as fh:  # the fixture is ours: the test may trust it
        trials = pickle.load(fh)
    assert [r.loss for r in study.records] == [t["result"]["loss"] for t in trials.trials]


def test_a_payload_pickle_is_refused_by_name_and_never_runs(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "space.py", tmp_path / "space.py")
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"trials": _Payload(marker)}))
    done = _tpetune("import", "evil.pkl", "--space", "space.py", "--study-dir", "s", cwd=tmp_path)
    assert done.returncode == 2 and not marker.exists()
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "posix.system" in lines[0] and "--trust-pickle" in lines[0]
    assert not (tmp_path / "s").exists()

    trusted = _tpetune(
        "import", "evil.pkl", "--space", "space.py", "--study-dir", "s", "--trust-pickle",
        cwd=tmp_path,
    )  # fmt: skip
    assert marker.exists()  # the override does what it says (and still refuses a non-Trials)
    assert trusted.returncode == 2 and "not a hyperopt Trials" in trusted.stderr
