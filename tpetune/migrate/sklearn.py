"""``TPESearchCV``: ``RandomizedSearchCV`` with TPE proposals and a resumable study.

It is a scikit-learn ``BaseSearchCV``, so fitting, scoring, refitting, ``cv_results_``,
``best_*``, delegation (``predict``, ``predict_proba``, ``score``, ``transform``, ...),
``clone``, pickling and metadata routing are scikit-learn's own code; only
``_run_search`` is new. It proposes one candidate at a time with hyperopt's TPE through
:func:`tpetune.tune` (every candidate a trial of a tpetune study) and cross-validates it with
scikit-learn's ``evaluate_candidates``. Each trial keeps its per-split scores and times, so
a later ``fit`` with a larger ``n_iter`` on the same ``study_dir`` evaluates only the new
candidates and still reports every candidate in ``cv_results_``.

``n_jobs`` is scikit-learn's: the folds of a candidate run in parallel (joblib), as in
``RandomizedSearchCV``. Candidates are proposed one after the other, because TPE proposes
better the more finished candidates it sees; with ``cv=5`` and ``n_jobs=5`` every core is
busy anyway.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import ParameterGrid
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from tpetune.engine.options import Search, StopRules
from tpetune.engine.tuning import tune
from tpetune.errors import SearchFailedError, TpetuneError, reworded
from tpetune.migrate.sklearn_space import flatten_candidate, to_hyperopt
from tpetune.search.space import Space, jsonable
from tpetune.study.store import Store
from tpetune.study.study import load_study

#: The trial metric holding a candidate's per-split results (scikit-learn's ``out`` dicts).
SPLITS_KEY = "cv_splits"
_UNBOUNDED = 2**31 - 1


class TPESearchCV(BaseSearchCV):  # type: ignore[misc,unused-ignore]  # sklearn: no hints
    """Search over parameters with TPE, as ``RandomizedSearchCV`` does at random.

    Same parameters, attributes and methods as ``sklearn.model_selection.RandomizedSearchCV``
    (read its documentation), plus ``study_dir``. Where they differ:

    Args:
        param_distributions: as ``RandomizedSearchCV`` (a dict, or a list of dicts, of lists
            and ``scipy.stats`` distributions: ``uniform``, ``loguniform``, ``randint``,
            ``norm``, ``lognorm``), or any hyperopt space (``hp.*`` nodes, nested choices);
            see :mod:`tpetune.migrate.sklearn_space`.
        n_iter: candidates in the study in total; a later ``fit`` on the same ``study_dir``
            with a larger ``n_iter`` evaluates only the ones still missing.
        random_state: the study seed (an int; a ``RandomState`` gives one draw). ``None``:
            a random seed for a new study, the stored one when resuming.
        study_dir: where the study is kept (a tpetune study, ``tpetune show DIR`` reads it);
            ``None``: a temporary folder, deleted when ``fit`` ends.

    Attributes:
        study_: the :class:`tpetune.Study` after ``fit`` (every trial, by tid; for a
            temporary study only its records remain).

    ``cv_results_`` lists every candidate of the study, in trial order, also those of earlier
    fits. A candidate whose mean test score is not finite (failed fits give ``error_score``)
    is a failed trial for TPE. A ``fit`` that has nothing left to evaluate cross-validates
    the study's best candidate once (scikit-learn needs one evaluation per ``fit``) but
    reports the stored results.
    """

    _parameter_constraints: dict[str, Any] = {  # noqa: RUF012 (scikit-learn's form)
        **BaseSearchCV._parameter_constraints,
        "param_distributions": "no_validation",  # dicts, lists or hyperopt trees: ours
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "study_dir": [str, os.PathLike, None],
    }

    def __init__(
        self,
        estimator: Any,
        param_distributions: Any,
        *,
        n_iter: int = 10,
        scoring: Any = None,
        n_jobs: int | None = None,
        refit: Any = True,
        cv: Any = None,
        verbose: int = 0,
        pre_dispatch: Any = "2*n_jobs",
        random_state: Any = None,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        study_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.random_state = random_state
        self.study_dir = study_dir
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )

    def fit(self, X: Any, y: Any = None, **params: Any) -> TPESearchCV:
        """Run the search (see ``RandomizedSearchCV.fit``) and refit the best candidate."""
        import joblib

        # _run_search is not given the data: remember its digest, so that a resumed study
        # refuses other data (its stored scores would not be comparable).
        self._tpe_data = joblib.hash((X, y))
        try:
            super().fit(X, y, **params)
        finally:
            del self._tpe_data
        return self

    def _run_search(self, evaluate_candidates: Callable[..., Any]) -> None:
        run = _Run(self, evaluate_candidates)
        self._tpe_run = run
        try:
            if self.study_dir is not None:
                run.search(Path(self.study_dir))
            else:
                with tempfile.TemporaryDirectory(prefix="tpetune-search-") as tmp:
                    run.search(Path(tmp))
        finally:
            del self._tpe_run

    def __getstate__(self) -> dict[str, Any]:
        # scikit-learn ships the search itself to joblib workers (n_jobs): without the run
        # in progress, which holds fit()'s closures.
        state = dict(super().__getstate__())
        state.pop("_tpe_run", None)
        return state

    def _format_results(
        self,
        candidate_params: Any,
        n_splits: int,
        out: Any,
        more_results: Any = None,
    ) -> dict[str, Any]:
        run = getattr(self, "_tpe_run", None)
        if run is not None:
            run.capture(list(out[-n_splits:]))
        return dict(super()._format_results(candidate_params, n_splits, out, more_results))


class _Run:
    """One ``fit``'s search: the tune() objective, what it captured, the final results."""

    def __init__(self, search: TPESearchCV, evaluate: Callable[..., Any]) -> None:
        self.cv = search
        self.evaluate = evaluate
        self.names = set(clone(search.estimator).get_params(deep=True))
        self.space = Space(to_hyperopt(search.param_distributions), source="param_distributions")
        self.captured: list[dict[str, Any]] | None = None
        self.results: dict[str, Any] | None = None  # the dict fit() goes on to use
        self.error: BaseException | None = None  # to re-raise (error_score='raise')
        self.all_failed: BaseException | None = None  # scikit-learn's "All the N fits failed"

    def capture(self, out: list[dict[str, Any]]) -> None:
        self.captured = out

    def search(self, study_dir: Path) -> None:

        cv = self.cv
        seed = None
        if cv.random_state is not None or not Store.exists(study_dir):
            rs = cv.random_state
            seed = rs if isinstance(rs, Integral) else check_random_state(rs).randint(_UNBOUNDED)
        try:
            study = tune(
                self,
                self.space,
                study_dir=study_dir,
                max_evals=_n_candidates(cv.param_distributions, cv.n_iter),
                search=Search("tpe", seed=int(seed) if seed is not None else None),
                stop=StopRules(max_failures=_UNBOUNDED),  # error_score decides, as sklearn
                objective_config=self._config(),
                callbacks=[self._stop_on_error],
                progress=cv.verbose > 0,
            )
        except SearchFailedError:
            # No trial succeeded: scikit-learn raises only when every fit failed (its own
            # error, re-raised); a candidate scored NaN still counts for it (best_index_ 0).
            if self.error is not None or self.results is None:
                raise self.error or self.all_failed or ValueError("no fit was performed") from None
            study = load_study(study_dir)
        except TpetuneError as exc:
            raise type(exc)("TPESearchCV: " + reworded(str(exc), _SEARCHCV_WORDS)) from None
        if self.error is not None:
            raise self.error
        cv.study_ = study
        self._finish(study)

    def _config(self) -> dict[str, Any]:
        """What makes stored scores comparable: a resumed study must match it."""
        cv = self.cv
        return {
            "estimator": _stable_repr(cv.estimator),
            "scoring": _stable_repr(cv.scoring),
            "cv": _stable_repr(cv.cv),
            "n_splits": int(cv.n_splits_),
            "return_train_score": bool(cv.return_train_score),
            "error_score": repr(cv.error_score),
            "data": cv._tpe_data,
        }

    def __call__(self, args: Any) -> dict[str, Any]:
        """tune()'s objective: cross-validate one candidate, return its loss and splits."""
        params = flatten_candidate(args, self.names)
        self.captured = None
        started = time.time()
        try:
            self.results = self.evaluate([params])
        except Exception as exc:
            if self.cv.error_score == "raise" or "fits failed" not in str(exc):
                self.error = exc
                raise
            # Every fit failed: scikit-learn refuses to format that alone; record error_score.
            self.all_failed = exc
            splits = self._failed(time.time() - started)
            return {"status": "fail", "error": _error_line(exc), SPLITS_KEY: splits}
        captured: list[dict[str, Any]] = self.captured or []
        splits = [_plain_out(o) for o in captured]
        score = _mean_score(splits, self._metric())
        if not math.isfinite(score):
            return {
                "status": "fail",
                "error": f"mean test score is {score} (a fit or score failed: error_score)",
                SPLITS_KEY: splits,
            }
        return {"loss": -score, f"mean_test_{self._metric() or 'score'}": score, SPLITS_KEY: splits}

    def _metric(self) -> str | None:
        """The score TPE minimises the negative of: the refit metric, else the first one."""
        scoring, refit = self.cv.scoring, self.cv.refit
        if callable(scoring) and isinstance(refit, str):
            return refit  # a callable scoring may give a dict of metrics
        if isinstance(scoring, Mapping):
            return refit if isinstance(refit, str) else next(iter(scoring))
        if isinstance(scoring, list | tuple):
            return refit if isinstance(refit, str) else next(iter(scoring))
        return None

    def _failed(self, seconds: float) -> list[dict[str, Any]]:
        """Per-split results of a candidate whose every fit failed (``error_score``)."""
        n, value = int(self.cv.n_splits_), float(self.cv.error_score)
        scoring = self.cv.scoring
        names = list(scoring) if isinstance(scoring, Mapping | list | tuple) else None
        score: Any = value if names is None else dict.fromkeys(names, value)
        out = {"test_scores": score, "fit_time": seconds / n, "score_time": 0.0}
        if self.cv.return_train_score:
            out["train_scores"] = score
        return [dict(out, fit_error="failed") for _ in range(n)]

    def _stop_on_error(self, trials: Any, record: Any) -> str | None:
        return "error_score='raise'" if self.error is not None else None

    def _finish(self, study: Any) -> None:
        """Make the results fit() uses hold every candidate of the study, in trial order."""
        params: list[dict[str, Any]] = []
        outs: list[dict[str, Any]] = []
        for record in study.records:
            splits = record.metrics.get(SPLITS_KEY)
            if not splits:
                continue  # running at a crash, or failed before any fit
            params.append(flatten_candidate(self.space.evaluate(record.vals), self.names))
            outs.extend(_sklearn_out(o) for o in splits)
        if not params:
            raise ValueError("no candidate of the study was cross-validated")
        if self.results is None:  # nothing evaluated in this fit: scikit-learn needs one
            best = study.best
            if best is None:
                raise ValueError(
                    f"All the {len(params)} candidates failed in every fit; set "
                    "error_score='raise' to see why"
                )
            self.results = self.evaluate(
                [flatten_candidate(self.space.evaluate(best.vals), self.names)]
            )
        formatted = BaseSearchCV._format_results(self.cv, params, int(self.cv.n_splits_), outs)
        assert self.results is not None
        self.results.clear()  # the very dict fit() holds: it reads best_* and cv_results_
        self.results.update(formatted)


