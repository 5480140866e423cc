"""Exports to Optuna, TensorBoard and MLflow, read back through each tool's own reader.

The study is built with the store directly (the read side's only input): a nested choice, an
ok trial of each branch, a pruned, a failed and a running trial.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from pathlib import Path

import pytest
from hyperopt import hp

from tpetune.cli.main import main
from tpetune.errors import MissingDependencyError
from tpetune.exporters import export_to
from tpetune.exporters._params import Domain, domains, parse
from tpetune.search.space import Space
from tpetune.study.store import Store, TrialRecord, TrialState
from tpetune.study.study import load_study

SPACE = Space(
    {
        "lr": hp.loguniform("lr", -7, -1),
        "units": hp.quniform("units", 8, 64, 8),
        "model": hp.choice(
            "model",
            [
                {
                    "kind": "lstm",
                    "layers": hp.randint("lstm_layers", 1, 4),
                    "drop": hp.uniform("drop", 0, 0.5),
                },
                {"kind": "dense"},
            ],
        ),
        "act": hp.choice("act", ["relu", "tanh"]),
    }
)
LSTM = {"model": 0, "lstm_layers": 2, "drop": 0.1}
DENSE = {"model": 1}
#: tid -> (state, loss, vals, val_loss curve)
TRIALS = {
    0: (TrialState.OK, 0.5, {"lr": 0.05, "units": 16.0, "act": 0, **LSTM}, [0.9, 0.7, 0.5]),
    1: (TrialState.OK, 0.3, {"lr": 0.1, "units": 32.0, "act": 1, **DENSE}, [0.8, 0.4, 0.3]),
    2: (TrialState.PRUNED, 0.8, {"lr": 0.003, "units": 64.0, "act": 0, **LSTM}, [0.95, 0.8]),
    3: (TrialState.FAIL, None, {"lr": 0.02, "units": 8.0, "act": 0, **DENSE}, []),
    4: (TrialState.RUNNING, None, {"lr": 0.2, "units": 24.0, "act": 1, **LSTM}, []),
}
T0 = 1_700_000_000.25


def _record(
    tid: int, state: TrialState, loss: float | None, vals: dict, curve: list
) -> TrialRecord:
    started = T0 + 100 * tid
    return TrialRecord(
        tid=tid,
        state=state,
        loss=loss,
        params=SPACE.params(vals),
        vals=vals,
        args=SPACE.evaluate(vals),
        curves={"loss": [v + 0.05 for v in curve], "val_loss": curve} if curve else {},
        metrics={"mae": 1.5} if loss is not None else {},
        error="ValueError: boom" if state is TrialState.FAIL else None,
        started=started,
        finished=None if state is TrialState.RUNNING else started + 50,
        duration_s=None if state is TrialState.RUNNING else 50.0,
    )


def _finish(study_dir: Path, tid: int, loss: float, curve: list[float]) -> None:
    """What the driver does when trial ``tid`` ends (the exporters only read)."""
    running = next(r for r in load_study(study_dir).records if r.tid == tid)
    store = Store.open(study_dir, readonly=False)
    rec = _record(tid, TrialState.OK, loss, running.vals, curve)
    store.finish_trial(rec)
    store.close()


def _start_afresh(study_dir: Path) -> None:
    """`--fresh`: the same folder holds a new study (another creation time), one trial so far."""
    for name in ("study.db", "study.db-wal", "study.db-shm"):
        (study_dir / name).unlink(missing_ok=True)
    store = Store.create(study_dir, {"space": SPACE.describe(), "seed": 0, "max_evals": 6})
    store.begin_trial(_record(0, TrialState.RUNNING, None, TRIALS[1][2], []))
    store.close()


@pytest.fixture()
def study_dir(tmp_path: Path) -> Path:
    path = tmp_path / "mystudy"
    store = Store.create(path, {"space": SPACE.describe(), "seed": 0, "max_evals": 6})
    for tid, (state, loss, vals, curve) in TRIALS.items():
        store.begin_trial(_record(tid, TrialState.RUNNING, None, vals, []))
        if state is not TrialState.RUNNING:
            store.finish_trial(_record(tid, state, loss, vals, curve))
    store.close()
    return path


_QLOG = "qloguniform: log scale without its step (Optuna refuses log with step)"


# -- domains (no optional dependency) ----------------------------------------------------------
def test_hyperopt_distributions_map_to_domains_with_documented_fallbacks() -> None:
    d = domains(SPACE.describe())
    assert d["model"] == Domain("categorical", choices=("lstm", "dense"))
    assert d["units"] == Domain("int", low=8, high=64, step=8)
    assert d["lstm_layers"] == Domain("int", low=1, high=3)
    assert d["lr"].log and math.isclose(d["lr"].low, math.exp(-7))
    assert parse("randint(5)") == Domain("int", low=0, high=4)
    assert parse("quniform(0, 1, 0.1)") == Domain("float", low=0, high=1, step=0.1)
    assert parse("quniform(1, 9, q=1.0)") == Domain("int", low=1, high=9, step=1)
    assert parse("qloguniform(1, 3, 1)") == Domain("int", low=3, high=20, log=True, note=_QLOG)
    assert parse("qloguniform(-5, 3, 1)").step == 1  # type: ignore[union-attr]  (low end 0)
    assert parse("normal(0, 1)") == Domain("float", low=-10, high=10, note="normal: ±10 sigma")
    assert parse("uniform(?, 1)") is None  # a computed bound: attributes only
    two_branches = parse('choice[{"a": 1, "b": 2}, {"a": 1, "b": 2}]')
    assert two_branches is not None and len(set(two_branches.choices)) == 2


# -- Optuna ------------------------------------------------------------------------------------
def test_optuna_storage_round_trips_through_optuna_load_study(
    study_dir: Path, tmp_path: Path
) -> None:
    optuna = pytest.importorskip("optuna")
    db = tmp_path / "optuna.db"
    done = export_to(load_study(study_dir), "optuna", db)
    assert (done.added, done.updated, done.total) == (5, 0, 5)

    study = optuna.load_study(study_name="mystudy", storage=f"sqlite:///{db}")
    trials = study.trials
    assert len(trials) == 5 and study.best_value == 0.3 and study.metric_names == ["loss"]
    assert [t.user_attrs["tid"] for t in trials] == [0, 1, 2, 3, 4]
    S = optuna.trial.TrialState
    assert [t.state for t in trials] == [S.COMPLETE, S.COMPLETE, S.PRUNED, S.FAIL, S.RUNNING]
    assert [t.value for t in trials] == [0.5, 0.3, 0.8, None, None]
    assert trials[0].intermediate_values == {1: 0.9, 2: 0.7, 3: 0.5}
    assert trials[2].intermediate_values == {1: 0.95, 2: 0.8}
    # Active parameters only, choices by value, one distribution per label in every trial.
    assert trials[0].params == {
        "lr": 0.05,
        "units": 16,
        "act": "relu",
        "model": "lstm",
        "lstm_layers": 2,
        "drop": 0.1,
    }
    assert trials[1].params == {"lr": 0.1, "units": 32, "act": "tanh", "model": "dense"}
    dists = {}
    for t in trials:
        assert set(t.params) == set(t.distributions)
        for label, dist in t.distributions.items():
            assert dists.setdefault(label, dist) == dist
    assert dists["model"].choices == ("lstm", "dense")
    assert dists["units"] == optuna.distributions.IntDistribution(8, 64, step=8)
    assert dists["lr"].log
    # The trials' own times, not the export's.
    assert abs(trials[1].datetime_start - dt.datetime.fromtimestamp(T0 + 100)) < _MS
    assert abs(trials[1].datetime_complete - dt.datetime.fromtimestamp(T0 + 150)) < _MS
    assert trials[4].datetime_complete is None
    assert trials[0].user_attrs["args"]["model"] == {"kind": "lstm", "layers": 2, "drop": 0.1}
    assert trials[3].user_attrs["error"] == "ValueError: boom"


_MS = dt.timedelta(milliseconds=1)


def test_optuna_export_is_incremental_and_idempotent_by_tid(
    study_dir: Path, tmp_path: Path
) -> None:
    optuna = pytest.importorskip("optuna")
    db = tmp_path / "optuna.db"
    export_to(load_study(study_dir), "optuna", db)
    again = export_to(load_study(study_dir), "optuna", db)
    assert (again.added, again.updated) == (0, 0)

    store = Store.open(study_dir, readonly=False)  # the running trial reports two epochs
    store.record_step(4, 1, 0.6)
    store.record_step(4, 2, 0.3)
    store.close()
    export_to(load_study(study_dir), "optuna", db)
    live = optuna.load_study(study_name="mystudy", storage=f"sqlite:///{db}").trials[4]
    assert live.state == optuna.trial.TrialState.RUNNING
    assert live.intermediate_values == {1: 0.6, 2: 0.3}

    _finish(study_dir, 4, 0.25, [0.6, 0.25])  # the running trial ends
    store = Store.open(study_dir, readonly=False)
    store.begin_trial(_record(5, TrialState.RUNNING, None, TRIALS[1][2], []))
    store.close()
    done = export_to(load_study(study_dir), "optuna", db)
    assert (done.added, done.updated, done.total) == (1, 1, 6)

    trials = optuna.load_study(study_name="mystudy", storage=f"sqlite:///{db}").trials
    assert len(trials) == 6
    assert trials[4].state == optuna.trial.TrialState.COMPLETE and trials[4].value == 0.25
    assert trials[4].intermediate_values == {1: 0.6, 2: 0.25}
    assert abs(trials[4].datetime_complete - dt.datetime.fromtimestamp(T0 + 450)) < _MS
    assert trials[5].state == optuna.trial.TrialState.RUNNING


def test_two_optuna_exporters_of_one_file_add_each_trial_once_and_fresh_replaces(
    study_dir: Path, tmp_path: Path
) -> None:
    optuna = pytest.importorskip("optuna")
    from tpetune.exporters.optuna import OptunaExport

    db = tmp_path / "optuna.db"
    dashboard = OptunaExport(db)  # as `tpetune dashboard` holds one
    dashboard.sync(load_study(study_dir))
    _finish(study_dir, 4, 0.25, [0.6, 0.25])
    store = Store.open(study_dir, readonly=False)
    store.begin_trial(_record(5, TrialState.RUNNING, None, TRIALS[1][2], []))
    store.close()
    assert export_to(load_study(study_dir), "optuna", db).added == 1  # a second exporter
    done = dashboard.sync(load_study(study_dir))
    assert (done.added, done.updated) == (0, 0)
    trials = optuna.load_study(study_name="mystudy", storage=f"sqlite:///{db}").trials
    assert [t.user_attrs["tid"] for t in trials] == [0, 1, 2, 3, 4, 5]

    _start_afresh(study_dir)
    done = dashboard.sync(load_study(study_dir))
    assert (done.added, done.total) == (1, 1)
    assert len(optuna.load_study(study_name="mystudy", storage=f"sqlite:///{db}").trials) == 1


# -- TensorBoard -------------------------------------------------------------------------------
def test_tensorboard_runs_read_back_through_tensorboards_event_multiplexer(
    study_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2
    from tensorboard.util import tensor_util

    logdir = tmp_path / "tb"
    done = export_to(load_study(study_dir), "tensorboard", logdir)
    assert (done.added, done.total) == (5, 5)

    def load() -> pem.EventMultiplexer:
        mux = pem.EventMultiplexer()
        mux.AddRunsFromDirectory(str(logdir))
        mux.Reload()
        return mux

    mux = load()
    content = mux.PluginRunToTagToContent(metadata.PLUGIN_NAME)

    def plugin(run: str, tag: str) -> plugin_data_pb2.HParamsPluginData:
        return plugin_data_pb2.HParamsPluginData.FromString(content[run][tag])

    experiment = plugin(".", metadata.EXPERIMENT_TAG).experiment
    infos = {h.name: h for h in experiment.hparam_infos}
    assert set(infos) == {*SPACE.labels, "trial_state"}
    assert {v.string_value for v in infos["model"].domain_discrete.values} == {"lstm", "dense"}
    assert [m.name.tag for m in experiment.metric_infos] == ["loss"]

    def hparams(run: str) -> dict:
        start = plugin(run, metadata.SESSION_START_INFO_TAG).session_start_info
        return {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}

    assert hparams("trial-00001") == {
        "lr": 0.1,
        "units": 32,
        "act": "tanh",
        "model": "dense",
        "trial_state": "ok",
    }
    assert hparams("trial-00000")["lstm_layers"] == 2 and hparams("trial-00000")["drop"] == 0.1

    def end_status(run: str) -> int | None:
        if metadata.SESSION_END_INFO_TAG not in content[run]:
            return None
        return plugin(run, metadata.SESSION_END_INFO_TAG).session_end_info.status

    assert [end_status(f"trial-0000{i}") for i in range(5)] == [1, 1, 1, 2, None]

    def scalars(run: str, tag: str) -> list[tuple[int, float]]:
        # float32 tensors: six decimals give these values back exactly
        return [
            (e.step, round(float(tensor_util.make_ndarray(e.tensor_proto)), 6))
            for e in mux.Tensors(run, tag)
        ]

    assert scalars("trial-00000", "epoch/val_loss") == [(1, 0.9), (2, 0.7), (3, 0.5)]
    assert scalars("trial-00002", "loss") == [(2, 0.8)]
    assert "loss" not in mux.GetAccumulator("trial-00003").Tags()["tensors"]

    # Again: nothing rewritten; after the running trial ends, only its run, whole.
    assert export_to(load_study(study_dir), "tensorboard", logdir).added == 0
    _finish(study_dir, 4, 0.25, [0.6, 0.25])
    done = export_to(load_study(study_dir), "tensorboard", logdir)
    assert (done.added, done.updated) == (0, 1)
    assert len(list((logdir / "trial-00004").glob("events.out.tfevents.*"))) == 1
    mux = load()
    assert scalars("trial-00004", "loss") == [(2, 0.25)]


def test_a_tensorboard_folder_of_an_earlier_study_loses_its_old_runs(
    study_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")
    logdir = tmp_path / "tb"
    export_to(load_study(study_dir), "tensorboard", logdir)
    _start_afresh(study_dir)
    assert export_to(load_study(study_dir), "tensorboard", logdir).added == 1
    assert sorted(p.name for p in logdir.glob("trial-*")) == ["trial-00000"]
    assert (logdir / "trial-00000" / ".tpetune-state").read_text() == "running\n"


# -- MLflow ------------------------------------------------------------------------------------
# MLflow's own SQL store warns under SQLAlchemy 2.1 (its `noload`); nothing tpetune calls.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
def test_mlflow_nested_runs_read_back_through_search_runs(study_dir: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    done = export_to(load_study(study_dir), "mlflow")  # default: sqlite in the study folder
    uri = f"sqlite:///{study_dir.resolve() / 'mlflow.db'}"
    assert done.target == uri and done.added == 5

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["mystudy"], order_by=["start_time ASC"])
    parent = runs[runs["tags.tpetune.role"] == "study"]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"].iloc[0]]
    assert len(parent) == 1 and len(children) == 5 and len(runs) == 6
    assert list(children["tags.tpetune.tid"]) == ["0", "1", "2", "3", "4"]
    assert list(children["tags.tpetune.state"]) == ["ok", "ok", "pruned", "fail", "running"]
    assert list(children["status"]) == ["FINISHED", "FINISHED", "KILLED", "FAILED", "RUNNING"]
    loss = list(children["metrics.loss"])
    assert loss[:3] == [0.5, 0.3, 0.8] and math.isnan(loss[3]) and math.isnan(loss[4])
    first, second = children.iloc[0], children.iloc[1]
    assert (first["params.model"], first["params.lstm_layers"], first["params.units"]) == (
        "lstm",
        "2",
        "16",
    )
    assert second["params.model"] == "dense" and _missing(second["params.lstm_layers"])
    assert first["start_time"].timestamp() == pytest.approx(T0, abs=1e-3)

    client = mlflow.MlflowClient(uri)
    history = client.get_metric_history(first["run_id"], "epoch/val_loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.9), (2, 0.7), (3, 0.5)]

    again = export_to(load_study(study_dir), "mlflow")
    assert (again.added, again.updated) == (0, 0)
    _finish(study_dir, 4, 0.25, [0.6, 0.25])
    done = export_to(load_study(study_dir), "mlflow")
    assert (done.added, done.updated) == (0, 1)
    runs = mlflow.search_runs(experiment_names=["mystudy"])
    last = runs[runs["tags.tpetune.tid"] == "4"].iloc[0]
    assert len(runs) == 6 and last["status"] == "FINISHED" and last["metrics.loss"] == 0.25
    assert runs[runs["tags.tpetune.role"] == "study"]["status"].iloc[0] == "FINISHED"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# -- CLI and missing extras --------------------------------------------------------------------
def test_cli_exports_optuna_and_refuses_flags_of_another_format(
    study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("optuna")
    db = tmp_path / "out.db"
    assert main(["export", str(study_dir), "--format", "optuna", "-o", str(db)]) == 0
    assert "5 trials added" in capsys.readouterr().out and db.is_file()
    assert main(["export", str(study_dir), "--format", "optuna", "--tracking-uri", "x"]) == 2
    assert main(["export", str(study_dir), "--format", "mlflow", "-o", str(db)]) == 2
    err = capsys.readouterr().err
    assert "--tracking-uri is for --format mlflow" in err and "give --tracking-uri" in err


def test_a_missing_extra_is_one_line_naming_what_to_install(
    study_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'tpetune\[dashboard\]'"):
        export_to(load_study(study_dir), "optuna")
    assert main(["dashboard", str(study_dir), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tpetune[dashboard]" in err[0]
    assert not (study_dir / "optuna.db").exists()


@pytest.mark.parametrize("fmt", ["csv", "json", "pickle", "optuna", "tensorboard", "mlflow"])
def test_an_export_onto_the_study_s_own_files_is_refused_and_the_study_kept(
    study_dir: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if fmt in ("optuna", "tensorboard", "mlflow"):
        pytest.importorskip(fmt)
    before = (study_dir / "study.db").read_bytes()
    records = load_study(study_dir).records
    (study_dir / "trials" / "0").mkdir(parents=True)
    targets = [study_dir / "study.db", study_dir, study_dir / "trials" / "0" / "x.db"]
    for target in targets:
        flag = ["--tracking-uri", f"sqlite:///{target}"] if fmt == "mlflow" else ["-o", str(target)]
        assert main(["export", str(study_dir), "--format", fmt, *flag]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "the study's own" in err[0] and flag[0] in err[0], err
    assert (study_dir / "study.db").read_bytes() == before
    assert load_study(study_dir).records == records
    assert {p.name for p in study_dir.iterdir() if not p.name.startswith("study.db")} == {"trials"}


def test_a_snapshot_export_into_a_folder_names_the_file_to_give(
    study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(study_dir), "--format", "csv", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a folder" in err[0] and "trials.csv" in err[0]
    assert main(["export", str(study_dir), "--format", "csv", "-o", str(tmp_path / "t.csv")]) == 0


def test_the_dashboard_refuses_the_study_s_own_database_as_its_copy(
    study_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("optuna_dashboard")
    before = (study_dir / "study.db").read_bytes()
    own = str(study_dir / "study.db")
    assert main(["dashboard", str(study_dir), "--db", own, "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the study's own file" in err[0] and "--db" in err[0], err
    assert (study_dir / "study.db").read_bytes() == before


def test_uri_forms_of_the_study_s_own_files_are_refused_too(study_dir: Path) -> None:
    from tpetune.errors import ConfigError
    from tpetune.exporters import refuse_study_files

    db = study_dir / "study.db"
    quoted = str(db).replace("/", "%2F")
    dotted = str(study_dir / "sub" / ".." / "study.db")
    for target in (f"sqlite:///{db}?mode=rwc", f"file://localhost{db}", f"file://{db}",
                   f"file:{quoted}", dotted):  # fmt: skip
        with pytest.raises(ConfigError, match="the study's own"):
            refuse_study_files(study_dir, target, "-o")
    link = study_dir.parent / "elsewhere.db"
    link.symlink_to(db)
    with pytest.raises(ConfigError, match="the study's own"):
        refuse_study_files(study_dir, link, "-o")
    refuse_study_files(study_dir, study_dir / "trials.csv", "-o")  # a default target: fine
    refuse_study_files(study_dir, "http://127.0.0.1:5000", "--tracking-uri")
