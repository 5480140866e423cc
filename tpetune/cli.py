"""The ``tpetune`` command: parse, call the public API, print, return an exit code.

Exit codes: 0 ok; 1 the search failed; 2 bad input or study in use; 130 interrupted.
Heavy modules (hyperopt, TensorFlow, matplotlib) are imported inside the commands that need
them, so ``tpetune --help`` and ``tpetune show`` start instantly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tpetune import __version__
from tpetune import digits as digits_defaults  # constants only: no TensorFlow import
from tpetune.algos import ALGOS
from tpetune.errors import ConfigError, TpetuneError
from tpetune.models import DEFAULT_KEEP  # a constant: models imports only the store
from tpetune.options import Search, Serial, Spark, StopRules, Workers
from tpetune.pruners import PRUNERS, default_pruner

log = logging.getLogger("tpetune")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage block buries the message)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _add_search_options(
    p: argparse.ArgumentParser, *, default_evals: int | None, evals_hint: int | None = None
) -> None:
    g = p.add_argument_group("search")
    g.add_argument("--study-dir", type=Path, help="study folder (default: runs/<name>)")
    g.add_argument(
        "--max-evals",
        type=_positive_int,
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
        type=_positive_float,
        metavar="SEC",
        help="wall-clock budget in seconds, cumulative across resumes",
    )
    g.add_argument("--fresh", action="store_true", help="discard the stored study, start over")
    g.add_argument(
        "--max-failures",
        type=_positive_int,
        default=StopRules().max_failures,
        metavar="K",
        help="stop with exit code 1 after K failed trials in a row (default: %(default)s)",
    )
    g.add_argument(
        "--loss-threshold", type=_finite_float, help="stop once the best loss is <= this"
    )
    g.add_argument(
        "--no-progress",
        type=_positive_int,
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
        "--tpe-startup",
        type=_positive_int,
        help="TPE: random trials before TPE (default for a new study: a tenth of --max-evals, "
        "5 to 20; stored with the study)",
    )
    g.add_argument("--tpe-gamma", type=float, help="TPE: fraction of trials deemed good")
    g.add_argument("--tpe-candidates", type=_positive_int, help="TPE: EI candidates per step")
    g = p.add_argument_group(
        "pruning",
        "stop trials that report worse values than others at the same epoch (Keras objectives "
        "through tpetune.pruning.keras_pruning_callback, any objective through tpetune.report "
        "and tpetune.should_prune); stored with the study",
    )
    g.add_argument(
        "--prune",
        choices=tuple(PRUNERS),
        help=f"the pruner (default for a new study: {default_pruner().to_json()['name']}; the "
        "stored one on "
        "resume)",
    )
    for flag, pruner, knob, metavar, text in _PRUNER_FLAGS:
        default = getattr(PRUNERS[pruner](), knob)
        g.add_argument(
            flag,
            type=float if knob == "percentile" else _positive_int,
            dest=f"{pruner}_{knob}",
            metavar=metavar,
            help=f"{pruner}: {text} (default: {default:g})",
        )
    g = p.add_argument_group("where trials run")
    g.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run trials in N worker processes (default: 1, in this process)",
    )
    g.add_argument(
        "--trial-timeout",
        type=_positive_float,
        metavar="SEC",
        help="kill a trial running longer than SEC seconds and record it as failed",
    )
    g.add_argument(
        "--spark",
        metavar="MASTER",
        help="run trials as Spark jobs on MASTER (local[4], spark://host:7077, yarn); "
        "needs pyspark (pip install pyspark) and Java 17",
    )
    g.add_argument(
        "--keep-models", type=int, default=DEFAULT_KEEP, metavar="K",
        help="keep the Keras models of the K best trials as STUDY/models/<tid>.keras, deleting "
        "the others as better trials arrive (default: %(default)s; 0 keeps none)",
    )  # fmt: skip
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--no-plots", action="store_true", help="do not write PNG plots at the end")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tpetune",
        description="Hyperopt TPE for Keras models: crash-safe studies, exact resume, "
        "honest reports.",
    )
    parser.add_argument("--version", action="version", version=f"tpetune {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p = sub.add_parser("run", help="tune FILE.py's `objective` over its `space`")
    p.add_argument("file", metavar="FILE.py", help="a Python file defining `space` and `objective`")
    _add_search_options(p, default_evals=50)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("stock", help="tune an LSTM forecasting a stock's next close (main job)")
    d = p.add_argument_group("data and model")
    d.add_argument(
        "--csv", type=Path, help="daily prices (Yahoo or Stooq layout); default: bundled S&P 500"
    )
    d.add_argument(
        "--data", choices=("sp500", "nasdaq", "wti"),  # = tpetune.data.SERIES (a test checks)
        help="a bundled daily series, its last 10 years (default sp500; stored on resume)",
    )  # fmt: skip
    d.add_argument(
        "--test-folds", type=_positive_int, metavar="K",
        help="rolling-origin test blocks of the verdict: each retrains the best params on the "
        "days before it (default 3)",
    )  # fmt: skip
    d.add_argument("--space", default="stock", help="space file or bundled name (default: stock)")
    d.add_argument(
        "--epochs", type=_positive_int,
        # = stock.objective.DEFAULT_EPOCHS / DEFAULT_PATIENCE (importing them loads Keras)
        help="max epochs per trial (default 12; early stopping after 3 without improvement; "
        "stored on resume)",
    )  # fmt: skip
    d.add_argument(
        "--folds", type=_positive_int,
        help="walk-forward folds, loss = mean over folds (default: one chronological "
        "70/15/15 train/validation/test split; stored on resume)",
    )  # fmt: skip
    _add_search_options(p, default_evals=None, evals_hint=30)  # = stock.objective.DEFAULT_MAX_EVALS
    p.set_defaults(func=cmd_stock)

    p = sub.add_parser("digits", help="tune a dense classifier on handwritten digits (k-fold CV)")
    d = p.add_argument_group("data and model")
    d.add_argument(
        "--mnist", type=Path, metavar="FILE.npz",
        help="MNIST in Keras' mnist.npz layout; default: scikit-learn's 8x8 digits (offline)",
    )  # fmt: skip
    d.add_argument("--space", default="digits", help="space file or bundled name (default: digits)")
    d.add_argument(
        "--folds", type=_positive_int,
        help=f"stratified CV folds (default {digits_defaults.DEFAULT_FOLDS}; stored on resume)",
    )  # fmt: skip
    _add_search_options(p, default_evals=None, evals_hint=digits_defaults.DEFAULT_MAX_EVALS)
    p.set_defaults(func=cmd_digits)

    p = sub.add_parser("show", help="print a study's progress, best trial and trials")
    p.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    p.add_argument("--json", action="store_true", help="one JSON object: best and trials")
    p.add_argument("--top", type=_positive_int, default=5, help="how many best trials to list")
    p.add_argument("--all", action="store_true", help="list every trial, not the last 20")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("plot", help="write the study's PNG plots")
    p.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    p.add_argument("--out", type=Path, help="folder for the PNGs (default: the study folder)")
    p.set_defaults(func=cmd_plot)

    from tpetune.export import ALL_FORMATS

    p = sub.add_parser(
        "export",
        help="export trials as CSV, JSON, a hyperopt pickle, or to Optuna/TensorBoard/MLflow",
    )
    p.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    p.add_argument("--format", choices=ALL_FORMATS, default="csv")
    p.add_argument(
        "-o", "--output", type=Path,
        help="file or folder to write (default: STUDY_DIR/trials.EXT, optuna.db, tensorboard/)",
    )  # fmt: skip
    p.add_argument(
        "--tracking-uri", metavar="URI",
        help="MLflow tracking URI for --format mlflow (default: sqlite:///STUDY_DIR/mlflow.db)",
    )  # fmt: skip
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("dashboard", help="serve optuna-dashboard on 127.0.0.1, following the study")
    p.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument(
        "--db", type=Path, help="the Optuna export kept in step (default: STUDY_DIR/optuna.db)"
    )
    p.add_argument(
        "--poll", type=_positive_float, default=1.0, metavar="SEC",
        help="seconds between looks at the study (default 1)",
    )  # fmt: skip
    p.set_defaults(func=cmd_dashboard)

    from tpetune.cli_compat import add_commands  # import, best-model, replay

    add_commands(sub)
    return parser


def cli_reference() -> str:
    """docs/cli.md: every command's --help at a fixed width (a test keeps the file in sync)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    regenerate = "python -c 'from tpetune.cli import cli_reference as r; print(r(), end=\"\")'"
    parts = [
        "# CLI reference",
        "",
        f"Generated from `tpetune/cli.py`; regenerate with `{regenerate} > docs/cli.md`.",
    ]
    for name, command in [("tpetune", parser), *sub.choices.items()]:
        command.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=96)
        title = name if command is parser else f"tpetune {name}"
        parts += ["", f"## {title}", "", "```text", command.format_help().rstrip(), "```"]
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see module docstring)."""
    args = build_parser().parse_args(argv)
    _setup_logging()
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `tpetune show DIR | head`: the reader left, nothing is wrong
        if not _stdout_reader_left():
            raise  # some other pipe broke: a bug, not the reader of stdout leaving
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (silence the flush at exit)
        return 0
    except TpetuneError as exc:
        print(f"tpetune: error: {for_cli(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        where = getattr(args, "resolved_study_dir", None) or getattr(args, "study_dir", None)
        print(
            f"\ntpetune: interrupted; finished trials are kept in {where}. "
            "Run the same command again to resume.",
            file=sys.stderr,
        )
        return 130


def _stdout_reader_left() -> bool:
    """True when stdout is a pipe whose reader has gone (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or no real stdout
        return False


def _setup_logging() -> None:
    # Our own logger only: hyperopt logs every TPE step at INFO on its loggers.
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


# -- search commands ---------------------------------------------------------------------------
def _search_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The library's option objects (and run arguments) from the search flags."""
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
        ),
        "stop": StopRules(
            timeout=args.timeout,
            loss_threshold=args.loss_threshold,
            no_progress=args.no_progress,
            max_failures=args.max_failures,
        ),
        "pruner": _pruner(args),
        "executor": _executor(args),
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
)


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


