"""Turn a price frame into scaled, chronologically split LSTM windows.

Window ``i`` holds the ``time_steps`` trading days ``i .. i+T-1`` of :data:`FEATURES`; its target
is the close of day ``i+T`` (the next day). Everything is computed with one
``sliding_window_view``, never a Python loop per window.

Scaling is chosen to generalise beyond the training price range (an index that doubles after the
training period must not fall outside the scaler's range):

- prices in a window are expressed relative to the window's last close: ``p / last_close - 1``;
- volume as ``log1p(volume)`` minus its mean over the window;
- the target is the relative change ``next_close / last_close - 1``.

Then features are standardised per feature with mean/std of the **training windows only**, and
the target is divided by the std of the daily close-to-close change over the **training days**
but *not* centred, so that ``0`` in model units is exactly the naive forecast "tomorrow's close =
today's close". :meth:`Dataset.to_price` maps a model output back to price units.

Splits are chronological on the target *days* (default 70/15/15 of the rows, no shuffling
across time): validation and test targets are the same days whatever ``time_steps`` is. With the
target scale taken from the training days rather than the training windows (whose first target
moves with ``time_steps``), validation losses of trials with different window lengths are in the
same units and directly comparable: the naive forecast scores the same for every
``time_steps``. A window's inputs precede its target, so no training window sees a validation or
test target, and the scaler never sees them either. :func:`walk_forward_folds` gives
expanding-window folds over the days before the test split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tpetune.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_SPLIT",
    "FEATURES",
    "MIN_WINDOWS",
    "Dataset",
    "Scaler",
    "Windows",
    "check_length",
    "make_windows",
    "min_rows",
    "prepare",
    "prepare_folds",
    "split_sizes",
    "walk_forward_folds",
]

#: Input features per day, in this order (the last price feature is Close).
FEATURES: tuple[str, ...] = ("Open", "High", "Low", "Close", "Volume")
#: Train/validation/test fractions of the windows, in time order.
DEFAULT_SPLIT: tuple[float, float, float] = (0.70, 0.15, 0.15)
#: Fewest windows a split (or a fold's train/val part) may hold; fewer gives meaningless stats.
MIN_WINDOWS = 5

Part = Literal["train", "val", "test"]


@dataclass(frozen=True, eq=False)
class Windows:
    """Unscaled relative windows of a whole series (``W = n_rows - time_steps`` of them).

    Attributes:
        x: ``(W, time_steps, len(FEATURES))`` float32 relative features.
        y: ``(W,)`` float64 relative change ``next_close / last_close - 1``.
        last_close: ``(W,)`` close of each window's last day (the naive forecast).
        next_close: ``(W,)`` the actual close being predicted.
        dates: ``(W,)`` the target days.
        time_steps: days per window.
        close: ``(n_rows,)`` the whole close series (window ``i`` targets day ``i + T``).
    """

    x: np.ndarray
    y: np.ndarray
    last_close: np.ndarray
    next_close: np.ndarray
    dates: pd.DatetimeIndex
    time_steps: int
    close: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True, eq=False)
class Scaler:
    """Standardisation fitted on the training part only; maps to and from model units."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_scale: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray) -> Scaler:
        """Fit per-feature mean/std of ``x`` (over windows and days) and the std of ``y``.

        Args:
            x: training windows ``(W, T, F)``.
            y: the relative changes that set the target scale (the training days' daily
                changes, see :meth:`Dataset.build`).
        """
        x_mean = x.mean(axis=(0, 1), dtype=np.float64)
        x_std = x.std(axis=(0, 1), dtype=np.float64)
        # A constant feature (e.g. volume always 0 in some index files) would divide by 0.
        x_std = np.where(x_std > 0, x_std, 1.0)
        y_std = float(np.std(y))
        return cls(x_mean=x_mean, x_std=x_std, y_scale=y_std if y_std > 0 else 1.0)

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.x_mean) / self.x_std).astype(np.float32)

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        return (y / self.y_scale).astype(np.float32)

    def inverse_y(self, y_scaled: np.ndarray) -> np.ndarray:
        """Model units back to relative change ``next_close / last_close - 1``."""
        return np.asarray(y_scaled, dtype=np.float64).reshape(-1) * self.y_scale


