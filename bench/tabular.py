"""Recorded learning-curve tables: the discrete spaces, their rows, and the gzip JSON format.

A table holds, for every configuration of a small full-factorial space, the per-epoch
validation and training loss of one real training run *without early stopping* (the
tabular-benchmark idea of NAS-Bench/LCBench and Syne Tune's simulator backend): a search
method can then be replayed by lookup in milliseconds, its cost counted in epochs.

File layout (``bench/tables/NAME.json.gz``)::

    {"meta": {"table", "command", "seconds", "recorded", "epochs", "data", "split", "seed",
              "versions", ...},
     "factors": {"label": [value, ...], ...},          # the discrete space, in order
     "rows": [{"params": {"label": value, ...}, "val_loss": [...], "loss": [...],
               "seconds": float, ...}, ...]}

``params`` are flat label -> value maps over ``factors``; :func:`row_key` turns one into the
lookup key. This module imports neither TensorFlow nor hyperopt.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TABLES = Path(__file__).resolve().parent / "tables"

#: The digits table's factors: 3 * 2 * 3 * 3 * 2 * 2 = 216 configurations, 20 epochs each.
#: ``arch`` is the hidden layers' units ("256-64" = two layers); the ``sgd`` optimizer uses
#: Nesterov momentum 0.9 and the ``exponential`` schedule a rate of 0.9 per epoch (the labels
#: and meanings of spaces/digits.py, with every range reduced to a few values inside it).
DIGITS_FACTORS: dict[str, list[Any]] = {
    "arch": ["64", "256", "256-64"],
    "activation": ["relu", "tanh"],
    "optimizer": ["sgd", "rmsprop", "adam"],
    "lr": [0.001, 0.01, 0.1],
    "batch_size": [32, 128],
    "schedule": ["constant", "exponential"],
}
DIGITS_EPOCHS = 20

#: The stock table's factors: 2 ** 6 = 64 configurations at the stock study's 12 epochs, batch
#: size 128. ``lstm_layers`` 2 adds an LSTM(16) with dropout 0.2; no dense layer. A subset of
#: spaces/stock_grid.py (its windows, widths, dropouts, depths and learning rates), without SGD
#: and batch 32, which would multiply the recording time by six.
STOCK_FACTORS: dict[str, list[Any]] = {
    "time_steps": [30, 60],
    "lstm1_nodes": [16, 48],
    "lstm1_dropout": [0.0, 0.2],
    "lstm_layers": [1, 2],
    "optimizer": ["rmsprop", "adam"],
    "lr": [0.001, 0.01],
}
STOCK_BATCH = 128
STOCK_EPOCHS = 12

#: The digits-cnn table's factors: 2 * 2 * 2 * 3 * 3 = 72 configurations, 20 epochs each, batch
#: 64: a small convolutional network on the digits table's images and split (8x8x1), a model
#: unlike the other tables' (see bench/record_curves.py's ``cnn_model``). ``filters`` are the
#: first 3x3 convolution's (a second one, after 2x2 max pooling, has twice as many); ``head``
#: is what feeds the softmax: the flattened feature maps or their global average, which trains
#: far slower; ``sgd`` uses Nesterov momentum 0.9. Chosen so that the curves differ in shape:
#: fast learners, slow starters still falling at epoch 20, jittery and stuck (diverged) runs.
#: (A 1-D CNN on the bundled NASDAQ series was tried first and dropped: every configuration
#: ends at the training-mean forecast, so the curves are flat and the target trivial.)
DIGITS_CNN_FACTORS: dict[str, list[Any]] = {
    "filters": [8, 32],
    "conv_layers": [1, 2],
    "head": ["flatten", "gap"],
    "optimizer": ["sgd", "rmsprop", "adam"],
    "lr": [0.001, 0.01, 0.1],
}
DIGITS_CNN_BATCH = 64
DIGITS_CNN_EPOCHS = 20

FACTORS: dict[str, dict[str, list[Any]]] = {
    "digits": DIGITS_FACTORS,
    "stock": STOCK_FACTORS,
    "digits-cnn": DIGITS_CNN_FACTORS,
}
EPOCHS: dict[str, int] = {
    "digits": DIGITS_EPOCHS,
    "stock": STOCK_EPOCHS,
    "digits-cnn": DIGITS_CNN_EPOCHS,
}


def configs(factors: Mapping[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
    """Every configuration of the full factorial, in a fixed order (last factor fastest)."""
    names = list(factors)
    for values in itertools.product(*(factors[n] for n in names)):
        yield dict(zip(names, values, strict=True))


def row_key(params: Mapping[str, Any]) -> str:
    """The lookup key of one configuration (independent of the dict's order)."""
    return json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True)