def _mean_score(splits: list[dict[str, Any]], metric: str | None) -> float:
    """The mean test score over the splits: of ``metric`` when the scores are dicts (a
    callable scoring that gives a dict: ``metric``, else its first key)."""
    values = [o["test_scores"] for o in splits]
    if values and isinstance(values[0], Mapping):
        key = metric if metric in values[0] else next(iter(values[0]))
        values = [v[key] for v in values]
    return float(np.mean(values)) if values else math.nan


def _stable_repr(obj: Any) -> str:
    """``repr`` without object addresses (a function's differs in every process)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(obj))


def _plain_out(out: Mapping[str, Any]) -> dict[str, Any]:
    """One split's scikit-learn result as JSON (scores, times, the fit error's first line)."""
    keep = ("test_scores", "train_scores", "fit_time", "score_time", "n_test_samples")
    plain = {k: jsonable(out[k]) for k in keep if k in out}
    error = out.get("fit_error")
    plain["fit_error"] = None if error is None else _error_line(error)
    return plain


def _sklearn_out(plain: Mapping[str, Any]) -> dict[str, Any]:
    """A stored split back in scikit-learn's form (JSON null scores are NaN again)."""

    def number(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: number(x) for k, x in v.items()}
        return math.nan if v is None else float(v)

    out = dict(plain)
    for key in ("test_scores", "train_scores", "fit_time", "score_time"):
        if key in out:
            out[key] = number(out[key])
    return out


