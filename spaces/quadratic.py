"""A cheap demo study with a nested space: `tpetune run quadratic` finishes in seconds.

It shows the shape of a file for `tpetune run`: a `space` (hyperopt hp tree) and an
`objective(params)` that receives values (never choice indices) and returns a loss.
"""

from hyperopt import hp
from hyperopt.pyll import scope

space = {
    "x": hp.uniform("x", -5.0, 5.0),
    "lr": hp.loguniform("lr", -9.0, -1.0),
    "model": hp.choice(
        "model",
        [
            {"kind": "linear"},
            {"kind": "poly", "degree": scope.int(hp.quniform("degree", 2, 5, 1))},
        ],
    ),
    "optimizer": hp.choice("optimizer", ["sgd", "adam"]),
}


def objective(params: dict) -> dict:
    """A smooth bowl with its minimum at x=1, lr=1e-3, a degree-3 poly model and adam."""
    import math

    loss = (params["x"] - 1.0) ** 2 + (math.log10(params["lr"]) + 3.0) ** 2 * 0.1
    model = params["model"]
    loss += 0.5 if model["kind"] == "linear" else 0.1 * abs(model["degree"] - 3)
    loss += 0.2 if params["optimizer"] == "sgd" else 0.0
    return {"loss": loss, "metrics": {"x": params["x"]}}
