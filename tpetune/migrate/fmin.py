"""``tpetune.fmin``: a drop-in for ``hyperopt.fmin`` that keeps every trial in a study.

Change one line of a hyperopt script, ``from hyperopt import fmin`` to ``from tpetune import
fmin``, and the search gains tpetune's crash-safe store and exact resume: running the script
again continues the study (``study_dir``, by default ``runs/fmin-<fn name>-<hash>``)
up to ``max_evals`` trials in total, also after a ``kill -9``.

What stays as in hyperopt:

- the parameters and the return value: ``argmin`` in hyperopt's form (choice *indices*) when
  ``return_argmin`` (so ``space_eval(space, best)`` works), ``space_eval`` of it otherwise;
- a ``Trials`` passed in is filled as hyperopt fills it (``trials.trials``, ``losses()``,
  ``best_trial``, ``argmin``), with the results the objective returned in this run (earlier
  runs' trials carry the stored loss, status, curves and metrics);
- ``algo``: ``tpe.suggest``, ``rand.suggest``, ``anneal.suggest``, ``atpe.suggest`` or a
  ``functools.partial``/``hyperopt.partial`` of ``tpe.suggest`` with TPE knobs;
- ``early_stop_fn`` (e.g. ``hyperopt.early_stop.no_progress_loss(10)``) is called after every
  trial with the trials so far; on resume it is first replayed over the stored trials, so
  its state is what an uninterrupted run would hold.

What differs, on purpose:

- ``rstate`` gives the study seed: one draw ``rstate.integers(2**31 - 1)`` (hyperopt's own
  ``HYPEROPT_FMIN_SEED`` too); each proposal is then seeded from (study seed, trial id), so a
  resumed study proposes what an uninterrupted one would. Without either, the seed is 0 for a
  new study and the stored one on resume. :func:`study_seed` tells the seed of an ``rstate``.
- ``trials=SparkTrials(parallelism=N)`` runs the trials as Spark jobs on that session's
  master, N at a time (tpetune's :class:`tpetune.Spark` executor), and is filled as a Trials.
- ``max_evals`` is the study's total, as hyperopt counts the trials already in ``trials``;
  ``timeout`` is cumulative over all runs of the study (hyperopt's: this call).
- an exception in ``fn`` is first recorded as a failed trial, then re-raised (with
  ``catch_eval_exceptions=True`` the search goes on, as in hyperopt).
- a Keras model in a result (``{"loss": ..., "model": model}``) is also saved as
  ``STUDY/models/<tid>.keras``; the best ``keep_models`` trials' files are kept.
- ``trials_save_file`` is written once at the end (atomically), never read: tpetune unpickles
  only on the explicit ``tpetune import FILE.pkl`` command.

The values of the best trial (never indices) come from the study:
``tpetune.load_study(study_dir).best_params`` (label -> value) and ``.best_args`` (the nested
structure ``fn`` received, what ``space_eval(space, best)`` gives).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import pickle
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tpetune.errors import ConfigError
from tpetune.migrate.fmin_args import algo_spec, default_study_dir, study_seed
from tpetune.migrate.trials import EarlyStop, fill_trials
from tpetune.search.space import Space
from tpetune.study.store import Store, TrialRecord

log = logging.getLogger("tpetune")

#: hyperopt.fmin's own default for max_evals, when a stop rule bounds the search instead.
UNBOUNDED = 2**31 - 1


def fmin(
    fn: Callable[..., Any],
    space: Any,
    algo: Any = None,
    max_evals: int | None = None,
    timeout: float | None = None,
    loss_threshold: float | None = None,
    trials: Any = None,
    rstate: Any = None,
    allow_trials_fmin: bool = True,
    pass_expr_memo_ctrl: Any = None,
    catch_eval_exceptions: bool = False,
    verbose: bool = True,
    return_argmin: bool = True,
    points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
    max_queue_len: int = 1,
    show_progressbar: Any = True,
    early_stop_fn: Callable[..., Any] | None = None,
    trials_save_file: str = "",
    *,
    study_dir: str | Path | None = None,
    keep_models: int | None = None,
) -> Any:
    """Minimise ``fn`` over ``space`` like ``hyperopt.fmin``, in a resumable study.

    Args:
        fn, space, algo, max_evals, timeout, loss_threshold, trials, rstate, verbose,
            return_argmin, points_to_evaluate, show_progressbar, early_stop_fn,
            trials_save_file, catch_eval_exceptions: as in ``hyperopt.fmin`` (see the module
            docstring for the differences). ``allow_trials_fmin`` and ``max_queue_len`` are
            accepted and have no effect.
        study_dir: the study folder (default: :func:`default_study_dir`).
        keep_models: how many best trials keep a Keras model ``fn`` returned (default 3).

    Returns:
        ``trials.argmin`` (hyperopt's form) when ``return_argmin``, else its ``space_eval``
        (``None`` when no trial succeeded).

    Raises:
        ConfigError: an algo tpetune cannot seed, ``pass_expr_memo_ctrl``, a study made with
            another seed, or no ``max_evals`` and no stop rule.
        Exception: what ``fn`` raised, after it is recorded (unless ``catch_eval_exceptions``),
            and hyperopt's own errors for a bad space, timeout or loss_threshold.
    """
    from hyperopt.fmin import validate_loss_threshold, validate_timeout

    from tpetune.engine.options import Search, StopRules
    from tpetune.engine.tuning import tune
    from tpetune.errors import SearchFailedError

    if pass_expr_memo_ctrl:
        raise ConfigError("tpetune.fmin does not support pass_expr_memo_ctrl: call fn(params)")
    validate_timeout(timeout)
    validate_loss_threshold(loss_threshold)
    if space == "annotated":
        space, fn = _annotated(fn)
    name, options = algo_spec(algo)
    if max_evals is None:
        if timeout is None and loss_threshold is None and early_stop_fn is None:
            raise ConfigError("fmin needs max_evals (or timeout, loss_threshold, early_stop_fn)")
        max_evals = UNBOUNDED
    tspace = _space(fn, space)
    seed = study_seed(rstate)
    points = [tspace.params(p) for p in points_to_evaluate or ()] if trials is None else []
    points += _new_points(trials, tspace)
    if study_dir is None:
        study_dir = default_study_dir(fn, tspace, seed, name, options, points)
    study_dir = Path(study_dir)
    _take_trials(trials, trials_save_file, tspace, study_dir, seed, name, options)
    from tpetune.study.artifacts import DEFAULT_KEEP

    capture = _Capture(fn, raise_errors=not catch_eval_exceptions)
    callbacks: list[Any] = [capture.stop_on_error]
    if early_stop_fn is not None:
        stopper = EarlyStop(early_stop_fn, tspace.labels)
        if stopper.replay(study_dir):
            log.info("tpetune.fmin: early_stop_fn had already stopped study %s", study_dir)
            return _finish(study_dir, tspace, trials, capture, return_argmin, trials_save_file)
        callbacks.append(stopper)
    if verbose:  # where the trials go is the one thing a hyperopt user does not expect
        print(f"tpetune.fmin: trials are stored in study {study_dir}", file=sys.stderr)
    # SearchFailedError (no trial succeeded): the study is stored; hyperopt's rules say
    # what to return then (argmin raises AllTrialsFailed), as below.
    with contextlib.suppress(SearchFailedError):
        tune(
            capture,
            tspace,
            study_dir=study_dir,
            max_evals=max_evals,
            search=Search(algo=name, seed=seed, options=options, points=points),
            stop=StopRules(
                timeout=timeout,
                loss_threshold=loss_threshold,
                max_failures=UNBOUNDED,  # hyperopt goes on after any number of failures
            ),
            callbacks=callbacks,
            executor=_executor_for(trials),
            progress=bool(verbose and show_progressbar),
            keep_models=DEFAULT_KEEP if keep_models is None else keep_models,
        )
    result = _finish(study_dir, tspace, trials, capture, return_argmin, trials_save_file)
    if capture.error is not None:
        raise capture.error
    return result


def _executor_for(trials: Any) -> Any:
    """hyperopt's ``SparkTrials(parallelism=N)`` becomes ``Spark(master, workers=N)``: the
    trials run as Spark jobs on the same session's cluster; any other Trials runs serially."""
    if type(trials).__name__ != "SparkTrials" or not hasattr(trials, "_spark_context"):
        return None
    from tpetune.engine.options import Spark

    return Spark(master=trials._spark_context.master, workers=int(trials.parallelism))


def _space(fn: Callable[..., Any], space: Any) -> Space:
    """The Space, validated by hyperopt's own Domain first (its exceptions, as fmin raises)."""
    from hyperopt.base import Domain

    if isinstance(space, Space):
        return space
    Domain(fn, space)  # DuplicateLabel and friends, exactly as hyperopt.fmin raises them
    return Space(space)


def _new_points(trials: Any, space: Space) -> list[dict[str, Any]]:
    """The points of a Trials holding only new documents (``generate_trials_to_calculate``),
    by value: they become the study's first trials."""
    from hyperopt import base

    docs = list(getattr(trials, "_dynamic_trials", None) or [])
    if not docs or not all(d["state"] == base.JOB_STATE_NEW for d in docs):
        return []
    ordered = sorted(docs, key=lambda d: d["tid"])
    return [
        space.params({k: v[0] for k, v in d["misc"]["vals"].items() if len(v)}) for d in ordered
    ]


def _take_trials(
    trials: Any,
    save_file: str,
    space: Space,
    study_dir: Path,
    seed: int | None,
    algo: str,
    options: dict[str, Any],
) -> None:
    """Bring a passed-in Trials holding results into a new study
    (:mod:`tpetune.migrate.trials_import`).

    An existing study is the truth: the Trials is then refilled from it at the end."""
    if trials is None and save_file and os.path.exists(save_file) and not Store.exists(study_dir):
        raise ConfigError(
            f"trials_save_file {save_file} exists, but tpetune.fmin never unpickles on its "
            f"own: continue it with `tpetune import {save_file} --space FILE.py --study-dir "
            f"{study_dir}` (or pass trials=pickle.load(...) once), or delete it"
        )
    docs = list(getattr(trials, "_dynamic_trials", None) or [])
    if not docs or Store.exists(study_dir) or _new_points(trials, space):
        return
    from tpetune.migrate.trials_import import import_trials

    import_trials(trials, space, study_dir, seed=seed, algo=algo, options=options)


class _Capture:
    """``fn`` as tune()'s objective: hyperopt result dicts pass as they are (tpetune reads
    ``loss``/``status`` and keeps the rest); this run's raw results fill the user's Trials.

    An exception in ``fn`` is recorded (the trial fails, as in tpetune) and, when
    ``raise_errors`` (hyperopt's ``catch_eval_exceptions=False``), stops the run through
    :meth:`stop_on_error` so that :func:`fmin` re-raises it, as hyperopt.fmin does."""

    def __init__(self, fn: Callable[..., Any], *, raise_errors: bool = True) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.raise_errors = raise_errors
        self.results: dict[int, Any] = {}
        self.errors: dict[int, BaseException] = {}
        self.error: BaseException | None = None

    def __call__(self, params: Any) -> Any:
        from tpetune.trial.context import current_trial

        ctx = current_trial()
        try:
            result = self.fn(params)
        except Exception as exc:
            if ctx is not None:
                self.errors[ctx.tid] = exc
            raise
        if ctx is not None:
            self.results[ctx.tid] = result
        if isinstance(result, Mapping) and "attachments" in result:
            result = {k: v for k, v in result.items() if k != "attachments"}
        return result

    def stop_on_error(self, trials: Any, record: TrialRecord) -> str | None:
        exc = self.errors.get(record.tid)
        if exc is None or not self.raise_errors:
            return None
        self.error = exc
        return f"fn raised {type(exc).__name__} in trial {record.tid}"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(results={}, errors={}, error=None)  # they stay in the driver's process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _finish(
    study_dir: Path,
    space: Space,
    trials: Any,
    capture: _Capture,
    return_argmin: bool,
    trials_save_file: str,
) -> Any:
    """Fill the Trials, write ``trials_save_file``, return what hyperopt.fmin returns."""
    from hyperopt import space_eval

    trials = fill_trials(trials, study_dir, capture.results, capture.errors)
    if trials_save_file:
        from tpetune._io import atomic_write

        atomic_write(Path(trials_save_file), pickle.dumps(trials, protocol=pickle.HIGHEST_PROTOCOL))
    if capture.error is not None:
        return None  # fmin re-raises fn's exception
    if return_argmin:
        if len(trials.trials) == 0:
            raise Exception("There are no evaluation tasks, cannot return argmin of task losses.")
        return trials.argmin
    if len(trials) > 0:
        return space_eval(space.tree, trials.argmin)
    return None


def _annotated(fn: Callable[..., Any]) -> tuple[dict[str, Any], Callable[[Any], Any]]:
    """hyperopt's ``space="annotated"``: the space from ``fn``'s type hints."""
    from hyperopt import pyll

    annotations = inspect.getfullargspec(fn).annotations
    annotations.pop("return", None)
    for node in annotations.values():
        if not isinstance(node, pyll.base.Apply):
            from hyperopt import exceptions

            raise exceptions.InvalidAnnotatedParameter(
                'When using `space="annotated"`, annotate every argument of fn with an hp.* '
                "expression (a pyll.base.Apply)"
            )

    @functools.wraps(fn)
    def wrapper(params: Mapping[str, Any]) -> Any:
        return fn(**params)

    return dict(annotations), wrapper
