"""bench/breakdown.py's time-to-quality figures: finish stamps read from a real study, the
time to a target loss, and the per-seed spread it prints."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from hyperopt import hp

from tpetune import Search, tune


def test_time_to_target_comes_from_the_study_s_finish_stamps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import breakdown

    launched = time.time()
    tune(
        lambda p: (p["x"] - 0.3) ** 2, {"x": hp.uniform("x", 0, 1)}, study_dir=tmp_path / "s",
        max_evals=6, search=Search(seed=2), progress=False,
    )  # fmt: skip
    finishes = breakdown._trace(tmp_path / "s", launched)
    assert len(finishes) == 6
    assert [t for t, _ in finishes] == sorted(t for t, _ in finishes)
    assert all(t >= 0 for t, _ in finishes)
    losses = [loss for _, loss in finishes]
    second_best = sorted(losses)[1]
    first = next(t for t, loss in finishes if loss <= second_best)
    assert breakdown._time_to(finishes, second_best) == first
    assert breakdown._time_to(finishes, min(losses) / 2) == math.inf

    def run(wall: float, best: float) -> dict[str, object]:
        return {"wall": wall, "best_loss": best, "test_ratio": 1.0, "finishes": [(wall / 2, best)]}

    breakdown.print_spread(
        {"baseline": [run(10, 0.5), run(12, 0.4)], "this tree": [run(5, 0.5), run(9, 0.4)]}
    )
    out = capsys.readouterr().out
    assert "target loss 0.45" in out
    assert "0.625 (0.5-0.75)" in out  # the same-seed wall ratios, median (min-max)
    assert "1/2" in out  # one seed of two reached the target in each tree


def test_the_target_is_judged_on_same_seed_ratios_not_on_the_median_walls() -> None:
    from bench import breakdown

    def run(wall: float) -> dict[str, float]:
        return {"wall": wall, "train_step": 0.7 * wall}

    runs = {"baseline": [run(10), run(20), run(30)], "this tree": [run(6), run(9), run(16)]}
    # median walls: 9 / 20 = 0.45; same-seed ratios 0.6, 0.45, 0.53: median 0.53
    assert breakdown.same_seed_ratios(runs) == [0.6, 0.45, 16 / 30]
    assert not breakdown.target_met(runs, "stock")
    assert breakdown.target_met(runs, "digits")
    runs["this tree"] = [{"wall": 4.0, "train_step": 1.0}] * 3  # fast, but mostly not training
    assert not breakdown.target_met(runs, "digits")


def test_train_steps_running_is_the_union_over_processes(tmp_path: Path) -> None:
    """Two workers training at the same time are not twice the wall: the share the target
    judges is the wall with a train step running in any process."""
    import json

    from bench import breakdown

    def log(pid: int, *spans: tuple[float, float]) -> None:
        lines = [{"cat": "train_step", "t0": t0, "t1": t1} for t0, t1 in spans]
        (tmp_path / f"{pid}.jsonl").write_text("\n".join(json.dumps(e) for e in lines) + "\n")

    log(1, (0.0, 4.0), (5.0, 6.0))
    log(2, (2.0, 5.5))  # overlaps both of worker 1's
    figures = breakdown.breakdown(tmp_path, wall=10.0)
    assert figures["train_step"] == pytest.approx(8.5)  # summed: 4 + 1 + 3.5
    assert figures["train_busy"] == pytest.approx(6.0)  # covered: 0..6
    runs = {"baseline": [{"wall": 20.0, "train_step": 5.0}], "this tree": [figures]}
    assert breakdown.target_met(runs, "digits")  # 6 s of a 10 s wall: 60%
    figures["train_busy"] = 5.5  # the summed 8.5 s would still say 85%
    assert not breakdown.target_met(runs, "digits")
