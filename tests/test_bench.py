"""Smoke test of the benchmark suite: ``python -m bench --quick`` runs and writes every figure.

No timing is asserted (CI machines are noisy); only that every benchmark ran, wrote its JSON
with the expected figures, and that they are finite and positive.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: benchmark -> figures its quick run must report as finite, positive numbers.
EXPECTED = {
    "overhead": ["ratio_tpetune_vs_fmin", "ms_per_trial_tpetune", "open_s", "study_bytes"],
    "stock_epoch": [],  # parsed from its printout: checked below, whatever their names
    "memory": [],
    "pruning": [
        "wall_s_no_prune",
        "wall_s_prune",
        "epochs_no_prune",
        "epochs_prune",
        "best_loss_no_prune",
        "best_loss_prune",
        "time_ratio",
        "loss_ratio",
    ],
    "strategies": ["best_loss_tpe", "best_loss_rand", "best_loss_grid", "ratio_tpe_vs_rand"],
    "parallel": ["trials_per_hour_serial", "trials_per_hour_workers", "ratio_workers_vs_serial"],
    "time_to_quality": ["target_loss"],
}
REPORT_KEYS = {"benchmark", "quick", "seconds", "figures", "target", "target_met", "table"}


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _numbers(value: Any) -> Any:
    """Every number in a (possibly nested) JSON value."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)


def test_quick_suite_writes_every_benchmarks_figures(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    for name, keys in EXPECTED.items():
        report = json.loads((tmp_path / f"{name}.json").read_text())
        assert set(report) >= REPORT_KEYS, (name, sorted(report))
        assert report["benchmark"] == name and report["quick"] is True
        figures = report["figures"]
        for key in keys:
            assert _positive(figures.get(key)), (name, key, figures.get(key))
        if not keys:  # a script printing its figures: parsed, or at least its output kept
            assert figures or report.get("stdout"), name
            numbers = list(_numbers(figures))
            assert numbers and all(math.isfinite(v) for v in numbers), (name, figures)
        assert report["table"]["rows"], name
    ttq = json.loads((tmp_path / "time_to_quality.json").read_text())["figures"]["modes"]
    assert {"fmin", "tpetune", "tpetune rand"} <= set(ttq)
    for png in EXPECTED:  # every benchmark has its plot (the suite draws the printing ones')
        assert (tmp_path / f"{png}.png").stat().st_size > 0, png
    page = (tmp_path / "benchmarks.md").read_text()
    assert "BEGIN bench:pruning" in page and "| seed |" in page
    assert "| 100 | yes |" in page  # overhead: identical proposals in every driver
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert all(b["status"] == "ok" for b in summary["benchmarks"].values())

    # --render: the page again from the stored JSONs, keeping the run's date and command.
    (tmp_path / "benchmarks.md").unlink()
    (tmp_path / "overhead.png").unlink()
    rendered = subprocess.run(
        [sys.executable, "-m", "bench", "--render", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stdout[-2000:] + rendered.stderr[-2000:]
    again = (tmp_path / "benchmarks.md").read_text()
    assert again.count("_Measured ") == page.count("_Measured ")
    assert (tmp_path / "overhead.png").stat().st_size > 0
