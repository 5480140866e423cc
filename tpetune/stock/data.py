"""Daily price CSVs: load, validate, normalise.

:func:`load_prices` is the one door through which prices enter the stock study. It returns a
frame with a sorted, unique ``DatetimeIndex`` named ``Date`` and float columns
``Open, High, Low, Close, Volume``, or raises :class:`~tpetune.errors.DataError` with a one-line
message that names the problem and the fix. Nothing later re-checks the data.

Accepted layouts (headers case-insensitive, surrounding whitespace ignored, extra columns
ignored, rows in any order):

- Yahoo Finance: ``Date,Open,High,Low,Close,Adj Close,Volume``
- Stooq / Kaggle: ``Date,Open,High,Low,Close,Volume,OpenInt``

Missing-value policy: Yahoo writes ``null`` in every price column on days it has no quote; a row
whose Open, High, Low and Close are all missing carries no information and is dropped silently.
A row with only *some* values missing is an error naming its date, because filling it would
invent a price. Calendar gaps (weekends, holidays) are normal: windows count trading days.

This module imports only numpy and pandas (no TensorFlow), so data errors surface in
milliseconds, before any model is built.
"""

from __future__ import annotations

import gzip
import importlib.resources
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from tpetune.errors import DataError

__all__ = [
    "BUNDLED_CSV_NAME",
    "COLUMNS",
    "LAYOUTS",
    "PRICE_COLUMNS",
    "load_prices",
    "recent_years",
]

#: Columns of the frame :func:`load_prices` returns, in this order.
COLUMNS: tuple[str, ...] = ("Open", "High", "Low", "Close", "Volume")
#: The price columns; they must be strictly positive.
PRICE_COLUMNS: tuple[str, ...] = ("Open", "High", "Low", "Close")
#: The header layouts we document as accepted (any superset of Date + COLUMNS works).
LAYOUTS: dict[str, tuple[str, ...]] = {
    "Yahoo": ("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"),
    "Stooq/Kaggle": ("Date", "Open", "High", "Low", "Close", "Volume", "OpenInt"),
}
#: File name of the bundled S&P 500 prices inside the ``tpetune.stock.series`` package.
BUNDLED_CSV_NAME = "sp500.csv.gz"

# Header line is line 1 of the file, so data row i (0-based) is line i + 2.
_FIRST_DATA_LINE = 2


def load_prices(csv: str | Path | None = None) -> pd.DataFrame:
    """Load daily prices from a CSV file (plain or ``.gz``), or the bundled S&P 500 prices.

    Args:
        csv: path to a CSV in one of :data:`LAYOUTS`; ``None`` loads the bundled
            S&P 500 series (1999-01-04 to 2018-12-31, see ``tpetune/data/README.md``).

    Returns:
        A frame indexed by ``Date`` (ascending, unique, tz-naive) with float64 columns
        :data:`COLUMNS`; every price is finite and > 0, every volume finite and >= 0.

    Raises:
        DataError: the file is missing, unreadable or empty; a required column is missing;
            a date cannot be parsed or repeats; a value is not a number; a row is partly
            empty; or a price is not positive.
    """
    if csv is None:
        resource = importlib.resources.files("tpetune.stock.series").joinpath(BUNDLED_CSV_NAME)
        with importlib.resources.as_file(resource) as path:
            return _load(path, "bundled " + BUNDLED_CSV_NAME)
    path = Path(csv)
    return _load(path, str(path))


def recent_years(prices: pd.DataFrame, years: int | None) -> pd.DataFrame:
    """The rows of the last ``years`` calendar years of ``prices`` (all rows for ``None``).

    The span ends at the last date: ``years=10`` on data ending 2018-12-31 keeps the days
    after 2008-12-31.
    """
    if years is None:
        return prices
    start = prices.index[-1] - pd.DateOffset(years=years)
    return prices[prices.index > start]


def _load(path: Path, name: str) -> pd.DataFrame:
    raw = _read_table(path, name)
    cols = _required_columns(raw, name)
    dates = _parse_dates(raw[cols["Date"]], name)
    values = pd.DataFrame(
        {c: _parse_numbers(raw[cols[c]], c, dates, name) for c in COLUMNS},
        index=pd.DatetimeIndex(dates, name="Date"),
    )
    values = _drop_empty_rows(values, name)
    _check_duplicates(values.index, name)
    _check_ranges(values, name)
    return values.sort_index(kind="stable")


