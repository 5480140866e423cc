"""A tiny companion of ``spaces/digits.py`` for quick demos and tests.

Same labels and nested shape as the digits space, so the same objective runs it, but with a
few units and 2-3 epochs: a trial trains in a second or two on a laptop CPU.
"""

import math

from hyperopt import hp
from hyperopt.pyll import scope

_units1 = scope.int(hp.quniform("units1", 8, 16, 4))
_units2 = scope.int(hp.quniform("units2", 4, 8, 4))
_units3 = scope.int(hp.quniform("units3", 4, 8, 4))

space = {
    "hidden_layers": hp.choice(
        "hidden_layers",
        [
            {"layers": 1, "units1": _units1},
            {"layers": 2, "units1": _units1, "units2": _units2},
            {"layers": 3, "units1": _units1, "units2": _units2, "units3": _units3},
        ],
    ),
    "activation": hp.choice("activation", ["relu", "elu", "tanh", "selu"]),
    "initializer": hp.choice("initializer", ["glorot_uniform", "he_normal", "lecun_normal"]),
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
    "schedule": hp.choice(
        "schedule",
        [
            {"name": "constant"},
            {"name": "time", "decay": hp.loguniform("decay", math.log(1e-2), math.log(1.0))},
            {"name": "exponential", "rate": hp.uniform("rate", 0.8, 0.99)},
        ],
    ),
    "lr": hp.loguniform("lr", math.log(3e-3), math.log(0.1)),
    "batch_size": hp.choice("batch_size", [32, 64]),
    "epochs": hp.choice("epochs", [2, 3]),
}
