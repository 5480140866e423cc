"""Hostile labels (issue 26, item 12): names MLflow refuses are mapped to valid keys, the
original kept as a tag; read back through MLflow's own client."""

from __future__ import annotations

from pathlib import Path

import pytest
from hyperopt import hp

from tpetune.exporters import export_to
from tpetune.search.space import Space
from tpetune.study.store import Store, TrialRecord, TrialState
from tpetune.study.study import load_study

SPACE = Space({"lr": hp.loguniform("lr (log)", -7, -1), "acc": hp.choice("acc%", ["a", "b"])})


@pytest.fixture()
def hostile_study(tmp_path: Path) -> Path:
    path = tmp_path / "hostile"
    store = Store.create(path, {"space": SPACE.describe(), "seed": 0, "max_evals": 2})
    vals = {"lr (log)": 0.01, "acc%": 1}
    rec = TrialRecord(
        tid=0,
        state=TrialState.OK,
        loss=0.5,
        params=SPACE.params(vals),
        vals=vals,
        args=SPACE.evaluate(vals),
        curves={"val acc%": [0.5, 0.6]},
        metrics={"rmse (test)": 1.5},
        error=None,
        started=1_700_000_000.0,
        finished=1_700_000_050.0,
        duration_s=50.0,
    )
    store.begin_trial(rec)
    store.finish_trial(rec)
    store.close()
    return path


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
def test_mlflow_maps_rejected_labels_to_valid_keys_and_keeps_the_original(
    hostile_study: Path,
) -> None:
    mlflow = pytest.importorskip("mlflow")
    done = export_to(load_study(hostile_study), "mlflow")
    assert done.added == 1
    client = mlflow.MlflowClient(done.target)
    exp = client.get_experiment_by_name("hostile")
    child = next(
        r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("tpetune.tid") == "0"
    )
    assert child.data.params == {"lr _log_": "0.01", "acc_": "b"}
    assert child.data.tags["tpetune.name.lr _log_"] == "lr (log)"
    assert child.data.tags["tpetune.name.acc_"] == "acc%"
    assert set(child.data.metrics) == {"loss", "rmse _test_", "epoch/val acc_"}
    assert child.data.tags["tpetune.name.epoch/val acc_"] == "epoch/val acc%"
    again = export_to(load_study(hostile_study), "mlflow")
    assert (again.added, again.updated) == (0, 0)
