"""The stock space made discrete, so ``--algo grid`` can walk it: 384 combinations.

Same labels and nested shape as ``spaces/stock.py`` (the stock objective runs it unchanged),
with every range replaced by ``hp.choice`` of a few values from inside the original range.
``bench/strategies.py`` runs TPE, random search and grid search on this one space, so the
three are compared on the same candidates. A label with a single value stays in the space
because :func:`tpetune.stock.model.build_model` reads it; two values everywhere would make
thousands of combinations.

    tpetune stock --space spaces/stock_grid.py --algo grid --max-evals 384
"""

from hyperopt import hp

space = {
    "batch_size": hp.choice("batch_size", [32, 128]),
    "time_steps": hp.choice("time_steps", [30, 60]),
    "lstm1_nodes": hp.choice("lstm1_nodes", [16, 48]),
    "lstm1_dropout": hp.choice("lstm1_dropout", [0.0, 0.2]),
    "lstm_layers": hp.choice(
        "lstm_layers",
        [
            {"layers": 1},
            {
                "layers": 2,
                "lstm2_nodes": hp.choice("lstm2_nodes", [16]),
                "lstm2_dropout": hp.choice("lstm2_dropout", [0.2]),
            },
        ],
    ),
    "dense_layers": hp.choice(
        "dense_layers",
        [
            {"layers": 0},
            {"layers": 1, "dense2_nodes": hp.choice("dense2_nodes", [16])},
        ],
    ),
    "optimizer": hp.choice(
        "optimizer",
        [
            {
                "name": "sgd",
                "momentum": hp.choice("momentum", [0.9]),
                "nesterov": hp.choice("nesterov", [True]),
            },
            {"name": "rmsprop"},
            {"name": "adam"},
        ],
    ),
    "lr": hp.choice("lr", [1e-3, 1e-2]),
}
