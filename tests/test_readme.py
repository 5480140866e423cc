"""The README's "Tuning your own model" example runs as written, through the CLI it shows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _example() -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(# spaces/my_model\.py\n.*?)```", readme, re.S)
    assert len(blocks) == 1, "README: expected one ```python block opening # spaces/my_model.py"
    return blocks[0]


def test_readme_own_model_example_runs(tmp_path: Path) -> None:
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "my_model.py").write_text(_example())
    # By name, as the README runs it: ./spaces/my_model.py is found first.
    cmd = [sys.executable, "-m", "tpetune", "run", "my_model", "--max-evals", "2"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # "study in runs/my_model/", as the README says
    shown = subprocess.run(
        [sys.executable, "-m", "tpetune", "show", "runs/my_model", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    trials = json.loads(shown.stdout)["trials"]
    assert [t["state"] for t in trials] == ["ok", "ok"]
    assert all(t["loss"] > 0 and "units1" in t["params"] for t in trials)


def test_readme_keras_trial_stream_example_runs(tmp_path: Path) -> None:
    """The README's KerasTrial block (an endless generator into tf.data) runs as a space
    file, through the CLI, two trials."""
    readme = (ROOT / "README.md").read_text()
    opening = r"```python\n(# KerasTrial with an endless generator\n.*?)```"
    blocks = re.findall(opening, readme, re.S)
    assert len(blocks) == 1, "README: expected one ```python block opening # KerasTrial with"
    (tmp_path / "stream.py").write_text(blocks[0])
    cmd = [sys.executable, "-m", "tpetune", "run", "stream.py", "--max-evals", "2",
           "--study-dir", "runs/stream", "--quiet", "--no-plots"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    shown = subprocess.run(
        [sys.executable, "-m", "tpetune", "show", "runs/stream", "--json"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    trials = json.loads(shown.stdout)["trials"]
    assert [t["state"] for t in trials] == ["ok", "ok"]
    assert all(t["metrics"]["folds_run"] == 3 for t in trials)
