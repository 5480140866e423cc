"""A hyperopt script as the seed article writes one (an LSTM on stock prices), ported to
Keras 3 and made tiny (a few hundred rows, 1-2 epochs), running under ``tpetune.fmin``.

The only line that differs from the plain hyperopt script is the import of ``fmin``::

    from hyperopt import fmin    # before
    from tpetune import fmin     # after: every trial lands in a crash-safe study

Run it twice: the second run resumes the study in ``runs/fmin-create_model_hypopt-<hash>``
(also after ``kill -9``) instead of starting over. The labels differ from the keys on
purpose (``'bs'``, ``'units_lsmt1'``, ``'num_layers_lstm'`` with branches ``'one'``/``'two'``),
``lr`` is ``hp.uniform('lr', 0, 1)`` and the model travels in the result dict, as in the
article; tpetune saves the best trials' models as ``.keras`` files
(``tpetune best-model STUDY_DIR`` prints the best one's path).
"""

import os
import pickle
from importlib.resources import files

import numpy as np
import pandas as pd
from hyperopt import STATUS_OK, Trials, hp, space_eval, tpe

from tpetune import fmin  # was: from hyperopt import fmin

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROWS = 240  # the article reads years of daily prices; a few months keep the example quick
MAX_EVALS = int(os.environ.get("MAX_EVALS", "6"))

search_space = {
    "batch_size": hp.choice("bs", [16, 32]),
    "time_steps": hp.choice("t_steps", [5, 10]),
    "lstm1_nodes": hp.choice("units_lsmt1", [4, 8]),
    "lstm1_dropouts": hp.uniform("dos_lstm1", 0, 0.5),
    "lstm_layers": hp.choice(
        "num_layers_lstm",
        [
            {"layers": "one"},
            {
                "layers": "two",
                "lstm2_nodes": hp.choice("units_lstm2", [2, 4]),
                "lstm2_dropouts": hp.uniform("dos_lstm2", 0, 0.5),
            },
        ],
    ),
    "dense_layers": hp.choice(
        "num_layers_dense",
        [{"layers": "one"}, {"layers": "two", "dense2_nodes": hp.choice("units_dense", [4, 8])}],
    ),
    "lr": hp.uniform("lr", 0, 1),
    "epochs": hp.choice("epochs", [1, 2]),
    "optimizer": hp.choice("optmz", ["sgd", "rms"]),
}

prices = pd.read_csv(files("tpetune.stock.series") / "sp500.csv.gz")
features = prices[["Open", "High", "Low", "Close", "Volume"]].to_numpy("float64")[-ROWS:]
split = int(len(features) * 0.8)
low, high = features[:split].min(axis=0), features[:split].max(axis=0)  # train-only scaling
scaled = ((features - low) / (high - low)).astype("float32")


def windows(data, time_steps):
    """(samples, time_steps, features) inputs and the next day's scaled close as target."""
    x = np.stack([data[i : i + time_steps] for i in range(len(data) - time_steps)])
    return x, data[time_steps:, 3:4]


def data_for(time_steps):
    x, y = windows(scaled, time_steps)
    cut = split - time_steps
    return x[:cut], y[:cut], x[cut:], y[cut:]


def create_model_hypopt(params):
    import keras

    x_train, y_train, x_val, y_val = data_for(params["time_steps"])
    two = params["lstm_layers"]["layers"] == "two"
    layers = [
        keras.Input(shape=(params["time_steps"], x_train.shape[2])),
        keras.layers.LSTM(
            params["lstm1_nodes"], dropout=params["lstm1_dropouts"], return_sequences=two
        ),
    ]
    if two:
        layers.append(
            keras.layers.LSTM(
                params["lstm_layers"]["lstm2_nodes"],
                dropout=params["lstm_layers"]["lstm2_dropouts"],
            )
        )
    if params["dense_layers"]["layers"] == "two":
        layers.append(keras.layers.Dense(params["dense_layers"]["dense2_nodes"], "relu"))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    lstm_model = keras.Sequential(layers)
    if params["optimizer"] == "rms":
        optimizer = keras.optimizers.RMSprop(learning_rate=params["lr"])
    else:
        optimizer = keras.optimizers.SGD(learning_rate=params["lr"])
    lstm_model.compile(loss="mean_squared_error", optimizer=optimizer)
    history = lstm_model.fit(
        x_train,
        y_train,
        epochs=params["epochs"],
        batch_size=params["batch_size"],
        validation_data=(x_val, y_val),
        verbose=0,
    )
    val_error = float(lstm_model.evaluate(x_val, y_val, verbose=0))
    print(f"val error {val_error:.6f} with {params}", flush=True)
    return {
        "loss": val_error,
        "status": STATUS_OK,
        "model": lstm_model,
        "curves": {k: [float(v) for v in vs] for k, vs in history.history.items()},
    }


trials = Trials()
best = fmin(create_model_hypopt, search_space, algo=tpe.suggest, max_evals=MAX_EVALS, trials=trials)
print("best:", best)
print("best params:", space_eval(search_space, best))
print("trials:", len(trials.trials), "best loss:", trials.best_trial["result"]["loss"])
with open("hyperopt_res", "wb") as fh:
    pickle.dump(best, fh)
