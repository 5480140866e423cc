"""Record a replay table: train every configuration of a discrete space, keep full curves.

    python bench/record_curves.py digits          # 216 configs x 20 epochs (~10 min, 2 processes)
    python bench/record_curves.py stock           # 64 configs x 12 epochs
    python bench/record_curves.py digits-cnn      # 72 configs x 20 epochs (~4 min)
    python bench/record_curves.py digits --order reverse   # a 2nd process from the other end
    python bench/record_curves.py digits --finish      # only write the .json.gz

Each configuration is trained once, by the library's own model code
(:func:`tpetune.digits.model.build_model`, :func:`tpetune.stock.model.build_model`; the
digits-cnn network, which the library has no study for, by :func:`cnn_model`) on the
bundled data, for the table's full epochs *without early stopping* (the replay applies
early stopping itself, so every method gets the same rule), with one fixed weight seed.
Validation and training loss are kept per epoch. A run that diverges to NaN stops there
(``TerminateOnNaN``) and its remaining epochs are written as NaN.

- digits: scikit-learn's 8x8 digits, the study's held-out test split removed
  (``tpetune.digits.DATA_SEED``); the validation split is fold 0 of the study's 3 stratified
  folds (958 training, 479 validation images), the same for every configuration.
- digits-cnn: the digits table's images and split, as 8x8x1 images, for a small CNN.
- stock: the stock study's data, the last 10 years of the bundled S&P 500
  (``tpetune.stock.DEFAULT_YEARS``), and its chronological 70/15/15 split; validation MSE in
  model units, as the stock objective's loss.

Recording is incremental: every finished configuration is appended as one JSON line to
``bench/tables/NAME.partial[.SHARD].jsonl`` and skipped on the next run, so a killed run
resumes (a ``NAME.partial.committed.jsonl`` may hold rows recorded in an earlier session,
committed so that a fresh checkout resumes too). When all are there, the table is written to
``bench/tables/NAME.json.gz`` with the command and the summed training seconds in its
metadata. TensorFlow runs on one thread (the machine is shared); set
``TF_NUM_INTRAOP_THREADS`` to change that.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

# One thread per TensorFlow process, set before TensorFlow is imported.
for _var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import tabular  # noqa: E402

WEIGHT_SEED = 0
_EVAL_BATCH = 4096


def _digits_split() -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """The digits data, (x_tr, y_tr, x_va, y_va) of fold 0, and the tables' data metadata."""
    from tpetune.digits import DATA_SEED, DEFAULT_FOLDS
    from tpetune.digits.data import load_digits_data, stratified_folds

    data = load_digits_data()
    train, val = stratified_folds(data.y_train, DEFAULT_FOLDS, seed=DATA_SEED)[0]
    parts = (data.x_train[train], data.y_train[train], data.x_train[val], data.y_train[val])
    meta = {
        "data": data.source,
        "split": f"fold 0 of the digits study's {DEFAULT_FOLDS} stratified folds "
        f"(seed {DATA_SEED}) of the training images: {len(train)} train, {len(val)} val",
        "loss": "sparse categorical cross-entropy on the validation images",
    }
    return data, parts, meta


def _digits_trainer() -> tuple[Any, dict[str, Any]]:
    """A function training one digits row, and the table's data metadata."""
    import keras

    from tpetune.digits.model import build_model

    data, (x_tr, y_tr, x_va, y_va), meta = _digits_split()

    def fit(flat: dict[str, Any]) -> dict[str, Any]:
        params = tabular.digits_params(flat)
        steps = math.ceil(len(y_tr) / params["batch_size"])
        model = build_model(params, n_features=data.n_features, steps_per_epoch=steps)
        hist = model.fit(
            x_tr, y_tr, validation_data=(x_va, y_va), epochs=tabular.DIGITS_EPOCHS,
            batch_size=params["batch_size"], validation_batch_size=_EVAL_BATCH, verbose=0,
            callbacks=[keras.callbacks.TerminateOnNaN()],
        ).history  # fmt: skip
        return _curves(hist, tabular.DIGITS_EPOCHS, ("val_loss", "loss", "val_accuracy"))

    return fit, meta


