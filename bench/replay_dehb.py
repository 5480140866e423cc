"""Replay DEHB (Awad et al. 2021, the ``dehb`` package) on a recorded table.

DEHB runs Hyperband's successive-halving brackets and evolves each fidelity's population by
differential evolution. Here it searches a :class:`~bench.tabular.Table` through its own
ask-and-tell interface with its defaults (``eta=3``, ``rand1_bin``), seeded with the replay
seed (its generator and the ConfigSpace's), under :class:`bench.replay_sim.Sim`'s rules:

- **Space**: one hyperparameter per factor over the table's values: ordinal for numbers,
  categorical for the rest (DEHB maps both to equal slices of [0, 1]).
- **Fidelity = epochs**, from 1 to the table's epochs. DEHB spaces its fidelities
  geometrically (``max * eta**-k``: 2.2, 6.7 and 20 on digits; 1.3, 4 and 12 on stock); an
  evaluation trains ``round(fidelity)`` epochs.
- **Cost: every evaluation trains from scratch.** DEHB has no checkpoint continuation: a
  configuration promoted from 2 to 7 epochs is trained again for 7, so it costs 2 + 7 = 9
  epochs. :meth:`Sim.train` charges each epoch it replays and keeps nothing between calls,
  so each evaluation is one ``Sim.train`` call and pays every epoch it runs; DEHB is told
  that count as the evaluation's ``cost``. Each evaluation counts as a trial.
- **Early stopping** (patience 3) holds inside an evaluation as in every replayed trial; the
  fitness DEHB sees is the evaluation's best validation loss (restored weights). A run with
  no finite epoch (diverged) is told :data:`FAILED_FITNESS`: DEHB has no failed state, and an
  infinite fitness would read as "not evaluated yet" to its promotion step.
- **Incumbent**: the best loss of the *finished* trials, as for every method. An evaluation
  finishes when it ends by itself (early stopping, NaN, the table's last epoch); one that
  DEHB's fidelity cut while it was still improving is a partial run, as a trial stopped at a
  Hyperband rung is, and is counted as pruned (its loss reaches DEHB, not the incumbent).
- **Budget**: the search stops when the epoch budget is spent; the evaluation in progress
  is cut (:class:`~bench.replay_sim.BudgetSpent`) and not told to DEHB.

``python bench/dehb_retraining.py`` prints what re-training from scratch costs DEHB per table.
"""

from __future__ import annotations

import math
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay_sim import BudgetSpent, Sim
from bench.tabular import Table

#: The fitness DEHB is told for a run that diverged before any finite epoch.
FAILED_FITNESS = 1e9


def config_space(table: Table, seed: int) -> Any:
    """A ConfigSpace over the table's factors (numbers ordinal, the rest categorical)."""
    import ConfigSpace as CS

    cs = CS.ConfigurationSpace(seed=seed)
    for name, values in table.factors.items():
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric:
            cs.add(CS.OrdinalHyperparameter(name, list(values)))
        else:
            cs.add(CS.CategoricalHyperparameter(name, list(values)))
    return cs


def table_params(table: Table, config: Any) -> dict[str, Any]:
    """The table row of a DEHB configuration (the table's own values, not ConfigSpace's)."""
    return {
        name: next(v for v in values if v == config[name]) for name, values in table.factors.items()
    }


def fidelity_epochs(fidelity: float, table: Table) -> int:
    """Epochs an evaluation at DEHB's ``fidelity`` trains: rounded, within 1..epochs."""
    return min(table.epochs, max(1, round(float(fidelity))))


def evaluate(sim: Sim, params: dict[str, Any], epochs: int) -> tuple[float, int]:
    """Train ``params`` from scratch for at most ``epochs`` epochs: (fitness, epochs paid).

    A run that the cap stops while early stopping would have gone on is pruned (not a
    finished trial); see the module docstring.

    Raises:
        BudgetSpent: the budget ran out during this evaluation.
    """
    full = len(sim.table.curve(params))

    def capped(step: int, curve: list[float]) -> bool:
        if step < epochs or epochs >= full:
            return False
        best_at = curve.index(min(curve))  # the first minimum: Sim improves on strict "<"
        return len(curve) - 1 - best_at < sim.patience  # early stopping would not end it here

    before = sim.spent
    _, loss, _ = sim.train(params, capped)
    fitness = loss if math.isfinite(loss) else FAILED_FITNESS
    return fitness, sim.spent - before


def _dehb(**kwargs: Any) -> Any:
    """A ``dehb.DEHB`` whose logger writes no file (it adds a file sink per instance, which
    would leave a log file and a writer thread behind per replay)."""
    from dehb import DEHB  # type: ignore[import-untyped]
    from loguru import logger

    class Quiet(DEHB):
        # dehb 0.1.1 (tested) passes (kwargs), 0.1.2 (resume, kwargs)
        def _setup_logger(self, *args: Any) -> None:
            self.output_path = Path(args[-1]["output_path"])
            self.logger = logger
            self.log_filename = ""

    return Quiet(**kwargs)


def run_dehb(sim: Sim, seed: int) -> Sim:
    """DEHB over the table under the Sim's epoch budget (see the module docstring)."""
    from loguru import logger

    logger.disable("dehb")
    table = sim.table
    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # dehb 0.1 on ConfigSpace 1.x
        opt = _dehb(
            cs=config_space(table, seed),
            min_fidelity=1,
            max_fidelity=table.epochs,
            seed=seed,
            n_workers=1,
            output_path=out,
            save_freq="end",  # writes only in run(), which the replay does not call
        )
        while not sim.exhausted:
            job = opt.ask()
            params = table_params(table, job["config"])
            try:
                fitness, cost = evaluate(sim, params, fidelity_epochs(job["fidelity"], table))
            except BudgetSpent:
                break
            opt.tell(job, {"fitness": fitness, "cost": cost})
    return sim
