"""Learning-curve extrapolation for freeze-thaw: where will a partial curve end?

The model (after Domhan, Springenberg and Hutter 2015, "Speeding up automatic hyperparameter
optimization of deep neural networks by extrapolation of learning curves"): an ensemble of
parametric curve families fitted to the values a trial reported so far, its spread calibrated
against the study's own finished curves. Lower values are better (losses).

- Families, in step ``t`` (1, 2, ...): ``pow3`` c + a t^-θ, ``exp3`` c + a e^-θt,
  ``log-power`` c + a / (1 + (t/β)^α), ``ilog2`` c + a / log(t + 1) and ``vapor-pressure``
  exp(a + b/t + c log t). Each is fitted by separable least squares: the linear coefficients
  in closed form, the shape parameters over a fixed grid, so a fit is deterministic (a resumed
  study decides the same), has no local minima to fall into, and costs about 0.1 ms; a
  family whose best fit rises (a < 0) stays flat at its mean instead.
- The ensemble weighs the families by their BIC; its prediction is the best value the curve
  reaches up to the horizon (the trial's best so far included), and its raw spread combines
  the families' disagreement with the residual noise.
- Calibration (what keeps slow starters alive): the same extrapolation is applied to the
  first ``k`` values of every finished curve of the study, and the errors it makes on their
  actual best values, in units of the raw spread, give the mean and spread of the
  predictive distribution at step ``k``. A study whose curves keep improving late thus
  widens every prediction; one whose curves are predictable narrows them.
- Heavy tails: those errors are far from normal where curves are flat early and fall late
  (on the stock replay table a best configuration's curve fell 23 raw spreads below its
  forecast at step 3, which the normal fit puts at p = 0). So a probability or expected
  improvement is never below what the errors themselves give: the share of finished curves
  whose error, applied to this forecast, would end below the threshold (out of n + 1, the
  curve at hand counted as one that does not). With 3 to 998 finished curves that reach
  the step, a trial is thus pruned (p below 0.1% by default) only when none of them beat its
  forecast by that much.

No weights, no downloads, numpy only; :func:`fit` results are cached per curve prefix.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Fewest finished curves whose errors calibrate the spread; below it the spread is widened.
MIN_CALIBRATION = 3
_UNCALIBRATED_SPREAD = 3.0


_POW = np.geomspace(0.05, 4.0, 40)
_EXP = np.geomspace(0.01, 3.0, 40)
_LP_BETA, _LP_ALPHA = np.meshgrid(np.geomspace(0.3, 30.0, 12), np.geomspace(0.5, 4.0, 8))
_LP = np.stack([_LP_BETA.ravel(), _LP_ALPHA.ravel()], axis=1)


def _basis(family: str, t: np.ndarray) -> np.ndarray:
    """The family's basis g_θ(t) for every grid point θ: shape (grid, len(t))."""
    if family == "pow3":
        return np.power(t[None, :], -_POW[:, None])
    if family == "exp3":
        return np.exp(-_EXP[:, None] * t[None, :])
    if family == "log-power":
        return 1.0 / (1.0 + np.power(t[None, :] / _LP[:, :1], _LP[:, 1:]))
    return 1.0 / np.log(t[None, :] + 1.0)  # ilog2


_SEPARABLE = {"pow3": 3, "exp3": 3, "log-power": 4, "ilog2": 2}  # family -> parameters


@dataclass(frozen=True)
class FamilyFit:
    """One family fitted to a prefix: its predicted best value up to the horizon and fit."""

    family: str
    rss: float
    params: int
    path: tuple[float, ...]  # predicted values at steps k+1 .. horizon


@functools.lru_cache(maxsize=50_000)  # ~1 KiB each: bounded in long replays
def fit(values: tuple[float, ...], horizon: int) -> tuple[FamilyFit, ...]:
    """Every family fitted to ``values`` (steps 1..k, finite), predicting up to ``horizon``."""
    y = np.asarray(values, dtype=float)
    k = len(y)
    t = np.arange(1, k + 1, dtype=float)
    future = np.arange(k + 1, max(horizon, k) + 1, dtype=float)
    fits = []
    for family, n_params in _SEPARABLE.items():
        g = _basis(family, t)
        gf = _basis(family, future) if len(future) else np.zeros((g.shape[0], 0))
        gm = g.mean(axis=1, keepdims=True)
        gc = g - gm
        var = (gc**2).sum(axis=1)
        a = np.where(var > 1e-12, (gc * (y - y.mean())).sum(axis=1) / np.maximum(var, 1e-12), 0)
        a = np.maximum(a, 0.0)  # a curve that would rise: flat at its mean instead
        c = y.mean() - a * gm[:, 0]
        rss = ((y[None, :] - c[:, None] - a[:, None] * g) ** 2).sum(axis=1)
        i = int(np.argmin(rss))
        path = c[i] + a[i] * gf[i]
        fits.append(FamilyFit(family, float(rss[i]), n_params, tuple(map(float, path))))
    if k >= 3 and bool(np.all(y > 0)):  # vapor pressure: linear in log y
        design = np.stack([np.ones(k), 1.0 / t, np.log(t)], axis=1)
        coef, *_ = np.linalg.lstsq(design, np.log(y), rcond=None)
        resid = y - np.exp(design @ coef)
        if len(future):
            fd = np.stack([np.ones(len(future)), 1.0 / future, np.log(future)], axis=1)
            path = np.exp(np.clip(fd @ coef, -50, 50))
        else:
            path = np.zeros(0)
        rss = float((resid**2).sum())
        fits.append(FamilyFit("vapor-pressure", rss, 3, tuple(map(float, path))))
    return tuple(fits)


