"""Windows: shapes, chronological splits, no leakage into the scaler, exact price round-trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tpetune.errors import ConfigError, DataError
from tpetune.stock.windows import (
    FEATURES,
    Scaler,
    check_length,
    make_windows,
    min_rows,
    prepare,
    prepare_folds,
    split_sizes,
    walk_forward_folds,
)


def synthetic(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * (1 + rng.normal(0, 0.002, n))
    return pd.DataFrame(
        {
            "Open": open_,
            "High": np.maximum(open_, close) * 1.003,
            "Low": np.minimum(open_, close) * 0.997,
            "Close": close,
            "Volume": rng.integers(1_000, 10_000, n).astype(float),
        },
        index=pd.bdate_range("2020-01-01", periods=n, name="Date"),
    )


def test_window_shapes_and_relative_features() -> None:
    prices = synthetic(200)
    w = make_windows(prices, 15)
    assert w.x.shape == (185, 15, len(FEATURES))
    assert w.x.dtype == np.float32
    assert w.y.shape == w.last_close.shape == w.next_close.shape == (185,)
    # Prices are relative to the window's last close: the last day's Close is exactly 0.
    assert np.all(w.x[:, -1, FEATURES.index("Close")] == 0)
    # Window 7 holds days 7..21 and predicts day 22.
    close = prices["Close"].to_numpy()
    np.testing.assert_allclose(w.x[7, :, 3], close[7:22] / close[21] - 1, rtol=1e-5)
    vol = np.log1p(prices["Volume"].to_numpy()[7:22])
    np.testing.assert_allclose(w.x[7, :, 4], vol - vol.mean(), rtol=1e-4, atol=1e-5)


def test_targets_are_next_close_and_round_trip_to_prices() -> None:
    prices = synthetic(200)
    ds = prepare(prices, 10)
    close = prices["Close"].to_numpy()
    np.testing.assert_array_equal(ds.windows.next_close, close[10:])
    np.testing.assert_array_equal(ds.windows.last_close, close[9:-1])
    for part in ("train", "val", "test"):
        _, y = ds.part(part)
        np.testing.assert_allclose(ds.to_price(y, part), ds.actual_price(part), rtol=1e-6)
        expected = prices["Close"].reindex(ds.dates(part)).to_numpy()
        np.testing.assert_allclose(ds.actual_price(part), expected)
    # Model output 0 is the naive forecast "tomorrow = today".
    zeros = np.zeros(ds.size("test"))
    np.testing.assert_allclose(ds.to_price(zeros, "test"), ds.naive_price("test"))


def test_split_is_chronological_and_sizes_add_up() -> None:
    prices = synthetic(200)
    ds = prepare(prices, 20)
    n_train, n_val, n_test = split_sizes(200)
    assert (ds.size("train"), ds.size("val"), ds.size("test")) == (n_train - 20, n_val, n_test)
    assert ds.size("train") + ds.size("val") + ds.size("test") == 180
    assert ds.dates("train")[-1] < ds.dates("val")[0] <= ds.dates("val")[-1] < ds.dates("test")[0]
    # The last training window's inputs end the day before its target, before any val target.
    last_input_day = prices.index[ds.train.stop - 1 + 20 - 1]
    assert last_input_day < ds.dates("val")[0]


def test_val_loss_units_do_not_depend_on_time_steps() -> None:
    prices = synthetic(200)
    a, b = prepare(prices, 10), prepare(prices, 30)
    for part in ("val", "test"):
        assert (a.dates(part) == b.dates(part)).all()
    # Same target scale, so the naive forecast (0) scores the same for every window length.
    assert a.scaler.y_scale == b.scaler.y_scale
    np.testing.assert_array_equal(a.part("val")[1], b.part("val")[1])


def test_scaler_sees_training_windows_only() -> None:
    prices = synthetic(200)
    ds = prepare(prices, 12)
    xt, yt = ds.windows.x[ds.train], ds.windows.y[ds.train]
    np.testing.assert_allclose(ds.scaler.x_mean, xt.mean(axis=(0, 1), dtype=np.float64))
    np.testing.assert_allclose(ds.scaler.x_std, xt.std(axis=(0, 1), dtype=np.float64))
    close = prices["Close"].to_numpy()[: ds.train.stop + 12]  # days up to the last train target
    assert ds.scaler.y_scale == pytest.approx(float(np.std(close[1:] / close[:-1] - 1)))
    assert np.std(yt) == pytest.approx(ds.scaler.y_scale, rel=0.2)
    # Wildly different val/test prices leave the scaler untouched.
    changed = prices.copy()
    first_val_day = ds.dates("val")[0]
    changed.loc[changed.index >= first_val_day, ["Open", "High", "Low", "Close"]] *= 3.0
    changed.loc[changed.index >= first_val_day, "Volume"] *= 100.0
    other = prepare(changed, 12)
    np.testing.assert_array_equal(other.scaler.x_mean, ds.scaler.x_mean)
    np.testing.assert_array_equal(other.scaler.x_std, ds.scaler.x_std)
    assert other.scaler.y_scale == ds.scaler.y_scale
    xs, _ = ds.part("train")
    np.testing.assert_allclose(xs.mean(axis=(0, 1)), 0, atol=1e-5)


def test_scaler_constant_feature_does_not_divide_by_zero() -> None:
    x = np.zeros((4, 3, 2), dtype=np.float32)
    scaler = Scaler.fit(x, np.zeros(4))
    assert np.all(np.isfinite(scaler.transform_x(x)))
    assert scaler.y_scale == 1.0


def test_walk_forward_folds_expand_and_never_look_ahead() -> None:
    folds = walk_forward_folds(100, 3)
    assert len(folds) == 3
    assert [f[0] for f in folds] == [range(0, 25), range(0, 50), range(0, 75)]
    assert [f[1] for f in folds] == [range(25, 50), range(50, 75), range(75, 100)]
    for train, val in folds:
        assert train.start == 0 and train.stop == val.start
    with pytest.raises(DataError, match="folds"):
        walk_forward_folds(10, 4, min_windows=5)
    with pytest.raises(ConfigError):
        walk_forward_folds(10, 0)


def test_prepare_folds_scale_on_their_own_train_part() -> None:
    prices = synthetic(300)
    folds = prepare_folds(prices, 10, 2)
    base = prepare(prices, 10)
    assert len(folds) == 2
    for ds in folds:
        assert ds.train.stop == ds.val.start
        assert ds.dates("val")[-1] < base.dates("test")[0]
        assert ds.test == base.test
        np.testing.assert_allclose(
            ds.scaler.x_mean, ds.windows.x[ds.train].mean(axis=(0, 1), dtype=np.float64)
        )
    assert folds[0].train.stop < folds[1].train.stop
    assert folds[1].val.stop == base.val.stop


def test_too_short_series_says_how_many_rows_are_needed() -> None:
    need = min_rows(30)
    check_length(need, 30)
    with pytest.raises(DataError, match=f"needs at least {need}") as info:
        prepare(synthetic(need - 1), 30)
    assert "time_steps=30" in str(info.value)
    with pytest.raises(DataError, match="3 folds"):
        check_length(need, 30, folds=3)


def test_bad_split_and_time_steps_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="split"):
        split_sizes(100, (0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="time_steps"):
        make_windows(synthetic(50), 0)
