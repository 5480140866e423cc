"""tpetune.stock.evaluation: test blocks, rolling origin, the verdict in the stock report, and the
bundled series behind ``tpetune stock --data``."""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tpetune.cli.main import build_parser, main
from tpetune.errors import ConfigError, DataError
from tpetune.stock.evaluation import block_split, rolling_blocks
from tpetune.stock.series import SERIES, load_series
from tpetune.stock.windows import split_sizes

PARAMS: dict[str, Any] = {
    "batch_size": 32,
    "time_steps": 8,
    "lstm1_nodes": 4,
    "lstm1_dropout": 0.0,
    "lstm_layers": {"layers": 1},
    "dense_layers": {"layers": 0},
    "optimizer": {"name": "adam"},
    "lr": 0.01,
}


def synthetic(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, n)))
    return pd.DataFrame(
        {
            "Open": close * (1 + rng.normal(0, 0.002, n)),
            "High": close * 1.01,
            "Low": close * 0.99,
            "Close": close,
            "Volume": rng.integers(1_000_000, 2_000_000, n).astype(float),
        },
        index=pd.bdate_range("2020-01-01", periods=n, name="Date"),
    )


def test_blocks_cover_the_test_split_in_order() -> None:
    n_train, n_val, _ = split_sizes(2516)
    blocks = rolling_blocks(2516, 3)
    assert blocks[0].start == n_train + n_val and blocks[-1].stop == 2516
    assert [len(b) for b in blocks] == [125, 125, 127]  # 377 test days, the last takes the rest
    assert all(a.stop == b.start for a, b in itertools.pairwise(blocks))
    assert rolling_blocks(2516, 1) == [range(n_train + n_val, 2516)]
    with pytest.raises(ConfigError):
        rolling_blocks(2516, 0)
    with pytest.raises(DataError, match="--test-folds"):
        rolling_blocks(100, 10)


@pytest.mark.parametrize(
    ("n", "n_val", "n_block"), [(2516, 377, 125), (2264, 377, 127), (60, 9, 3)]
)
def test_block_split_gives_exact_day_counts(n: int, n_val: int, n_block: int) -> None:
    assert split_sizes(n, block_split(n, n_val, n_block)) == (n - n_val - n_block, n_val, n_block)


def test_cli_data_choices_are_the_bundled_series() -> None:
    parser = build_parser()
    stock = parser._subparsers._group_actions[0].choices["stock"]  # type: ignore[union-attr]
    data = next(a for a in stock._actions if a.dest == "series")  # the flag --data
    assert tuple(data.choices) == tuple(SERIES)


@pytest.mark.parametrize("name", list(SERIES))
def test_bundled_series_load_whole_and_clean(name: str) -> None:
    prices = load_series(name)
    assert prices.index.is_monotonic_increasing and prices.index.is_unique
    assert (prices["Close"] > 0).all() and len(prices) > 5000
    assert str(prices.index[-1].date()) >= "2018-12-31"


@pytest.mark.skipif(importlib.util.find_spec("arch") is None, reason="needs arch")
@pytest.mark.parametrize("name", list(SERIES))
def test_bundled_series_are_arch_files_with_iso_dates(name: str) -> None:
    """Provenance, checked: each file is arch's, only dates rewritten (and WTI re-laid out)."""
    import arch.data

    ours = load_series(name)
    source = Path(arch.data.__file__).parent / name / f"{name}.csv.gz"
    rows = gzip.decompress(source.read_bytes()).decode().splitlines()[1:]
    quoted = [r.split(",") for r in rows if not r.endswith(",.")]  # FRED's "no quote" marker
    dates = [datetime.strptime(r[0], "%m/%d/%Y").strftime("%Y-%m-%d") for r in quoted]
    assert list(ours.index.strftime("%Y-%m-%d")) == dates
    close = [float(r[4] if name != "wti" else r[1]) for r in quoted]
    assert ours["Close"].tolist() == close


def test_unknown_series_and_both_sources_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="sp500, nasdaq, wti"):
        load_series("dax")
    csv = tmp_path / "p.csv"
    csv.write_text("Date,Open,High,Low,Close,Volume\n")
    args = ["stock", "--csv", str(csv), "--data", "wti", "--study-dir", str(tmp_path / "s")]
    assert main(args) == 2
    assert "pass only one" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


keras_only = pytest.mark.keras


@keras_only
def test_rolling_origin_reuses_block_one_and_retrains_the_rest() -> None:
    pytest.importorskip("keras")
    from tpetune.stock.evaluation import _forecast, read_forecast, rolling_origin
    from tpetune.stock.objective import StockObjective

    prices = synthetic()
    objective = StockObjective(prices=prices, epochs=2)
    _, n_val, _ = split_sizes(len(prices))
    with tempfile.TemporaryDirectory() as tmp:
        objective.final_report(PARAMS, out_dir=Path(tmp), seed=3)
        main_forecast = read_forecast(Path(tmp))
    folds = rolling_origin(objective, PARAMS, seed=3, k=3, first=main_forecast)
    assert list(folds.index) == list(main_forecast.index)  # the test days, each once
    assert folds["block"].tolist() == sorted(folds["block"].tolist())
    np.testing.assert_array_equal(folds["actual"], main_forecast["actual"])
    np.testing.assert_array_equal(folds["naive"], main_forecast["naive"])
    # Block 1 is the final report's own model: the same train and validation days.
    blocks = rolling_blocks(len(prices), 3)
    sub = StockObjective(
        prices=prices.iloc[: blocks[0].stop],
        epochs=2,
        split=block_split(blocks[0].stop, n_val, len(blocks[0])),
    )
    again = _forecast(sub, PARAMS, 3)["predicted"].to_numpy()
    np.testing.assert_allclose(again, folds["predicted"].to_numpy()[: len(blocks[0])], rtol=1e-6)
    # Later blocks come from models that saw the earlier blocks: not the final report's.
    later = folds["block"].to_numpy() > 1
    assert not np.allclose(folds["predicted"][later], main_forecast["predicted"][later])


# The verdict of a real stock run (printed, stored, fold marks): tests/stock/test_stock_cli.py.


def test_verdict_lines_for_old_and_failed_summaries() -> None:
    from tpetune.stock.evaluation import verdict_lines

    assert verdict_lines({"rmse_ratio": 1.0}) == []  # made before the verdict existed
    assert verdict_lines({"verdict": "no verdict: too few"}) == ["  verdict: no verdict: too few"]