@dataclass(frozen=True)
class Forecast:
    """The predictive distribution of a curve's best value up to the horizon: normal with
    ``mean`` and ``sd``, never above ``best_so_far`` in effect (see :meth:`p_below`)."""

    best_so_far: float
    mean: float
    sd: float
    #: The best values the finished curves' calibration errors give this curve (the
    #: empirical distribution, see the module); empty while too few curves calibrate.
    outcomes: tuple[float, ...] = ()

    def p_below(self, threshold: float) -> float:
        """P(the curve's best value ends below ``threshold``)."""
        if self.best_so_far < threshold:
            return 1.0
        p = _phi((threshold - self.mean) / self.sd)
        if self.outcomes:
            below = sum(v < threshold for v in self.outcomes)
            p = max(p, below / (len(self.outcomes) + 1))
        return p

    def expected_improvement(self, threshold: float) -> float:
        """E[max(threshold - best value, 0)]."""
        if self.best_so_far < threshold:
            return threshold - self.best_so_far
        u = (threshold - self.mean) / self.sd
        ei = float((threshold - self.mean) * _phi(u) + self.sd * _pdf(u))
        if self.outcomes:
            gains = sum(max(threshold - v, 0.0) for v in self.outcomes)
            ei = max(ei, gains / (len(self.outcomes) + 1))
        return ei


def raw_forecast(values: Sequence[float], horizon: int) -> tuple[float, float, float]:
    """The uncalibrated ensemble on finite ``values``: (best so far, mean, raw spread)."""
    y = tuple(float(v) for v in values)
    best = min(y)
    k = len(y)
    scale = max(abs(best), 1e-12)
    if k < 2 or horizon <= k:
        return best, best, 1e-3 * scale
    fits = fit(y, horizon)
    floor = (1e-3 * scale) ** 2
    bic = np.array([k * math.log(f.rss / k + floor) + f.params * math.log(k) for f in fits])
    w = np.exp(-0.5 * (bic - bic.min()))
    w /= w.sum()
    ends = np.array([min(best, min(f.path)) if f.path else best for f in fits])
    mean = float((w * ends).sum())
    spread = float(np.sqrt((w * (ends - mean) ** 2).sum() + min(f.rss for f in fits) / k))
    return best, mean, max(spread, 1e-3 * scale)


def forecast(
    values: Sequence[float], horizon: int, finished: Sequence[Sequence[float]]
) -> Forecast:
    """The calibrated forecast of ``values``' best value up to ``horizon`` (see the module).

    ``finished`` are the study's finished curves; those longer than ``values`` calibrate."""
    k = len(values)
    best, mean, spread = raw_forecast(values, horizon)
    key = tuple(tuple(c) for c in finished)
    z_mean, z_sd = calibration(key, k, horizon)
    errors = calibration_errors(key, k, horizon)
    outcomes = tuple(min(best, mean + z * spread) for z in errors)
    return Forecast(best, mean + z_mean * spread, max(z_sd * spread, 1e-12), outcomes)


@functools.lru_cache(maxsize=20_000)
def calibration_errors(
    finished: tuple[tuple[float, ...], ...], k: int, horizon: int
) -> tuple[float, ...]:
    """The errors of :func:`raw_forecast` at step ``k`` on the finished curves longer than
    ``k``, in units of its raw spread; empty with fewer than :data:`MIN_CALIBRATION`."""
    errors = []
    for curve in finished:
        clean = [v for v in curve if not math.isnan(v)]
        if len(clean) <= k or any(math.isnan(v) for v in curve[:k]):
            continue
        _, mean, spread = raw_forecast(clean[:k], horizon)
        errors.append((min(clean) - mean) / spread)
    return tuple(errors) if len(errors) >= MIN_CALIBRATION else ()


@functools.lru_cache(maxsize=20_000)
def calibration(
    finished: tuple[tuple[float, ...], ...], k: int, horizon: int
) -> tuple[float, float]:
    """Mean and spread of :func:`calibration_errors`; (0, wide) with too few to tell."""
    errors = calibration_errors(finished, k, horizon)
    if not errors:
        return 0.0, _UNCALIBRATED_SPREAD
    e = np.asarray(errors)
    return float(e.mean()), max(float(e.std(ddof=1)), 0.5)


def _phi(u: float) -> float:
    return 0.5 * math.erfc(-u / math.sqrt(2.0))


def _pdf(u: float) -> float:
    return math.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
