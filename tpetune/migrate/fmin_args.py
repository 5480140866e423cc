"""hyperopt's ``fmin`` arguments in tpetune's terms: the algorithm, the seed, the study folder,
a ``SparkTrials``' executor and limits; the checks of ``max_evals``, ``trials`` and
``points_to_evaluate`` before any trial runs; and tune()'s errors in fmin's words.

Used by :func:`tpetune.migrate.fmin.fmin` (the drop-in) and the Trials importer.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import hashlib
import inspect
import json
import logging
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tpetune._io import jsonable
from tpetune.engine.options import Spark
from tpetune.errors import ConfigError, in_words
from tpetune.search.seeding import first_draw, generator_state
from tpetune.search.space import Space

log = logging.getLogger("tpetune")


def algo_spec(algo: Any) -> tuple[str, dict[str, Any]]:
    """tpetune's algorithm name and knobs for a hyperopt ``algo`` argument.

    Raises:
        ConfigError: anything but hyperopt's suggest functions (tpetune calls the algorithm
            itself, so it must know it by name to store it with the study).
    """
    from hyperopt import anneal, atpe, mix, rand, tpe

    if algo is None:
        return "tpe", hyperopt_tpe_defaults()
    options: dict[str, Any] = {}
    func = algo
    while isinstance(func, functools.partial):
        if func.args:
            raise ConfigError(f"algo {algo!r}: give the knobs by keyword (n_startup_jobs=...)")
        options = {**func.keywords, **options}
        func = func.func
    known = {tpe.suggest: "tpe", rand.suggest: "rand", anneal.suggest: "anneal"}
    known[atpe.suggest] = "atpe"
    known[mix.suggest] = "mix"
    by_name = {f"{f.__module__}.{f.__name__}": n for f, n in known.items()}
    name = known.get(func) or by_name.get(
        f"{getattr(func, '__module__', '')}.{getattr(func, '__name__', '')}"
    )
    if name is None:
        raise ConfigError(
            f"algo {algo!r} is not one of hyperopt's tpe.suggest, rand.suggest, anneal.suggest, "
            "atpe.suggest, mix.suggest (or functools.partial(tpe.suggest, n_startup_jobs=...)): "
            "tpetune calls the algorithm itself and stores it with the study"
        )
    if name == "mix":
        options = {"p_suggest": _mix_entries(options.get("p_suggest"), algo)}
    if name == "tpe":  # tpetune's own default startup differs: keep hyperopt's, as fmin would
        options = {**hyperopt_tpe_defaults(), **options}
    return name, options


def _mix_entries(p_suggest: Any, algo: Any) -> list[list[Any]]:
    """``mix.suggest``'s ``p_suggest`` [(p, suggest), ...] as [[p, name, options], ...]."""
    if not isinstance(p_suggest, list | tuple) or not p_suggest:
        raise ConfigError(f"algo {algo!r}: give mix.suggest its p_suggest=[(p, suggest), ...]")
    entries = []
    for entry in p_suggest:
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise ConfigError(f"algo {algo!r}: p_suggest entry {entry!r} is not (p, suggest)")
        name, options = algo_spec(entry[1])
        entries.append([float(entry[0]), name, options])
    return entries


def hyperopt_tpe_defaults() -> dict[str, Any]:
    """``n_startup_jobs`` as ``tpe.suggest`` defaults it (tpetune's own default scales with
    ``max_evals``; a drop-in must propose what hyperopt.fmin proposes)."""
    from hyperopt import tpe

    default = inspect.signature(tpe.suggest).parameters["n_startup_jobs"].default
    return {"n_startup_jobs": int(default)}


def rstate_stream(rstate: Any) -> dict[str, Any] | None:
    """The seed stream ``hyperopt.fmin`` would draw from for ``rstate``, in JSON form
    (:func:`tpetune.search.seeding.generator_state`); ``rstate`` itself is not moved.

    ``rstate`` is a ``numpy.random.Generator`` (an int ``n`` stands for
    ``numpy.random.default_rng(n)``); ``None`` reads ``$HYPEROPT_FMIN_SEED`` as hyperopt does,
    and gives ``None`` when it is unset (a new study then starts the stream of
    ``default_rng(0)``, a resumed one continues its own).

    Raises:
        ConfigError: anything else (hyperopt 0.3 draws with ``Generator.integers``).
    """
    import numpy as np

    if rstate is None:
        env = os.environ.get("HYPEROPT_FMIN_SEED", "")
        if not env:
            return None
        rstate = np.random.default_rng(int(env))
    if isinstance(rstate, int) and not isinstance(rstate, bool):
        rstate = np.random.default_rng(rstate)
    if not isinstance(rstate, np.random.Generator):
        raise ConfigError(
            f"rstate must be a numpy.random.Generator (np.random.default_rng(seed)); got "
            f"{type(rstate).__name__}"
        )
    return generator_state(rstate)


