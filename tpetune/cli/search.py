"""The search flags shared by ``run``, ``stock`` and ``digits``, and the library's option
objects built from them (:mod:`tpetune.engine.options`, :mod:`tpetune.pruners.policies`).

Defaults are read from the option objects, never restated; library error messages name the
library's arguments, and :func:`for_cli` turns them into these flags.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from tpetune.cli.types import finite_float, non_negative_int, positive_float, positive_int
from tpetune.engine.options import Search, Spark, StopRules, Workers
from tpetune.errors import ConfigError, reworded
from tpetune.pruners.policies import PRUNERS, default_pruner
from tpetune.search.algos import ALGOS
from tpetune.study.artifacts import DEFAULT_KEEP  # a constant: models imports only the store
from tpetune.study.folder import stored_trial_count


def add_search_options(
    p: argparse.ArgumentParser,
    *,
    default_evals: int | None,
    evals_hint: int | None = None,
    new_pruner: str | None = None,
) -> None:
    """The search, stop, pruning and executor flags; ``new_pruner``: the pruner a new study of
    this command gets without ``--prune`` (default: :func:`default_pruner`'s)."""
    g = p.add_argument_group("search")
    g.add_argument("--study-dir", type=Path, help="study folder (default: runs/<name>)")
    g.add_argument(
        "--max-evals",
        type=positive_int,
        default=default_evals,
        help="total trials in the study; re-running continues up to it (default: "
        + (
            str(default_evals)
            if default_evals
            else f"{evals_hint or 'the study’s own'}; the stored total on resume"
        )
        + ")",
    )
    g.add_argument("--seed", type=int, help="study seed (default 0; stored with the study)")
    g.add_argument("--algo", choices=ALGOS, help="search algorithm (default tpe)")
    g.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SEC",
        help="wall-clock budget in seconds, cumulative across resumes",
    )
    g.add_argument(
        "--fresh",
        action="store_true",
        help="discard the stored study (moved to STUDY_DIR/discarded/) and start over; asks "
        "first on a terminal",
    )
    g.add_argument(
        "--yes", action="store_true", help="confirm --fresh without asking (needed off a terminal)"
    )
    g.add_argument(
        "--max-failures",
        type=positive_int,
        default=StopRules().max_failures,
        metavar="K",
        help="stop with exit code 1 after K failed trials in a row (default: %(default)s)",
    )
    g.add_argument("--loss-threshold", type=finite_float, help="stop once the best loss is <= this")
    g.add_argument(
        "--no-progress",
        type=positive_int,
        metavar="N",
        help="stop after N finished trials without a new best",
    )
    g.add_argument(
        "--points",
        type=Path,
        metavar="FILE.json",
        help="JSON list of param dicts (by value) evaluated first, as a new study's first trials",
    )
    g.add_argument(
        "--allow-duplicates",
        action="store_const",
        const=True,
        help="let a new study propose params it has trained already, as hyperopt does (default: "
        "a repeat is drawn again while the space has an untrained point; stored with the study)",
    )
    g.add_argument(
        "--tpe-startup",
        type=positive_int,
        help="TPE: random trials before TPE (default for a new study: half of --max-evals, "
        "5 to 20; stored with the study)",
    )
    g.add_argument("--tpe-gamma", type=float, help="TPE: fraction of trials deemed good")
    g.add_argument("--tpe-candidates", type=positive_int, help="TPE: EI candidates per step")
    g = p.add_argument_group(
        "pruning",
        "stop (or, freeze-thaw, pause and later thaw) trials that report worse values than others "
        "at the same epoch (Keras objectives through tpetune.pruners.keras.keras_pruning_callback, "
        "any objective through tpetune.report "
        "and tpetune.should_prune); stored with the study",
    )
    g.add_argument(
        "--prune",
        choices=tuple(PRUNERS),
        help="the pruner (default for a new study: "
        f"{new_pruner or default_pruner().to_json()['name']}; the stored one on resume)",
    )
    for flag, pruner, knob, metavar, text in _PRUNER_FLAGS:
        default = getattr(PRUNERS[pruner](), knob)
        g.add_argument(
            flag,
            type=float if knob in _FLOAT_KNOBS else positive_int,
            dest=f"{pruner}_{knob}",
            metavar=metavar,
            help=f"{pruner}: {text} (default: {default:g})",
        )
    g = p.add_argument_group("where trials run")
    g.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="run trials in N worker processes, each replaced by a fresh one every 20 trials "
        "(stock, digits: every 10, to bound TensorFlow's memory) (default: run: in this "
        "process; stock, digits: in as many worker processes as the study's --lag)",
    )
    g.add_argument(
        "--lag",
        type=positive_int,
        metavar="L",
        help="propose trial n from trials 0..n-L only, once all of them have finished, so that "
        "with up to L trials in flight proposals and pruning depend on no timing and a resume "
        "is exact (default for a new study: run: none, each proposal sees whatever has "
        "finished; stock, digits: 2, except with --prune freeze-thaw; stored with the study)",
    )
    g.add_argument(
        "--no-spare",
        action="store_true",
        help="start a recycled worker's replacement when the next trial needs it, not beside "
        "the worker's last trial (never more processes than workers; a Keras spare holds "
        "0.5-0.8 GiB; that trial then waits for the imports); run: with --workers only",
    )
    g.add_argument(
        "--trial-timeout",
        type=positive_float,
        metavar="SEC",
        help="kill a trial running longer than SEC seconds and record it as failed (trials "
        "then run in worker processes: N with --workers, else as many as the study's --lag)",
    )
    g.add_argument(
        "--spark",
        metavar="MASTER",
        help="run trials as Spark jobs on MASTER (local[4], spark://host:7077, yarn); "
        "needs pyspark (pip install pyspark) and Java 17",
    )
    g.add_argument(
        "--keep-models", type=non_negative_int, default=DEFAULT_KEEP, metavar="K",
        help="keep the Keras models of the K best trials as STUDY/models/<tid>.keras, deleting "
        "the others as better trials arrive (default: %(default)s; 0 keeps none; stock keeps "
        "at least 5, the models its report's SPA test reads)",
    )  # fmt: skip
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--no-plots", action="store_true", help="do not write PNG plots at the end")