def _executor(args: argparse.Namespace) -> Any:
    """Serial, worker processes or Spark, from --workers, --trial-timeout and --spark."""
    if args.spark is not None:
        workers = args.workers if args.workers > 1 else None
        return Spark(args.spark, workers=workers, trial_timeout=args.trial_timeout)
    if args.workers > 1 or args.trial_timeout is not None:
        return Workers(args.workers, trial_timeout=args.trial_timeout)
    return Serial()


#: Library argument names in error messages -> the flags a CLI user types.
_FLAGS = (
    ("Search(algo='tpe')", "--algo tpe"),
    ("Search(algo='grid')", "--algo grid"),
    ("Search(algo='atpe')", "--algo atpe"),
    ("another Search(algo=...)", "another --algo"),
    ("Search(algo=...)", "--algo"),
    ("Search(seed=...)", "--seed"),
    ("Search(points=...)", "--points"),
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
    ("another study_dir", "another --study-dir"),
)


def for_cli(message: str) -> str:
    """A library error message with its argument names replaced by the CLI's flags."""
    for name, flag in _FLAGS:
        message = message.replace(name, flag)
    return message.replace("leave --", "drop --").replace(" unset to resume", " to resume")


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


def cmd_run(args: argparse.Namespace) -> int:
    from tpetune.space import Space, load_file, resolve_space_file
    from tpetune.tuning import tune

    path = resolve_space_file(args.file)
    namespace = load_file(path, need_objective=True)
    space = Space(namespace["space"], source=str(path))
    study_dir = args.study_dir or Path("runs") / path.stem
    args.resolved_study_dir = study_dir
    study = tune(namespace["objective"], space, study_dir=study_dir, **_search_kwargs(args))
    _print_summary(study)
    if not args.no_plots:
        _write_plots(study)
    return 0


