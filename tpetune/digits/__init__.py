"""The digits study: tune a dense classifier on handwritten digits (``tpetune digits``).

Modules: :mod:`~tpetune.digits.data` (load and check the images, stratified splits),
:mod:`~tpetune.digits.model` (the network from one point of ``spaces/digits.py``),
:mod:`~tpetune.digits.objective` (k-fold cross-validation per trial, the final test report)
and :mod:`~tpetune.digits.study` (the command end to end).

The defaults live here, not in the objective module, so that the CLI can show them in
``--help`` without importing TensorFlow: this package imports nothing heavy. How they were
measured is written down in :mod:`tpetune.digits.objective`.
"""

from __future__ import annotations

__all__ = [
    "DATA_SEED",
    "DEFAULT_FOLDS",
    "DEFAULT_MAX_EVALS",
    "DEFAULT_PATIENCE",
    "DEFAULT_PRUNER",
    "TEST_FRACTION",
]

#: Trials of the default ``tpetune digits`` run (about a minute on 2 cores since issue 23).
DEFAULT_MAX_EVALS = 25
#: Stratified cross-validation folds per trial; the loss is their mean validation loss.
DEFAULT_FOLDS = 3
#: No pruning for a new digits study: on the recorded-curves replay every pruner cut the
#: slow-starting configurations that end best (median rule: final best +11%, p 0.001).
DEFAULT_PRUNER = "none"
#: Epochs without a better validation loss before a fold stops (best weights are restored).
DEFAULT_PATIENCE = 4
#: Share of scikit-learn's digits held out as the test split (MNIST brings its own).
TEST_FRACTION = 0.2
#: Seed of the data splits (test split and folds): the same for every trial and every run, so
#: trials are compared on the same folds; the weights are seeded per trial instead.
DATA_SEED = 0
