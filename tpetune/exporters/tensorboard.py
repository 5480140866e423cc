"""Export a study as TensorBoard event files for its HParams, Scalars and Time Series views.

Layout of the target folder (``tensorboard --logdir DIR``):

- ``DIR/events.out.tfevents.*``: the HParams experiment: every label of the space with its
  domain (:mod:`tpetune.exporters._params`), a ``trial_state`` hyperparameter
  (ok/pruned/fail/running/paused, to filter on) and the metric ``loss``.
- ``DIR/trial-NNNNN/``: one run per trial: its *active* hyperparameters (a choice by its value),
  ``loss`` (when it has one), every stored per-epoch curve as ``epoch/<name>`` at steps 1, 2, ...,
  and the session's end status (success for ok and pruned, failure for fail; none yet while
  running or paused). Wall times are the trial's own.

Written with TensorBoard's own protobufs and record writer, so no TensorFlow is imported.
Idempotent by tid: a run whose stored state has not changed since the last export (kept in
``trial-NNNNN/.tpetune-state``) is left alone; a changed one is rewritten whole, so TensorBoard
never sees a value twice. A folder written for an earlier study of the same folder (started
again with ``--fresh``) loses its old runs. The study store is only read.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpetune.errors import ConfigError
from tpetune.exporters import Exported, require
from tpetune.exporters._params import Domain, Scalar, domains
from tpetune.study.store import TrialRecord, TrialState

if TYPE_CHECKING:
    from tpetune.study.study import Study

DEFAULT_TARGET = "tensorboard"
EXTRA = "tensorboard"
STATE_HPARAM = "trial_state"
_MARK = ".tpetune-state"
_STUDY_MARK = ".tpetune-study"
_EXPERIMENT_FILE = "events.out.tfevents.0000000000.tpetune.experiment"


def run_name(tid: int) -> str:
    return f"trial-{tid:05d}"


def export(study: Study, target: str | Path | None = None) -> Exported:
    """Write or bring up to date the event files in ``target`` (default ``STUDY_DIR/tensorboard``).

    Raises:
        MissingDependencyError: tensorboard is not installed.
        ConfigError: the target's parent folder does not exist, or the target is a file.
    """
    require("tensorboard", EXTRA)
    root = Path(target) if target is not None else study.study_dir / DEFAULT_TARGET
    if not root.parent.is_dir():
        raise ConfigError(f"folder {root.parent} does not exist: create it or choose another -o")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file: TensorBoard needs a folder, choose another -o")
    root.mkdir(exist_ok=True)
    _forget_other_study(root, study)
    doms = domains(study.meta.get("space"))
    _write_experiment(root, study, doms)
    added = updated = 0
    for record in study.records:
        run = root / run_name(record.tid)
        mark = run / _MARK
        previous = mark.read_text().strip() if mark.is_file() else None
        if previous == record.state.value:
            continue
        _write_run(run, record, doms)
        mark.write_text(record.state.value + "\n")
        if previous is None:
            added += 1
        else:
            updated += 1
    return Exported(str(root), added, updated, len(study.records))


def hparam_value(domain: Domain | None, record: TrialRecord, label: str) -> Scalar:
    """A trial's value of ``label`` as TensorBoard shows it (bool, number or text)."""
    if domain is not None and domain.kind == "categorical":
        index = int(record.vals.get(label, -1))
        if 0 <= index < len(domain.choices):
            return _discrete(domain)[index]
    raw = record.params[label]
    if isinstance(raw, bool | int | float | str):
        return raw
    return json.dumps(raw, sort_keys=True)


def _forget_other_study(root: Path, study: Study) -> None:
    """Runs of an earlier study in this folder (``--fresh`` since) are removed, not mixed in."""
    mark = root / _STUDY_MARK
    created = repr(study.meta.get("created"))
    if mark.is_file() and mark.read_text().strip() != created:
        for run in root.glob("trial-*"):
            shutil.rmtree(run, ignore_errors=True)
    mark.write_text(created + "\n")