def cnn_model(flat: dict[str, Any], image_shape: tuple[int, int]) -> Any:
    """The digits-cnn table's network for one row (see ``tabular.DIGITS_CNN_FACTORS``).

    ``Conv2D(filters, 3, relu)`` [→ ``MaxPooling2D(2)`` → ``Conv2D(2 * filters, 3, relu)``] →
    ``Flatten`` or ``GlobalAveragePooling2D`` → ``Dense(10, softmax)``; "same" padding.
    """
    import keras

    from tpetune.keras.optimizers import make_optimizer

    x = inputs = keras.Input(shape=(*image_shape, 1), name="image")
    for i in range(int(flat["conv_layers"])):
        if i:
            x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Conv2D(int(flat["filters"]) * 2**i, 3, padding="same", activation="relu")(
            x
        )
    pool = {"flatten": keras.layers.Flatten, "gap": keras.layers.GlobalAveragePooling2D}
    x = pool[flat["head"]]()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="output")(x)
    model = keras.Model(inputs, outputs, name="digits_cnn")
    opt: dict[str, Any] = {"name": flat["optimizer"]}
    if flat["optimizer"] == "sgd":
        opt.update(momentum=0.9, nesterov=True)
    model.compile(
        optimizer=make_optimizer(opt, float(flat["lr"])),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,  # as the digits model: XLA would compile each model for seconds
    )
    return model


def _digits_cnn_trainer() -> tuple[Any, dict[str, Any]]:
    """A function training one digits-cnn row, and the table's data metadata."""
    import keras

    data, (x_tr, y_tr, x_va, y_va), meta = _digits_split()
    shape = (-1, *data.image_shape, 1)
    x_tr, x_va = x_tr.reshape(shape), x_va.reshape(shape)

    def fit(flat: dict[str, Any]) -> dict[str, Any]:
        model = cnn_model(flat, data.image_shape)
        hist = model.fit(
            x_tr, y_tr, validation_data=(x_va, y_va), epochs=tabular.DIGITS_CNN_EPOCHS,
            batch_size=tabular.DIGITS_CNN_BATCH, validation_batch_size=_EVAL_BATCH, verbose=0,
            callbacks=[keras.callbacks.TerminateOnNaN()],
        ).history  # fmt: skip
        return _curves(hist, tabular.DIGITS_CNN_EPOCHS, ("val_loss", "loss", "val_accuracy"))

    model = "Conv2D(filters, 3, relu) [-> MaxPooling2D(2) -> Conv2D(2 filters, 3, relu)] -> "
    model += (
        f"Flatten or GlobalAveragePooling2D -> Dense(10, softmax); batch {tabular.DIGITS_CNN_BATCH}"
    )
    return fit, {**meta, "model": model}


def _stock_trainer() -> tuple[Any, dict[str, Any]]:
    """A function training one stock row, and the table's data metadata."""
    import keras

    from tpetune.stock import DEFAULT_YEARS
    from tpetune.stock.data import load_prices, recent_years
    from tpetune.stock.model import build_model
    from tpetune.stock.windows import DEFAULT_SPLIT, prepare

    prices = recent_years(load_prices(), DEFAULT_YEARS)
    cache: dict[int, Any] = {}

    def fit(flat: dict[str, Any]) -> dict[str, Any]:
        params = tabular.stock_params(flat)
        steps = params["time_steps"]
        if steps not in cache:
            cache[steps] = prepare(prices, steps, split=DEFAULT_SPLIT)
        ds = cache[steps]
        model = build_model(params, time_steps=steps, n_features=ds.n_features)
        x_tr, y_tr = ds.part("train")
        hist = model.fit(
            x_tr, y_tr, validation_data=ds.part("val"), epochs=tabular.STOCK_EPOCHS,
            batch_size=params["batch_size"], verbose=0,
            callbacks=[keras.callbacks.TerminateOnNaN()],
        ).history  # fmt: skip
        return _curves(hist, tabular.STOCK_EPOCHS, ("val_loss", "loss"))

    meta = {
        "data": f"bundled S&P 500, last {DEFAULT_YEARS} years ({len(prices)} days)",
        "split": f"chronological train/val/test {DEFAULT_SPLIT} (the stock study's)",
        "loss": "validation MSE in model units (the stock objective's loss)",
    }
    return fit, meta


#: Table name -> the function returning its trainer and data metadata.
TRAINERS = {"digits": _digits_trainer, "stock": _stock_trainer, "digits-cnn": _digits_cnn_trainer}


def _curves(history: dict[str, list[float]], epochs: int, keys: tuple[str, ...]) -> dict:
    """The history's curves padded to ``epochs`` with NaN (written as null) after a NaN stop."""
    out: dict[str, Any] = {}
    for key in keys:
        values = [float(v) for v in history.get(key, [])]
        values += [math.nan] * (epochs - len(values))
        out[key] = [round(v, 7) if math.isfinite(v) else None for v in values]
    return out


def _versions() -> dict[str, str]:
    import keras
    import numpy as np
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}


