"""Export a study to MLflow: one parent run for the study, one nested child run per trial.

Contract:
- Experiment: named after the study folder. Default tracking URI ``sqlite:///STUDY_DIR/mlflow.db``
  with artifacts in ``STUDY_DIR/mlartifacts`` (current MLflow refuses a plain ``./mlruns``
  folder store without an opt-out); any other ``--tracking-uri`` works the same.
- Parent run ``study``, tagged ``tpetune.role=study`` and the study's creation time, FINISHED
  once no trial is running. Each child run is created *with* ``mlflow.parentRunId`` (so the UI
  nests it; a run tagged afterwards is the known pitfall of orphaned nested runs) and holds:
  params = the trial's *active* hyperparameters (a choice by its value), metrics ``loss`` and
  every per-epoch curve as ``epoch/<name>`` with its step (1, 2, ...; per-epoch wall times are
  not stored, so each carries the trial's end time), the trial's numeric ``metrics``, tags
  ``tpetune.tid`` and ``tpetune.state``, status FINISHED/KILLED (pruned)/FAILED/RUNNING, the
  trial's start and end times, and an artifact ``trial.json`` (params, nested args, metrics,
  error).
- Idempotent by tid: a child whose ``tpetune.state`` tag matches the store is left alone; one
  exported while running is completed in place; one left half-written by a crash is deleted
  and written again. The study store is only read.
- Names: MLflow accepts only letters, digits, ``_ - . / :`` and spaces in param, metric and tag
  keys, and no path tricks (``a//b``, ``..``). A label it would refuse (``lr (log)``, ``acc%``)
  is logged under a key with each refused character replaced by ``_`` (plus a short hash
  where two names would meet), and the run carries the original as the tag
  ``tpetune.name.<key>``. Valid names are logged unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tpetune._io import jsonable
from tpetune.exporters import Exported, require
from tpetune.exporters._params import domains, scalar
from tpetune.study.store import TrialRecord, TrialState

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from tpetune.study.study import Study

DEFAULT_TARGET = "mlflow.db"
EXTRA = "mlflow"
_STATUS = {
    TrialState.OK: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.PAUSED: "KILLED",  # MLflow has no paused status; the state tag says paused
    TrialState.FAIL: "FAILED",
    TrialState.RUNNING: "RUNNING",
}


def default_uri(study_dir: str | Path) -> str:
    return f"sqlite:///{(Path(study_dir) / DEFAULT_TARGET).resolve()}"


def export(study: Study, target: str | Path | None = None) -> Exported:
    """Log ``study`` to the tracking server at ``target`` (a URI; default: a SQLite file in
    the study folder), adding new trials and completing those that finished since.

    Raises:
        MissingDependencyError: mlflow is not installed.
    """
    require("mlflow", EXTRA)
    from mlflow import MlflowClient

    uri = str(target) if target is not None else default_uri(study.study_dir)
    with _quiet():
        client = MlflowClient(tracking_uri=uri)
        experiment_id = _experiment(client, study, uri)
        parent = _parent(client, experiment_id, study)
        children = {
            int(run.data.tags["tpetune.tid"]): run
            for run in _runs(client, experiment_id, f"tags.`mlflow.parentRunId` = '{parent}'")
            if "tpetune.tid" in run.data.tags
        }
        doms = domains(study.meta.get("space"))
        names = _Names(study.records)
        added = updated = 0
        for record in study.records:
            run = children.get(record.tid)
            stored = None if run is None else run.data.tags.get("tpetune.state")
            if stored == record.state.value:
                continue
            if run is not None and stored == TrialState.RUNNING.value:
                _complete(client, run.info.run_id, record, names)
                updated += 1
                continue
            if run is not None:  # half-written by an interrupted export
                client.delete_run(run.info.run_id)
            _child(client, experiment_id, parent, record, _params(record, doms), names)
            added += run is None
            updated += run is not None
        if not any(r.state is TrialState.RUNNING for r in study.records) and study.records:
            end = max(r.finished or r.started for r in study.records)
            client.set_terminated(parent, "FINISHED", end_time=_ms(end))
    return Exported(uri, added, updated, len(study.records))


def _experiment(client: MlflowClient, study: Study, uri: str) -> str:
    name = study.study_dir.resolve().name
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):  # keep artifacts beside the database, not in the cwd
        location = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _parent(client: MlflowClient, experiment_id: str, study: Study) -> str:
    created = repr(study.meta.get("created"))
    query = f"tags.`tpetune.role` = 'study' and tags.`tpetune.created` = '{created}'"
    for run in _runs(client, experiment_id, query):
        return str(run.info.run_id)
    started = min((r.started for r in study.records), default=study.meta.get("created") or 0)
    tags = {
        "tpetune.role": "study",
        "tpetune.created": created,
        "tpetune.study_dir": str(study.study_dir.resolve()),
    }
    run = client.create_run(experiment_id, start_time=_ms(started), tags=tags, run_name="study")
    space = {k: str(v) for k, v in (study.meta.get("space") or {}).items()}
    client.log_dict(
        run.info.run_id, {"space": space, "meta": jsonable(study.meta, strict=True)}, "study.json"
    )
    return str(run.info.run_id)


class _Names:
    """Original param and metric names -> the keys MLflow accepts, one mapping for the whole
    study (so a label has the same key in every run, whatever order runs are written in)."""

    def __init__(self, records: list[TrialRecord]) -> None:
        self.params = _keys({label for r in records for label in r.params})
        metrics = {"loss"} | {f"epoch/{n}" for r in records for n in r.curves}
        metrics |= {n for r in records for n in r.metrics}
        self.metrics = _keys(metrics)

    def tags(self, record: TrialRecord) -> dict[str, str]:
        """``tpetune.name.<key>`` -> original, for each renamed name this run logs."""
        used = [(n, self.params) for n in record.params]
        used += [(f"epoch/{n}", self.metrics) for n in record.curves]
        used += [(n, self.metrics) for n in record.metrics]
        return {f"tpetune.name.{m[n]}": n for n, m in used if m[n] != n}


_REFUSED = re.compile(r"[^\w.\- /:]")
_MAX_KEY = 250  # MLflow's MAX_ENTITY_KEY_LENGTH


def _valid(name: str) -> str:
    """``name`` with each character MLflow refuses replaced, and path tricks removed."""
    parts = [p for p in _REFUSED.sub("_", name).split("/") if p not in ("", ".")]
    key = "/".join("__" if p == ".." else p for p in parts)
    return key or "_"


def _keys(names: set[str]) -> dict[str, str]:
    """Valid names map to themselves; the others to :func:`_valid`, plus a short hash of the
    original where that key is taken by another name."""
    out = {n: n for n in names if _valid(n) == n and len(n) <= _MAX_KEY}
    taken = set(out)
    wanted: dict[str, list[str]] = {}
    for n in sorted(set(names) - set(out)):
        wanted.setdefault(_valid(n)[: _MAX_KEY - 9], []).append(n)
    for key, originals in wanted.items():
        for n in originals:
            unique = key not in taken and len(originals) == 1
            tag = hashlib.sha1(n.encode()).hexdigest()[:8]
            out[n] = key if unique else f"{key}_{tag}"
    return out


def _child(
    client: MlflowClient,
    experiment_id: str,
    parent: str,
    record: TrialRecord,
    params: dict,
    names: _Names,
) -> None:
    from mlflow.entities import Param

    tags = {"mlflow.parentRunId": parent, "tpetune.tid": str(record.tid), **names.tags(record)}
    name = f"trial-{record.tid:05d}"
    run = client.create_run(experiment_id, start_time=_ms(record.started), tags=tags, run_name=name)
    run_id = run.info.run_id
    keyed = [Param(names.params[k], v) for k, v in params.items()]
    client.log_batch(run_id, params=keyed)
    _complete(client, run_id, record, names)


def _complete(client: MlflowClient, run_id: str, record: TrialRecord, names: _Names) -> None:
    """Metrics, the artifact, the state tag (written last: it marks the run complete), status."""
    from mlflow.entities import Metric

    when = _ms(record.finished or record.started)
    key = names.metrics
    metrics = [
        Metric(key[f"epoch/{name}"], float(v), when, step)
        for name, values in sorted(record.curves.items())
        for step, v in enumerate(values, start=1)
    ]
    last = max((len(v) for v in record.curves.values()), default=0)
    if record.loss is not None:
        metrics.append(Metric(key["loss"], float(record.loss), when, last))
    for name, value in record.metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and name != "loss":
            metrics.append(Metric(key[name], float(value), when, last))
    for i in range(0, len(metrics), 1000):  # MLflow's batch limit
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    if record.state is not TrialState.RUNNING:
        document = {
            "tid": record.tid,
            "state": record.state.value,
            "loss": record.loss,
            "params": record.params,
            "args": record.args,
            "metrics": record.metrics,
            "error": record.error,
        }
        client.log_dict(run_id, jsonable(document, strict=True), "trial.json")
    if record.error:
        client.set_tag(run_id, "tpetune.error", record.error[:4000])
    client.set_tag(run_id, "tpetune.state", record.state.value)
    if record.state is not TrialState.RUNNING:
        client.set_terminated(run_id, _STATUS[record.state], end_time=when)


def _params(record: TrialRecord, doms: dict) -> dict[str, str]:
    out = {}
    for label, raw in record.params.items():
        domain = doms.get(label)
        value = scalar(raw)
        if domain is not None and domain.kind == "categorical":
            with contextlib.suppress(ValueError):
                value = domain.value(record, label)
        out[label] = str(value)
    return out


def _runs(client: MlflowClient, experiment_id: str, query: str) -> Iterator[Run]:
    token = None
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _ms(unix: float) -> int:
    return round(unix * 1000)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow and Alembic log INFO lines on creating a database; tpetune prints its own."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