def _discrete(domain: Domain) -> list[Any]:
    """A choice's values for ``hp.Discrete``, which needs one type: else all become text."""
    values = list(domain.choices)
    kinds = {
        bool if isinstance(v, bool) else float if isinstance(v, int) else type(v) for v in values
    }
    return values if len(kinds) == 1 and None not in values else [str(v) for v in values]


def _write_experiment(root: Path, study: Study, doms: dict[str, Domain]) -> None:
    # summary_v2, not hparams.api: the latter imports TensorFlow (for its Keras callback).
    from tensorboard.plugins.hparams import summary_v2 as hp

    hparams = []
    for label in study.meta.get("space") or study.param_labels:
        domain = doms.get(label)
        if domain is None:
            hparams.append(hp.HParam(label))
        elif domain.kind == "categorical":
            hparams.append(hp.HParam(label, hp.Discrete(_discrete(domain))))
        elif domain.kind == "int":
            hparams.append(hp.HParam(label, hp.IntInterval(int(domain.low), int(domain.high))))
        else:
            hparams.append(hp.HParam(label, hp.RealInterval(domain.low, domain.high)))
    states = hp.Discrete([s.value for s in TrialState])
    hparams.append(hp.HParam(STATE_HPARAM, states, description="tpetune trial state"))
    metrics = [hp.Metric("loss", display_name="loss", description="the trial's loss")]
    created = float(study.meta.get("created") or time.time())
    pb = hp.hparams_config_pb(hparams=hparams, metrics=metrics, time_created_secs=created)
    path = root / _EXPERIMENT_FILE
    tmp = path.with_name(".tmp." + path.name)  # replaced whole: readers never see half
    with _events(tmp) as write:
        write(pb, created, 0)
    tmp.replace(path)


def _write_run(run: Path, record: TrialRecord, doms: dict[str, Domain]) -> None:
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp_summary
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    shutil.rmtree(run, ignore_errors=True)  # a changed run is rewritten whole
    run.mkdir()
    started = record.started
    ended = record.finished if record.finished is not None else started
    hparams = {label: hparam_value(doms.get(label), record, label) for label in record.params}
    hparams[STATE_HPARAM] = record.state.value
    with _events(run / f"events.out.tfevents.{int(started):010d}.tpetune.{record.tid}") as write:
        write(hp_summary.hparams_pb(hparams, run_name(record.tid), started), started, 0)
        last = 0
        for name, values in sorted(record.curves.items()):
            for step, value in enumerate(values, start=1):
                write(scalar_pb(f"epoch/{name}", float(value)), started, step)
                last = max(last, step)
        if record.loss is not None:
            write(scalar_pb("loss", float(record.loss)), ended, last)
        if record.state in _STATUS:  # a running or paused trial has not ended yet
            status = _STATUS[record.state]
            end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=ended)
            data = plugin_data_pb2.HParamsPluginData(session_end_info=end)
            summary = summary_pb2.Summary()
            summary.value.add(
                tag=metadata.SESSION_END_INFO_TAG,
                metadata=metadata.create_summary_metadata(data),
                tensor=metadata.NULL_TENSOR,
            )  # as hparams.summary.session_end_pb, which imports TensorFlow
            write(summary, ended, last)


_STATUS = {TrialState.OK: 1, TrialState.PRUNED: 1, TrialState.FAIL: 2}  # api_pb2.Status values


@contextlib.contextmanager
def _events(path: Path) -> Iterator[Any]:
    """A writer of ``(summary, wall_time, step)`` into one new event file."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    with path.open("wb") as fh:
        writer = RecordWriter(fh)
        header = event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
        writer.write(header.SerializeToString())

        def write(summary: Any, wall_time: float, step: int) -> None:
            event = event_pb2.Event(wall_time=wall_time, step=step, summary=summary)
            writer.write(event.SerializeToString())

        yield write
        writer.flush()