@dataclass(frozen=True, eq=False)
class Dataset:
    """Scaled windows with chronological train/val/test parts; built by :func:`prepare`.

    ``x``/``y`` hold every window in model units (scaled with ``scaler``, which saw the
    training part only); the parts are contiguous slices of them, train first.
    """

    windows: Windows
    scaler: Scaler
    x: np.ndarray
    y: np.ndarray
    train: slice
    val: slice
    test: slice

    @classmethod
    def build(cls, windows: Windows, train: slice, val: slice, test: slice) -> Dataset:
        """Fit the scaler on the training part and scale every window with it.

        Feature statistics come from the training windows; the target scale from the daily
        close-to-close changes of all training days (up to the last training target), which do
        not depend on ``time_steps``.
        """
        close = windows.close[: int(train.stop) + windows.time_steps]
        scaler = Scaler.fit(windows.x[train], close[1:] / close[:-1] - 1.0)
        return cls(
            windows=windows,
            scaler=scaler,
            x=scaler.transform_x(windows.x),
            y=scaler.transform_y(windows.y),
            train=train,
            val=val,
            test=test,
        )

    @property
    def time_steps(self) -> int:
        return self.windows.time_steps

    @property
    def n_features(self) -> int:
        return int(self.x.shape[2])

    def part(self, name: Part) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of one part in model units (views, not copies)."""
        s = self._slice(name)
        return self.x[s], self.y[s]

    def size(self, name: Part) -> int:
        return int(self.y[self._slice(name)].shape[0])

    def to_price(self, y_scaled: np.ndarray, name: Part) -> np.ndarray:
        """Predicted closes in price units from model outputs for part ``name``."""
        last = self.windows.last_close[self._slice(name)]
        return last * (1.0 + self.scaler.inverse_y(y_scaled))

    def actual_price(self, name: Part) -> np.ndarray:
        """The closes being predicted in part ``name``."""
        return self.windows.next_close[self._slice(name)]

    def naive_price(self, name: Part) -> np.ndarray:
        """The naive forecast for part ``name``: each window's last close."""
        return self.windows.last_close[self._slice(name)]

    def dates(self, name: Part) -> pd.DatetimeIndex:
        """Target days of part ``name``."""
        return self.windows.dates[self._slice(name)]

    def _slice(self, name: Part) -> slice:
        if name not in ("train", "val", "test"):
            raise ValueError(f"part must be 'train', 'val' or 'test', got {name!r}")
        s: slice = getattr(self, name)
        return s


def make_windows(prices: pd.DataFrame, time_steps: int) -> Windows:
    """Cut ``prices`` (as from :func:`~tpetune.stock.data.load_prices`) into relative windows.

    Raises:
        ConfigError: ``time_steps`` < 1.
        DataError: fewer than ``time_steps + 1`` rows (no complete window with a target).
    """
    if time_steps < 1:
        raise ConfigError(f"time_steps must be >= 1, got {time_steps}")
    values = prices[list(FEATURES)].to_numpy(dtype=np.float64)
    n = values.shape[0]
    n_windows = n - time_steps
    if n_windows < 1:
        raise DataError(
            f"the price series has {n} rows but time_steps={time_steps} needs at least "
            f"{time_steps + 1}; use a longer price history or a smaller time_steps"
        )
    close = values[:, FEATURES.index("Close")]
    last_close = close[time_steps - 1 : n - 1]
    next_close = close[time_steps:]
    # (n - T + 1, F, T) view -> drop the last window (it has no target) -> (W, T, F).
    view = sliding_window_view(values, time_steps, axis=0)[:n_windows].transpose(0, 2, 1)
    x = np.empty(view.shape, dtype=np.float32)
    n_prices = len(FEATURES) - 1
    x[..., :n_prices] = view[..., :n_prices] / last_close[:, None, None] - 1.0
    log_volume = np.log1p(view[..., n_prices])
    x[..., n_prices] = log_volume - log_volume.mean(axis=1, keepdims=True)
    return Windows(
        x=x,
        y=next_close / last_close - 1.0,
        last_close=last_close,
        next_close=next_close,
        dates=pd.DatetimeIndex(prices.index[time_steps:]),
        time_steps=time_steps,
        close=close,
    )


def split_sizes(
    n_rows: int, split: tuple[float, float, float] = DEFAULT_SPLIT
) -> tuple[int, int, int]:
    """Days of train, val and test; val and test are rounded down, train gets the rest.

    These are counts of *rows*; a window belongs to the part holding its target day, so the
    train part has ``n_train - time_steps`` windows and val/test have exactly ``n_val`` and
    ``n_test`` windows, independent of ``time_steps``.

    Raises:
        ConfigError: ``split`` is not three positive fractions summing to 1.
    """
    if len(split) != 3 or min(split) <= 0 or not math.isclose(sum(split), 1.0, abs_tol=1e-9):
        raise ConfigError(
            f"split must be three positive fractions (train, val, test) summing to 1, got {split}"
        )
    n_val = int(n_rows * split[1])
    n_test = int(n_rows * split[2])
    return n_rows - n_val - n_test, n_val, n_test


