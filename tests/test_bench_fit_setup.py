"""bench/fit_setup.py: the variants run in their own processes on the real digits objective
and train the same losses to the bit (no timing is asserted). The smoke run compares
``before`` with every change at once; each change's own equivalence is tested where it lives
(tests/keras/test_reuse.py, test_inputs.py, test_prebuild.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")
pytestmark = pytest.mark.keras

ROOT = Path(__file__).resolve().parents[1]


def test_every_change_at_once_trains_the_same_losses(tmp_path: Path) -> None:
    out = tmp_path / "fit_setup.json"
    argv = ["--quick", "--trials", "1", "--variants", "+ state before fit", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "bench/fit_setup.py", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())["figures"]
    variants = ["before", "+ state before fit"]
    assert list(figures["walls"]) == variants
    assert all(figures["walls"][v] > 0 for v in variants)
    assert figures["same_losses"] == dict.fromkeys(variants, True)
    assert "vs the row above" in done.stdout


def test_an_unknown_variant_is_refused_with_exit_2_naming_the_choices() -> None:
    done = subprocess.run(
        [sys.executable, "bench/fit_setup.py", "--quick", "--variants", "+ magic"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--variants + magic: choose from before" in done.stderr
