"""``tune()``: drive hyperopt's search over a persisted study.

Why not ``hyperopt.fmin``: it counts loaded trials silently, reseeds on resume, pickles its
state non-atomically and lets one exception end the search. ``tune`` uses hyperopt's own
pieces (the space's ``Domain``, ``Trials`` documents, the ``suggest`` algorithms) through
:class:`tpetune.engine.driver.Driver`, and adds:

- every trial is committed to the store before hyperopt sees its result;
- each proposal is seeded from (study seed, trial id), or from hyperopt.fmin's seed stream whose
  position is stored with every trial (``Search(stream=...)``, :mod:`tpetune.search.seeding`), so a
  serial study killed and resumed any number of times proposes what an uninterrupted one would
  (so does a parallel one made with ``Search(lag=...)``, for up to ``lag`` trials in flight);
- what decides proposals and pruning (algorithm, its knobs, seed, pruner) is stored with a
  new study and must match on resume;
- budgets (``max_evals`` total, cumulative ``timeout``) and stop rules hold across resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tpetune import __version__
from tpetune._io import check_int, jsonable
from tpetune.engine import origin
from tpetune.engine.driver import Driver
from tpetune.engine.options import (
    Callback,
    ExecutorOption,
    Search,
    Serial,
    StopRules,
    Workers,
)
from tpetune.errors import (
    ConfigError,
    SearchFailedError,
    SpaceError,
    SpaceMismatchError,
)
from tpetune.pruners.policies import NoPruner, Pruner, default_pruner, pruner_from_json
from tpetune.search import algos
from tpetune.search.seeding import first_draw
from tpetune.search.space import Space
from tpetune.study import provenance
from tpetune.study.artifacts import DEFAULT_KEEP, Retention
from tpetune.study.folder import discard, stored_meta
from tpetune.study.store import Store, StudyLock, TrialState
from tpetune.study.study import Study

log = logging.getLogger("tpetune")


def tune(
    objective: Callable[[Any], Any],
    space: Any,
    *,
    study_dir: str | Path,
    max_evals: int,
    search: Search | None = None,
    stop: StopRules | None = None,
    pruner: Pruner | None = None,
    executor: ExecutorOption | None = None,
    fresh: bool = False,
    objective_config: dict[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    keep_models: int = DEFAULT_KEEP,
    progress: bool = True,
) -> Study:
    """Minimise ``objective`` over ``space``, persisting every trial in ``study_dir``.

    Re-running with the same arguments resumes the study up to ``max_evals`` trials in total.

    Args:
        objective: called with the point's values (the nested structure of ``space``, never
            choice indices); returns a float loss or a dict with ``loss`` and optional
            ``curves``, ``metrics``, ``pruned``, ``status`` (see :func:`executors.interpret`).
            It may report per-step values with :func:`tpetune.report` and stop when
            :func:`tpetune.should_prune` says so.
        space: a hyperopt ``hp.*`` tree or a :class:`tpetune.search.space.Space`.
        study_dir: the study folder (created if missing).
        max_evals: total number of trials in the study (finished ones from earlier runs count).
        search: algorithm, seed, algorithm knobs and warm-start points (:class:`Search`).
        stop: early-stop rules and the failure policy (:class:`StopRules`).
        pruner: a pruner from :mod:`tpetune.pruners.policies`; ``None``:
            :func:`default_pruner` for a
            new study, the stored one on resume. Only objectives that report values (Keras
            ones through the pruning callback) are ever pruned.
        executor: where trials run: :class:`Serial` (default), :class:`Workers` (``Workers()``:
            as many worker processes as the study's lag), :class:`Spark`.
        fresh: discard an existing study in ``study_dir`` and start over: everything in the
            folder tpetune wrote (database, trial folders, models, reports, plots) moves to
            ``study_dir/discarded/``, which replaces the one an earlier fresh start left.
        objective_config: JSON-able settings that change what the objective computes (e.g.
            epochs, data file). Stored with a new study; resuming with other values is refused
            because the old and new trials would not be comparable.
        callbacks: each called after every finished trial as ``cb(trials, record)`` with
            hyperopt's ``Trials`` and the trial's record; a returned string stops the run.
        keep_models: how many of the best trials keep the Keras model their result held (or
            that they saved with ``current_trial().save_model``); others' are deleted.
        progress: show a progress bar with the best loss so far (on stderr).

    Returns:
        The study after this run, with ``stop_reason`` set.

    Raises:
        ConfigError, SpaceError, StoreError: bad input; nothing stored is changed.
        StudyInUseError: another process drives the study.
        SearchFailedError: ``max_failures`` trials failed in a row, or the run ended with no
            successful trial in the study.
        ObjectiveError: the objective returned something that is not a loss.
        KeyboardInterrupt: after recording everything that finished.
    """
    origin.intercept(objective, space)  # `tpetune replay` looking for this call's objective
    check_int("max_evals", max_evals)
    search = search or Search()
    if search.lag is not None and hasattr(pruner, "plan"):
        raise ConfigError(
            "Search(lag=...) cannot keep proposals deterministic with a freeze-thaw pruner "
            "(its thaws depend on which trials finished when): use no Search(lag=...) or "
            "another pruner"
        )
    stop = stop or StopRules()
    space = space if isinstance(space, Space) else Space(space)
    study_dir = Path(study_dir)
    try:
        point_vals = [space.vals_from_params(p) for p in search.points]
    except SpaceError:
        if "points" not in stored_meta(study_dir):
            raise
        point_vals = []  # a resume runs the points the study was made with (below), not these
    config = jsonable(dict(objective_config or {}))
    retention = Retention(study_dir, keep_models)  # validates keep_models

    lock = StudyLock(study_dir).acquire()
    try:
        if fresh:
            discard(study_dir)
        created = not Store.exists(study_dir)
        store, meta = _open_store(
            study_dir, space, search, pruner, max_evals, stop, config, point_vals,
            code=provenance.objective_code(objective),
        )  # fmt: skip
        if created:  # where `tpetune replay` finds an objective and space built in code
            store.set_meta(origin=origin.origin_of(objective))
        try:
            stored_points = meta.get("points")
            if stored_points is not None:  # the points a study was made with stay its own
                if point_vals and point_vals != stored_points:
                    log.warning(
                        "warning: points are a new study's first trials; study %s keeps the "
                        "%d it was made with and ignores the ones given now",
                        study_dir,
                        len(stored_points),
                    )
                point_vals = stored_points
            suggest = algos.resolve(meta["algo"], meta.get("algo_options"), space=space)
            lag = meta.get("lag")
            driver = Driver(
                store,
                space,
                suggest,
                seed=int(meta["seed"]),
                rules=stop,
                pruner=meta.get("pruner"),
                point_vals=point_vals,
                callbacks=[*callbacks, retention],
                stream=_stream(meta),
                lag=lag,
                # absent: a study made before tpetune stored it, which proposed repeats
                allow_duplicates=bool(meta.get("allow_duplicates", True)),
            )
            if isinstance(executor, Workers):
                executor = executor.for_lag(lag)  # Workers(): as many as the stored lag
            reason = driver.run(max_evals, (executor or Serial()).build(objective), progress)
            records = store.records()
            failed = [r for r in records if r.state is TrialState.FAIL]
            if failed and not any(r.finished_ok or r.state is TrialState.PRUNED for r in records):
                final = failed[-1]
                last = driver.last_error or f"trial {final.tid} failed with: {final.error}"
                if len(records) < max_evals:  # stopped early: more trials are to come
                    fix = "Fix the objective and run again to resume"
                else:  # a failed trial counts and is not re-run: nothing is left to run
                    fix = (
                        f"Its {len(records)} trials all count toward max_evals={max_evals} and "
                        "failed trials are not re-run: fix the objective, then raise max_evals "
                        "or start over with fresh=True"
                    )
                raise SearchFailedError(
                    f"no trial of study {study_dir} succeeded; the last error: {last}. {fix}"
                )
            return Study(study_dir, store.meta(), records, space=space, stop_reason=reason)
        finally:
            store.close()
    finally:
        lock.release()


def _stream(meta: dict[str, Any]) -> tuple[dict[str, Any], int] | None:
    """hyperopt.fmin's seed stream of a study made with one: (initial state, first tid)."""
    if not meta.get("seed_stream"):
        return None
    return meta["seed_stream"], int(meta.get("seed_stream_start", 0))


def new_study_meta(
    space: Space, search: Search, pruner: Pruner | None, max_evals: int, timeout: float | None
) -> dict[str, Any]:
    """The meta rows of a new study (also used by importers that create studies)."""
    import hyperopt

    algo = search.algo or "tpe"
    options = dict(search.options)
    if algo == "tpe":
        options.setdefault("n_startup_jobs", algos.tpe_startup(max_evals))
    algos.resolve(algo, options, space=space)  # validate before creating anything
    seed = search.seed
    stream: dict[str, Any] = {}
    if search.stream is not None:  # hyperopt.fmin's seeding (tpetune.search.seeding)
        stream = {"seed_stream": dict(search.stream), "seed_stream_start": 0}
        if seed is None:
            seed = first_draw(dict(search.stream))
    return {
        **stream,
        "fingerprint": space.fingerprint,
        "space": space.describe(),
        "space_source": space.source,
        "algo": algo,
        "algo_options": options,
        "seed": 0 if seed is None else int(seed),
        "pruner": (pruner or default_pruner()).to_json(),
        "lag": search.lag,
        "allow_duplicates": bool(search.allow_duplicates),
        "max_evals": max_evals,
        "timeout": timeout,
        "elapsed_s": 0.0,
        "tpetune_version": __version__,
        "hyperopt_version": hyperopt.__version__,
    }


def _open_store(
    study_dir: Path,
    space: Space,
    search: Search,
    pruner: Pruner | None,
    max_evals: int,
    stop: StopRules,
    config: dict[str, Any],
    point_vals: list[dict[str, Any]],
    *,
    code: dict[str, str] | None = None,
) -> tuple[Store, dict[str, Any]]:
    """Create the study, or reopen it after checking that it is the same search (and saying
    so when the objective's code changed: :func:`provenance.objective_changed`)."""
    if not Store.exists(study_dir):
        meta = new_study_meta(space, search, pruner, max_evals, stop.timeout)
        meta["points"] = point_vals
        if "seed_stream" in meta:  # the points draw no seed: the stream starts after them
            meta["seed_stream_start"] = len(point_vals)
        meta[provenance.OBJECTIVE_KEY] = code
        data_files = provenance.data_files_in(config)
        meta["provenance"], _ = provenance.on_open(None, space.source, data_files=data_files)
        store = Store.create(study_dir, {**meta, "objective_config": config})
        return store, store.meta()
    store = Store.open(study_dir, readonly=False)
    try:
        meta = store.meta()
        _check_same_search(study_dir, meta, space, search, pruner, config)
        store.migrate()
    except Exception:
        store.close()
        raise
    updates: dict[str, Any] = {"max_evals": max_evals, "timeout": stop.timeout}
    data_files = provenance.data_files_in(config)
    updates["provenance"], warning = provenance.on_open(meta, space.source, data_files=data_files)
    if warning:  # other versions may compute other numbers: say so, but do not refuse
        log.warning("warning: study %s: %s", study_dir, warning)
    changed = provenance.objective_changed(meta, code, len(store.records()))
    if changed:  # hyperopt.fmin would search afresh; say what resuming means, once
        log.warning("warning: study %s: %s", study_dir, changed)
    if code is not None:
        updates[provenance.OBJECTIVE_KEY] = code
    if "algo_options" not in meta:  # a study made before knobs were stored: they were
        updates["algo_options"] = dict(search.options)  # passed on each run, as now
    if "pruner" not in meta:
        updates["pruner"] = (pruner or NoPruner()).to_json()
    store.set_meta(**updates)
    return store, store.meta()


def _check_same_search(
    study_dir: Path,
    meta: dict[str, Any],
    space: Space,
    search: Search,
    pruner: Pruner | None,
    config: dict[str, Any],
) -> None:
    """Raise if what was given would make this run propose or prune otherwise than before."""
    hint = "or use fresh=True or another study_dir"
    if meta.get("fingerprint") != space.fingerprint:
        raise SpaceMismatchError(
            f"study {study_dir} was made with another space "
            f"({space.diff(meta.get('space', {}))}); to start over use fresh=True, "
            "or give another study_dir"
        )
    given_options = (
        ("seed", search.seed, None),
        ("algo", search.algo, None),
        ("lag", search.lag, None),
        ("allow_duplicates", search.allow_duplicates, True),
    )
    for name, given, before in given_options:
        if given is not None and given != meta.get(name, before):
            stored = meta.get(name, before)
            made = f"with {name} {stored!r}" if stored is not None else f"without a {name}"
            now = f"{given!r}" if stored is not None else f"{name} {given!r}"
            raise ConfigError(
                f"study {study_dir} was made {made}, not {now}: "
                f"leave Search({name}=...) unset to resume it, {hint}"
            )
    if search.stream is not None and meta.get("seed_stream", search.stream) != search.stream:
        raise ConfigError(
            f"study {study_dir} was made with another rstate (its seed stream starts "
            f"elsewhere): pass the generator it was made with, or none to resume it, {hint}"
        )
    stored_options = meta.get("algo_options")
    if stored_options is not None:
        for key, value in search.options.items():
            if stored_options.get(key) != value:
                raise ConfigError(
                    f"study {study_dir} was made with Search(options={{{key!r}: "
                    f"{stored_options.get(key)!r}}}), not {value!r}: leave it unset to resume "
                    f"it, {hint}"
                )
    if pruner is not None and "pruner" in meta:
        stored = pruner_from_json(meta["pruner"])
        old_knobs, new_knobs = stored.to_json(), pruner.to_json()
        if old_knobs != new_knobs:
            kind = type(stored).__name__
            what = f"pruner {kind}, not {type(pruner).__name__}"  # not every knob's value
            if old_knobs["name"] == new_knobs["name"]:  # only the knobs that differ
                what = ", ".join(
                    f"{kind}.{knob}={old_knobs.get(knob)!r} (not {value!r})"
                    for knob, value in new_knobs.items()
                    if old_knobs.get(knob) != value
                )
            raise ConfigError(
                f"study {study_dir} was made with {what}: leave pruner unset to resume it, {hint}"
            )
    stored_config = meta.get("objective_config") or {}
    for key, value in config.items():
        if key in stored_config and stored_config[key] != value:
            raise ConfigError(
                f"study {study_dir} was made with {key}={stored_config[key]!r}, not {value!r}: "
                f"resume with the same {key}, {hint}"
            )
