"""A tiny companion of ``spaces/stock.py`` for quick demos and tests.

Same labels and nested shape as the stock space, so the same objective runs it, but with short
windows and few units: a trial trains in seconds on a laptop CPU.
"""

import math

from hyperopt import hp
from hyperopt.pyll import scope

space = {
    "batch_size": hp.choice("batch_size", [32, 64]),
    "time_steps": hp.choice("time_steps", [10, 15, 20]),
    "lstm1_nodes": scope.int(hp.quniform("lstm1_nodes", 4, 16, 4)),
    "lstm1_dropout": hp.uniform("lstm1_dropout", 0.0, 0.3),
    "lstm_layers": hp.choice(
        "lstm_layers",
        [
            {"layers": 1},
            {
                "layers": 2,
                "lstm2_nodes": scope.int(hp.quniform("lstm2_nodes", 4, 8, 4)),
                "lstm2_dropout": hp.uniform("lstm2_dropout", 0.0, 0.3),
            },
        ],
    ),
    "dense_layers": hp.choice(
        "dense_layers",
        [
            {"layers": 0},
            {"layers": 1, "dense2_nodes": scope.int(hp.quniform("dense2_nodes", 4, 8, 4))},
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
    "lr": hp.loguniform("lr", math.log(1e-3), math.log(3e-2)),
}