def _n_candidates(distributions: Any, n_iter: int) -> int:
    """``n_iter``, or fewer where every parameter is a list and they make fewer candidates:
    as ``RandomizedSearchCV`` (its ``ParameterSampler``), which then samples without
    replacement and warns, rather than cross-validate a candidate twice."""
    dists = [distributions] if isinstance(distributions, Mapping) else distributions
    listed = (list, tuple, np.ndarray)
    try:
        all_lists = all(all(isinstance(v, listed) for v in d.values()) for d in dists)
    except (AttributeError, TypeError):  # a hyperopt space: TPE's own (distinct) proposals
        return n_iter
    if not all_lists:
        return n_iter
    size = len(ParameterGrid(dists))
    if size < n_iter:
        warnings.warn(
            f"The total space of parameters {size} is smaller than n_iter={n_iter}. Running "
            f"{size} iterations. For exhaustive searches, use GridSearchCV.",
            UserWarning,
            stacklevel=4,
        )
        return size
    return n_iter


def _error_line(error: Any) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]


#: tune()'s names for its arguments -> TPESearchCV's (longer phrases first).
_SEARCHCV_WORDS = (
    ("Search(seed=...)", "random_state"),
    ("use fresh=True or another study_dir", "give another study_dir (or delete it)"),
    ("use fresh=True, or give another study_dir", "give another study_dir (or delete it)"),
    (", or start over there with fresh=True", ", or give another study_dir"),
    ("; or start over with fresh=True", "; or give another study_dir"),
    ("start over with fresh=True, or use another study_dir", "give another study_dir"),
    ("fresh=True", "another study_dir"),
)


__all__ = ["TPESearchCV"]
