"""The learning-curve model of freeze-thaw (tpetune/pruners/curves.py)."""

from __future__ import annotations

import math
from dataclasses import replace

from tpetune.pruners.curves import calibration, fit, forecast, raw_forecast


def _pow3(t: int) -> float:
    return 0.2 + 0.8 / t


def test_a_clean_curve_extrapolates_to_its_end() -> None:
    prefix = [_pow3(t) for t in range(1, 6)]
    best, mean, spread = raw_forecast(prefix, 20)
    assert best == prefix[-1]
    assert abs(mean - _pow3(20)) < 0.03 and spread < 0.05
    assert {f.family for f in fit(tuple(prefix), 20)} >= {"pow3", "exp3", "log-power", "ilog2"}


def test_forecasts_are_deterministic_and_probabilities_ordered() -> None:
    finished = [[_pow3(t) * (1 + 0.1 * k) for t in range(1, 13)] for k in range(5)]
    a = forecast([1.5, 1.0, 0.8], 12, finished)
    b = forecast([1.5, 1.0, 0.8], 12, [list(c) for c in finished])
    assert a == b  # a resumed study decides the same
    assert a.p_below(0.3) <= a.p_below(0.5) <= a.p_below(0.9) == 1.0  # best so far 0.8 < 0.9
    assert a.expected_improvement(0.3) <= a.expected_improvement(0.5)


def test_calibration_is_wide_without_enough_finished_curves() -> None:
    one = ((1.0, 0.5, 0.4, 0.35),)
    assert calibration(one, 2, 4) == (0.0, 3.0)
    many = tuple(tuple(_pow3(t) + 0.01 * k for t in range(1, 11)) for k in range(6))
    z_mean, z_sd = calibration(many, 3, 10)
    assert math.isfinite(z_mean) and z_sd >= 0.5


def _flat_then_drop(drop_at: int | None, level: float = 0.405) -> list[float]:
    """A near-random-walk curve, flat at ``level``; with ``drop_at``, it falls 3% there."""
    return [level + 0.002 / t - (0.012 if drop_at and t >= drop_at else 0) for t in range(1, 13)]


def test_a_late_drop_seen_once_keeps_a_flat_curve_from_being_pruned() -> None:
    """On curves that are flat early and fall late (the stock table), the normal fit of the
    calibration errors underrates a flat start's chance; the errors themselves say that one
    finished curve in n did beat its forecast that much: p >= 1/(n + 1)."""
    flat = [_flat_then_drop(None, 0.405 + 0.001 * k) for k in range(9)]
    late = [*flat, _flat_then_drop(7)]
    start = _flat_then_drop(None)[:3]
    threshold = 0.398  # below every flat curve's end, above the late one's
    assert forecast(start, 12, flat).p_below(threshold) < 1e-3  # nothing like it: prunable
    with_late = forecast(start, 12, late)
    normal_only = replace(with_late, outcomes=())
    assert normal_only.p_below(threshold) < 1 / (len(late) + 1) <= with_late.p_below(threshold)
    ei = with_late.expected_improvement(threshold)
    assert ei > normal_only.expected_improvement(threshold)
    assert len(with_late.outcomes) == len(late)
