"""The ``tpetune`` command: parse, call the public API, print, return an exit code.

Exit codes: 0 ok; 1 the search failed (or no space left); 2 bad input, a damaged or
unwritable study, or a study in use; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
Heavy modules (hyperopt, TensorFlow, matplotlib) are imported inside the commands that need
them, so ``tpetune --help`` and ``tpetune show`` start instantly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tpetune import __version__
from tpetune._quiet import quiet_tensorflow
from tpetune._signals import Terminated, sigterm_as_interrupt
from tpetune.bundled import (
    BUNDLED,
    RECYCLE_AFTER,
    SUMMARY_NAME,
    bundled_study,
    run_bundled,
    write_plots,
)
from tpetune.cli.migrate import add_commands
from tpetune.cli.search import (
    add_search_options,
    for_cli,
    positive_float,
    positive_int,
    search_kwargs,
)
from tpetune.engine.tuning import tune
from tpetune.errors import ConfigError, TpetuneError, from_os_error
from tpetune.exporters import FORMATS, export_to
from tpetune.exporters.dashboard import serve
from tpetune.search.space import Space, load_file, resolve_space_file
from tpetune.study.study import load_study
from tpetune.views.show import best_block, progress_line, show_text

log = logging.getLogger("tpetune")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage block buries the message)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tpetune",
        description="Hyperopt TPE for Keras models: crash-safe studies, exact resume, "
        "honest reports.",
    )
    parser.add_argument("--version", action="version", version=f"tpetune {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's and Spark's own log messages (hidden by default)",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p = sub.add_parser("run", help="tune FILE.py's `objective` over its `space`")
    p.add_argument("file", metavar="FILE.py", help="a Python file defining `space` and `objective`")
    add_search_options(p, default_evals=50)
    p.set_defaults(func=cmd_run)

    for name in BUNDLED:
        bundle = bundled_study(name)
        p = sub.add_parser(name, help=bundle.help)
        d = p.add_argument_group("data and model")
        d.add_argument(
            "--space", default=bundle.default_space,
            help=f"space file or bundled name (default: {bundle.default_space})",
        )  # fmt: skip
        before = len(d._group_actions)
        bundle.add_arguments(d)
        add_search_options(
            p,
            default_evals=None,
            evals_hint=bundle.default_max_evals,
            new_pruner=bundle.default_pruner,
        )
        flags = tuple(a.dest for a in d._group_actions[before:])
        p.set_defaults(func=cmd_bundled, study=name, study_flags=flags)

    p = sub.add_parser("show", help="print a study's progress, best trial and trials")
    p.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    p.add_argument("--json", action="store_true", help="one JSON object: best and trials")
    p.add_argument("--top", type=positive_int, default=5, help="how many best trials to list")
    p.add_argument("--all", action="store_true", help="list every trial, not the last 20")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("plot", help="write the study's PNG plots")
    p.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    p.add_argument("--out", type=Path, help="folder for the PNGs (default: the study folder)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser(
        "export",
        help="export trials as CSV, JSON, a hyperopt pickle, or to Optuna/TensorBoard/MLflow",
    )
    p.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    p.add_argument("--format", choices=tuple(FORMATS), default="csv")
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
        "--db", type=Path,
        help="the Optuna export kept in step (default: one per study in ~/.cache/tpetune; "
        "the study folder is never written)",
    )  # fmt: skip
    p.add_argument(
        "--poll", type=positive_float, default=1.0, metavar="SEC",
        help="seconds between looks at the study (default 1)",
    )  # fmt: skip
    p.set_defaults(func=cmd_dashboard)

    add_commands(sub)
    return parser


def cli_reference() -> str:
    """docs/cli.md: every command's --help at a fixed width (a test keeps the file in sync)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    regenerate = "python -c 'from tpetune.cli.main import cli_reference as r; print(r(), end=\"\")'"
    parts = [
        "# CLI reference",
        "",
        f"Generated from `tpetune/cli/main.py`; regenerate with `{regenerate} > docs/cli.md`.",
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

    quiet_tensorflow(args.verbose)  # before anything imports TensorFlow, workers included
    try:
        with sigterm_as_interrupt():
            return int(args.func(args))
    except BrokenPipeError:  # `tpetune show DIR | head`: the reader left, nothing is wrong
        if not _stdout_reader_left():
            raise  # some other pipe broke: a bug, not the reader of stdout leaving
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (silence the flush at exit)
        return 0
    except TpetuneError as exc:
        message = for_cli(str(exc))
        if getattr(args, "fresh", False) and message.endswith("again to resume"):
            message += " (without --fresh, which would discard the study again)"
        print(f"tpetune: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        where = getattr(args, "resolved_study_dir", None) or getattr(args, "study_dir", None)
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
        again = "without --fresh" if getattr(args, "fresh", False) else "again"
        print(
            f"\ntpetune: {how}; finished trials are kept in {where}. "
            f"Run the same command {again} to resume.",
            file=sys.stderr,
        )
        return 143 if isinstance(exc, Terminated) else 130


def _stdout_reader_left() -> bool:
    """True when stdout is a pipe whose reader has gone (poll reports an error on it)."""

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or no real stdout
        return False


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record is logged, not as it was when the
    handler was made (a test's capture, a notebook or a caller may replace it between calls
    of :func:`main`), as the standard library's last-resort handler does."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass

    def format(self, record: logging.LogRecord) -> str:
        # A warning names the library's arguments (fresh=True): say the flags instead.
        return for_cli(super().format(record))


def _setup_logging() -> None:
    # Our own logger only: hyperopt logs every TPE step at INFO on its loggers.
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


# -- search commands ---------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:

    path = resolve_space_file(args.file)
    namespace = load_file(path, need_objective=True)
    space = Space(namespace["space"], source=str(path))
    study_dir = args.study_dir or Path("runs") / path.stem
    args.resolved_study_dir = study_dir
    study = tune(namespace["objective"], space, study_dir=study_dir, **search_kwargs(args))
    _print_summary(study)
    if not args.no_plots:
        _write_plots(study)
    return 0


def cmd_bundled(args: argparse.Namespace) -> int:
    """A bundled study: tune, then print the search summary and the held-out test report."""

    name = args.study
    bundle = bundled_study(name)
    data = {dest: getattr(args, dest) for dest in args.study_flags}
    study_dir = args.study_dir or Path("runs") / name
    args.resolved_study_dir = study_dir
    study, summary = run_bundled(
        bundle,
        study_dir=study_dir,
        space=args.space,
        data=data,
        **search_kwargs(args, recycle_after=RECYCLE_AFTER),
    )
    _print_summary(study)
    if summary is not None:
        print()
        print(bundle.format_summary(summary))
        names = (SUMMARY_NAME, *bundle.report_files)
        files = [study_dir / n for n in names if (study_dir / n).exists()]
        print("files: " + ", ".join(str(f) for f in files))
    if not args.no_plots:
        _write_plots(study, only=(name,))
    return 0


def _print_summary(study: Any) -> None:

    print(f"study {study.study_dir}: {progress_line(study)}")
    print(f"stopped: {for_cli(study.stop_reason or '')}")
    print(best_block(study))
    print(f"(`tpetune show {study.study_dir}` lists the trials; re-run this command to resume)")


def _write_plots(study: Any, *, only: Sequence[str] = ()) -> None:
    """The generic plots, then the extra plots of the bundled studies in ``only``."""

    paths = write_plots(study, only=only)
    print("plots: " + ", ".join(str(p) for p in paths))


# -- reading commands ----------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:

    study = load_study(args.study_dir)
    if args.json:
        doc = study.to_dict()
        doc.setdefault("provenance", study.meta.get("provenance", []))  # what it ran under
        print(json.dumps(doc, indent=2))
    else:
        print(show_text(study, top=args.top, last=None if args.all else 20))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:

    study = load_study(args.study_dir)
    if args.out is not None:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # --out names a file, or a folder we cannot create
            raise from_os_error(exc, args.out, "write plots") from None
    for path in write_plots(study, args.out):  # each bundled study adds what its files allow
        print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:

    if args.tracking_uri is not None and args.format != "mlflow":
        raise ConfigError("--tracking-uri is for --format mlflow; give -o for other formats")
    if args.output is not None and args.format == "mlflow":
        raise ConfigError("--format mlflow logs to a tracking server: give --tracking-uri, not -o")
    study = load_study(args.study_dir)
    done = export_to(study, args.format, args.tracking_uri or args.output)
    print(f"wrote {done.summary()}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; that is how a dashboard ends, so the exit code is 0."""

    urls: list[str] = []

    def ready(url: str) -> None:
        if urls:  # the study was deleted in the dashboard: only its copy was
            print(
                f"tpetune: the dashboard's copy of {args.study_dir} was deleted in its UI and "
                f"written again from the study (delete the folder to delete the study): {url}",
                flush=True,
            )
        else:
            print(f"optuna-dashboard of {args.study_dir}: {url} (Ctrl-C stops)", flush=True)
        urls.append(url)

    try:
        serve(args.study_dir, port=args.port, db=args.db, poll_s=args.poll, on_ready=ready)
    except KeyboardInterrupt:
        print("tpetune: dashboard stopped", file=sys.stderr)
    return 0
