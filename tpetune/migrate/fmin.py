"""``tpetune.fmin``: a drop-in for ``hyperopt.fmin`` that keeps every trial in a study.

Change one line of a hyperopt script, ``from hyperopt import fmin`` to ``from tpetune import
fmin``, and the search gains tpetune's crash-safe store and exact resume: running the script
again continues the study (``study_dir``, by default ``runs/fmin-<fn name>-<hash>``)
up to ``max_evals`` trials in total, also after a ``kill -9``.

What is as in hyperopt (tested against it, and by hyperopt's own tests/unit/test_fmin.py):

- the answers: each proposal's seed is drawn from ``rstate`` (or
  ``default_rng($HYPEROPT_FMIN_SEED)``) as ``hyperopt.fmin`` draws it, one
  ``integers(2**31 - 1)`` per proposal, for ``tpe``, ``rand``, ``anneal``, ``atpe`` and
  ``mix`` (``functools.partial``/``hyperopt.partial`` knobs included); the study keeps the
  generator's initial state and each stored trial took one draw (:mod:`tpetune.search.seeding`),
  so a run killed and re-run proposes what an uninterrupted one would, and ``rstate`` is left
  where hyperopt leaves it;
- the parameters and the return value: ``argmin`` in hyperopt's form (choice *indices*, numpy
  scalars) when ``return_argmin`` (so ``space_eval(space, best)`` works), ``space_eval`` of it
  otherwise; ``points_to_evaluate`` first, then ``max_evals`` proposals;
- a ``Trials`` passed in is filled as hyperopt fills it (``trials.trials``, ``losses()``,
  ``best_trial``, ``argmin``, error documents), with the results the objective returned in
  this run (earlier runs' trials carry the stored loss, status, curves and metrics);
- attachments (a result's ``"attachments"`` dict, ``ctrl.attachments`` in an ``fn`` marked
  ``fmin_pass_expr_memo_ctrl``): bytes and strings are kept in the study and served by
  ``trials.trial_attachments(trial)[name]`` and ``trials.attachments``, also after a resume;
- ``timeout`` (seconds for this call), ``loss_threshold``, ``catch_eval_exceptions``,
  ``early_stop_fn`` (replayed over the stored trials on resume, so its state is what an
  uninterrupted run would hold), ``space="annotated"``.

What differs, and why:

- the trials are kept in a study folder (``study_dir``), so re-running a script resumes;
  ``trials_save_file`` is written at the end (atomically) but never read back: tpetune
  unpickles only on the explicit ``tpetune import FILE.pkl`` command.
- without ``rstate`` and ``HYPEROPT_FMIN_SEED`` hyperopt draws fresh entropy; a new study here
  draws from ``default_rng(0)`` (a re-run must find its own study and stream again).
- an exception in ``fn`` is also recorded in the study as a failed trial before it is
  re-raised; a Keras model in a result (``{"loss": ..., "model": model}``) is also saved as
  ``STUDY/models/<tid>.keras`` (the best ``keep_models`` kept).
- attachments other than bytes and str stay in this run's ``Trials`` only (the store holds no
  pickles; hyperopt's MongoTrials keeps bytes and str only too); ``ctrl.inject_results`` is
  not supported.
- ``max_queue_len`` is accepted and ignored: tpetune proposes one trial at a time, each from
  the trials finished so far (hyperopt with ``max_queue_len=N > 1`` asks the algorithm for N
  points at once, under one seed, so its answers differ from its own default's too).
- ``trials=SparkTrials(parallelism=N)`` runs the trials as Spark jobs on that session's
  master, N at a time (tpetune's :class:`tpetune.Spark` executor), and is filled as a Trials.

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

import numpy as np

from tpetune._io import atomic_write
from tpetune.engine.options import Search, StopRules
from tpetune.engine.origin import intercept
from tpetune.engine.tuning import tune
from tpetune.errors import ConfigError, SearchFailedError
from tpetune.migrate.fmin_args import (
    algo_spec,
    check_trials,
    checked_max_evals,
    checked_points,
    default_study_dir,
    executor_for,
    in_fmin_words,
    rstate_stream,
    spark_limits,
)
from tpetune.migrate.objective import FminObjective
from tpetune.migrate.trials import EarlyStop, fill_trials
from tpetune.migrate.trials_import import import_trials
from tpetune.search.seeding import SeedStream, first_draw, generator_state, state_from_json
from tpetune.search.space import Space
from tpetune.study.artifacts import DEFAULT_KEEP
from tpetune.study.folder import stored_meta
from tpetune.study.store import Store

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
    fresh: bool = False,
) -> Any:
    """Minimise ``fn`` over ``space`` like ``hyperopt.fmin``, in a resumable study.

    Args:
        fn, space, algo, max_evals, timeout, loss_threshold, trials, rstate, verbose,
            return_argmin, points_to_evaluate, show_progressbar, early_stop_fn,
            trials_save_file, catch_eval_exceptions, pass_expr_memo_ctrl: as in
            ``hyperopt.fmin`` (see the module docstring for the differences).
            ``allow_trials_fmin`` and ``max_queue_len`` are accepted and have no effect.
        study_dir: the study folder (default: :func:`default_study_dir`).
        keep_models: how many best trials keep a Keras model ``fn`` returned (default 3).
        fresh: discard the stored study and search afresh, as hyperopt.fmin always does
            (re-running resumes; a changed ``fn`` is warned about, not discarded).

    Returns:
        ``trials.argmin`` (hyperopt's form) when ``return_argmin``, else its ``space_eval``
        (``None`` when no trial succeeded).

    Raises:
        ConfigError: an algo tpetune does not know, a study made with another rstate, or no
            ``max_evals`` and no stop rule.
        Exception: what ``fn`` raised, after it is recorded (unless ``catch_eval_exceptions``),
            and hyperopt's own errors for a bad space, timeout or loss_threshold.
    """
    from hyperopt.fmin import validate_loss_threshold, validate_timeout

    timeout, loss_threshold = spark_limits(trials, timeout, loss_threshold)  # SparkTrials' own
    validate_timeout(timeout)
    validate_loss_threshold(loss_threshold)
    if space == "annotated":
        space, fn = _annotated(fn)
    intercept(fn, space)  # `tpetune replay` looking for this call's fn and space
    name, options = algo_spec(algo)
    max_evals = checked_max_evals(max_evals)
    check_trials(trials)
    if max_evals is None:
        if timeout is None and loss_threshold is None and early_stop_fn is None:
            raise ConfigError("fmin needs max_evals (or timeout, loss_threshold, early_stop_fn)")
        max_evals = UNBOUNDED
    tspace = _space(fn, space)
    domain = None
    if pass_expr_memo_ctrl or getattr(fn, "fmin_pass_expr_memo_ctrl", False):
        from hyperopt.base import Domain

        domain = Domain(fn, space, pass_expr_memo_ctrl=True)
    stream = rstate_stream(rstate)
    seed = None if stream is None else first_draw(stream)
    # as hyperopt: the points are evaluated only into a new Trials
    points = [] if trials is not None else checked_points(points_to_evaluate, tspace)
    points = [tspace.params(p) for p in points]
    points += _new_points(trials, tspace)
    if study_dir is None:
        study_dir = default_study_dir(fn, tspace, seed, name, options, points)
    study_dir = Path(study_dir)
    # hyperopt evaluates the points, then max_evals proposals; a study holding more trials
    # (a run with a larger max_evals) answers from its first ones, as this call would have
    limit = None if max_evals == UNBOUNDED else max_evals + len(points)
    if stream is None and not Store.exists(study_dir):  # hyperopt: fresh entropy; here a
        stream = generator_state(np.random.default_rng(0))  # stream a re-run can resume
    _take_trials(trials, trials_save_file, tspace, study_dir, stream, name, options)

    capture = FminObjective(fn, raise_errors=not catch_eval_exceptions, domain=domain)
    callbacks: list[Any] = [capture.stop_on_error]
    if early_stop_fn is not None:
        stopper = EarlyStop(early_stop_fn, tspace.labels)
        if not fresh and stopper.replay(study_dir):
            log.info("tpetune.fmin: early_stop_fn had already stopped study %s", study_dir)
            return _finish(
                study_dir, tspace, trials, capture, return_argmin, trials_save_file, limit
            )
        callbacks.append(stopper)
    if verbose:  # where the trials go is the one thing a hyperopt user does not expect
        print(f"tpetune.fmin: trials are stored in study {study_dir}", file=sys.stderr)
    # SearchFailedError (no trial succeeded): the study is stored; hyperopt's rules say
    # what to return then (argmin raises AllTrialsFailed), as below.
    with contextlib.suppress(SearchFailedError), in_fmin_words():
        tune(
            capture,
            tspace,
            study_dir=study_dir,
            # hyperopt evaluates the points, then max_evals proposals
            max_evals=max_evals + len(points),
            search=Search(
                algo=name, options=options, points=points, stream=stream, allow_duplicates=True
            ),
            stop=StopRules(
                # hyperopt's timeout is this call's; tune()'s counts the study's earlier runs
                timeout=None
                if timeout is None
                else stored_meta(study_dir).get("elapsed_s", 0) + timeout,
                loss_threshold=loss_threshold,
                max_failures=UNBOUNDED,  # hyperopt goes on after any number of failures
            ),
            callbacks=callbacks,
            executor=executor_for(trials),
            progress=bool(verbose and show_progressbar),
            keep_models=DEFAULT_KEEP if keep_models is None else keep_models,
            fresh=fresh,
        )
    _advance(rstate, study_dir, limit)
    result = _finish(study_dir, tspace, trials, capture, return_argmin, trials_save_file, limit)
    if capture.error is not None:
        raise capture.error
    return result


def _advance(rstate: Any, study_dir: Path, limit: int | None) -> None:
    """Leave the caller's ``rstate`` where hyperopt.fmin would: one draw per proposal of
    the study so far, up to ``limit`` trials (a script that reuses it for a second fmin call
    then gets hyperopt's seeds there too)."""
    if not isinstance(rstate, np.random.Generator):
        return
    meta = stored_meta(study_dir)
    if meta.get("seed_stream") != generator_state(rstate):
        return  # a study made before tpetune.fmin followed hyperopt's stream
    store = Store.open(study_dir, readonly=True)
    try:
        next_tid = max((r.tid for r in store.records()), default=-1) + 1
    finally:
        store.close()
    if limit is not None:
        next_tid = min(next_tid, limit)
    drawn = max(0, next_tid - int(meta.get("seed_stream_start", 0)))
    rstate.bit_generator.state = state_from_json(SeedStream(meta["seed_stream"], drawn).state())


def _space(fn: Callable[..., Any], space: Any) -> Space:
    """The Space, validated by hyperopt's own Domain first (its exceptions, as fmin raises)."""
    from hyperopt.base import Domain

    if isinstance(space, Space):
        return space
    Domain(fn, space)  # DuplicateLabel and friends, exactly as hyperopt.fmin raises them
    return Space(space, point_bounds=False)  # hyperopt evaluates points outside a range too


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
    stream: dict[str, Any] | None,
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

    import_trials(trials, space, study_dir, algo=algo, options=options, stream=stream)


def _finish(
    study_dir: Path,
    space: Space,
    trials: Any,
    capture: FminObjective,
    return_argmin: bool,
    trials_save_file: str,
    limit: int | None = None,
) -> Any:
    """Fill the Trials (the study's first ``limit`` trials), write ``trials_save_file``,
    return what hyperopt.fmin returns."""
    from hyperopt import space_eval

    trials = fill_trials(trials, study_dir, capture.results, capture.errors, limit=limit)
    if trials_save_file:
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
