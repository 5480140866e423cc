"""Freeze-thaw: pause, thaw, prune, budgets, kill -9 during a thaw, two workers thawing at once,
resume replaying recorded decisions, and the schema-3 migration of older studies."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hyperopt import hp

import tpetune
from tpetune import FreezeThawPruner, Search, Workers, load_study, tune
from tpetune.pruners.policies import Decision, MemoryBoard
from tpetune.study.store import _SCHEMA, Store, TrialState

EPOCHS = 10
SPACE = {"x": hp.uniform("x", 0.0, 1.5)}
PRUNER = FreezeThawPruner(pause_below=0.3, prune_below=0.001, warmup_trials=3)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def value(x: float, step: int) -> float:
    """A family of curves where large x starts slowly (and the best x is 0.3)."""
    return (x - 0.3) ** 2 + 1.0 / step ** (0.5 + x)


@dataclass
class Objective:
    """Trains ``EPOCHS`` steps of :func:`value`, appending each trained step to ``log``.

    ``resume``: continue from ``tpetune.last_step() + 1`` (its checkpoint is the step count
    in the workdir); else start over and re-report. ``kill_on_thaw``: SIGKILL itself once,
    after the first new step of a thawed trial (a marker file makes it once)."""

    log: Path
    resume: bool = True
    kill_on_thaw: Path | None = None
    rendezvous: Path | None = None

    def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
        ctx = tpetune.current_trial()
        assert ctx is not None
        workdir = ctx.ensure_workdir()
        assert workdir is not None
        last = tpetune.last_step()
        if last is not None:
            assert (workdir / "checkpoint").read_text() == str(last)  # kept while paused
            if self.rendezvous is not None:
                self._meet(ctx.tid)
        start = (last or 0) + 1 if self.resume else 1
        for step in range(start, EPOCHS + 1):
            with self.log.open("a") as fh:
                fh.write(f"{ctx.tid} {step}\n")
            (workdir / "checkpoint").write_text(str(step))
            tpetune.report(step, value(params["x"], step))
            killer = self.kill_on_thaw
            if last is not None and step == last + 1 and killer and not killer.exists():
                killer.write_text(str(ctx.tid))
                os.kill(os.getpid(), signal.SIGKILL)
            if tpetune.should_prune():
                raise tpetune.TrialPruned()
        return {"loss": min(value(params["x"], s) for s in range(1, EPOCHS + 1))}

    def _meet(self, tid: int) -> None:
        """Wait (up to 30 s) until another thaw is running too; note whether one was (the
        driver dispatches both thaws at once, so a partner starts within seconds). Once two
        thaws have met, later ones do not wait: the test has what it needs."""
        assert self.rendezvous is not None
        mine = self.rendezvous / f"thawing-{tid}"
        mine.touch()
        others = threading.Event()
        for _ in range(300):
            if any(self.rendezvous.glob("met-*")):
                break
            if any(p != mine for p in self.rendezvous.glob("thawing-*")):
                others.set()
                (self.rendezvous / f"met-{tid}").touch()
                break
            others.wait(0.1)
        mine.unlink()


def _run(study_dir: Path, objective: Objective, **kw: Any) -> tpetune.Study:
    kw.setdefault("max_evals", 16)
    return tune(
        objective,
        SPACE,
        study_dir=study_dir,
        search=Search(seed=3),
        pruner=PRUNER,
        progress=False,
        **kw,
    )


def _summary(study: tpetune.Study) -> list[tuple[Any, ...]]:
    return [
        (r.tid, r.state.value, r.loss, r.params, r.metrics.get("paused_at"), r.metrics.get("thaws"))
        for r in study.records
    ]


def _trained(log: Path) -> list[tuple[int, int]]:
    return [tuple(map(int, line.split())) for line in log.read_text().splitlines()]  # type: ignore[misc]


def _steps(study_dir: Path) -> dict[int, list[int]]:
    store = Store.open(study_dir)
    try:
        return {r.tid: [s for s, _ in store.steps(r.tid)] for r in store.records()}
    finally:
        store.close()


def test_pause_thaw_and_budget_continuing_and_ignoring_last_step_agree(tmp_path: Path) -> None:
    """A paused trial keeps its workdir; thawed, it continues (same tid and params) from its
    checkpoint; thaws add no trial to max_evals; an objective that ignores last_step()
    re-trains but records nothing twice, and the study is the same."""
    cont = _run(tmp_path / "cont", Objective(tmp_path / "cont.log"))
    again = _run(tmp_path / "again", Objective(tmp_path / "again.log", resume=False))
    assert _summary(cont) == _summary(again)

    assert [r.tid for r in cont.records] == list(range(16))  # budget: max_evals trials
    states = {r.state for r in cont.records}
    assert TrialState.OK in states and TrialState.RUNNING not in states
    thawed = [r for r in cont.records if r.metrics.get("thaws")]
    assert thawed, "no trial was thawed"
    assert all(r.metrics["paused_at"] for r in thawed)
    steps = _steps(tmp_path / "cont")
    assert all(s == list(range(1, len(s) + 1)) for s in steps.values())  # contiguous, once
    trained = _trained(tmp_path / "cont.log")
    assert len(trained) == len(set(trained)) == sum(map(len, steps.values()))  # no re-training
    assert len(_trained(tmp_path / "again.log")) > len(trained)  # ignoring it re-trains
    for r in cont.records:  # paused trials keep their checkpoint, others' workdir is gone
        kept = (tmp_path / "cont" / "trials" / str(r.tid)).exists()
        assert kept == (r.state is TrialState.PAUSED)
        if r.state is not TrialState.FAIL:
            assert r.curves["val_loss"] == [value(r.params["x"], s) for s in steps[r.tid]]


def test_paused_trials_are_shown_to_tpe_as_pruned_and_counted_as_trials(tmp_path: Path) -> None:
    def enough(trials: Any, record: Any) -> str | None:  # stop before paused ones are thawed
        return "enough" if len(trials.trials) >= 8 else None

    study = _run(tmp_path / "s", Objective(tmp_path / "log"), max_evals=8, callbacks=[enough])
    store = Store.open(tmp_path / "s")
    try:
        paused = [r for r in store.records() if r.state is TrialState.PAUSED]
        assert paused, "nothing paused"
        store.close()
        from tpetune.search.documents import hyperopt_doc

        for r in paused:
            doc = hyperopt_doc(r, ["x"])
            assert doc["result"] == {"status": "ok", "loss": r.loss}
            assert r.loss == min(r.curves["val_loss"])
    finally:
        store.close()
    assert study.progress.done == 8 and study.progress.paused == len(paused)


def test_resume_replays_recorded_decisions(tmp_path: Path) -> None:
    """Stopped (Ctrl-C) after every few trials and resumed, a study makes the decisions an
    uninterrupted one makes."""
    whole = _run(tmp_path / "whole", Objective(tmp_path / "whole.log"))
    count = {"n": 0}

    def interrupt(trials: Any, record: Any) -> None:
        count["n"] += 1
        if count["n"] % 5 == 0:
            raise KeyboardInterrupt

    parts = tmp_path / "parts"
    for _ in range(20):
        try:
            study = _run(parts, Objective(tmp_path / "parts.log"), callbacks=[interrupt])
            break
        except KeyboardInterrupt:
            continue
    assert _summary(study) == _summary(whole)


def test_kill_9_during_a_thaw_loses_nothing(tmp_path: Path) -> None:
    """A real process SIGKILLs itself right after a thawed trial recorded its first new
    step; the next run re-runs that trial from there and ends as an uninterrupted run."""
    whole = _run(tmp_path / "whole", Objective(tmp_path / "whole.log"))
    study_dir, marker = tmp_path / "killed", tmp_path / "killed-once"
    script = (
        "import sys; from pathlib import Path; sys.path[:0] = [sys.argv[1]];"
        "from tests.pruners.test_freeze_thaw import Objective, _run;"
        "_run(Path(sys.argv[2]), Objective(Path(sys.argv[3]), kill_on_thaw=Path(sys.argv[4])))"
    )
    repo = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", script, repo, str(study_dir), str(tmp_path / "k.log"), str(marker)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    tid = int(marker.read_text())
    crashed = load_study(study_dir).records[tid]
    assert crashed.state is TrialState.RUNNING  # mid-thaw: re-run on resume
    resumed = _run(study_dir, Objective(tmp_path / "k.log"))
    assert _summary(resumed) == _summary(whole)
    assert _steps(study_dir) == _steps(tmp_path / "whole")


def test_two_workers_thaw_at_once(tmp_path: Path) -> None:
    """With two workers, two paused trials are thawed at the same time, each continuing from
    its own checkpoint, and the study's steps are each recorded once."""
    meet = tmp_path / "meet"
    meet.mkdir()
    pruner = FreezeThawPruner(pause_below=0.99, prune_below=0.0, warmup_trials=2, min_steps=3)
    study = tune(
        Objective(tmp_path / "log", rendezvous=meet),
        SPACE,
        study_dir=tmp_path / "s",
        max_evals=8,
        search=Search(seed=1),
        pruner=pruner,
        executor=Workers(2),
        progress=False,
    )
    assert list(meet.glob("met-*")), "no two thaws ran at once"
    assert not [r for r in study.records if r.state is TrialState.RUNNING]
    steps = _steps(tmp_path / "s")
    assert all(s == list(range(1, len(s) + 1)) for s in steps.values())
    trained = _trained(tmp_path / "log")
    assert len(trained) == len(set(trained))  # each continued from its checkpoint


