"""Bundled daily price series (see README.md here for sources and licences).

:data:`SERIES` names them; :func:`load_series` loads one through
:func:`tpetune.stock.data.load_prices`, the one door prices enter by. No TensorFlow.
"""

from __future__ import annotations

import importlib.resources
from typing import TYPE_CHECKING

from tpetune.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SERIES", "load_series"]

#: Bundled series by name: file, what it is.
SERIES: dict[str, tuple[str, str]] = {
    "sp500": ("sp500.csv.gz", "S&P 500 index, 1999-2018 (arch)"),
    "nasdaq": ("nasdaq.csv.gz", "NASDAQ Composite index, 1999-2018 (arch)"),
    "wti": ("wti.csv.gz", "WTI crude oil spot price, 1986-2019, close only (arch, from FRED)"),
}


def load_series(name: str) -> pd.DataFrame:
    """The whole bundled series ``name``, as :func:`~tpetune.stock.data.load_prices` returns.

    Raises:
        ConfigError: ``name`` is not in :data:`SERIES`.
    """
    from tpetune.stock.data import load_prices

    if name not in SERIES:
        raise ConfigError(
            f"no bundled series {name!r}; choose one of {', '.join(SERIES)} or pass --csv"
        )
    resource = importlib.resources.files(__name__).joinpath(SERIES[name][0])
    with importlib.resources.as_file(resource) as path:
        return load_prices(path)