def _read_table(path: Path, name: str) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"price file {name} does not exist; pass the path of an existing CSV")
    if path.is_dir():
        raise DataError(f"price file {name} is a directory; pass the path of a CSV file")
    try:
        # Strings first: we parse numbers ourselves to name the first bad cell. pandas'
        # default NA spellings cover Yahoo's "null" and empty cells.
        raw = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"price file {name} is empty; give a CSV with a header and rows") from None
    except (
        pd.errors.ParserError,
        UnicodeDecodeError,
        OSError,
        EOFError,
        gzip.BadGzipFile,
        zlib.error,
    ) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"cannot read price file {name} as CSV ({reason}); "
            "give a comma-separated text file, plain or gzip"
        ) from None
    if raw.empty:
        raise DataError(f"price file {name} has a header but no rows; add daily price rows")
    return raw


def _required_columns(raw: pd.DataFrame, name: str) -> dict[str, str]:
    """Map each canonical column name to the file's spelling of it."""
    by_key = {str(c).strip().lower(): str(c) for c in raw.columns}
    cols = {c: by_key[c.lower()] for c in ("Date", *COLUMNS) if c.lower() in by_key}
    missing = [c for c in ("Date", *COLUMNS) if c not in cols]
    if missing:
        layouts = " or ".join(f"{k} ({','.join(v)})" for k, v in LAYOUTS.items())
        raise DataError(
            f"price file {name} lacks column(s) {', '.join(missing)}; "
            f"expected the header of {layouts}"
        )
    return cols


def _parse_dates(col: pd.Series, name: str) -> pd.DatetimeIndex:
    if col.isna().any():
        line = int(np.flatnonzero(col.isna().to_numpy())[0]) + _FIRST_DATA_LINE
        raise DataError(f"price file {name} has an empty Date on line {line}; fill or remove it")
    text = col.str.strip()
    try:
        parsed = pd.to_datetime(text, format="ISO8601")
    except (ValueError, TypeError):
        try:
            # A consistent non-ISO format (e.g. 1/4/1999), inferred from the first row.
            parsed = pd.to_datetime(text)
        except (ValueError, TypeError):
            coerced = pd.to_datetime(text, format="ISO8601", errors="coerce")
            bad = np.flatnonzero(coerced.isna().to_numpy())
            i = int(bad[0]) if bad.size else 0
            raise DataError(
                f"price file {name} has an unparseable Date {text.iloc[i]!r} on line "
                f"{i + _FIRST_DATA_LINE}; write dates as YYYY-MM-DD"
            ) from None
    index = pd.DatetimeIndex(parsed)
    if index.tz is not None:
        index = index.tz_localize(None)
    return index


def _parse_numbers(col: pd.Series, column: str, dates: pd.DatetimeIndex, name: str) -> np.ndarray:
    numbers = pd.to_numeric(col.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = (np.isnan(numbers) & col.notna().to_numpy()) | np.isinf(numbers)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"price file {name} has a non-numeric {column} value {col.iloc[i]!r} on "
            f"{dates[i].date()} (line {i + _FIRST_DATA_LINE}); fix or remove that row"
        )
    return numbers


def _drop_empty_rows(values: pd.DataFrame, name: str) -> pd.DataFrame:
    missing = values.isna()
    all_prices_missing = missing[list(PRICE_COLUMNS)].all(axis=1)
    # Yahoo's "null" holiday rows: nothing to learn from, nothing to invent. Dropped.
    values = values[~all_prices_missing]
    partial = values.isna().any(axis=1)
    if partial.any():
        date = values.index[partial.to_numpy()][0]
        row = values.loc[partial].iloc[0]
        cols = [c for c in COLUMNS if pd.isna(row[c])]
        raise DataError(
            f"price file {name} is missing {', '.join(cols)} on {date.date()} while other "
            "values of that day are present; fill or remove that row"
        )
    if values.empty:
        raise DataError(f"price file {name} has no row with prices; add daily price rows")
    return values


def _check_duplicates(index: pd.Index, name: str) -> None:
    dup = index.duplicated()
    if dup.any():
        date = index[dup][0]
        count = int((index == date).sum())
        raise DataError(
            f"price file {name} has {count} rows dated {date.date()}; keep one row per day"
        )


def _check_ranges(values: pd.DataFrame, name: str) -> None:
    for column in PRICE_COLUMNS:
        bad = values[column].to_numpy() <= 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"price file {name} has a non-positive {column} "
                f"({values[column].iloc[i]:g}) on {values.index[i].date()}; prices must be > 0"
            )
    bad = values["Volume"].to_numpy() < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"price file {name} has a negative Volume ({values['Volume'].iloc[i]:g}) on "
            f"{values.index[i].date()}; volumes must be >= 0"
        )
