"""`tpetune replay` on studies made in code: tpetune.fmin or tune() called from a script, the
objective in the script or in an importable module; a one-line error (exit 2) only when the
objective truly cannot be found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tpetune

TOP_LEVEL_FMIN = """
import numpy as np
from hyperopt import hp, tpe
from tpetune import fmin  # was: from hyperopt import fmin

print("loading data")  # top-level code before the search runs again on replay, as it must

def objective(params):
    return {"loss": (params["x"] - 1) ** 2 + params["y"], "status": "ok"}

space = {"x": hp.uniform("x", -3, 3), "y": hp.choice("y", [0.0, 0.5])}
best = fmin(objective, space, algo=tpe.suggest, max_evals=6, rstate=np.random.default_rng(1),
            study_dir="study", show_progressbar=False)
print(best)
"""

MAIN_GUARDED_TUNE = """
import tpetune
from hyperopt import hp

def main():
    tpetune.tune(lambda p: (p["lr"] - 0.1) ** 2, {"lr": hp.loguniform("lr", -5, 0)},
                 study_dir="study", max_evals=5, progress=False)

if __name__ == "__main__":
    main()
"""

MODULE = """
from hyperopt import hp

space = {"units": hp.quniform("units", 4, 64, 4), "drop": hp.uniform("drop", 0, 0.5)}

def objective(params):
    return abs(params["units"] - 32) / 32 + params["drop"]
"""

USES_MODULE = """
import tpetune
from mymodels import objective, space

if __name__ == "__main__":
    tpetune.fmin(objective, space, max_evals=5, study_dir="study", show_progressbar=False)
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _replay(study: Path, tid: int, elsewhere: Path, *extra: str) -> subprocess.CompletedProcess:
    elsewhere.mkdir(exist_ok=True)  # replay from another folder: paths come from the study
    return _run(["-m", "tpetune", "replay", str(study), str(tid), "--json", *extra], elsewhere)


@pytest.mark.parametrize(
    "script",
    [TOP_LEVEL_FMIN, MAIN_GUARDED_TUNE],
    ids=["fmin-at-top-level", "tune-in-main-with-inline-space-and-lambda"],
)
def test_replay_finds_an_objective_defined_in_the_script(tmp_path: Path, script: str) -> None:
    (tmp_path / "search.py").write_text(textwrap.dedent(script))
    made = _run(["search.py"], tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    study = tmp_path / "study"
    assert tpetune.load_study(study).meta["origin"]["script"] == str(tmp_path / "search.py")
    done = _replay(study, 3, tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert result["identical"] is True
    assert result["replayed"]["loss"] == tpetune.load_study(study).records[3].loss


def test_replay_imports_an_objective_from_its_module(tmp_path: Path) -> None:
    (tmp_path / "mymodels.py").write_text(textwrap.dedent(MODULE))
    (tmp_path / "search.py").write_text(textwrap.dedent(USES_MODULE))
    made = _run(["search.py"], tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    origin = tpetune.load_study(tmp_path / "study").meta["origin"]
    assert [origin[k] for k in ("module", "qualname", "via")] == ["mymodels", "objective", "fmin"]
    done = _replay(tmp_path / "study", 4, tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout[done.stdout.index("{") :])["identical"] is True


def test_a_changed_or_missing_script_is_one_line_exit_2(tmp_path: Path) -> None:
    script = tmp_path / "search.py"
    script.write_text(textwrap.dedent(TOP_LEVEL_FMIN))
    assert _run(["search.py"], tmp_path).returncode == 0
    study = tmp_path / "study"

    script.write_text(script.read_text() + "\n# edited\n")
    changed = _replay(study, 0, tmp_path / "elsewhere")
    assert changed.returncode == 2
    assert "changed since the study was made" in changed.stderr
    assert "Traceback" not in changed.stderr and len(changed.stderr.strip().splitlines()) == 1
    forced = _replay(study, 0, tmp_path / "elsewhere", "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert "changed since the study was made (forced)" in forced.stdout

    script.unlink()
    missing = _replay(study, 0, tmp_path / "elsewhere")
    assert missing.returncode == 2
    assert "does not exist now" in missing.stderr and "Traceback" not in missing.stderr