def record(name: str, shard: int, shards: int, *, order: str = "forward") -> None:
    """Train the configurations of this shard that are not yet recorded.

    Other processes may record the same table at the same time in another ``order``
    (``reverse``: from the last configuration back; ``middle``: from the middle on, wrapping
    around): each writes its own partial file and skips what any of them has recorded.
    """
    import keras

    factors = tabular.FACTORS[name]
    tag = ("" if shards == 1 else f".{shard}") + ("" if order == "forward" else f".{order}")
    partial = tabular.TABLES / f"{name}.partial{tag}.jsonl"
    done = {tabular.row_key(r["params"]) for r in _all_rows(name)}
    todo = [c for i, c in enumerate(tabular.configs(factors)) if i % shards == shard]
    todo = [c for c in todo if tabular.row_key(c) not in done]
    if order == "reverse":
        todo.reverse()
    elif order != "forward":  # "middle" or a start fraction such as "0.25"
        at = int(len(todo) * (0.5 if order == "middle" else float(order)))
        todo = todo[at:] + todo[:at]
    print(f"{name}: {len(todo)} configurations to record in {partial.name}", flush=True)
    fit, _ = TRAINERS[name]()
    for i, flat in enumerate(todo, start=1):
        if tabular.row_key(flat) in {tabular.row_key(r["params"]) for r in _all_rows(name)}:
            continue  # the process working from the other end got here first
        keras.backend.clear_session()
        keras.utils.set_random_seed(WEIGHT_SEED)
        started = time.perf_counter()
        curves = fit(flat)
        row = {"params": flat, **curves, "seconds": round(time.perf_counter() - started, 3)}
        with partial.open("a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        best = min((v for v in curves["val_loss"] if v is not None), default=math.nan)
        print(f"  [{i}/{len(todo)}] {flat} best {best:.4g} in {row['seconds']:.1f}s", flush=True)


def _all_rows(name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(tabular.TABLES.glob(f"{name}.partial*.jsonl")):
        rows += tabular.read_rows(path)
    return rows


def _first_epochs(row: dict[str, Any] | None, epochs: int) -> dict[str, Any] | None:
    """A row cut to its first ``epochs`` epochs: exact, as nothing stopped the run early and
    the schedules count epochs (a row recorded with more epochs has the same first ones)."""
    if row is None:
        return None
    curves = {k: v[:epochs] for k, v in row.items() if isinstance(v, list)}
    return {**row, **curves}


def finish(name: str) -> bool:
    """Write ``NAME.json.gz`` if every configuration is recorded; False if some are missing."""
    factors = tabular.FACTORS[name]
    by_key = {tabular.row_key(r["params"]): r for r in _all_rows(name)}
    epochs = tabular.EPOCHS[name]
    rows = [_first_epochs(by_key.get(tabular.row_key(c)), epochs) for c in tabular.configs(factors)]
    missing = sum(r is None for r in rows)
    if missing:
        print(f"{name}: {missing} of {len(rows)} configurations not recorded yet")
        return False
    _, meta = TRAINERS[name]()
    seconds = sum(float(r["seconds"]) for r in rows if r is not None)
    meta = {
        "table": name,
        "command": f"python bench/record_curves.py {name}",
        "seconds": round(seconds, 1),
        "seconds_note": "summed training time of the configurations, one TensorFlow thread "
        "each, on the project's shared 2-core machine",
        "recorded": dt.date.today().isoformat(),
        "configurations": len(rows),
        "epochs": tabular.EPOCHS[name],
        "early_stopping": "none (the replay applies it)",
        "weight_seed": WEIGHT_SEED,
        "versions": _versions(),
        **meta,
    }
    path = tabular.TABLES / f"{name}.json.gz"
    tabular.write_table(path, meta, factors, rows)
    print(f"{name}: wrote {path} ({path.stat().st_size / 1024:.0f} KiB, {seconds / 60:.1f} min)")
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("table", choices=sorted(tabular.FACTORS))
    p.add_argument("--shard", default="0/1", metavar="I/N", help="record every N-th config")
    p.add_argument(
        "--order",
        default="forward",
        help="forward, reverse, middle or a start fraction like 0.25: several processes, each "
        "with its own order, share the work",
    )
    p.add_argument("--finish", action="store_true", help="only write the .json.gz")
    args = p.parse_args(argv)
    shard, shards = (int(x) for x in args.shard.split("/"))
    if not 0 <= shard < shards:
        p.error(f"--shard I/N needs 0 <= I < N; got {args.shard}")
    tabular.TABLES.mkdir(parents=True, exist_ok=True)
    if not args.finish:
        record(args.table, shard, shards, order=args.order)
    return 0 if finish(args.table) else 1


if __name__ == "__main__":
    sys.exit(main())
