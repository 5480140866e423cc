"""tpetune.stock.verdict: DM/HLN by hand and against statsmodels, SPA and the bootstrap against
arch, known answers on synthetic series, MASE and direction by hand, the words, no extras."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from tpetune.errors import DataError
from tpetune.stock import verdict as v

stattools = pytest.importorskip("statsmodels.tsa.stattools")
arch_bootstrap = pytest.importorskip("arch.bootstrap")


def ar1_returns(n: int, phi: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = 0.01 * rng.standard_normal(n)
    r = np.zeros(n)
    for t in range(1, n):
        r[t] = phi * r[t - 1] + e[t]
    return r


def ar1_forecast(prices: np.ndarray, n_train: int) -> tuple[np.ndarray, ...]:
    """The "model": an AR(1) on log returns fitted on the training days, forecasting one day
    ahead; returns (train prices, actual, model, naive) of the days after ``n_train``."""
    r = np.diff(np.log(prices))
    x, y = r[: n_train - 2], r[1 : n_train - 1]
    phi = float(np.dot(x, y) / np.dot(x, x))
    last = prices[n_train - 1 : -1]
    model = last * np.exp(phi * r[n_train - 2 : -1])
    return prices[:n_train], prices[n_train:], model, last


def test_dm_hand_computed_case() -> None:
    # y = 0, absolute errors: d = |a| - |b| = [1, -1, 2, 2], mean 1, deviations [0, -2, 1, 1].
    # DM = mean / sqrt(gamma0 / T) with gamma0 = 6 / 4: 1 / sqrt(0.375) = sqrt(8/3).
    # HLN (h = 1): * sqrt((T + 1 - 2) / T) = sqrt(3/4) -> sqrt(2), the one-sample t statistic.
    # Student t with 3 df: F(t) = 1/2 + (u / (1 + u^2) + atan(u)) / pi with u = t / sqrt(3).
    y, a, b = np.zeros(4), np.array([1.0, 0.0, 3.0, 2.0]), np.array([0.0, 1.0, 1.0, 0.0])
    res = v.diebold_mariano(y, a, b, criterion="mae")
    stat = math.sqrt(8 / 3) * math.sqrt(3 / 4)
    assert stat == pytest.approx(math.sqrt(2))
    u = stat / math.sqrt(3)
    cdf = 0.5 + (u / (1 + u * u) + math.atan(u)) / math.pi
    assert res.statistic == pytest.approx(stat, rel=1e-12)
    assert res.p_two_sided == pytest.approx(2 * (1 - cdf), rel=1e-9)
    assert res.p_better == pytest.approx(cdf, rel=1e-9)  # the model is worse here
    assert (res.lags, res.n) == (0, 4)


def test_dm_equals_statsmodels_called_directly() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=300)
    a, b = y + rng.normal(0, 0.9, 300), y + rng.normal(0, 1.0, 300)
    for criterion in ("mse", "mae"):
        ours = v.diebold_mariano(y, a, b, criterion=criterion)
        theirs = stattools.diebold_mariano_test(
            y, a, b, lags=0, criterion=criterion, harvey_adj=True, horizon=1
        )
        assert ours.statistic == theirs.statistic
        assert ours.p_two_sided == theirs.pvalue
        assert ours.p_better == v.one_sided_better(theirs.statistic, theirs.pvalue)


def test_one_sided_from_the_sign() -> None:
    assert v.one_sided_better(-2.0, 0.04) == pytest.approx(0.02)
    assert v.one_sided_better(2.0, 0.04) == pytest.approx(0.98)


def test_spa_and_bootstrap_equal_arch_called_directly() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=250)
    naive, m1, m2 = (y + rng.normal(0, s, 250) for s in (1.0, 0.95, 1.05))
    spa = arch_bootstrap.SPA((y - naive) ** 2, np.column_stack([(y - m1) ** 2, (y - m2) ** 2]),
                             reps=1000, seed=7)  # fmt: skip
    spa.compute()
    assert v.spa_pvalue(y, naive, [m1, m2], seed=7) == float(spa.pvalues["consistent"])

    bs = arch_bootstrap.MovingBlockBootstrap(6, y - m1, y - naive, seed=7)
    ci = bs.conf_int(
        lambda ea, eb: np.array([np.sqrt(np.mean(ea**2) / np.mean(eb**2))]),
        reps=1000,
        method="percentile",
    )
    low, high, block = v.rmse_ratio_interval(y, m1, naive, seed=7)
    assert (low, high, block) == (float(ci[0, 0]), float(ci[1, 0]), 6)  # round(250 ** (1/3))


def test_random_walk_gives_no_significance() -> None:
    # 20 independent random walks: the AR(1) "model" finds nothing to exploit, so the 5% test
    # rejects about once in 20 by chance; far more would mean a biased test.
    rejected = 0
    for seed in range(20):
        prices = 100 * np.exp(np.cumsum(ar1_returns(1500, 0.0, seed)))
        train, actual, model, naive = ar1_forecast(prices, 1000)
        rejected += v.diebold_mariano(actual, model, naive).p_better < v.ALPHA
    assert rejected <= 3
    out = v.forecast_verdict(actual, model, naive, train=train, seed=0)
    assert out["dm"]["mse"]["p_better"] > v.ALPHA and out["spa_p"] > v.ALPHA
    assert out["rmse_ratio_ci"][0] < 1.0 < out["rmse_ratio_ci"][1]
    assert out["verdict"].startswith("no evidence")


def test_learnable_ar1_returns_give_a_significant_dm_result() -> None:
    prices = 100 * np.exp(np.cumsum(ar1_returns(2000, 0.3, seed=1)))
    train, actual, model, naive = ar1_forecast(prices, 1000)
    out = v.forecast_verdict(actual, model, naive, train=train, seed=0)
    assert out["dm"]["mse"]["p_better"] < 0.01
    assert out["dm"]["mae"]["p_better"] < 0.05
    assert out["spa_p"] < 0.05
    assert out["rmse_ratio_ci"][1] < 1.0
    assert out["directional_accuracy"] > 0.55
    assert out["mase"] < out["naive_mase"]
    assert out["verdict"].startswith("evidence that the model beats tomorrow = today")


def test_mase_and_direction_by_hand() -> None:
    train = np.array([10.0, 12.0, 11.0, 13.0])  # naive in-sample MAE = (2 + 1 + 2) / 3
    assert v.mase([14.0, 15.0, 16.0], [13.0, 15.0, 16.0], train) == pytest.approx(0.2)
    last = np.array([10.0, 10.0, 10.0, 10.0])
    actual = np.array([11.0, 9.0, 10.0, 12.0])  # up, down, unchanged (skipped), up
    forecast = np.array([10.5, 10.5, 11.0, 10.0])  # hit, miss, -, miss (no change predicted)
    assert v.directional_accuracy(actual, forecast, last) == pytest.approx((1 / 3, 2 / 3))


def test_verdict_words() -> None:
    assert v.verdict_text(0.64, 0.71) == (
        "no evidence that the model beats tomorrow = today (DM p = 0.64; SPA p = 0.71)"
    )
    assert v.verdict_text(0.001, 0.002).startswith("evidence that the model beats")
    assert "< 0.01" in v.verdict_text(0.001, 0.002)
    assert "not once the models tried are accounted for" in v.verdict_text(0.01, 0.3)
    assert v.verdict_text(0.99, 0.9).startswith("tomorrow = today beats the model")
    assert "pip install" in v.verdict_text(None, None)


def test_without_the_extras_the_plain_measures_remain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "statsmodels.tsa.stattools", None)
    monkeypatch.setitem(sys.modules, "arch.bootstrap", None)
    prices = 100 * np.exp(np.cumsum(ar1_returns(400, 0.0, seed=2)))
    train, actual, model, naive = ar1_forecast(prices, 300)
    out = v.forecast_verdict(actual, model, naive, train=train)
    assert "dm" not in out and "spa_p" not in out
    assert "tpetune[verdict]" in out["missing"] and "pip install" in out["verdict"]
    assert math.isfinite(out["mase"])
    assert "significance tests skipped" in v.format_verdict(out)


def test_bad_input_is_one_line_data_error() -> None:
    with pytest.raises(DataError, match="differ in length"):
        v.diebold_mariano([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(DataError, match="NaN"):
        v.diebold_mariano([1.0, 2.0, 3.0], [1.0, math.nan, 3.0], [1.0, 2.0, 2.0])
    with pytest.raises(DataError, match="constant"):
        v.diebold_mariano([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])


def test_format_verdict_prints_numbers_and_words() -> None:
    prices = 100 * np.exp(np.cumsum(ar1_returns(800, 0.3, seed=5)))
    train, actual, model, naive = ar1_forecast(prices, 500)
    text = v.format_verdict(v.forecast_verdict(actual, model, naive, train=train))
    for part in ("MASE", "Diebold-Mariano (HLN)", "block-bootstrap interval", "SPA", "verdict:"):
        assert part in text
