"""Search space of the digits study: a dense classifier on handwritten digits.

Labels are the params :func:`tpetune.digits.model.build_model` reads. Branch choices are dicts
whose ``layers`` (or ``name``) key is the constant part shown for the branch, e.g.
``hidden_layers = 2`` or ``optimizer = "sgd"``.

The units of a layer are *one* hyperparameter shared by every branch that has that layer: the
same ``units1`` node sits in all three ``hidden_layers`` branches (and ``units2`` in two), so
TPE learns "a good first layer" from every trial instead of three separate ones. (Reusing the
node is what makes this legal; two distinct ``hp.*`` with one label would be rejected.)

Sizes suit scikit-learn's 8x8 digits on a CPU: see ``DEFAULT_MAX_EVALS`` in
:mod:`tpetune.digits` and the measured per-trial time in :mod:`tpetune.digits.objective`.
"""

import math

from hyperopt import hp
from hyperopt.pyll import scope

_units1 = scope.int(hp.quniform("units1", 32, 256, 16))
_units2 = scope.int(hp.quniform("units2", 16, 192, 16))
_units3 = scope.int(hp.quniform("units3", 16, 128, 16))

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
    # Schedules count epochs (see tpetune.digits.model): "time" is lr / (1 + decay * epoch),
    # "exponential" is lr * rate ** epoch.
    "schedule": hp.choice(
        "schedule",
        [
            {"name": "constant"},
            {"name": "time", "decay": hp.loguniform("decay", math.log(1e-3), math.log(1.0))},
            {"name": "exponential", "rate": hp.uniform("rate", 0.8, 0.99)},
        ],
    ),
    # Learning rates span orders of magnitude (SGD likes ~0.1, Adam ~0.001): search the log.
    # Below 5e-4 a net barely learns within 40 epochs, so such trials only cost time.
    "lr": hp.loguniform("lr", math.log(5e-4), math.log(0.3)),
    "batch_size": hp.choice("batch_size", [32, 64, 128]),
    # The most epochs per fold; early stopping inside each fold usually ends sooner.
    "epochs": hp.choice("epochs", [10, 20, 40]),
}
