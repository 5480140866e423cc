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
"""

from __future__ import annotations

import contextlib
import logging
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
        added = updated = 0
        for record in study.records:
            run = children.get(record.tid)
            stored = None if run is None else run.data.tags.get("tpetune.state")
            if stored == record.state.value:
                continue
            if run is not None and stored == TrialState.RUNNING.value:
                _complete(client, run.info.run_id, record)
                updated += 1
                continue
            if run is not None:  # half-written by an interrupted export
                client.delete_run(run.info.run_id)
            _child(client, experiment_id, parent, record, _params(record, doms))
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


def _child(
    client: MlflowClient, experiment_id: str, parent: str, record: TrialRecord, params: dict
) -> None:
    from mlflow.entities import Param

    tags = {"mlflow.parentRunId": parent, "tpetune.tid": str(record.tid)}
    name = f"trial-{record.tid:05d}"
    run = client.create_run(experiment_id, start_time=_ms(record.started), tags=tags, run_name=name)
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    _complete(client, run_id, record)


def _complete(client: MlflowClient, run_id: str, record: TrialRecord) -> None:
    """Metrics, the artifact, the state tag (written last: it marks the run complete), status."""
    from mlflow.entities import Metric

    when = _ms(record.finished or record.started)
    metrics = [
        Metric(f"epoch/{name}", float(v), when, step)
        for name, values in sorted(record.curves.items())
        for step, v in enumerate(values, start=1)
    ]
    last = max((len(v) for v in record.curves.values()), default=0)
    if record.loss is not None:
        metrics.append(Metric("loss", float(record.loss), when, last))
    for key, value in record.metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and key != "loss":
            metrics.append(Metric(key, float(value), when, last))
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