def digits_params(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The nested params :func:`tpetune.digits.model.build_model` reads, from a digits row."""
    units = [int(u) for u in str(flat["arch"]).split("-")]
    hidden: dict[str, Any] = {"layers": len(units)}
    hidden.update({f"units{i}": u for i, u in enumerate(units, start=1)})
    opt: dict[str, Any] = {"name": flat["optimizer"]}
    if flat["optimizer"] == "sgd":
        opt.update(momentum=0.9, nesterov=True)
    sched: dict[str, Any] = {"name": flat["schedule"]}
    if flat["schedule"] == "exponential":
        sched["rate"] = 0.9
    return {
        "hidden_layers": hidden,
        "activation": flat["activation"],
        "initializer": "glorot_uniform",
        "optimizer": opt,
        "schedule": sched,
        "lr": float(flat["lr"]),
        "batch_size": int(flat["batch_size"]),
        "epochs": DIGITS_EPOCHS,
    }


def stock_params(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The nested params :func:`tpetune.stock.model.build_model` reads, from a stock row."""
    lstm: dict[str, Any] = {"layers": int(flat["lstm_layers"])}
    if lstm["layers"] == 2:
        lstm.update(lstm2_nodes=16, lstm2_dropout=0.2)
    opt: dict[str, Any] = {"name": flat["optimizer"]}
    if flat["optimizer"] == "sgd":
        opt.update(momentum=0.9, nesterov=True)
    return {
        "batch_size": int(flat.get("batch_size", STOCK_BATCH)),
        "time_steps": int(flat["time_steps"]),
        "lstm1_nodes": int(flat["lstm1_nodes"]),
        "lstm1_dropout": float(flat.get("lstm1_dropout", 0.2)),
        "lstm_layers": lstm,
        "dense_layers": {"layers": 0},
        "optimizer": opt,
        "lr": float(flat["lr"]),
    }


@dataclass(frozen=True)
class Table:
    """A loaded table: its metadata, discrete space and curves by configuration key."""

    name: str
    meta: dict[str, Any]
    factors: dict[str, list[Any]]
    val_loss: dict[str, list[float]]
    loss: dict[str, list[float]]

    @property
    def epochs(self) -> int:
        return int(self.meta["epochs"])

    def curve(self, params: Mapping[str, Any]) -> list[float]:
        """The validation curve of one configuration (KeyError if it is not in the table)."""
        return self.val_loss[row_key(params)]

    def best_loss(self) -> float:
        """The lowest validation loss any configuration reaches at any epoch."""
        return min(_finite_min(c) for c in self.val_loss.values())

    def grid_epochs(self) -> int:
        """Epochs of the full grid: every configuration trained for every epoch."""
        return len(self.val_loss) * self.epochs


def _finite_min(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else math.inf


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a recording in progress (JSON lines); a torn last line is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the recorder was killed mid-write; that config is recorded again
    return rows


def write_table(
    path: Path, meta: Mapping[str, Any], factors: Mapping[str, Any], rows: list
) -> None:
    """Write a finished table as gzip JSON (written to a temp name, then renamed)."""
    data = {"meta": dict(meta), "factors": dict(factors), "rows": rows}
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
    tmp.replace(path)


def load_table(name_or_path: str | Path) -> Table:
    """Load ``bench/tables/NAME.json.gz`` (or a path to such a file).

    Raises:
        FileNotFoundError: the table is not there (record it with bench/record_curves.py).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = TABLES / f"{name_or_path}.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    val = {row_key(r["params"]): [_num(v) for v in r["val_loss"]] for r in data["rows"]}
    train = {row_key(r["params"]): [_num(v) for v in r["loss"]] for r in data["rows"]}
    return Table(data["meta"]["table"], data["meta"], data["factors"], val, train)


def _num(value: Any) -> float:
    # JSON has no NaN: a diverged epoch is written as null.
    return math.nan if value is None else float(value)
