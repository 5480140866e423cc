"""Search space of the flagship stock study: an LSTM forecasting the S&P 500's next close.

Labels are the params :func:`tpetune.stock.model.build_model` reads. Branch choices are dicts
whose ``layers`` (or ``name``) key is the constant part shown for the branch, e.g.
``lstm_layers = 2``. Sizes are kept small enough for a CPU: see ``DEFAULT_MAX_EVALS`` and
``DEFAULT_EPOCHS`` in :mod:`tpetune.stock.objective` for the budget they were measured with.
"""

import math

from hyperopt import hp
from hyperopt.pyll import scope

space = {
    "batch_size": hp.choice("batch_size", [32, 64, 128]),
    "time_steps": hp.choice("time_steps", [30, 45, 60, 90]),
    "lstm1_nodes": scope.int(hp.quniform("lstm1_nodes", 16, 64, 8)),
    "lstm1_dropout": hp.uniform("lstm1_dropout", 0.0, 0.4),
    "lstm_layers": hp.choice(
        "lstm_layers",
        [
            {"layers": 1},
            {
                "layers": 2,
                "lstm2_nodes": scope.int(hp.quniform("lstm2_nodes", 8, 48, 8)),
                "lstm2_dropout": hp.uniform("lstm2_dropout", 0.0, 0.4),
            },
        ],
    ),
    "dense_layers": hp.choice(
        "dense_layers",
        [
            {"layers": 0},
            {"layers": 1, "dense2_nodes": scope.int(hp.quniform("dense2_nodes", 8, 32, 8))},
        ],
    ),
    "optimizer": hp.choice(
        "optimizer",
        [
            {
                "name": "sgd",
                "momentum": hp.uniform("momentum", 0.0, 0.95),
                "nesterov": hp.choice("nesterov", [False, True]),
            },
            {"name": "rmsprop"},
            {"name": "adam"},
        ],
    ),
    # Learning rates span orders of magnitude: search their logarithm, not [0, 1] uniformly.
    "lr": hp.loguniform("lr", math.log(1e-4), math.log(3e-2)),
}