def test_decide_replays_and_does_not_thrash() -> None:
    rule = FreezeThawPruner(pause_below=0.5, warmup_trials=1, max_steps=10)
    board = MemoryBoard([[1.0, 0.5, 0.3, 0.2, 0.15, 0.12, 0.11, 0.1, 0.1, 0.1]])
    hopeless = [5.0, 5.0, 5.0]
    assert rule.decide(7, 3, hopeless, board).prune  # negligible chance: pruned
    board.steps[7] = {3: "pause"}
    assert rule.decide(7, 3, hopeless, board) == Decision(True, pause=True)  # replayed
    board.thaw(7)
    assert rule.decide(7, 3, hopeless, board) == Decision(False)  # thawed: continue
    slow = [2.0, 1.9, 1.7, 1.4]
    board.steps[8] = {3: "thawed"}
    decided = rule.decide(8, 4, slow, board)
    assert not decided.pause  # a thawed trial is not paused again before step 6


def test_plan_thaws_prunes_and_proposes() -> None:
    rule = FreezeThawPruner(pause_below=0.3, warmup_trials=2, max_steps=10)
    finished = [
        [1.0, 0.6, 0.45, 0.4, 0.38, 0.37, 0.36, 0.36, 0.35, 0.35],
        [1.2, 0.9, 0.7, 0.6, 0.55, 0.52, 0.5, 0.5, 0.49, 0.49],
        [0.9, 0.7, 0.6, 0.55, 0.5, 0.48, 0.47, 0.46, 0.46, 0.45],
    ]
    paused = {4: [9.0, 9.0, 9.0], 5: [0.8, 0.55, 0.42], 6: [0.9, 0.7, 0.6]}
    plan = rule.plan(paused, finished, can_propose=False)
    assert plan.prune == (4,) and plan.thaw == 5  # the hopeless one goes, the best bet thaws
    assert rule.plan({}, finished, can_propose=True).thaw is None
    poor = rule.plan({6: [0.9, 0.7, 0.6]}, finished, can_propose=True)
    assert poor == (None, ())  # a new trial is the better bet than a poor paused one
    assert rule.plan({6: [0.9, 0.7, 0.6]}, finished, can_propose=False).thaw == 6  # last resort