def search_kwargs(args: argparse.Namespace, *, recycle_after: int | None = None) -> dict[str, Any]:
    """The library's option objects (and run arguments) from the search flags;
    ``recycle_after``: how often ``--workers`` replaces a worker (``None``: the library's
    :class:`Workers` default).

    Raises:
        ConfigError: ``--fresh`` on a stored study not confirmed (see :func:`confirm_fresh`).
    """
    if args.fresh:
        confirm_fresh(Path(args.resolved_study_dir), yes=args.yes)
    algo_options = {
        key: value
        for key, value in (
            ("n_startup_jobs", args.tpe_startup),
            ("gamma", args.tpe_gamma),
            ("n_EI_candidates", args.tpe_candidates),
        )
        if value is not None
    }
    return {
        "max_evals": args.max_evals,
        "search": Search(
            algo=args.algo,
            seed=args.seed,
            options=algo_options,
            points=_read_points(args.points) if args.points else (),
            lag=args.lag,
            allow_duplicates=args.allow_duplicates,
        ),
        "stop": StopRules(
            timeout=args.timeout,
            loss_threshold=args.loss_threshold,
            no_progress=args.no_progress,
            max_failures=args.max_failures,
        ),
        "pruner": _pruner(args),
        "executor": _executor(args, recycle_after),
        "fresh": args.fresh,
        "progress": not args.quiet,
        "keep_models": args.keep_models,
    }


#: The pruners' knobs on the CLI: flag, pruner, knob, metavar, help (defaults come from the class).
_PRUNER_FLAGS = (
    ("--prune-warmup-trials", "median", "warmup_trials", "N", "finished trials before pruning"),
    ("--prune-warmup-epochs", "median", "warmup_steps", "E", "epochs a trial always trains"),
    ("--prune-percentile", "median", "percentile", "P", "prune when worse than this percentile"),
    ("--prune-min-epochs", "asha", "min_steps", "R", "epochs at the first rung; rungs at R*ETA^k"),
    ("--prune-reduction-factor", "asha", "reduction_factor", "ETA", "keep the best 1/ETA per rung"),
    (
        "--pause-below",
        "freeze-thaw",
        "pause_below",
        "P",
        "pause (keep for a thaw) a trial whose "
        "forecast chance to end better than the best is below P",
    ),
    ("--prune-below", "freeze-thaw", "prune_below", "P", "prune it below P (its checkpoint goes)"),
)
_FLOAT_KNOBS = ("percentile", "pause_below", "prune_below")


def _pruner(args: argparse.Namespace) -> Any:
    """The pruner the flags ask for; ``None`` (the stored or default one) without --prune."""
    chosen: dict[str, Any] = {}
    for flag, pruner, knob, _, _ in _PRUNER_FLAGS:
        value = getattr(args, f"{pruner}_{knob}")
        if value is not None and args.prune != pruner:
            raise ConfigError(f"{flag} applies to --prune {pruner} only: add --prune {pruner}")
        if value is not None:
            chosen[knob] = value
    return None if args.prune is None else PRUNERS[args.prune](**chosen)