def walk_forward_folds(n: int, k: int, *, min_windows: int = 1) -> list[tuple[range, range]]:
    """``k`` expanding-window folds over ``n`` chronological items (days or windows).

    The ``n`` items are cut into ``k + 1`` equal chunks (the last takes the remainder); fold
    ``j`` trains on chunks ``0..j`` and validates on chunk ``j + 1``. Every validation range
    lies after its training range, so no fold trains on its own future.

    Raises:
        ConfigError: ``k`` < 1.
        DataError: a chunk would hold fewer than ``min_windows`` windows.
    """
    if k < 1:
        raise ConfigError(f"folds must be >= 1, got {k}")
    chunk = n // (k + 1)
    if chunk < max(min_windows, 1):
        raise DataError(
            f"{n} rows are too few for {k} walk-forward folds of at least {min_windows} "
            "rows each; use fewer folds or a longer price history"
        )
    return [
        (range(0, chunk * (j + 1)), range(chunk * (j + 1), n if j == k - 1 else chunk * (j + 2)))
        for j in range(k)
    ]


def min_rows(
    time_steps: int,
    *,
    split: tuple[float, float, float] = DEFAULT_SPLIT,
    min_windows: int = MIN_WINDOWS,
    folds: int | None = None,
) -> int:
    """Fewest rows for which every split (and every fold part) holds ``min_windows`` windows."""
    n_rows = time_steps + math.ceil(min_windows / min(split))
    while not _long_enough(n_rows, time_steps, split, min_windows, folds):
        n_rows += 1
    return n_rows


def check_length(
    n_rows: int,
    time_steps: int,
    *,
    split: tuple[float, float, float] = DEFAULT_SPLIT,
    min_windows: int = MIN_WINDOWS,
    folds: int | None = None,
) -> None:
    """Fail early when a series of ``n_rows`` days is too short for ``time_steps``-day windows.

    Raises:
        ConfigError: a bad ``split`` or ``folds``.
        DataError: fewer than :func:`min_rows` rows; the message says how many are needed.
    """
    need = min_rows(time_steps, split=split, min_windows=min_windows, folds=folds)
    if n_rows < need:
        what = f"time_steps={time_steps}" + (f" with {folds} folds" if folds else "")
        raise DataError(
            f"the price series has {n_rows} rows but {what} needs at least {need} "
            f"({min_windows} windows per split); use a longer price history or a smaller "
            "time_steps"
        )


def prepare(
    prices: pd.DataFrame,
    time_steps: int,
    *,
    split: tuple[float, float, float] = DEFAULT_SPLIT,
    min_windows: int = MIN_WINDOWS,
) -> Dataset:
    """Windows of ``prices`` split chronologically into train/val/test, scaled on train.

    Raises:
        ConfigError: bad ``time_steps`` or ``split``.
        DataError: the series is too short (see :func:`check_length`).
    """
    check_length(len(prices), time_steps, split=split, min_windows=min_windows)
    windows = make_windows(prices, time_steps)
    n_train, n_val, _ = split_sizes(len(prices), split)
    # Window i targets day i + time_steps: shift day boundaries to window indices.
    val_start, test_start = n_train - time_steps, n_train + n_val - time_steps
    return Dataset.build(
        windows,
        train=slice(0, val_start),
        val=slice(val_start, test_start),
        test=slice(test_start, len(windows)),
    )


def prepare_folds(
    prices: pd.DataFrame,
    time_steps: int,
    folds: int,
    *,
    split: tuple[float, float, float] = DEFAULT_SPLIT,
    min_windows: int = MIN_WINDOWS,
) -> list[Dataset]:
    """Walk-forward folds over the days before the test split; each fold's scaler sees its
    own training windows only.

    Fold boundaries are days (as in :func:`walk_forward_folds` over the train+val rows), so
    every fold validates on the same days whatever ``time_steps`` is. The test part is the
    same as :func:`prepare`'s and no fold touches it.

    Raises:
        ConfigError: bad ``time_steps``, ``split`` or ``folds``.
        DataError: the series is too short for ``folds`` folds (see :func:`check_length`).
    """
    check_length(len(prices), time_steps, split=split, min_windows=min_windows, folds=folds)
    windows = make_windows(prices, time_steps)
    n_train, n_val, _ = split_sizes(len(prices), split)
    test = slice(n_train + n_val - time_steps, len(windows))
    return [
        Dataset.build(
            windows,
            train=slice(0, train_days.stop - time_steps),
            val=slice(val_days.start - time_steps, val_days.stop - time_steps),
            test=test,
        )
        for train_days, val_days in walk_forward_folds(n_train + n_val, folds)
    ]


def _long_enough(
    n_rows: int,
    time_steps: int,
    split: tuple[float, float, float],
    min_windows: int,
    folds: int | None,
) -> bool:
    n_train, n_val, n_test = split_sizes(n_rows, split)
    if min(n_train - time_steps, n_val, n_test) < min_windows:
        return False
    if folds is None:
        return True
    # Fold 0 trains on the first chunk of days minus the days its first window consumes.
    chunk = (n_train + n_val) // (folds + 1)
    return chunk - time_steps >= min_windows and chunk >= min_windows