def test_pruner_is_stored_and_validated(tmp_path: Path) -> None:
    from tpetune.pruners.policies import pruner_from_json

    assert pruner_from_json(PRUNER.to_json()) == PRUNER
    with pytest.raises(tpetune.ConfigError, match="prune_below"):
        FreezeThawPruner(pause_below=0.01, prune_below=0.1)
    _run(tmp_path / "s", Objective(tmp_path / "log"), max_evals=4)
    assert load_study(tmp_path / "s").meta["pruner"] == PRUNER.to_json()


def _schema_2(db: Path) -> None:
    """A study database as tpetune with schema 2 made it (no paused state, no decisions)."""
    old = _SCHEMA.replace(", 'paused'", "").replace(
        "    decision   TEXT,                     -- the pruner's decision: continue, pause, "
        "prune, thawed\n",
        "",
    )
    assert "'paused'" not in old and "decision   TEXT" not in old
    conn = sqlite3.connect(db)
    conn.executescript(old)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    conn.execute(
        "INSERT INTO trials(tid, state, loss, vals, params, started) "
        "VALUES (0, 'ok', 0.5, '{}', '{}', 1.0)"
    )
    conn.execute("INSERT INTO steps(tid, step, value) VALUES (0, 1, 0.5)")
    conn.commit()
    conn.close()