def cmd_stock(args: argparse.Namespace) -> int:
    data = {"csv": args.csv, "epochs": args.epochs, "folds": args.folds, "series": args.data}
    return _run_study(args, "stock", {**data, "test_folds": args.test_folds})


def cmd_digits(args: argparse.Namespace) -> int:
    return _run_study(args, "digits", {"mnist": args.mnist, "folds": args.folds})


def _run_study(args: argparse.Namespace, name: str, data: dict[str, Any]) -> int:
    """A bundled study: tune, then print the search summary and the held-out test report."""
    from tpetune.bundled import bundled_study, run_bundled

    bundle = bundled_study(name)
    study_dir = args.study_dir or Path("runs") / name
    args.resolved_study_dir = study_dir
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner quiet
    study, summary = run_bundled(
        bundle, study_dir=study_dir, space=args.space, data=data, **_search_kwargs(args)
    )
    _print_summary(study)
    if summary is not None:
        print()
        print(bundle.format_summary(summary))
    if not args.no_plots:
        _write_plots(study, only=(name,))
    return 0


def _print_summary(study: Any) -> None:
    from tpetune.report import best_block, progress_line

    print(f"\nstudy {study.study_dir}: {progress_line(study)}")
    print(f"stopped: {study.stop_reason}")
    print(best_block(study))
    print(f"(`tpetune show {study.study_dir}` lists the trials; re-run this command to resume)")


