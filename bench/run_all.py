"""Run the whole benchmark suite, each benchmark in its own process, and publish the figures.

    python -m bench                  # the full suite (45 min in the published run); docs refreshed
    python -m bench --quick          # a smoke run (~4 min) into a temp folder; docs untouched
    python -m bench --quick --out /tmp/bench --only pruning,parallel
    python bench/run_all.py --overhead-trials 100,1000   # leave out the 12-minute 5,000-trial run

Runs overhead, stock_epoch, memory, pruning, strategies, parallel and time_to_quality as
subprocesses with a timeout each, streaming what they print. Each writes ``NAME.json`` (the
figures; see bench/common.py) and, where a plot makes sense, ``NAME.png`` into ``--out``
(default docs/bench/ for a full run, a new temp folder for ``--quick``); stderr goes to
``NAME.log``. Scripts without a ``--json`` flag have their printed lines parsed instead.

Then it fills the tables of docs/benchmarks.md (machine, command, date, one table per
benchmark) from the JSONs: in place for a full run into docs/bench/ (or where ``--docs``
says), else into ``OUT/benchmarks.md``, so a smoke run never rewrites the published page.
A benchmark that fails or times out is reported in the summary and makes the exit code 1;
the others still run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import re
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

BENCH = Path(__file__).resolve().parent
DOCS_PAGE = common.ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Benchmark:
    name: str
    timeout_s: int  # full run; a quick run gets QUICK_TIMEOUT_S
    target: str = ""  # for the scripts that do not write one into their JSON


BENCHMARKS = (
    Benchmark(
        "overhead",
        1200,
        "tpetune / fmin <= 1.10 from 500 trials on (the core issue's scale) and faster than "
        "fmin's pickle; opening 5,000 trials < 1 s",
    ),
    Benchmark("stock_epoch", 900, "StockObjective / plain model.fit <= 1.05 per epoch"),
    Benchmark("memory", 900, "none stated: RSS growth with clear_session against without"),
    Benchmark("pruning", 1800),
    Benchmark("strategies", 1500),
    Benchmark("parallel", 900),
    Benchmark("time_to_quality", 2400),
)
QUICK_TIMEOUT_S = 240
#: (trials, open-trials) of overhead.py's runs. TPE's cost per proposal grows with the trials
#: before it, so 5,000 trials take ~6 min per driver on 2 cores; fmin's pickle persistence
#: rewrites the whole file after every trial (~O(n^2), ~15 min more at 5,000), so it is timed
#: up to PICKLE_MAX_TRIALS only.
FULL_OVERHEAD = ((100, 1000), (1000, 5000), (5000, 5000))
PICKLE_MAX_TRIALS = 1000
QUICK_OVERHEAD = ((100, 1000),)


# -- running one script ------------------------------------------------------------------------
@dataclass
class Outcome:
    name: str
    status: str  # "ok", "failed (...)", "timed out after N s"
    seconds: float
    report: dict[str, Any] | None = None


def run_script(cmd: list[str], timeout: float, log: Path) -> tuple[int | None, str, float]:
    """Run ``cmd`` from the repository root, streaming its stdout; stderr goes to ``log``.

    Returns (exit code or None on timeout, stdout, seconds). A timed-out script is killed with
    its whole process group (its worker processes and Spark's JVM included)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
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
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
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
    return code, "".join(lines), time.perf_counter() - clock


def _pump(stream: Any, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)
        print(f"  | {line}", end="", flush=True)


def script_cmd(name: str, quick: bool, *extra: str) -> list[str]:
    return [sys.executable, str(BENCH / f"{name}.py"), *(["--quick"] if quick else []), *extra]


def has_json_flag(name: str) -> bool:
    """Whether the script takes ``--json`` (read from its source: importing it is slow)."""
    return '"--json"' in (BENCH / f"{name}.py").read_text()


def failure(code: int | None, timeout: float) -> str | None:
    if code is None:
        return f"timed out after {timeout:.0f} s"
    return None if code == 0 else f"failed (exit code {code})"


# -- the benchmarks ----------------------------------------------------------------------------
def run_own(b: Benchmark, out: Path, quick: bool, timeout: float) -> Outcome:
    """One of the scripts that write the common JSON (pruning, strategies, ...)."""
    path = out / f"{b.name}.json"
    path.unlink(missing_ok=True)  # a stale file must not pass for this run's figures
    cmd = script_cmd(b.name, quick, "--json", str(path))
    code, _, seconds = run_script(cmd, timeout, out / f"{b.name}.log")
    status = failure(code, timeout)
    if status is None and not path.exists():
        status = f"failed (wrote no {path.name})"
    report = json.loads(path.read_text()) if status is None else None
    return Outcome(b.name, status or "ok", seconds, report)


def run_overhead(
    b: Benchmark, out: Path, quick: bool, timeout: float, sizes: tuple[tuple[int, int], ...]
) -> Outcome:
    """overhead.py once per (trials, open-trials), combined into one report."""
    runs, seconds, status = [], 0.0, None
    for trials, open_trials in sizes:
        path = out / f"overhead_{trials}.json"
        path.unlink(missing_ok=True)
        extra = ["--trials", str(trials), "--open-trials", str(open_trials), "--json", str(path)]
        if trials > PICKLE_MAX_TRIALS:
            extra.append("--no-pickle")
        # TPE's cost per proposal grows with the trials before it: the run takes ~ trials².
        limit = timeout * max(1.0, trials / 1000) ** 2
        cmd = [sys.executable, str(BENCH / "overhead.py"), *extra]
        code, _, took = run_script(cmd, limit, out / f"overhead_{trials}.log")
        seconds += took
        status = failure(code, limit) or (None if path.exists() else "failed (no JSON)")
        if status is not None:
            break
        runs.append(json.loads(path.read_text()))
    if status is not None:
        return Outcome(b.name, status, seconds)
    return Outcome(b.name, "ok", seconds, overhead_report(runs, quick, seconds, b.target))


def overhead_report(runs: list[dict[str, Any]], quick: bool, seconds: float, target: str) -> dict:
    columns = [
        "trials",
        "same proposals",
        "fmin ms/trial",
        "fmin+pickle ms/trial",
        "tpetune ms/trial",
        "tpetune / fmin",
        "tpetune / pickle",
        "own ms/trial: fmin, pickle, tpetune",
        "pickle size",
        "study.db size",
        "open time",
    ]

    def per_trial(r: dict[str, Any], key: str) -> str:
        return f"{1000 * r[key] / r['trials']:.2f}" if key in r else "not run"

    def own(r: dict[str, Any]) -> str:
        keys = ("fmin", "fmin_pickle", "tpetune")
        return ", ".join(
            f"{r[f'{k}_own_ms_per_trial']:.2f}" if f"{k}_own_ms_per_trial" in r else "-"
            for k in keys
        )

    rows = [
        [
            f"{r['trials']:,}",
            {"True": "yes", "False": "no"}.get(str(r.get("same_proposals")), "?"),
            *(per_trial(r, k) for k in ("fmin_s", "fmin_pickle_s", "tpetune_s")),
            f"{r['ratio_tpetune_vs_fmin']:.3f}",
            f"{r['ratio_tpetune_vs_fmin_pickle']:.3f}" if "fmin_pickle_s" in r else "not run",
            own(r),
            f"{r['pickle_bytes'] / 1e3:.0f} kB" if "pickle_bytes" in r else "not run",
            f"{r['study_bytes'] / 1e3:.0f} kB",
            f"{r['open_s']:.3f} s ({r['open_trials']:,} trials)",
        ]
        for r in runs
    ]
    last = runs[-1]
    figures = {
        "ratio_tpetune_vs_fmin": last["ratio_tpetune_vs_fmin"],
        "ms_per_trial_tpetune": 1000 * last["tpetune_s"] / last["trials"],
        "own_ms_per_trial_tpetune": last["tpetune_own_ms_per_trial"],
        "own_ms_per_trial_fmin": last["fmin_own_ms_per_trial"],
        "open_s": max(r["open_s"] for r in runs if r["open_trials"] == last["open_trials"]),
        "open_trials": last["open_trials"],
        "study_bytes": last["study_bytes"],
    }
    pickled = [r for r in runs if "ratio_tpetune_vs_fmin_pickle" in r]
    if pickled:
        figures["ratio_tpetune_vs_fmin_pickle"] = pickled[-1]["ratio_tpetune_vs_fmin_pickle"]
    met = (
        # The core issue's target is for 500 trials; at 100 most of TPE's proposals are its
        # random start-up, nearly free, so a fixed ~0.4 ms/trial weighs more (shown, not judged).
        all(r["ratio_tpetune_vs_fmin"] <= 1.10 for r in runs if r["trials"] >= 500)
        and all(r["ratio_tpetune_vs_fmin_pickle"] < 1 for r in pickled)
        and all(r.get("same_proposals", True) for r in runs)
        and (last["open_trials"] < 5000 or figures["open_s"] < 1.0)
    )
    return wrap("overhead", quick, seconds, figures, (columns, rows), target, met, runs=runs)


PARSERS: dict[str, dict[str, str]] = {
    "stock_epoch": {
        # The first number on each line: the median (an older format had "NAME: X ms/epoch").
        "plain_ms_per_epoch": r"plain model\.fit\s*:?\s*([\d.]+)",
        "objective_ms_per_epoch": r"StockObjective\s*:?\s*([\d.]+)",
        "ratio_objective_vs_plain": r"ratio objective/plain:?\s*([\d.]+)",
    },
    "memory": {
        "growth_with_clear": r"with clear_session\s*:.*growth ([\d.]+)x",
        "mib_per_trial_with_clear": r"with clear_session\s*:.*, ([+-]?[\d.]+) MiB/trial",
        "growth_without_clear": r"without \(baseline\)\s*:.*growth ([\d.]+)x",
        "mib_per_trial_without_clear": r"without \(baseline\)\s*:.*, ([+-]?[\d.]+) MiB/trial",
        "ratio_growth_with_vs_without": r"ratio of growth factors.*:\s*([\d.]+)",
    },
}


def run_printing(b: Benchmark, out: Path, quick: bool, timeout: float) -> Outcome:
    """stock_epoch.py and memory.py: their ``--json`` if they have one, else their printout."""
    path = out / f"{b.name}.json"
    path.unlink(missing_ok=True)
    extra = ("--json", str(path)) if has_json_flag(b.name) else ()
    code, stdout, seconds = run_script(
        script_cmd(b.name, quick, *extra), timeout, out / f"{b.name}.log"
    )
    status = failure(code, timeout)
    if status is not None:
        return Outcome(b.name, status, seconds)
    if extra and path.exists():
        figures = json.loads(path.read_text())
    else:
        figures = {}
        for key, pattern in PARSERS.get(b.name, {}).items():
            found = re.search(pattern, stdout)
            if found:
                figures[key] = float(found.group(1))
    scalars = {k: v for k, v in figures.items() if isinstance(v, int | float)}
    table = (["figure", "value"], [[k, common.fmt(float(v), ".4g")] for k, v in scalars.items()])
    if not scalars:
        # Its output format changed: publish the printout rather than nothing.
        print(f"  ({b.name}: no figures recognised in its output; the printout is kept)")
        table = (["output"], [[line] for line in stdout.splitlines() if line.strip()])
    report = wrap(b.name, quick, seconds, figures, table, b.target, None)
    report["stdout"] = stdout
    return Outcome(b.name, "ok", seconds, report)


def wrap(
    name: str,
    quick: bool,
    seconds: float,
    figures: dict[str, Any],
    table: tuple[list[str], list[list[str]]],
    target: str,
    met: bool | None,
    **extra: Any,
) -> dict[str, Any]:
    """The common report (see bench/common.py) for a script that does not write it itself."""
    return {
        "benchmark": name,
        "quick": quick,
        "seconds": seconds,
        "settings": {},
        "figures": figures,
        "target": target,
        "target_met": met,
        "table": {"columns": table[0], "rows": table[1]},
        "png": None,
        **extra,
    }


# -- the docs page -----------------------------------------------------------------------------
@functools.cache
def machine() -> dict[str, str]:
    """What the figures were measured on (read cheaply: no TensorFlow import)."""
    import platform
    from importlib import metadata

    def version(*dists: str) -> str:
        for dist in dists:
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        return "not installed"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem = re.search(r"MemTotal:\s+(\d+) kB", _read("/proc/meminfo"))
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "RAM": f"{int(mem.group(1)) / 2**20:.1f} GiB" if mem else "unknown",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "TensorFlow": version("tensorflow-cpu", "tensorflow"),
        "Keras": version("keras"),
        "hyperopt": version("hyperopt"),
        "Optuna": version("optuna"),
        "PySpark": version("pyspark"),
        "Java": _java_version(),
        "tpetune": version("tpetune"),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _java_version() -> str:
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    lines = (done.stderr or done.stdout).splitlines()
    return lines[0].strip() if lines else "unknown"


def md_table(columns: list[str], rows: list[list[str]]) -> str:
    def cells(values: list[str]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    return "\n".join([cells(columns), "|" + "---|" * len(columns), *(cells(r) for r in rows)])


def render_block(outcome: Outcome, page: Path, out: Path, stamp: str) -> str:
    report = outcome.report
    if report is None:
        return f"**{outcome.status}** in the run of {stamp}; see `{out / outcome.name}.log`."
    kind = "a quick (smoke) run" if report.get("quick") else "the full run"
    lines = [f"_Measured {stamp}, {kind}, in {report['seconds']:.0f} s._", ""]
    table = report["table"]
    lines.append(md_table(table["columns"], table["rows"]))
    met = report.get("target_met")
    verdict = "" if met is None else (" — **met**" if met else " — **not met**")
    lines += ["", f"Target: {report.get('target') or 'none'}{verdict}."]
    if report.get("png"):
        rel = os.path.relpath(out / report["png"], page.parent)
        lines += ["", f"![{outcome.name}]({rel})"]
    return "\n".join(lines)


def fill_page(template: str, blocks: dict[str, str]) -> str:
    """Replace the text between ``<!-- BEGIN bench:NAME -->`` and ``<!-- END bench:NAME -->``."""
    for name, body in blocks.items():
        begin, end = (re.escape(f"<!-- {w} bench:{name} -->") for w in ("BEGIN", "END"))
        pattern = re.compile(rf"({begin}\n).*?(\n{end})", re.S)
        # A function, not a replacement string: the body may hold backslashes.
        template = pattern.sub(functools.partial(_keep_markers, body), template)
    return template


def _keep_markers(body: str, match: re.Match[str]) -> str:
    return match.group(1) + body + match.group(2)


def write_page(
    outcomes: list[Outcome],
    page: Path,
    out: Path,
    command: str,
    *,
    stamp: str | None = None,
    info: dict[str, str] | None = None,
    total_s: float | None = None,
) -> None:
    """Fill the page's blocks; ``stamp`` and ``info`` default to now and this machine."""
    stamp = stamp or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    info = info or machine()
    took = "" if total_s is None else f", {total_s / 60:.1f} minutes end to end"
    blocks = {
        "machine": "\n".join(
            [
                f"Measured {stamp} with `{command}`{took}.",
                "",
                md_table(["", ""], [[k, v] for k, v in info.items()]),
            ]
        ),
    }
    for outcome in outcomes:
        blocks[outcome.name] = render_block(outcome, page, out, stamp)
    template = DOCS_PAGE.read_text() if DOCS_PAGE.exists() else ""
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(fill_page(template, blocks))
    print(f"tables written to {page}")


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
        help="comma-separated trial counts for overhead.py (default: 100,1000,5000; quick: 100)",
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


def overhead_sizes(args: argparse.Namespace) -> tuple[tuple[int, int], ...]:
    if not args.overhead_trials:
        return QUICK_OVERHEAD if args.quick else FULL_OVERHEAD
    counts = [int(n) for n in args.overhead_trials.split(",")]
    return tuple((n, 1000 if n < 1000 else 5000) for n in counts)


def run_one(b: Benchmark, args: argparse.Namespace, out: Path) -> Outcome:
    timeout = QUICK_TIMEOUT_S if args.quick else b.timeout_s
    try:
        if b.name == "overhead":
            outcome = run_overhead(b, out, args.quick, timeout, overhead_sizes(args))
        elif b.name in PARSERS:
            outcome = run_printing(b, out, args.quick, timeout)
        else:
            outcome = run_own(b, out, args.quick, timeout)
    except (OSError, ValueError, KeyError) as exc:  # unreadable output fails this one only
        outcome = Outcome(b.name, f"failed ({type(exc).__name__}: {exc})", 0.0)
    if outcome.report is not None:
        if not outcome.report.get("png"):
            outcome.report["png"] = suite_plots.draw(b.name, outcome.report, out)
        path = out / f"{b.name}.json"
        path.write_text(json.dumps(common.finite_or_none(outcome.report), indent=2) + "\n")
    return outcome


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
        status = summary["benchmarks"].get(b.name, {}).get("status", "not run")
        if status != "ok" or not path.is_file():
            outcomes.append(Outcome(b.name, status, 0.0))
            continue
        report = json.loads(path.read_text())
        if b.name == "overhead" and report.get("runs"):
            # Its table is built here, not by the script: rebuild it with this code.
            report = overhead_report(report["runs"], report["quick"], report["seconds"], b.target)
        if b.name in suite_plots.DRAW:
            report["png"] = suite_plots.draw(b.name, report, out)
            path.write_text(json.dumps(common.finite_or_none(report), indent=2) + "\n")
        outcomes.append(Outcome(b.name, status, report["seconds"], report))
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
        outcomes.append(run_one(b, args, out))
        print(f"== {b.name}: {outcomes[-1].status} in {outcomes[-1].seconds:.1f} s", flush=True)
    total = time.perf_counter() - clock
    print_summary(outcomes, total)
    summary = {
        "command": command,
        "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": total,
        "machine": machine(),
        "benchmarks": {o.name: {"status": o.status, "seconds": o.seconds} for o in outcomes},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    publish = not args.quick and out == common.DOCS_BENCH.resolve()
    page = args.docs or (DOCS_PAGE if publish else out / "benchmarks.md")
    write_page(outcomes, page, out, command, total_s=total)
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
