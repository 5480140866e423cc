"""Distinct proposals: a new trial never repeats the params of a trial the study already has.

hyperopt's TPE proposes the best of a few draws from its model of the good trials; on a space
of choices and quantised numbers that is often a point already trained, again and again (on
the replay's digits table, 216 configurations, one configuration was proposed 37 times in a
freeze-thaw run of 158 trials). A repeat costs a whole fit and tells the search almost
nothing new. As Syne Tune's searchers do by default (``allow_duplicates=False``), a proposal
equal to a trial the study has — finished, failed, pruned, paused or running — is drawn again:

- first with the same algorithm and seeds derived from (study seed, trial id, attempt), up to
  :data:`REDRAWS` times (TPE's next-best region);
- then at random over the space (``hyperopt.rand``), up to :data:`REDRAWS` times;
- then, on a space of finitely many points (choices and quantised ranges: what grid search
  enumerates, :mod:`tpetune.search.grid`), its first point not trained yet;
- and only if there is none (every point trained, or a continuous space whose draws all
  repeated) does the first proposal stand.

Every draw is seeded from the study seed and trial id, and the trials it is compared with are
those proposed before it, so a resumed or parallel study (with a lag) proposes the same.
Points a user asks for (``Search(points=...)``) are never redrawn. Continuous
parameters make exact repeats practically impossible, so this changes nothing there.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

from tpetune.search.algos import Suggest
from tpetune.search.documents import vals_key, vals_of
from tpetune.search.grid import combination_doc, enumerate_space

__all__ = ["REDRAWS", "propose_distinct"]

#: Redraws with the study's algorithm, then as many at random, before a repeat is accepted.
REDRAWS = 10


def propose_distinct(
    suggest: Suggest,
    tid: int,
    domain: Any,
    trials: Any,
    seed: int,
    *,
    taken: Container[str],
    redraw_seed: Callable[[int], int],
) -> list[dict[str, Any]]:
    """``suggest([tid], domain, trials, seed)``, drawn again while its point's
    :func:`vals_key` is in ``taken`` (see the module); ``redraw_seed(attempt)`` seeds attempt
    1, 2, ... Returns hyperopt's list of one document, or ``[]`` when ``suggest`` has none."""
    from hyperopt import rand

    docs = suggest([tid], domain, trials, seed)
    if not docs or vals_key(vals_of(docs[0])) not in taken:
        return docs
    for attempt in range(1, 2 * REDRAWS + 1):
        algo = suggest if attempt <= REDRAWS else rand.suggest
        again = algo([tid], domain, trials, redraw_seed(attempt))
        if again and vals_key(vals_of(again[0])) not in taken:
            return again
    try:
        combinations = enumerate_space(domain.expr)
    except Exception:  # continuous, too many points, or a form grid search cannot list
        return docs
    for combo in combinations:
        if vals_key(combo) not in taken:
            return [combination_doc(combo, tid, domain, trials)]
    return docs
