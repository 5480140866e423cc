"""The ``import``, ``best-model`` and ``replay`` commands (registered by :mod:`tpetune.cli.main`).

They parse, call :mod:`tpetune.migrate.trials_import`, :mod:`tpetune.study.artifacts` and
:mod:`tpetune.engine.rerun`, print, and return an exit code (0 ok, 2 bad input, as every command).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_commands(sub: Any) -> None:
    """Add the three subcommands to ``tpetune``'s subparsers."""
    from tpetune.cli.types import positive_int
    from tpetune.search.algos import ALGOS

    p = sub.add_parser(
        "import", help="turn a hyperopt Trials pickle into a study that `run` continues"
    )
    p.add_argument("file", type=Path, metavar="FILE.pkl", help="pickle.dump(trials) output")
    p.add_argument(
        "--space", required=True, metavar="SPACE.py",
        help="the space file the trials were made with (`tpetune run SPACE.py` continues them)",
    )  # fmt: skip
    p.add_argument(
        "--study-dir", type=Path, help="the new study folder (default: runs/<space name>)"
    )
    p.add_argument("--seed", type=int, help="study seed for the trials to come (default 0)")
    p.add_argument("--algo", choices=ALGOS, help="search algorithm to continue with (default tpe)")
    p.add_argument(
        "--tpe-startup", type=positive_int, metavar="N",
        help="TPE: random trials before TPE models the history (default 20, as hyperopt)",
    )  # fmt: skip
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("best-model", help="the best trial's saved Keras model: path or a copy")
    p.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    p.add_argument("-o", "--output", type=Path, help="copy the .keras file here")
    p.set_defaults(func=cmd_best_model)

    p = sub.add_parser(
        "replay", help="re-run one trial with its stored arguments and seed; compare the runs"
    )
    p.add_argument("study_dir", type=Path, metavar="STUDY_DIR")
    p.add_argument("tid", type=int, metavar="TID", help="the trial id to replay")
    p.add_argument("--json", action="store_true", help="one JSON object: stored and replayed")
    p.add_argument(
        "--force", action="store_true", help="replay even if the space file changed since"
    )
    p.set_defaults(func=cmd_replay)


def cmd_import(args: argparse.Namespace) -> int:
    from tpetune.migrate.trials_import import PICKLE_WARNING, import_trials, load_pickle
    from tpetune.search.space import Space, load_file, resolve_space_file

    path = resolve_space_file(args.space)
    space = Space(load_file(path)["space"], source=str(path))
    study_dir = args.study_dir or Path("runs") / path.stem
    options = None
    if args.tpe_startup is not None:
        options = {"n_startup_jobs": args.tpe_startup}
    print(PICKLE_WARNING, file=sys.stderr)
    trials = load_pickle(args.file)
    n = import_trials(
        trials, space, study_dir, seed=args.seed, algo=args.algo, options=options, source=args.file
    )
    print(f"imported {n} trials from {args.file} into study {study_dir}")
    print(f"continue it: tpetune run {path} --study-dir {study_dir} --max-evals N")
    return 0


def cmd_best_model(args: argparse.Namespace) -> int:
    from tpetune.study.artifacts import best_model_path, copy_best_model
    from tpetune.study.study import load_study

    study = load_study(args.study_dir)
    if args.output is None:
        print(best_model_path(study))
    else:
        out = copy_best_model(study, args.output)
        print(
            f"wrote {out} (trial {study.best.tid if study.best else '?'}, loss {study.best_loss})"
        )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:

    from tpetune.engine.rerun import format_replay, replay

    result = replay(args.study_dir, args.tid, force=args.force)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_replay(result))
    return 0
