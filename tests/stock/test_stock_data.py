"""load_prices: the accepted CSV layouts, the bundled file, and one clear DataError per bad case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tpetune.errors import DataError
from tpetune.stock.data import COLUMNS, load_prices, recent_years


def synthetic(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A positive random-walk OHLCV frame on business days, columns as load_prices returns."""
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


def write_yahoo(df: pd.DataFrame, path: Path) -> Path:
    out = df.assign(**{"Adj Close": df["Close"]})[
        ["Open", "High", "Low", "Close", "Adj Close", "Volume"]
    ]
    out.to_csv(path, index_label="Date", date_format="%Y-%m-%d")
    return path


def write_stooq(df: pd.DataFrame, path: Path) -> Path:
    df.assign(OpenInt=0).to_csv(path, index_label="Date", date_format="%Y-%m-%d")
    return path


def rewrite(path: Path, old: str, new: str) -> Path:
    path.write_text(path.read_text().replace(old, new, 1))
    return path


def test_yahoo_layout_loads(tmp_path: Path) -> None:
    df = synthetic()
    got = load_prices(write_yahoo(df, tmp_path / "y.csv"))
    assert list(got.columns) == list(COLUMNS)
    assert got.index.name == "Date"
    assert all(dtype == np.float64 for dtype in got.dtypes)
    np.testing.assert_allclose(got.to_numpy(), df.to_numpy())
    assert (got.index == df.index).all()


def test_stooq_layout_loads_gzipped(tmp_path: Path) -> None:
    df = synthetic()
    path = tmp_path / "s.csv.gz"
    df.assign(OpenInt=0).to_csv(path, index_label="Date", date_format="%Y-%m-%d")
    got = load_prices(path)
    np.testing.assert_allclose(got.to_numpy(), df.to_numpy())


def test_headers_case_and_space_insensitive_rows_any_order(tmp_path: Path) -> None:
    df = synthetic(30)
    shuffled = df.sample(frac=1.0, random_state=1)
    path = tmp_path / "mixed.csv"
    shuffled.to_csv(path, index_label="date", date_format="%Y-%m-%d")
    lines = path.read_text().splitlines()
    lines[0] = " DATE , open,HIGH , Low,close , volume"
    path.write_text("\n".join(lines) + "\n")
    got = load_prices(path)
    assert got.index.is_monotonic_increasing
    np.testing.assert_allclose(got.to_numpy(), df.to_numpy())


def test_yahoo_null_rows_are_dropped(tmp_path: Path) -> None:
    path = write_yahoo(synthetic(30), tmp_path / "y.csv")
    lines = path.read_text().splitlines()
    lines.insert(5, "2019-12-25,null,null,null,null,null,null")
    path.write_text("\n".join(lines) + "\n")
    assert len(load_prices(path)) == 30


def test_bundled_sp500() -> None:
    prices = load_prices()
    assert len(prices) == 5031
    assert str(prices.index[0].date()) == "1999-01-04"
    assert str(prices.index[-1].date()) == "2018-12-31"
    assert (prices[["Open", "High", "Low", "Close"]] > 0).all().all()


def _bad_cases() -> list[tuple[str, object, tuple[str, ...]]]:
    """(id, how to make the bad file from a good Yahoo CSV path, words the message must hold)."""
    return [
        ("missing_file", lambda p: p.with_name("nope.csv"), ("does not exist", "nope.csv")),
        ("directory", lambda p: p.parent, ("directory",)),
        ("empty_file", lambda p: (p.write_text(""), p)[1], ("empty",)),
        (
            "header_only",
            lambda p: (p.write_text("Date,Open,High,Low,Close,Volume\n"), p)[1],
            ("no rows",),
        ),
        ("not_gzip", lambda p: _garbage_gz(p), ("cannot read",)),
        (
            "missing_column",
            lambda p: rewrite(p, "Adj Close,Volume", "Adj Close,Vol"),
            ("Volume", "Yahoo", "Stooq"),
        ),
        (
            "bad_date",
            lambda p: rewrite(p, "2020-01-03", "2020-13-45"),
            ("Date", "2020-13-45", "line 4"),
        ),
        ("non_numeric", lambda p: _replace_field(p, 4, 4, "abc"), ("Close", "abc", "2020-01-03")),
        ("partial_nan", lambda p: _replace_field(p, 4, 2, ""), ("High", "2020-01-03")),
        (
            "duplicate_date",
            lambda p: rewrite(p, "2020-01-03", "2020-01-02"),
            ("2020-01-02", "2 rows"),
        ),
        (
            "non_positive",
            lambda p: _replace_field(p, 4, 3, "-1"),
            ("non-positive", "Low", "2020-01-03"),
        ),
        ("negative_volume", lambda p: _replace_field(p, 4, 6, "-5"), ("negative", "Volume")),
    ]


def _garbage_gz(path: Path) -> Path:
    bad = path.with_suffix(".csv.gz")
    bad.write_bytes(b"this is not gzip data at all")
    return bad


def _replace_field(path: Path, line: int, field: int, value: str) -> Path:
    """Set field ``field`` of 1-based ``line`` (line 1 is the header)."""
    lines = path.read_text().splitlines()
    cells = lines[line - 1].split(",")
    cells[field] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("make", "words"), [c[1:] for c in _bad_cases()], ids=[c[0] for c in _bad_cases()]
)
def test_bad_data_gives_one_line_data_error(
    tmp_path: Path, make: object, words: tuple[str, ...]
) -> None:
    good = write_yahoo(synthetic(30), tmp_path / "prices.csv")
    assert callable(make)
    bad = make(good)
    with pytest.raises(DataError) as info:
        load_prices(bad)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    assert ";" in message  # problem; fix


def test_recent_years_keeps_the_last_span() -> None:
    prices = load_prices()
    recent = recent_years(prices, 10)
    assert len(recent) == 2516
    assert recent.index[0] > pd.Timestamp("2008-12-31")
    assert recent.index[-1] == prices.index[-1]
    assert recent_years(prices, None) is prices