def study_seed(rstate: Any) -> int | None:
    """The study seed tpetune.fmin records for ``rstate``: its first proposal seed (one draw
    ``rstate.integers(2**31 - 1)``, made on a copy: ``rstate`` is not moved).

    ``None`` when ``rstate`` is ``None`` and ``HYPEROPT_FMIN_SEED`` is not set.
    """

    stream = rstate_stream(rstate)
    return None if stream is None else first_draw(stream)


def default_study_dir(
    fn: Callable[..., Any],
    space: Space,
    seed: int | None = None,
    algo: str = "tpe",
    options: Mapping[str, Any] | None = None,
    points: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """``runs/fmin-<fn name>-<hash>``, the hash over the space's fingerprint, algo, its knobs,
    the seed, the points to evaluate first and what ``fn`` is bound to (:func:`binding`):
    another function, space, algo, rstate or points is another study, and re-running the
    same script resumes its own.

    A study an earlier tpetune made for ``fn`` (whose hash did not cover the binding) is
    continued where it is, when no study has the new name yet."""

    name = getattr(fn, "__name__", type(fn).__name__).strip("<>") or "fn"
    parts: list[Any] = [space.fingerprint, algo, dict(options or {}), seed, list(points)]
    legacy = _folder(name, parts)
    try:
        bound = binding(fn)
    except Exception:  # an object that cannot be described: its name and the rest decide
        bound = []
    if not bound:
        return legacy
    folder = _folder(name, [*parts, bound])
    if folder.exists():
        return folder
    if (legacy / "study.db").is_file():
        log.info("tpetune.fmin: continuing %s, made by an earlier tpetune for %s", legacy, name)
        return legacy
    others = [p for p in folder.parent.glob(f"fmin-{name}-*") if (p / "study.db").is_file()]
    if others:  # a loop over models, or a value that changes from run to run: say which
        log.info(
            "tpetune.fmin: a new study %s; other studies of %s (another space, algo, rstate, "
            "points, or values bound to it) are in %s: study_dir= continues one",
            folder,
            name,
            ", ".join(str(p) for p in sorted(others)),
        )
    return folder


def _folder(name: str, parts: list[Any]) -> Path:
    key = json.dumps(jsonable(parts), sort_keys=True)
    return Path("runs") / f"fmin-{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def binding(fn: Callable[..., Any]) -> list[str]:
    """What tells apart objectives of one name whose code may be the same: a
    ``functools.partial``'s arguments, a bound method's or callable object's attributes, a
    function's defaults and closure, the classes, functions and modules it reads from its
    module (``for Model in (Ridge, Lasso): def objective(p): ...``), and a lambda's source
    (every lambda is ``<lambda>``). Described as :func:`_stable` does, so that what changes
    from run to run (a log list, a timestamp, data) does not move a script to another study."""
    parts: list[str] = []
    target: Any = fn
    while isinstance(target, functools.partial):
        keywords = tuple(sorted(target.keywords.items()))
        parts.append(f"partial {_stable(tuple(target.args))} {_stable(keywords)}")
        target = target.func
    target = inspect.unwrap(target)
    if inspect.ismethod(target):
        parts.append(f"self {_attributes(target.__self__)}")
        target = target.__func__
    elif not inspect.isfunction(target) and not inspect.isclass(target):
        parts.append(f"object {_attributes(target)}")  # a callable object: its settings
        return parts
    if not inspect.isfunction(target):
        return parts
    if target.__name__ == "<lambda>":
        try:
            source = inspect.getsource(target)
        except (OSError, TypeError):
            source = repr(target.__code__.co_consts)
        parts.append(f"lambda {source.strip()}")
    if target.__defaults__ or target.__kwdefaults__:
        keyword = tuple(sorted((target.__kwdefaults__ or {}).items()))
        parts.append(f"defaults {_stable((tuple(target.__defaults__ or ()), keyword))}")
    # A variable the function assigns (`nonlocal calls; calls += 1`) is its state, not a setting.
    assigned = {i.argval for i in dis.get_instructions(target) if i.opname == "STORE_DEREF"}
    cells = []
    for name, cell in zip(target.__code__.co_freevars, target.__closure__ or (), strict=False):
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not filled yet
            cells.append("<empty>")
            continue
        cells.append(type(value).__name__ if name in assigned else _stable(value))
    if cells:
        parts.append(f"closure {cells}")
    # The classes, functions and modules it reads from its module: a loop rebinding one
    # (`for Model in ...`) makes another objective; data and settings there do not count.
    names = _names_read(target.__code__) & set(target.__globals__)
    code_like = [
        f"{n}={_stable(v)}"
        for n in sorted(names)
        if inspect.isclass(v := target.__globals__[n])
        or inspect.isfunction(v)
        or inspect.isbuiltin(v)
        or inspect.ismodule(v)
    ]
    if code_like:
        parts.append(f"globals {code_like}")
    return parts


def _attributes(obj: Any) -> str:
    """An object's type and its instance attributes, each as :func:`_stable` describes it."""
    attrs = getattr(obj, "__dict__", None)
    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if not isinstance(attrs, dict):
        return kind
    return f"{kind}{sorted((str(k), _stable(v, 1)) for k, v in attrs.items())}"


def _names_read(code: Any) -> set[str]:
    """The global (and attribute) names ``code`` and the code nested in it refer to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _names_read(const)
    return names


def _stable(value: Any, depth: int = 0) -> str:
    """A description of a bound value that is the same in every run of a script: numbers,
    booleans, ``None`` and short strings as they are; classes, functions and modules by
    name; tuples item by item; an object whose text holds no memory address by its text;
    anything else, and lists, dicts, sets (often a log the objective fills) and arrays (data),
    by its type alone."""
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 200 else "str"
    if inspect.ismodule(value):
        return f"module {value.__name__}"
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}"
    if isinstance(value, tuple) and depth < 4:
        return f"tuple[{', '.join(_stable(v, depth + 1) for v in value)}]"
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if isinstance(value, list | dict | set | frozenset) or hasattr(value, "__array__"):
        return kind
    try:
        text = repr(value)
    except Exception:
        return kind
    return kind if " at 0x" in text or len(text) > 500 else text


def executor_for(trials: Any) -> Any:
    """The executor option for a ``trials`` argument of :func:`tpetune.fmin`
    (:class:`tpetune.migrate.spark_trials.SparkTrials` or hyperopt's).

    tpetune's or hyperopt's ``SparkTrials`` becomes ``Spark(master, workers=parallelism)`` on
    the same session's cluster; any other Trials (or ``None``) runs serially (``None``)."""
    if type(trials).__name__ != "SparkTrials" or getattr(trials, "_spark_context", None) is None:
        return None

    return Spark(master=trials._spark_context.master, workers=int(trials.parallelism))


def spark_limits(trials: Any, timeout: Any, loss_threshold: Any) -> tuple[Any, Any]:
    """``fmin``'s ``timeout`` and ``loss_threshold`` after a SparkTrials' own, as hyperopt's
    ``SparkTrials.fmin`` merges them: the Trials' timeout wins (with a warning), fmin's
    loss_threshold wins."""
    if type(trials).__name__ != "SparkTrials":
        return timeout, loss_threshold
    own = getattr(trials, "timeout", None)
    if own is not None:
        if timeout is not None:
            log.warning("Timeout param was defined in Trials object, ignoring fmin definition")
        timeout = own
    if loss_threshold is None:
        loss_threshold = getattr(trials, "loss_threshold", None)
    return timeout, loss_threshold


#: tune()'s argument names in its errors -> fmin's.
_FMIN_WORDS = (
    ("leave Search(algo=...) unset to resume it", "pass the algo it was made with to resume it"),
    ("leave it unset to resume it", "pass the algo knobs it was made with to resume it"),
    ("Search(options=", "algo knobs ("),
)


def in_fmin_words() -> contextlib.AbstractContextManager[None]:
    """Re-raise tune()'s errors in fmin's terms (algo, not ``Search(algo=...)``)."""
    return in_words(_FMIN_WORDS)


def checked_max_evals(max_evals: Any) -> Any:
    """``max_evals`` as an int before anything runs (hyperopt takes ``10.0`` too)."""
    if max_evals is None or isinstance(max_evals, bool):
        return max_evals
    if isinstance(max_evals, numbers.Integral):
        return int(max_evals)
    if isinstance(max_evals, numbers.Real) and float(max_evals) == float("inf"):
        return None  # unbounded, as hyperopt's default (then a stop rule must end it)
    if isinstance(max_evals, numbers.Real) and float(max_evals).is_integer():
        return int(float(max_evals))
    raise ConfigError(f"fmin's max_evals must be a whole number of trials; got {max_evals!r}")


def check_trials(trials: Any) -> None:
    """Refuse a ``trials`` that is no Trials before any trial runs (it is filled at the end)."""
    if trials is not None and not hasattr(trials, "insert_trial_docs"):
        raise ConfigError(
            f"fmin's trials must be a hyperopt Trials (or SparkTrials), or None; got "
            f"{type(trials).__name__}: pass trials=Trials()"
        )


def checked_points(points: Any, space: Space) -> list[Mapping[str, Any]]:
    """``points_to_evaluate`` as hyperopt takes it: a list of dicts of the space's labels."""
    if points is None:
        return []
    if not isinstance(points, list | tuple) or not all(isinstance(p, Mapping) for p in points):
        raise ConfigError(
            "fmin's points_to_evaluate must be a list of dicts, one per point "
            f"([{{'x': 0.5}}]); got {type(points).__name__}"
        )
    for point in points:
        unknown = sorted(set(point) - set(space.labels))
        if unknown:
            raise ConfigError(
                f"points_to_evaluate: {', '.join(unknown)} is no label of the space (its labels: "
                f"{', '.join(space.labels)})"
            )
    return list(points)
