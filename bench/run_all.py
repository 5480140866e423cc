"""Run the whole benchmark suite, each benchmark in its own process, and publish the figures.

    python -m bench                  # the full suite; docs refreshed
    python -m bench --quick          # a smoke run (~6 min) into a temp folder; docs untouched
    python -m bench --quick --out /tmp/bench --only pruning,replay
    python -m bench --overhead-trials 100,1000   # leave out the 12-minute 5,000-trial run
    python -m bench --render         # the page again from the JSONs of the last full run

Every benchmark is a script ``bench/NAME.py`` that takes ``--quick`` and ``--json PATH`` and
writes one report there (:class:`bench.common.Report`). The suite runs each as a subprocess
with a timeout, streaming what it prints; its stderr goes to ``NAME.log`` in ``--out``
(default docs/bench/ for a full run, a new temp folder for ``--quick``). Where a script draws
no plot, bench/suite_plots.py draws one from its report. Then bench/page.py fills the tables of
docs/benchmarks.md: in place for a full run into docs/bench/ (or where ``--docs`` says), else
into ``OUT/benchmarks.md``, so a smoke run never rewrites the published page. A benchmark
that fails or times out is reported in the summary and makes the exit code 1; the others
still run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as `python bench/run_all.py`: make the `bench` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, suite_plots
from bench.page import DOCS_PAGE, Outcome, machine, write_page

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Benchmark:
    name: str
    timeout_s: int  # full run; a quick run gets QUICK_TIMEOUT_S


BENCHMARKS = (
    # TPE's cost per proposal grows with the trials before it: 5,000 trials take ~6 min per
    # driver on 2 cores, and fmin's pickle is timed up to 1,000 (see bench/overhead.py).
    Benchmark("overhead", 3600),
    Benchmark("stock_epoch", 900),
    Benchmark("memory", 900),
    Benchmark("pruning", 1800),
    Benchmark("strategies", 1500),
    Benchmark("parallel", 900),
    Benchmark("time_to_quality", 2400),
    Benchmark("replay", 3600),
)
QUICK_TIMEOUT_S = 240


# -- running one script ------------------------------------------------------------------------
def run_script(cmd: list[str], timeout: float, log: Path) -> tuple[int | None, float]:
    """Run ``cmd`` from the repository root, streaming its stdout; stderr goes to ``log``.

    Returns (exit code or None on timeout, seconds). A timed-out script is killed with its
    whole process group (its worker processes and Spark's JVM included)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    clock = time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=common.ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
        assert proc.stdout is not None
        reader = threading.Thread(target=_pump, args=(proc.stdout,), daemon=True)
        reader.start()
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        reader.join(timeout=10)
    if log.stat().st_size == 0:
        log.unlink()  # nothing on stderr: no empty files in the output folder
    return code, time.perf_counter() - clock


def _pump(stream: Any) -> None:
    for line in stream:
        print(f"  | {line}", end="", flush=True)


def run_benchmark(b: Benchmark, args: argparse.Namespace, out: Path) -> Outcome:
    """Run ``bench/NAME.py --json OUT/NAME.json``, read its report, draw its plot if needed."""
    timeout = QUICK_TIMEOUT_S if args.quick else b.timeout_s
    path = out / f"{b.name}.json"
    path.unlink(missing_ok=True)  # a stale file must not pass for this run's figures
    cmd = [sys.executable, str(BENCH / f"{b.name}.py"), "--json", str(path)]
    if args.quick:
        cmd.append("--quick")
    if b.name == "overhead" and args.overhead_trials:
        cmd += ["--sizes", args.overhead_trials]
    if b.name == "replay" and args.replay_cache:
        cmd += ["--cache", str(args.replay_cache)]
    code, seconds = run_script(cmd, timeout, out / f"{b.name}.log")
    if code is None:
        return Outcome(b.name, f"timed out after {timeout:.0f} s", seconds)
    if code != 0:
        return Outcome(b.name, f"failed (exit code {code})", seconds)
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # unreadable output fails this one only
        return Outcome(b.name, f"failed (no readable {path.name}: {type(exc).__name__})", seconds)
    if not report.get("png"):
        report["png"] = suite_plots.draw(b.name, report, out)
        path.write_text(json.dumps(common.finite_or_none(report), indent=2) + "\n")
    return Outcome(b.name, "ok", seconds, report)


# -- main --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    names = ", ".join(b.name for b in BENCHMARKS)
    p.add_argument("--quick", action="store_true", help="a smoke run of every benchmark")
    p.add_argument("--out", type=Path, help="folder for the JSONs, PNGs and logs")
    p.add_argument("--only", help=f"comma-separated benchmarks to run ({names})")
    p.add_argument("--skip", help="comma-separated benchmarks to leave out")
    p.add_argument("--docs", type=Path, help="write the filled benchmarks page here")
    p.add_argument(
        "--render",
        action="store_true",
        help="run nothing: redraw the page and the suite's PNGs from the JSONs of an earlier "
        "run in --out (default docs/bench), keeping its date, command and machine",
    )
    p.add_argument(
        "--overhead-trials",
        metavar="N[:OPEN],...",
        help="trial counts for overhead.py (its --sizes; default 100,1000,5000, quick 100)",
    )
    p.add_argument(
        "--replay-cache",
        type=Path,
        metavar="PATH",
        help="replay.py's --cache: finished replays are kept there and not run again",
    )
    args = p.parse_args(argv)
    known = {b.name for b in BENCHMARKS}
    for flag in ("only", "skip"):
        unknown = set((getattr(args, flag) or "").split(",")) - known - {""}
        if unknown:
            p.error(f"--{flag}: unknown benchmark(s) {sorted(unknown)}; known are {names}")
    return args


def selected(args: argparse.Namespace) -> list[Benchmark]:
    only = set(args.only.split(",")) if args.only else {b.name for b in BENCHMARKS}
    skip = set(args.skip.split(",")) if args.skip else set()
    return [b for b in BENCHMARKS if b.name in only and b.name not in skip]


def print_summary(outcomes: list[Outcome], total: float) -> None:
    print(f"\nsummary ({total / 60:.1f} min in all):")
    for o in outcomes:
        met = (o.report or {}).get("target_met")
        target = "" if met is None else ("  target met" if met else "  target not met")
        print(f"  {o.name:<16} {o.status:<28} {o.seconds:7.1f} s{target}")


def render(args: argparse.Namespace) -> int:
    """``--render``: the page from an earlier run's JSONs (e.g. after editing its text)."""
    out = (args.out or common.DOCS_BENCH).resolve()
    summary_path = out / "summary.json"
    if not summary_path.is_file():
        print(f"--render: no summary.json in {out}: run the suite into that folder first")
        return 2
    summary = json.loads(summary_path.read_text())
    outcomes = []
    for b in selected(args):
        path = out / f"{b.name}.json"
        entry = summary["benchmarks"].get(b.name, {})
        status = entry.get("status", "not run")
        when = {"stamp": entry.get("finished"), "command": entry.get("command")}
        if status != "ok" or not path.is_file():
            outcomes.append(Outcome(b.name, status, 0.0, **when))
            continue
        report = json.loads(path.read_text())
        if b.name in suite_plots.DRAW:
            report["png"] = suite_plots.draw(b.name, report, out)
            path.write_text(json.dumps(common.finite_or_none(report), indent=2) + "\n")
        outcomes.append(Outcome(b.name, status, report["seconds"], report, **when))
    publish = out == common.DOCS_BENCH.resolve()
    page = args.docs or (DOCS_PAGE if publish else out / "benchmarks.md")
    stamp = summary.get("finished") or dt.datetime.fromtimestamp(
        summary_path.stat().st_mtime, dt.UTC
    ).strftime("%Y-%m-%d %H:%M UTC")
    write_page(
        outcomes,
        page,
        out,
        summary["command"],
        stamp=stamp,
        info=summary.get("machine"),
        total_s=summary.get("seconds"),
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        return render(args)
    default_out = (
        Path(tempfile.mkdtemp(prefix="tpetune-bench-")) if args.quick else common.DOCS_BENCH
    )
    out = (args.out or default_out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    print(f"{command}: figures into {out}")
    clock = time.perf_counter()
    outcomes = []
    for b in selected(args):
        print(f"\n== {b.name} ==", flush=True)
        outcomes.append(run_benchmark(b, args, out))
        print(f"== {b.name}: {outcomes[-1].status} in {outcomes[-1].seconds:.1f} s", flush=True)
    total = time.perf_counter() - clock
    print_summary(outcomes, total)
    finished = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    partial = len(outcomes) < len(BENCHMARKS)
    entries = {
        o.name: {"status": o.status, "seconds": o.seconds, "finished": finished, "command": command}
        for o in outcomes
    }
    summary_path = out / "summary.json"
    if partial and summary_path.is_file():
        # Some benchmarks only: the earlier full run's summary keeps describing the others.
        summary = json.loads(summary_path.read_text())
        summary["benchmarks"].update(entries)
    else:
        summary = {
            "command": command,
            "finished": finished,
            "seconds": total,
            "machine": machine(),
            "benchmarks": entries,
        }
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    if partial:
        for o in outcomes:
            o.stamp, o.command = finished, command
    publish = not args.quick and out == common.DOCS_BENCH.resolve()
    page = args.docs or (DOCS_PAGE if publish else out / "benchmarks.md")
    write_page(outcomes, page, out, command, total_s=total, machine_block=not partial)
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