def test_a_schema_2_study_is_read_as_it_is_and_migrated_by_a_writer(tmp_path: Path) -> None:
    _schema_2(tmp_path / "study.db")
    reader = Store.open(tmp_path)
    assert [r.state for r in reader.records()] == [TrialState.OK]
    assert reader.steps(0) == [(1, 0.5)] and reader.decisions(0) == {}
    assert reader.pauses() == {} and reader.last_step(0) == 1
    reader.close()
    writer = Store.open(tmp_path, readonly=False)
    writer.migrate()
    writer.migrate()  # idempotent
    assert writer.meta()["schema_version"] == 3
    writer._conn.execute("UPDATE trials SET state='paused' WHERE tid=0")
    writer._conn.commit()
    writer.thaw_trial(0)
    assert writer.records()[0].state is TrialState.RUNNING and writer.steps(0) == [(1, 0.5)]
    writer.close()


def test_schema_1_fixtures_migrate_to_3_and_keep_their_trials(tmp_path: Path) -> None:
    for name in ("v1_quadratic", "v1_stock"):
        copy = tmp_path / name
        shutil.copytree(FIXTURES / name, copy)
        before = Store.open(copy).records()
        writer = Store.open(copy, readonly=False)
        writer.migrate()
        assert writer.records() == before and writer.meta()["schema_version"] == 3
        writer.close()


