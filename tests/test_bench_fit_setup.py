"""bench/fit_setup.py: each fit set-up change runs in its own process on the real digits
objective, and every variant trains the same losses to the bit (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")
pytestmark = pytest.mark.keras

ROOT = Path(__file__).resolve().parents[1]


def test_every_variant_trains_the_same_losses(tmp_path: Path) -> None:
    out = tmp_path / "fit_setup.json"
    done = subprocess.run(
        [sys.executable, "bench/fit_setup.py", "--quick", "--trials", "1", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())["figures"]
    variants = [
        "before",
        "+ one gc per trial",
        "+ compiled-model reuse",
        "+ lean inputs",
        "+ state before fit",
    ]
    assert list(figures["walls"]) == variants
    assert all(figures["walls"][v] > 0 for v in variants)
    assert figures["same_losses"] == dict.fromkeys(variants, True)
    assert "vs the row above" in done.stdout
