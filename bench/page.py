"""The benchmarks page: fill docs/benchmarks.md's marked blocks from the suite's JSON reports.

The page is hand-written text with blocks between ``<!-- BEGIN bench:NAME -->`` and
``<!-- END bench:NAME -->``; :func:`write_page` replaces each block with the machine the suite
ran on, or one benchmark's table, target verdict and plot (from its :class:`Outcome`), and
leaves every other line as it was.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common

DOCS_PAGE = common.ROOT / "docs" / "benchmarks.md"


@dataclass
class Outcome:
    """One benchmark's run as the page shows it: its status and, when it ran, its report."""

    name: str
    status: str  # "ok", "failed (...)", "timed out after N s"
    seconds: float
    report: dict[str, Any] | None = None
    #: When and how it ran, if not in the suite run the page's machine block names.
    stamp: str | None = None
    command: str | None = None


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
    stamp = outcome.stamp or stamp
    if report is None:
        return f"**{outcome.status}** in the run of {stamp}; see `{out / outcome.name}.log`."
    kind = "a quick (smoke) run" if report.get("quick") else "the full run"
    how = f" with `{outcome.command}`" if outcome.command else ""
    lines = [f"_Measured {stamp}{how}, {kind}, in {report['seconds']:.0f} s._", ""]
    table = report["table"]
    lines.append(md_table(table["columns"], table["rows"]))
    met = report.get("target_met")
    verdict = "" if met is None else (" — **met**" if met else " — **not met**")
    lines += ["", f"Target: {report.get('target') or 'none'}{verdict}."]
    pngs = report.get("png") or []
    for png in [pngs] if isinstance(pngs, str) else pngs:  # one plot or several
        rel = os.path.relpath(out / png, page.parent)
        lines += ["", f"![{Path(png).stem}]({rel})"]
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
    machine_block: bool = True,
) -> None:
    """Fill the page's blocks; ``stamp`` and ``info`` default to now and this machine.

    ``machine_block`` False (a run of some benchmarks only) leaves the machine block, which
    describes the last full run, as it is; the blocks of the benchmarks not run stay too.
    """
    stamp = stamp or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    info = info or machine()
    took = "" if total_s is None else f", {total_s / 60:.1f} minutes end to end"
    blocks = {}
    if machine_block:
        blocks["machine"] = "\n".join(
            [
                f"Measured {stamp} with `{command}`{took}.",
                "",
                md_table(["", ""], [[k, v] for k, v in info.items()]),
            ]
        )
    for outcome in outcomes:
        blocks[outcome.name] = render_block(outcome, page, out, stamp)
    template = DOCS_PAGE.read_text() if DOCS_PAGE.exists() else ""
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(fill_page(template, blocks))
    print(f"tables written to {page}")
