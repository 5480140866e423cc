"""Plain-text views of a study for the terminal (``tpetune show`` and the end of a run)."""

from __future__ import annotations

import json
from typing import Any

from tpetune.study.store import TrialRecord, TrialState
from tpetune.study.study import Study

_MAX_PARAMS_WIDTH = 110


def printable(text: str) -> str:
    """``text`` with newlines, tabs and other control characters escaped (``\\n``), so a
    label or value cannot break a table's lines or columns."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def format_value(value: Any) -> str:
    """A param value as people read it: 6 significant digits for floats, JSON for the rest."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return printable(value)
    return json.dumps(value, separators=(",", ":"))


def format_params(params: dict[str, Any], width: int = _MAX_PARAMS_WIDTH) -> str:
    text = ", ".join(f"{printable(k)}={format_value(v)}" for k, v in params.items())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def trial_table(records: list[TrialRecord], *, best_tid: int | None = None) -> str:
    """A fixed-width table: tid, state, loss, duration, params (active ones only)."""
    lines = [f"{'tid':>5}  {'state':<7} {'loss':>12} {'time':>7}  params"]
    for r in records:
        loss = "-" if r.loss is None else f"{r.loss:.6g}"
        mark = "*" if r.tid == best_tid else " "
        detail = format_params(r.params)
        if r.state is TrialState.FAIL and r.error:
            detail += f"  [{printable(r.error[:60])}]"
        detail += pause_note(r)
        lines.append(
            f"{r.tid:>4}{mark}  {r.state.value:<7} {loss:>12} "
            f"{format_duration(r.duration_s):>7}  {detail}"
        )
    return "\n".join(lines)


def pause_note(r: TrialRecord) -> str:
    """`` [paused at 3, thawed 1x]`` for a trial a freeze-thaw pruner paused, else ``""``."""
    paused_at = r.metrics.get("paused_at") if isinstance(r.metrics, dict) else None
    if not paused_at and r.state is not TrialState.PAUSED:
        return ""
    steps = ", ".join(map(str, paused_at or [])) or "?"
    thaws = int(r.metrics.get("thaws") or 0)
    return f"  [paused at {steps}" + (f", thawed {thaws}x]" if thaws else "]")


def progress_line(study: Study) -> str:
    p = study.progress
    done = (
        f"{p.done} trials done ({p.total} asked for)"
        if p.lowered
        else f"{p.done}/{p.total} trials done"
    )
    parts = [done, f"{p.failed} failed", f"{p.pruned} pruned"]
    if p.paused:
        parts.append(f"{p.paused} paused")
    if p.running:  # rows left `running` by a stop or a crash are not running now
        parts.append(f"{p.running} {'running' if study.is_running() else 'interrupted'}")
    parts.append(f"{format_duration(p.elapsed_s)} elapsed")
    return ", ".join(parts)


def _interrupted_by(record: TrialRecord) -> str:
    """``interrupted by Ctrl-C``/``SIGTERM`` (recorded by a clean stop), else a crash."""
    error = record.error or ""
    return error if error.startswith("interrupted by") else "interrupted by a crash or kill"


def best_block(study: Study) -> str:
    best = study.best
    if best is None:
        return "best: no finished trial yet"
    lines = [f"best: trial {best.tid}, loss {best.loss:.6g}"]
    labels = {k: printable(k) for k in best.params}
    width = max((len(k) for k in labels.values()), default=0)
    lines += [f"  {labels[k]:<{width}} = {format_value(v)}" for k, v in best.params.items()]
    return "\n".join(lines)


def show_text(study: Study, *, top: int = 5, last: int | None = 20) -> str:
    """What ``tpetune show`` prints: progress, best trial, top N and the latest trials."""
    meta = study.meta
    running = study.is_running()
    head = (
        f"study {study.study_dir}  (algo {meta.get('algo')}, seed {meta.get('seed')}"
        f"{', lag ' + str(meta['lag']) if meta.get('lag') else ''}"
        f"{', running now' if running else ''})"
    )
    out = [head, progress_line(study), "", best_block(study)]
    stale = [r for r in study.records if r.state is TrialState.RUNNING]
    if stale and not running:
        how = sorted({_interrupted_by(r) for r in stale})
        out.append(
            f"\ntrial(s) {', '.join(str(r.tid) for r in stale)} were {' or '.join(how)}; "
            "they re-run with the same params when the study resumes"
        )
    paused = [r.tid for r in study.records if r.state is TrialState.PAUSED]
    if paused:
        out.append(
            f"\ntrial(s) {', '.join(map(str, paused))} are paused with their checkpoints; "
            "the freeze-thaw pruner may thaw them when the study resumes"
        )
    best_tid = study.best.tid if study.best else None
    ranked = study.top(top)
    if ranked:
        out += ["", f"top {len(ranked)} trials:", trial_table(ranked, best_tid=best_tid)]
    records = study.records if last is None else study.records[-last:]
    if records:
        title = (
            "all trials:"
            if last is None or len(study.records) <= last
            else (f"last {len(records)} of {len(study.records)} trials (--all for every one):")
        )
        out += ["", title, trial_table(records, best_tid=best_tid)]
    return "\n".join(out)
