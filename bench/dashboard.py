"""``tpetune dashboard`` on a large study: first start and CPU while the study is idle.

    python bench/dashboard.py                       # 20,000 trials, baseline d2ff1a0 (~15 min)
    python bench/dashboard.py --n 5000 --idle 20    # a smaller study
    python bench/dashboard.py --baseline-src DIR    # the baseline from a checkout of your own
    python bench/dashboard.py --no-baseline         # this checkout only

Builds a synthetic study of N finished trials (a nested space like the bundled stock study's:
a choice with conditional parameters, 12-epoch curves, metrics) straight into the store, then
runs two real ``tpetune dashboard`` processes on it one after the other, each with its own
Optuna copy (``--db``): the baseline (the code before issue 26's item 13, checked out with
``git worktree`` from ``--baseline-rev``: a full Optuna export through ``create_new_trial``,
then every poll reloads the whole study and counts the copy's trials through Optuna) and this
checkout (a bulk first export; polls that ask SQLite's change counter and read only changed
trials). For each it prints:

- first start: seconds from launch until the URL is printed (the export is complete then);
- restart: the same with the copy already written (only what is new is added);
- idle CPU: percent of one core used over ``--idle`` seconds of a study nobody writes to,
  with the default 1 s poll, from ``/proc/PID/stat``; and the resident memory then.

Only ratios measured in one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from hyperopt import hp  # noqa: E402

from tpetune.search.space import Space  # noqa: E402
from tpetune.study.store import Store, TrialRecord, TrialState  # noqa: E402

SPACE = Space(
    {
        "lr": hp.loguniform("lr", -9, -2),
        "batch": hp.choice("batch", [16, 32, 64]),
        "model": hp.choice(
            "model",
            [
                {"kind": "lstm", "units": hp.quniform("units", 8, 128, 8)},
                {"kind": "dense", "layers": hp.randint("layers", 1, 4)},
            ],
        ),
        "dropout": hp.uniform("dropout", 0.0, 0.5),
    }
)


def build(study_dir: Path, n: int) -> None:
    """N finished trials written through the store's own methods (what a driver does)."""
    store = Store.create(study_dir, {"space": SPACE.describe(), "seed": 0, "max_evals": n})
    t0 = time.time() - 60 * n
    for tid in range(n):
        branch = tid % 2
        vals = {"lr": 1e-3 * (1 + tid % 7), "batch": tid % 3, "model": branch, "dropout": 0.1}
        vals.update({"units": 8.0 * (1 + tid % 16)} if branch == 0 else {"layers": 1 + tid % 3})
        curve = [1.0 / (e + 1) + (tid % 11) / 100 for e in range(12)]
        started = t0 + 60 * tid
        running = TrialRecord(
            tid=tid,
            state=TrialState.RUNNING,
            loss=None,
            params=SPACE.params(vals),
            vals=vals,
            args=SPACE.evaluate(vals),
            started=started,
        )
        store.begin_trial(running)
        done = TrialRecord(
            **{
                **running.__dict__,
                "state": TrialState.PRUNED if tid % 5 == 0 else TrialState.OK,
                "loss": curve[-1],
                "curves": {"loss": [v + 0.02 for v in curve], "val_loss": curve},
                "metrics": {"mae": curve[-1] / 2, "rmse": curve[-1]},
                "finished": started + 50,
                "duration_s": 50.0,
            }
        )
        store.finish_trial(done)
    store.close()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_dashboard(src: Path, study_dir: Path, db: Path, idle_s: float, log: Path) -> dict:
    """Launch ``tpetune dashboard`` from ``src``; time its start; measure it idle; stop it."""
    env = {**os.environ, "PYTHONPATH": str(src), "XDG_CACHE_HOME": str(db.parent)}
    cmd = [sys.executable, "-m", "tpetune", "dashboard", str(study_dir), "--port", "0"]
    cmd += ["--db", str(db)]
    start = time.perf_counter()
    out = log.open("wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=src)
    try:
        while "http://127.0.0.1:" not in log.read_text():
            if proc.poll() is not None:
                raise SystemExit(f"dashboard exited {proc.returncode}:\n{log.read_text()}")
            time.sleep(0.05)
        started_s = time.perf_counter() - start
        time.sleep(2.0)  # let the first polls settle
        cpu0, t0 = _cpu_s(proc.pid), time.perf_counter()
        time.sleep(idle_s)
        cpu = (_cpu_s(proc.pid) - cpu0) / (time.perf_counter() - t0)
        rss = _rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"start_s": started_s, "idle_cpu_pct": 100 * cpu, "rss_mb": rss}


def baseline_checkout(rev: str, into: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), rev],
        check=True,
        capture_output=True,
    )
    return into


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=20_000, help="trials in the study (20000)")
    p.add_argument("--idle", type=float, default=30.0, help="seconds measured idle (30)")
    p.add_argument("--baseline-rev", default="d2ff1a0", help="git revision of the baseline")
    p.add_argument("--baseline-src", type=Path, help="a checkout to use as the baseline")
    p.add_argument(
        "--no-baseline", action="store_true", help="measure this checkout only (no ratios)"
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tpetune-bench-dash-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.perf_counter()
        build(tmp / "study", args.n)
        print(f"built a {args.n}-trial study in {time.perf_counter() - t:.1f} s", flush=True)
        worktree = None
        base = args.baseline_src
        if base is None and not args.no_baseline:
            worktree = base = baseline_checkout(args.baseline_rev, tmp / "baseline")
        runs = (
            [("this checkout", ROOT)]
            if base is None
            else [("baseline", base), ("this checkout", ROOT)]
        )
        try:
            results = {}
            for name, src in runs:
                db = tmp / ("mirror-" + name.replace(" ", "_")) / "optuna.db"
                db.parent.mkdir()
                first = run_dashboard(src, tmp / "study", db, args.idle, tmp / f"{name}.log")
                again = run_dashboard(src, tmp / "study", db, 5.0, tmp / f"{name}-2.log")
                results[name] = {**first, "restart_s": again["start_s"]}
                r = results[name]
                print(
                    f"{name:>14}: first start {r['start_s']:7.1f} s, restart "
                    f"{r['restart_s']:6.1f} s, idle CPU {r['idle_cpu_pct']:5.1f}% of a core, "
                    f"RSS {r['rss_mb']:5.0f} MB",
                    flush=True,
                )
        finally:
            if worktree is not None:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                    check=False,
                )
        if "baseline" not in results:
            return
        old, new = results["baseline"], results["this checkout"]
        # /proc counts CPU in clock ticks: below one tick over the window reads as 0.
        tick_pct = 100 / os.sysconf("SC_CLK_TCK") / args.idle
        idle = (
            f"{old['idle_cpu_pct'] / new['idle_cpu_pct']:.0f}x"
            if new["idle_cpu_pct"] > 0
            else f">= {old['idle_cpu_pct'] / tick_pct:.0f}x (this checkout: under one tick)"
        )
        print(
            f"ratios (baseline / this checkout) at {args.n} trials: first start "
            f"{old['start_s'] / new['start_s']:.1f}x, restart "
            f"{old['restart_s'] / new['restart_s']:.1f}x, idle CPU {idle}"
        )


if __name__ == "__main__":
    main()
