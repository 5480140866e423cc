"""Does the forecast beat "tomorrow = today"? Significance beside the RMSE ratio.

A test RMSE ratio of 1.01 or 0.99 says nothing without its noise. :func:`forecast_verdict`
compares a model's forecasts of a price series with the naive forecast on the same days:

- **Diebold–Mariano** (1995) test of equal accuracy, for squared and for absolute errors, with
  the Harvey–Leybourne–Newbold (1997) small-sample correction (statistic times
  ``sqrt((T + 1 - 2h + h(h - 1)/T) / T)``, Student's t with ``T - 1`` degrees of freedom), via
  ``statsmodels.tsa.stattools.diebold_mariano_test(..., lags=h - 1, harvey_adj=True)``.
  The loss differential is ``d_t = loss(model) - loss(naive)``, so a negative statistic favours
  the model; ``p_better`` is the one-sided p-value of "the model beats naive" (half the
  two-sided p-value when the statistic is negative, one minus that half otherwise). With the
  one-day horizon (``h = 1``, no HAC lags) the DM statistic is ``mean(d) / sqrt(gamma0 / T)``
  (``gamma0`` the variance of ``d`` with ``ddof=0``) and the HLN factor ``sqrt((T - 1) / T)``
  turns it into the plain one-sample t statistic of ``d``.
- **MASE** (Hyndman & Koehler 2006): test MAE divided by the in-sample MAE of the naive
  forecast over the training days; naive's own MASE is printed beside it.
- **Directional accuracy**: the share of test days with a price move whose direction the
  model called (a predicted change of exactly 0 counts as a miss); the share of up days is
  the "always up" baseline.
- A **moving-block bootstrap** 95% interval of the RMSE ratio (``arch``, seeded).
- Hansen's (2005) **Superior Predictive Ability** test (``arch.bootstrap.SPA``, stationary
  bootstrap, seeded) of naive against the search's top models: it asks whether *any* of
  them beats naive once the number of models tried is accounted for (data snooping).

statsmodels (>= 0.15) and arch are dependencies of tpetune; where they are missing anyway
(an install with ``--no-deps``, an old statsmodels) :func:`forecast_verdict` still returns
the plain error measures and says, once, what to install. This module imports neither Keras
nor matplotlib.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tpetune.errors import DataError, MissingDependencyError

__all__ = [
    "ALPHA",
    "INSTALL_HINT",
    "UNTESTED",
    "DMResult",
    "diebold_mariano",
    "directional_accuracy",
    "forecast_verdict",
    "format_verdict",
    "mase",
    "rmse_ratio_interval",
    "spa_pvalue",
    "verdict_text",
]

#: Significance level the verdict in words uses.
ALPHA = 0.05
#: What to install for the significance tests.
INSTALL_HINT = "pip install 'statsmodels>=0.15' arch"  # fits a clone and a wheel alike
#: The verdict in words when the tests could not run (the report says why once, elsewhere).
UNTESTED = "untested (the significance tests did not run)"

_BOOTSTRAP_REPS = 1000


@dataclass(frozen=True)
class DMResult:
    """One Diebold–Mariano test of ``model`` against ``naive``.

    Attributes:
        criterion: ``"mse"`` (squared errors) or ``"mae"`` (absolute errors).
        statistic: HLN-corrected DM statistic; negative when the model's loss is lower.
        p_two_sided: p-value of "equal accuracy" (Student's t, ``n - 1`` df).
        p_better: one-sided p-value of "the model beats naive".
        lags: HAC lags (``horizon - 1``).
        n: forecasts compared.
    """

    criterion: str
    statistic: float
    p_two_sided: float
    p_better: float
    lags: int
    n: int


def _require(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{what} needs {module.split('.')[0]}: {INSTALL_HINT}"
        ) from None


def _arrays(*arrays: Sequence[float] | np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    n = out[0].shape[0]
    if any(a.shape[0] != n for a in out):
        raise DataError(
            f"forecast arrays differ in length ({', '.join(str(a.shape[0]) for a in out)}); "
            "compare forecasts of the same days"
        )
    if n < 3:
        raise DataError(f"{n} forecasts are too few to test; use a longer test period")
    if not all(np.isfinite(a).all() for a in out):
        raise DataError("forecasts contain NaN or infinity; a diverged model cannot be tested")
    return out


def one_sided_better(statistic: float, p_two_sided: float) -> float:
    """One-sided p of "the first forecast has the lower loss" from a two-sided test.

    With ``d = loss(first) - loss(second)`` a negative statistic points that way: the
    one-sided p-value is half the two-sided one; otherwise one minus that half.
    """
    half = p_two_sided / 2.0
    return half if statistic < 0 else 1.0 - half


def diebold_mariano(
    actual: Sequence[float] | np.ndarray,
    model: Sequence[float] | np.ndarray,
    naive: Sequence[float] | np.ndarray,
    *,
    criterion: str = "mse",
    horizon: int = 1,
) -> DMResult:
    """Diebold–Mariano test with the HLN correction, ``lags = horizon - 1`` (classic form).

    Raises:
        MissingDependencyError: statsmodels (>= 0.15) is not installed.
        DataError: arrays of different lengths, non-finite values, fewer than 3 forecasts, or
            identical losses (no variance to test).
    """
    y, a, b = _arrays(actual, model, naive)
    stattools = _require("statsmodels.tsa.stattools", "the Diebold-Mariano test")
    if not hasattr(stattools, "diebold_mariano_test"):
        raise MissingDependencyError(
            "the Diebold-Mariano test needs statsmodels>=0.15 (diebold_mariano_test): "
            + INSTALL_HINT
        )
    loss = np.square if criterion == "mse" else np.abs
    if np.ptp(loss(y - a) - loss(y - b)) == 0:
        raise DataError("the two forecasts' losses differ by a constant; nothing to test")
    res = stattools.diebold_mariano_test(
        y, a, b, lags=horizon - 1, criterion=criterion, harvey_adj=True, horizon=horizon
    )
    stat, p2 = float(res.statistic), float(res.pvalue)
    return DMResult(criterion, stat, p2, one_sided_better(stat, p2), horizon - 1, int(y.shape[0]))


def mase(
    actual: Sequence[float] | np.ndarray,
    forecast: Sequence[float] | np.ndarray,
    train: Sequence[float] | np.ndarray,
) -> float:
    """Mean absolute scaled error: test MAE / in-sample MAE of the naive forecast on ``train``.

    Raises:
        DataError: ``train`` has fewer than 2 values or never moves.
    """
    y, f = _arrays(actual, forecast)
    t = np.asarray(train, dtype=np.float64).reshape(-1)
    scale = float(np.mean(np.abs(np.diff(t)))) if t.shape[0] >= 2 else 0.0
    if not scale > 0:
        raise DataError("the training prices never move; MASE has no scale")
    return float(np.mean(np.abs(y - f))) / scale


def directional_accuracy(
    actual: Sequence[float] | np.ndarray,
    forecast: Sequence[float] | np.ndarray,
    last: Sequence[float] | np.ndarray,
) -> tuple[float, float]:
    """``(hit rate, up-day share)`` over the days whose price moved from ``last``.

    The hit rate is the share of those days where ``sign(forecast - last)`` equals
    ``sign(actual - last)``; the up-day share is what "always up" would score.
    """
    y, f, p = _arrays(actual, forecast, last)
    moved = y != p
    if not moved.any():
        return math.nan, math.nan
    true_dir = np.sign(y - p)[moved]
    hits = np.sign(f - p)[moved] == true_dir
    return float(hits.mean()), float((true_dir > 0).mean())


def rmse_ratio_interval(
    actual: Sequence[float] | np.ndarray,
    model: Sequence[float] | np.ndarray,
    naive: Sequence[float] | np.ndarray,
    *,
    block: int | None = None,
    reps: int = _BOOTSTRAP_REPS,
    seed: int = 0,
    size: float = 0.95,
) -> tuple[float, float, int]:
    """Percentile interval of RMSE(model) / RMSE(naive) by a moving-block bootstrap.

    Blocks of paired errors keep their serial dependence; ``block`` defaults to
    ``round(T ** (1/3))``. Returns ``(low, high, block)``.

    Raises:
        MissingDependencyError: arch is not installed.
    """
    y, a, b = _arrays(actual, model, naive)
    bootstrap = _require("arch.bootstrap", "the bootstrap interval")
    block = block or max(1, round(y.shape[0] ** (1 / 3)))
    bs = bootstrap.MovingBlockBootstrap(block, y - a, y - b, seed=seed)

    def ratio(ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        return np.array([math.sqrt(np.mean(ea * ea) / np.mean(eb * eb))])

    ci = bs.conf_int(ratio, reps=reps, method="percentile", size=size)
    return float(ci[0, 0]), float(ci[1, 0]), int(block)


def spa_pvalue(
    actual: Sequence[float] | np.ndarray,
    naive: Sequence[float] | np.ndarray,
    models: Sequence[Sequence[float] | np.ndarray],
    *,
    reps: int = _BOOTSTRAP_REPS,
    seed: int = 0,
) -> float:
    """Hansen's SPA p-value ("consistent") of "no model beats naive" on squared errors.

    Raises:
        MissingDependencyError: arch is not installed.
        DataError: no models, or arrays of different lengths.
    """
    if not models:
        raise DataError("the SPA test needs at least one model's forecasts")
    y, b, *ms = _arrays(actual, naive, *models)
    bootstrap = _require("arch.bootstrap", "the SPA test")
    losses = np.column_stack([np.square(y - m) for m in ms])
    spa = bootstrap.SPA(np.square(y - b), losses, reps=reps, seed=seed)
    spa.compute()
    return float(spa.pvalues["consistent"])


def verdict_text(dm_p: float | None, spa_p: float | None, *, alpha: float = ALPHA) -> str:
    """The verdict in words, from the DM one-sided p (squared errors) and the SPA p."""
    spa = "" if spa_p is None else f"; SPA p {_p(spa_p)}"
    if dm_p is None:
        return UNTESTED
    nums = f"DM p {_p(dm_p)}{spa}"
    if dm_p >= alpha:
        if dm_p > 1 - alpha:
            return f"tomorrow = today beats the model ({nums})"
        return f"no evidence that the model beats tomorrow = today ({nums})"
    if spa_p is not None and spa_p >= alpha:
        return (
            f"the model beats tomorrow = today on this period, but not once the models "
            f"tried are accounted for ({nums})"
        )
    return f"evidence that the model beats tomorrow = today ({nums})"


def _p(p: float) -> str:
    """``= 0.64`` or ``< 0.01``: two decimals, never a misleading ``= 0.00``."""
    return "< 0.01" if p < 0.005 else f"= {p:.2f}"


def forecast_verdict(
    actual: Sequence[float] | np.ndarray,
    predicted: Sequence[float] | np.ndarray,
    naive: Sequence[float] | np.ndarray,
    *,
    train: Sequence[float] | np.ndarray,
    alternatives: Sequence[Sequence[float] | np.ndarray] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """Every measure of this module for one test period, JSON-able, with the verdict in words.

    Args:
        actual, predicted, naive: prices of the test days, the model's and naive forecasts.
        train: the training days' prices (MASE scale).
        alternatives: forecasts of other candidate models (the search's top trials) for the
            SPA test; ``predicted`` is always included.
        seed: seed of the bootstraps.

    Returns:
        ``mase``, ``naive_mase``, ``directional_accuracy``, ``up_share``, and when statsmodels
        and arch are installed ``dm`` (``{"mse": {...}, "mae": {...}}``), ``rmse_ratio_ci``,
        ``ci_block``, ``spa_p`` and ``spa_models``; always ``verdict`` (words) and, when a
        test could not run, ``missing`` (what to install).
    """
    y, f, b = _arrays(actual, predicted, naive)
    hit, up = directional_accuracy(y, f, b)
    out: dict[str, Any] = {
        "mase": mase(y, f, train),
        "naive_mase": mase(y, b, train),
        "directional_accuracy": hit,
        "up_share": up,
    }
    try:
        out["dm"] = {c: _dm_dict(diebold_mariano(y, f, b, criterion=c)) for c in ("mse", "mae")}
        low, high, block = rmse_ratio_interval(y, f, b, seed=seed)
        out["rmse_ratio_ci"], out["ci_block"] = [low, high], block
        models = [f, *alternatives]
        out["spa_p"] = spa_pvalue(y, b, models, seed=seed)
        out["spa_models"] = len(models)
    except MissingDependencyError as exc:
        out["missing"] = str(exc)
    dm = out.get("dm", {}).get("mse", {}).get("p_better")
    out["verdict"] = verdict_text(dm, out.get("spa_p"))
    return out


def _dm_dict(res: DMResult) -> dict[str, Any]:
    d = asdict(res)
    d.pop("criterion")
    return d


def format_verdict(v: Mapping[str, Any], *, indent: str = "  ") -> str:
    """The verdict block of the printed report, from :func:`forecast_verdict`'s dict."""
    lines = [
        f"{indent}MASE {v['mase']:.3f} (naive {v['naive_mase']:.3f}); direction called on "
        f"{v['directional_accuracy']:.1%} of days (up days {v['up_share']:.1%})"
    ]
    if "dm" in v:
        dm = v["dm"]
        lo, hi = v["rmse_ratio_ci"]
        lines += [
            f"{indent}Diebold-Mariano (HLN), model beats naive: one-sided p = "
            f"{dm['mse']['p_better']:.3f} on squared errors, {dm['mae']['p_better']:.3f} on "
            f"absolute errors (n = {dm['mse']['n']})",
            f"{indent}RMSE ratio 95% block-bootstrap interval [{lo:.4f}, {hi:.4f}]",
            f"{indent}SPA (Hansen) over the top {v['spa_models']} trials vs naive: p = "
            f"{v['spa_p']:.3f} (small p: at least one of them beats naive even after "
            "accounting for the search)",
        ]
    else:
        lines.append(f"{indent}significance tests skipped: {v.get('missing', INSTALL_HINT)}")
    lines.append(f"{indent}verdict: {v['verdict']}")
    return "\n".join(lines)