def _write_plots(study: Any, *, only: Sequence[str] = ()) -> None:
    """The generic plots, then the extra plots of the bundled studies in ``only``."""
    from tpetune.bundled import write_plots

    paths = write_plots(study, only=only)
    print("plots: " + ", ".join(str(p) for p in paths))


# -- reading commands ----------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    from tpetune.study import load_study

    study = load_study(args.study_dir)
    if args.json:
        doc = study.to_dict()
        doc.setdefault("provenance", study.meta.get("provenance", []))  # what it ran under
        print(json.dumps(doc, indent=2))
    else:
        from tpetune.report import show_text

        print(show_text(study, top=args.top, last=None if args.all else 20))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from tpetune.bundled import write_plots
    from tpetune.study import load_study

    study = load_study(args.study_dir)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    for path in write_plots(study, args.out):  # each bundled study adds what its files allow
        print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tpetune.export import TOOL_FORMATS, export
    from tpetune.study import load_study

    if args.tracking_uri is not None and args.format != "mlflow":
        raise ConfigError("--tracking-uri is for --format mlflow; give -o for other formats")
    if args.output is not None and args.format == "mlflow":
        raise ConfigError("--format mlflow logs to a tracking server: give --tracking-uri, not -o")
    study = load_study(args.study_dir)
    if args.format in TOOL_FORMATS:
        from tpetune.exporters import export_to

        done = export_to(study, args.format, args.tracking_uri or args.output)
        print(f"wrote {done.summary()}")
        return 0
    ext = {"csv": "csv", "json": "json", "pickle": "pkl"}[args.format]
    out = export(study, args.format, args.output or args.study_dir / f"trials.{ext}")
    print(f"wrote {out} ({len(study.records)} trials)")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; that is how a dashboard ends, so the exit code is 0."""
    from tpetune.dashboard import serve

    def ready(url: str) -> None:
        print(f"optuna-dashboard of {args.study_dir}: {url} (Ctrl-C stops)", flush=True)

    try:
        serve(args.study_dir, port=args.port, db=args.db, poll_s=args.poll, on_ready=ready)
    except KeyboardInterrupt:
        print("tpetune: dashboard stopped", file=sys.stderr)
    return 0
