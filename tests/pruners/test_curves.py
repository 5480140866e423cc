"""The learning-curve model of freeze-thaw (tpetune/pruners/curves.py)."""

from __future__ import annotations

import math

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