def test_cli_run_file_with_freeze_thaw(tmp_path: Path) -> None:
    """``tpetune run FILE.py --prune freeze-thaw`` with an objective that continues from
    last_step() and one that starts over: the same study."""
    shown = {}
    for name, resume in (("continues", True), ("restarts", False)):
        source = tmp_path / f"{name}.py"
        source.write_text(
            "import sys\n"
            f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
            "from pathlib import Path\n"
            "from tests.pruners.test_freeze_thaw import SPACE as space, Objective\n"
            f"objective = Objective(Path({str(tmp_path / (name + '.log'))!r}), resume={resume})\n"
        )
        result = subprocess.run(
            [
                sys.executable, "-m", "tpetune", "run", str(source), "--prune", "freeze-thaw",
                "--pause-below", "0.3", "--max-evals", "12", "--seed", "3", "--quiet",
                "--no-plots", "--study-dir", str(tmp_path / name),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        study = load_study(tmp_path / name)
        assert study.meta["pruner"]["name"] == "freeze-thaw"
        shown[name] = json.dumps(_summary(study))
    assert shown["continues"] == shown["restarts"]
    assert any(r[4] for r in json.loads(shown["continues"]))  # some trial was paused


def test_a_thaw_where_the_study_folder_is_not_seen_replays_the_shipped_steps() -> None:
    """A Spark executor on another node: the thawed trial starts over (no checkpoint there),
    re-reports its recorded steps, which keep their values and decisions, and only the new
    steps travel back."""
    from tpetune.executors.base import Job, run_trial
    from tpetune.trial.context import TrialContext

    curve = [value(1.2, s) for s in range(1, EPOCHS + 1)]
    reference = {
        "curves": [[value(x, s) for s in range(1, EPOCHS + 1)] for x in (0.2, 0.4, 0.6)],
        "rungs": {},
        "steps": [[s, curve[s - 1]] for s in (1, 2, 3)],
        "decisions": {1: "continue", 2: "continue", 3: "thawed"},
    }
    rule = FreezeThawPruner(pause_below=0.3, prune_below=0.0, warmup_trials=3)
    ctx = TrialContext(5, 0, None, rule.to_json(), reference=reference)

    def restarts(params: Any) -> float:
        assert tpetune.last_step() is None
        for step in range(1, EPOCHS + 1):
            tpetune.report(step, 99.0 if step <= 3 else curve[step - 1])  # 99: not stored
            if tpetune.should_prune():
                raise tpetune.TrialPruned()
        return min(curve)

    outcome = run_trial(restarts, Job(5, {}, ctx))
    assert [row[0] for row in outcome.steps][:1] == [4]  # recorded steps are not sent again
    assert outcome.curves["val_loss"][:3] == curve[:3]  # their stored values are kept
    assert outcome.state in (TrialState.OK, TrialState.PAUSED)


def test_spark_thaws_continue_from_their_checkpoints(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java")
    from tpetune import Spark

    pruner = FreezeThawPruner(pause_below=0.99, prune_below=0.0, warmup_trials=2, min_steps=3)
    study = tune(
        Objective(tmp_path / "log"),
        SPACE,
        study_dir=tmp_path / "s",
        max_evals=8,
        search=Search(seed=1),
        pruner=pruner,
        executor=Spark("local[2]"),
        progress=False,
    )
    assert [r for r in study.records if r.metrics.get("thaws")]
    assert not [r for r in study.records if r.state is TrialState.RUNNING]
    trained = _trained(tmp_path / "log")
    steps = _steps(tmp_path / "s")
    assert len(trained) == len(set(trained)) == sum(map(len, steps.values()))


def _stopped_with_paused(study_dir: Path, log: Path) -> tpetune.Study:
    def enough(trials: Any, record: Any) -> str | None:  # stop before paused ones are thawed
        return "enough" if len(trials.trials) >= 8 else None

    return _run(study_dir, Objective(log), max_evals=10, callbacks=[enough])


def test_show_plots_and_exporters_tell_paused_and_thawed_trials(tmp_path: Path) -> None:
    from io import BytesIO

    from tpetune.views.plot_data import learning_curves_data, loss_history_data
    from tpetune.views.plots import plot_learning_curves
    from tpetune.views.show import show_text

    study = _stopped_with_paused(tmp_path / "s", tmp_path / "log")
    paused = [r.tid for r in study.records if r.state is TrialState.PAUSED]
    assert paused
    text = show_text(load_study(tmp_path / "s"))
    assert f"{len(paused)} paused" in text and "[paused at" in text
    assert {p.tid for p in loss_history_data(study).pruned} >= set(paused)

    optuna = pytest.importorskip("optuna")
    from tpetune.exporters import export_to

    db = tmp_path / "optuna.db"
    export_to(load_study(tmp_path / "s"), "optuna", db)
    exported = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    by_tid = {t.user_attrs["tid"]: t for t in exported.trials}
    for tid in paused:  # Optuna has no paused state: WAITING, with its curve so far
        trial = by_tid[tid]
        assert trial.state is optuna.trial.TrialState.WAITING
        assert trial.user_attrs["tpetune_state"] == "paused" and trial.intermediate_values
    if importlib.util.find_spec("tensorboard") is not None:  # a paused run has no end yet
        board = export_to(load_study(tmp_path / "s"), "tensorboard", tmp_path / "tb")
        assert board.added == len(study.records)
        for tid in paused:
            mark = tmp_path / "tb" / f"trial-{tid:05d}" / ".tpetune-state"
            assert mark.read_text() == "paused\n"

    resumed = _run(tmp_path / "s", Objective(tmp_path / "log"), max_evals=10)  # thaws them
    export_to(load_study(tmp_path / "s"), "optuna", db)
    by_tid = {t.user_attrs["tid"]: t for t in optuna.load_study(
        study_name="s", storage=f"sqlite:///{db}"
    ).trials}  # fmt: skip
    thawed = [r for r in resumed.records if r.metrics.get("thaws")]
    assert thawed
    for r in thawed:
        trial = by_tid[r.tid]
        assert (
            trial.state.name
            == {"ok": "COMPLETE", "pruned": "PRUNED", "paused": "WAITING"}[r.state.value]
        )
        assert len(trial.intermediate_values) == len(r.curves["val_loss"])
    curves = learning_curves_data(resumed, n=20)
    by_record = {r.tid: r for r in resumed.records}
    marked = [c for c in curves.curves if c.paused_at]
    assert marked
    for c in marked:  # "(thawed)" only where it was; one paused and then pruned was not
        thaws = by_record[c.tid].metrics.get("thaws")
        assert ("(thawed)" in c.name) == bool(thaws), c.name
        assert thaws or "(paused)" in c.name or "(pruned)" in c.name
    plot_learning_curves(resumed, n=20).savefig(BytesIO(), format="png")


@dataclass
class ReportedLoss(Objective):
    """Continues from last_step() and returns the loss from ``tpetune.reported()``: the
    whole curve's minimum, the steps trained before a pause included."""

    def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
        before = tpetune.reported()
        last = tpetune.last_step()
        assert sorted(before) == ([] if last is None else list(range(1, last + 1)))
        super().__call__(params)
        seen = tpetune.reported()
        assert sorted(seen) == list(range(1, EPOCHS + 1))
        return {"loss": min(seen.values())}


def test_a_thawed_objective_returns_its_whole_curve_from_reported(tmp_path: Path) -> None:
    assert tpetune.reported() == {}  # outside a trial
    rule = FreezeThawPruner(pause_below=0.3, prune_below=0.0, warmup_trials=3)  # never prune
    study = tune(
        ReportedLoss(tmp_path / "log"), SPACE, study_dir=tmp_path / "s", max_evals=16,
        search=Search(seed=3), pruner=rule, progress=False,
    )  # fmt: skip
    thawed_ok = [r for r in study.records if r.metrics.get("thaws") and r.state is TrialState.OK]
    assert thawed_ok  # the case this is about: a trial paused, thawed and finished
    for r in study.records:
        if r.state is TrialState.OK:
            assert r.loss == min(value(r.params["x"], s) for s in range(1, EPOCHS + 1))


SMALL_VALUES = [0.0, 0.3, 0.6, 0.9, 1.2, 1.5]
SMALL = {"x": hp.choice("x", SMALL_VALUES)}  # six points


def _paused_spans(
    study: tpetune.Study, trained: list[tuple[int, int]]
) -> list[tuple[int, int, int]]:
    """(tid, at, until) for each pause: log lines of the pause and of its thaw (or the end)."""
    spans = []
    for r in study.records:
        for at in r.metrics.get("paused_at") or []:
            start = trained.index((r.tid, at))
            thaw = (r.tid, at + 1)
            spans.append((r.tid, start, trained.index(thaw) if thaw in trained else len(trained)))
    return spans


def test_a_full_space_thaws_paused_trials_before_training_a_repeat(tmp_path: Path) -> None:
    """Once every point of a finite space has a trial, a new proposal could only repeat one:
    the driver continues paused trials instead, and a repeat starts only while none is
    paused; stopped and resumed, the study is the same."""

    def run(study_dir: Path, log: Path, **kw: Any) -> tpetune.Study:
        return tune(Objective(log), SMALL, study_dir=study_dir, max_evals=9,
                    search=Search(seed=3), pruner=PRUNER, progress=False, **kw)  # fmt: skip

    study = run(tmp_path / "s", tmp_path / "log")
    points = [r.params["x"] for r in study.records]
    assert sorted(points[:6]) == SMALL_VALUES and len(points) == 9  # then repeats
    trained = _trained(tmp_path / "log")
    full = trained.index((5, 1))  # the sixth point started: the space is full
    repeats = [trained.index((tid, 1)) for tid in range(6, 9)]
    spans = _paused_spans(study, trained)
    assert [s for s in spans if s[1] > full], "nothing was paused once the space was full"
    for tid, start, until in spans:
        assert not [i for i in repeats if start < i < until], f"a repeat ran while {tid} paused"

    count = {"n": 0}

    def interrupt(trials: Any, record: Any) -> None:
        count["n"] += 1
        if count["n"] % 3 == 0:
            raise KeyboardInterrupt

    for _ in range(20):
        try:
            resumed = run(tmp_path / "parts", tmp_path / "parts.log", callbacks=[interrupt])
            break
        except KeyboardInterrupt:
            continue
    else:
        pytest.fail("the study did not end in 20 runs")
    assert _summary(resumed) == _summary(study)


def test_a_trial_that_crashed_after_its_pause_or_prune_ends_so_without_a_re_run(
    tmp_path: Path,
) -> None:
    """A crash between the step at which the pruner paused (or pruned) a trial and the
    objective's stop leaves it running; on resume it ends as that decision said, its
    checkpoint kept for a paused one, instead of training past the step."""
    study_dir = tmp_path / "s"
    first = _run(study_dir, Objective(tmp_path / "log"), max_evals=4)
    store = Store.open(study_dir, readonly=False)
    try:
        stops = ((4, Decision(True, pause=True), 0.9), (5, Decision(True), 0.9),
                 (6, Decision(True), math.nan))  # fmt: skip
        for tid, stop, x in stops:
            running = replace(first.records[0], tid=tid, state=TrialState.RUNNING, loss=None)
            store.begin_trial(running)
            (study_dir / "trials" / str(tid)).mkdir(parents=True)
            (study_dir / "trials" / str(tid) / "checkpoint").write_text("2")
            for step, decision in ((1, Decision(False)), (2, stop)):
                store.record_step(tid, step, value(x, step), decide=_always(decision))
    finally:
        store.close()
    kept = {}

    def look(trials: Any, record: Any) -> None:  # right after the two ended
        if record.tid == 5:
            kept["4"] = (study_dir / "trials" / "4" / "checkpoint").exists()
            kept["5"] = (study_dir / "trials" / "5").exists()

    log = tmp_path / "resumed.log"
    resumed = _run(study_dir, Objective(log), max_evals=7, callbacks=[look])
    paused, pruned, nan = resumed.records[4:7]
    assert pruned.state is TrialState.PRUNED and pruned.loss == value(0.9, 2)
    assert nan.state is TrialState.FAIL and "before any value" in (nan.error or "")
    assert paused.metrics["paused_at"][0] == 2  # (then thawed: it may pause again)
    assert kept == {"4": True, "5": False}  # a paused trial's checkpoint waits for a thaw
    trained = _trained(log)
    assert not [t for t in trained if t[0] in (5, 6) or (t[0] == 4 and t[1] <= 2)]  # no re-run


def _always(decision: Decision) -> Any:
    return lambda board: decision
