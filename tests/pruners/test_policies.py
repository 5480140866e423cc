"""The pruning rules on the pruner seam: median and ASHA, pure (no store, no framework)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tpetune import ConfigError
from tpetune.pruners.policies import (
    ASHAPruner,
    Decision,
    MedianPruner,
    MemoryBoard,
    NoPruner,
    pruner_from_json,
)

FINISHED = [
    [1.0, 0.8, 0.6, 0.5],
    [1.2, 0.9, 0.7, 0.65],
    [0.9, 0.7, 0.5],  # early-stopped after 3 epochs: counts with its best (0.5) later on
    [1.5, 1.4, 1.3, 1.2],
    [1.1, 1.0, 0.9, 0.85],
]


def _board(curves: list[list[float]] = FINISHED) -> MemoryBoard:
    board = MemoryBoard()
    for c in curves:
        board.add_finished(c)
    return board


def test_median_reference_is_the_median_of_best_so_far_at_each_step() -> None:
    rule = MedianPruner(warmup_trials=5, warmup_steps=1)
    assert rule.reference(FINISHED, 1) == pytest.approx(1.1)
    assert rule.reference(FINISHED, 3) == pytest.approx(np.median([0.6, 0.7, 0.5, 1.3, 0.9]))
    assert rule.reference(FINISHED, 4) == pytest.approx(np.median([0.5, 0.65, 0.5, 1.2, 0.85]))
    assert rule.reference(FINISHED[:4], 3) is None  # warm-up: fewer than 5 finished trials


def test_median_respects_warmup_and_best_so_far() -> None:
    rule, board = MedianPruner(warmup_trials=5, warmup_steps=3), _board()
    assert not rule.decide(0, 2, [5.0, 5.0], board).prune  # step 2 < warm-up of 3 steps
    assert rule.decide(0, 3, [5.0, 5.0, 5.0], board).prune  # worse than the median at step 3
    assert not rule.decide(0, 3, [1.0, 0.6, 0.9], board).prune  # best so far 0.6 < 0.7
    loose = MedianPruner(warmup_trials=5, warmup_steps=3, percentile=90)
    assert not loose.decide(0, 3, [1.0, 1.0, 1.0], board).prune
    assert rule.decide(0, 3, [1.0, 0.6, math.nan], board).prune  # NaN is pruned


def test_asha_rungs_sit_at_min_steps_times_powers_of_eta() -> None:
    rule = ASHAPruner(min_steps=2, reduction_factor=3)
    assert [s for s in range(1, 60) if rule.rung_of(s) is not None] == [2, 6, 18, 54]
    assert [rule.rung_of(s) for s in (2, 6, 18, 54)] == [0, 1, 2, 3]
    board = MemoryBoard()
    assert rule.decide(0, 3, [9.0, 9.0, 9.0], board) == Decision(False)  # not a rung step


def test_asha_promotes_the_top_n_over_eta_at_each_rung() -> None:
    rule, board = ASHAPruner(min_steps=1, reduction_factor=3), MemoryBoard()
    outcomes = []
    for tid, value in enumerate([0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.45]):
        decision = rule.decide(tid, 1, [value], board)
        board.record(tid, decision)
        outcomes.append(decision.prune)
        assert decision.rung == 0 and decision.value == value
    # n=1: only the best (itself); n=2: floor(2/3)=0, only the best: 0.4 beats 0.5;
    # n=3: top 1 of [0.4, 0.5, 0.6]: 0.6 pruned; n=4: top 1: 0.3 best; n=5: top 1: 0.7 pruned;
    # n=6: top 2: 0.2 best; n=7: top 2 of [.2,.3,.4,.45,...]: 0.45 pruned.
    assert outcomes == [False, False, True, False, True, False, True]


def test_asha_the_first_at_a_rung_continues_and_the_floor_zero_case_keeps_only_the_best() -> None:
    rule, board = ASHAPruner(reduction_factor=4), MemoryBoard()
    first = rule.decide(0, 1, [1.0], board)
    board.record(0, first)
    assert not first.prune
    for tid, value in ((1, 2.0), (2, 0.5), (3, 0.7)):  # n = 2, 3, 4 values: floor(n/4) = 0, 0, 1
        decision = rule.decide(tid, 1, [value], board)
        board.record(tid, decision)
        assert decision.prune is (value != min(v for v in (1.0, 2.0, 0.5, 0.7)[: tid + 1]))


def test_asha_judges_the_best_value_so_far_and_prunes_nan() -> None:
    rule, board = ASHAPruner(min_steps=1, reduction_factor=3), MemoryBoard()
    for tid, curve in enumerate([[0.5, 0.5, 0.5], [0.6, 0.6, 0.6], [0.7, 0.7, 0.7]]):
        board.record(tid, rule.decide(tid, 3, curve, board))
    # At step 3 its best so far (0.4 at step 1) ranks first, though the latest value is 0.9.
    assert not rule.decide(9, 3, [0.4, 0.9, 0.9], board).prune
    nan = rule.decide(10, 3, [0.4, 0.4, math.nan], board)
    assert nan.prune and nan.rung == 1 and math.isnan(nan.value or 0.0)


def test_asha_replays_a_recorded_decision_instead_of_deciding_again() -> None:
    rule, board = ASHAPruner(), MemoryBoard()
    board.record(0, Decision(False, 0, 0.9))  # decided when the rung held only this trial
    for tid, value in ((1, 0.1), (2, 0.2), (3, 0.3)):
        board.record(tid, rule.decide(tid, 1, [value], board))
    # Re-run after a crash: the rung has grown, and 0.9 would now be pruned; it replays.
    assert rule.decide(0, 1, [0.9], board) == Decision(False, 0, 0.9)
    assert rule.decide(4, 1, [0.9], board).prune  # a new trial with that value is pruned


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "hyperband"}, "unknown pruner"),
        ({"name": "median", "percentile": 100}, "percentile must lie in"),
        ({"name": "median", "warmup_trials": 0}, "warmup_trials must be"),
        ({"name": "median", "patience": 3}, "unknown median pruner option"),
        ({"name": "asha", "reduction_factor": 1}, "reduction_factor must be"),
        ({"name": "asha", "min_steps": 0}, "min_steps must be"),
    ],
)
def test_bad_pruner_knobs_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pruner_from_json(data)


def test_json_form_round_trips_and_reads_the_first_wave_form() -> None:
    for pruner in (NoPruner(), MedianPruner(percentile=25.0), ASHAPruner(min_steps=2)):
        assert pruner_from_json(pruner.to_json()) == pruner
    old = pruner_from_json({"rule": "median", "warmup_trials": 2, "warmup_epochs": 4})
    assert old == MedianPruner(warmup_trials=2, warmup_steps=4)
    assert pruner_from_json(None) == NoPruner() == pruner_from_json({"rule": "none"})