def _executor(args: argparse.Namespace, recycle_after: int | None) -> Any:
    """Worker processes or Spark, from --workers, --trial-timeout, --no-spare and --spark;
    ``None`` without them (the caller's default: ``run`` runs trials in this process, the
    bundled studies in as many recycled workers as the study's lag). Without --workers, the
    workers are as many as the study's lag (``Workers()``); ``recycle_after`` is given by the
    bundled studies, whose default runs in workers: --no-spare alone applies to those."""
    if args.spark is not None:
        if args.no_spare:
            raise ConfigError("--no-spare applies to --workers, not --spark: drop --no-spare")
        return Spark(args.spark, workers=args.workers, trial_timeout=args.trial_timeout)
    in_workers = recycle_after is not None and args.no_spare  # the bundled default, no spare
    if args.workers is not None or args.trial_timeout is not None or in_workers:
        option = Workers(args.workers, trial_timeout=args.trial_timeout, spare=not args.no_spare)
        return option if recycle_after is None else replace(option, recycle_after=recycle_after)
    if args.no_spare:
        raise ConfigError("--no-spare applies to --workers N: add --workers N")
    return None


#: Library argument names in error messages -> the flags a CLI user types.
_FLAGS = (
    ("Search(algo='tpe')", "--algo tpe"),
    ("Search(algo='grid')", "--algo grid"),
    ("Search(algo='atpe')", "--algo atpe"),
    ("another Search(algo=...)", "another --algo"),
    ("Search(algo=...)", "--algo"),
    ("Search(seed=...)", "--seed"),
    ("Search(points=...)", "--points"),
    ("Search(lag=...)", "--lag"),
    ("Search(allow_duplicates=...)", "--allow-duplicates"),
    ("Search(options=", "the --tpe-* flags ("),
    ("StopRules(timeout=...)", "--timeout"),
    ("StopRules(loss_threshold=...)", "--loss-threshold"),
    ("StopRules(no_progress=...)", "--no-progress"),
    ("StopRules(max_failures=...)", "--max-failures"),
    ("Workers(workers=...)", "--workers"),
    ("Workers(trial_timeout=...)", "--trial-timeout"),
    ("Spark(workers=...)", "--workers"),
    ("Spark(trial_timeout=...)", "--trial-timeout"),
    ("Spark(master=...)", "--spark"),
    ("leave pruner unset", "drop --prune"),
    ("fresh=True", "--fresh"),
    ("toward max_evals=", "toward --max-evals "),
    ("than max_evals=", "than --max-evals "),
    ("raise max_evals", "raise --max-evals"),
    ("another study_dir", "another --study-dir"),
    ("with study_dir=NEW", "with --study-dir NEW"),
)


def for_cli(message: str) -> str:
    """A library error message with its argument names replaced by the CLI's flags."""
    return reworded(message, _cli_words())


def _cli_words() -> Iterator[tuple[str, str]]:
    yield from _FLAGS
    for name, pruner in PRUNERS.items():  # "made with pruner MedianPruner, not ASHAPruner"
        yield f"pruner {pruner.__name__}", f"--prune {name}"
        yield f"not {pruner.__name__}", f"not --prune {name}"
    for flag, name, knob, _, _ in _PRUNER_FLAGS:  # the pruners name their knobs bare
        yield f"{knob} must", f"{flag} must"
        yield f"at most {knob}", f"at most {flag}"
        # A resume with other knobs than the study's: only the flag of that pruner's knob.
        yield f"{PRUNERS[name].__name__}.{knob}=", f"{flag} "
    yield "leave --", "drop --"
    yield " unset to resume", " to resume"


def confirm_fresh(study_dir: Path, *, yes: bool) -> None:
    """Let ``--fresh`` discard a study holding trials only when confirmed: ``--yes``, or an
    answer on the terminal. Off a terminal (a script, CI) without ``--yes`` it refuses, as
    ``apt-get`` and ``terraform destroy`` do: hours of trials are not discarded by accident.

    Raises:
        ConfigError: not confirmed; nothing is discarded.
    """
    import sys

    count = stored_trial_count(study_dir)
    if yes or count == 0:
        return
    what = "an unreadable study" if count is None else f"the {count} trials of study {study_dir}"
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise ConfigError(
            f"--fresh would discard {what}: add --yes to confirm (there is no terminal to ask "
            "on), or drop --fresh to resume it"
        )
    print(f"--fresh: discard {what}? [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise ConfigError(f"nothing discarded; drop --fresh to resume study {study_dir}")


def _read_points(path: Path) -> list[dict[str, Any]]:
    try:
        points = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"points file {path} not found: check the path") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"points file {path} is not valid JSON ({exc}): fix it") from None
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise ConfigError(f"points file {path} must hold a JSON list of objects (param dicts)")
    return points
