"""The CLI, called in-process (fast) and as a subprocess (kill -9, lock, help)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tpetune.cli.main import main
from tpetune.study.study import load_study

SLOW_OBJECTIVE = """
import time
from hyperopt import hp
space = {"x": hp.uniform("x", -5, 5), "opt": hp.choice("opt", ["sgd", "adam"])}
def objective(params):
    time.sleep(float(__import__("os").environ.get("SLEEP", "0.05")))
    return (params["x"] - 1) ** 2 + (params["opt"] == "sgd")
"""


@pytest.fixture
def objective_file(tmp_path: Path) -> Path:
    path = tmp_path / "slow.py"
    path.write_text(SLOW_OBJECTIVE)
    return path


def _run(*argv: str) -> int:
    return main([*argv])


def _cli(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tpetune", *argv],
        capture_output=True,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


def test_run_show_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study_dir = tmp_path / "study"
    assert (
        _run(
            "run",
            "quadratic",
            "--study-dir",
            str(study_dir),
            "--max-evals",
            "8",
            "--quiet",
            "--no-plots",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "8/8 trials done" in out and "best: trial" in out

    assert _run("show", str(study_dir)) == 0
    shown = capsys.readouterr().out
    assert "top 5 trials:" in shown and "optimizer=" in shown

    assert _run("show", str(study_dir), "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"best", "trials"}
    assert set(doc["best"]) == {"tid", "loss", "params"}
    trial = doc["trials"][0]
    assert set(trial) >= {"tid", "state", "loss", "params", "error", "duration_s"}
    assert trial["params"]["optimizer"] in ("sgd", "adam")
    assert all(("degree" in t["params"]) == (t["params"]["model"] == "poly") for t in doc["trials"])

    csv_path, json_path, pkl_path = (tmp_path / f"t.{e}" for e in ("csv", "json", "pkl"))
    assert _run("export", str(study_dir), "--format", "csv", "-o", str(csv_path)) == 0
    frame = pd.read_csv(csv_path)
    assert len(frame) == 8 and {"tid", "state", "loss", "x", "degree"} <= set(frame.columns)
    linear = frame[frame["model"] == "linear"]
    assert linear["degree"].isna().all()  # inactive: empty cell
    assert _run("export", str(study_dir), "--format", "json", "-o", str(json_path)) == 0
    assert json.loads(json_path.read_text())["trials"] == doc["trials"]
    assert _run("export", str(study_dir), "--format", "pickle", "-o", str(pkl_path)) == 0
    trials = pickle.loads(pkl_path.read_bytes())
    assert trials.tids == list(range(8))
    assert min(trials.losses()) == doc["best"]["loss"]


def test_a_lowered_max_evals_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Resumed with fewer trials than it holds: no "8/3 trials done", and how to add more."""
    study_dir = tmp_path / "study"
    argv = ["run", "quadratic", "--study-dir", str(study_dir), "--quiet", "--no-plots"]
    assert _run(*argv, "--max-evals", "8") == 0
    capsys.readouterr()
    assert _run(*argv, "--max-evals", "3") == 0
    out = capsys.readouterr().out
    assert "8 trials done (3 asked for)" in out and "8/3" not in out
    assert "stopped: the study holds 8 trials, more than --max-evals 3: raise --max-evals" in out
    assert _run("show", str(study_dir)) == 0
    assert "8 trials done (3 asked for)" in capsys.readouterr().out
    assert len(load_study(study_dir).records) == 8  # nothing discarded


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "missing.py"], "space file missing.py not found"),
        (["run", "quadratic", "--max-evals", "0"], "must be a positive integer"),
        (["run", "quadratic", "--max-evals", "-2"], "must be a positive integer"),
        (["show", "/nonexistent/study"], "does not exist"),
        (["export", "/nonexistent/study"], "does not exist"),
        (["run", "quadratic", "--points", "/nonexistent.json"], "points file"),
        (["run", "quadratic", "--no-spare"], "--no-spare applies to --workers N: add"),
        (["run", "quadratic", "--spark", "local[1]", "--no-spare"], "not --spark"),
        (["run", str(Path(__file__).parent)], "cli is a folder, not a space file"),
        (["stock", "--keep-models", "-1"], "must be an integer >= 0, got -1"),
        (["show", __file__], "test_cli.py is a file, not a study folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = _run(*argv)
    except SystemExit as exc:  # argparse rejects option values itself
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_foreign_folder_and_changed_space_leave_data_intact(
    tmp_path: Path, objective_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "study.db").write_bytes(b"\x00garbage")
    assert _run("show", str(tmp_path / "foreign")) == 2
    assert (tmp_path / "foreign" / "study.db").read_bytes() == b"\x00garbage"

    study = tmp_path / "s"
    os.environ["SLEEP"] = "0"
    try:
        assert (
            _run(
                "run",
                str(objective_file),
                "--study-dir",
                str(study),
                "--max-evals",
                "3",
                "--quiet",
                "--no-plots",
            )
            == 0
        )
        objective_file.write_text(SLOW_OBJECTIVE.replace("-5, 5", "-2, 2"))
        capsys.readouterr()
        assert (
            _run(
                "run",
                str(objective_file),
                "--study-dir",
                str(study),
                "--max-evals",
                "5",
                "--quiet",
                "--no-plots",
            )
            == 2
        )
    finally:
        del os.environ["SLEEP"]
    assert "changed x (uniform(-5, 5) -> uniform(-2, 2))" in capsys.readouterr().err
    assert len(load_study(study).records) == 3


def test_kill_9_mid_run_loses_nothing_and_resume_finishes(
    tmp_path: Path, objective_file: Path
) -> None:
    study = tmp_path / "study"
    argv = [
        sys.executable,
        "-m",
        "tpetune",
        "run",
        str(objective_file),
        "--study-dir",
        str(study),
        "--max-evals",
        "30",
        "--quiet",
        "--no-plots",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    finished = 0
    while time.time() < deadline and finished < 6:
        time.sleep(0.1)
        if (study / "study.db").exists():
            try:
                finished = len([r for r in load_study(study).records if r.state.value == "ok"])
            except Exception:  # the writer may not have created the tables yet
                finished = 0
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert finished >= 6, "the run made progress before the kill"

    conn = sqlite3.connect(study / "study.db")  # the database opens and is consistent
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    before = load_study(study).records
    kept = {r.tid: r for r in before if r.state.value == "ok"}
    assert len(kept) >= finished

    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    after = load_study(study).records
    assert [r.tid for r in after] == list(range(30))  # no gap, no duplicate id
    for tid, rec in kept.items():  # every trial finished before the kill is unchanged
        assert after[tid] == rec


def test_a_second_driver_exits_2_while_show_still_reads(
    tmp_path: Path, objective_file: Path
) -> None:
    study = tmp_path / "study"
    env = {**os.environ, "SLEEP": "0.5"}
    argv = [
        "run",
        str(objective_file),
        "--study-dir",
        str(study),
        "--max-evals",
        # Far more than the test needs (0.5 s a trial): on a cold virtual environment the
        # second CLI and `show` start slowly, and the first must still be running when
        # they are done.
        "2000",
        "--quiet",
        "--no-plots",
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", "tpetune", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # A test run started in the background (`cmd &` in a script) inherits SIGINT ignored,
        # and Python then never turns it into KeyboardInterrupt: give the driver the default
        # disposition, as a terminal's Ctrl-C would find it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (study / "study.db").exists():
            time.sleep(0.1)
        time.sleep(0.3)
        second = _cli(*argv, env=env, timeout=60)
        assert second.returncode == 2
        assert f"is in use by pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        shown = _cli("show", str(study), timeout=60)
        assert shown.returncode == 0 and "running now" in shown.stdout
        assert first.poll() is None, "the first driver ended before the test interrupted it"
    finally:
        first.send_signal(signal.SIGINT)
        try:
            first.wait(timeout=60)
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()
    assert first.returncode == 130


def test_help_is_fast_and_loads_no_heavy_modules() -> None:
    code = (
        "import sys; from tpetune.cli.main import build_parser; build_parser().format_help();"
        "import tpetune, tpetune.study.study, tpetune.views.show, tpetune.cli.search;"
        "heavy = ('tensorflow', 'keras', 'matplotlib', 'hyperopt', 'scipy');"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.check_output([sys.executable, "-c", code], text=True)
    assert out.strip() == "[]"
    assert _cli("--help").returncode == 0


def test_cli_reference_in_docs_is_in_sync() -> None:
    from tpetune.cli.main import cli_reference

    doc = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
    assert doc.read_text() == cli_reference(), (
        "docs/cli.md is stale: regenerate it with the command at its top"
    )


def test_messages_go_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's log handler follows sys.stderr: one made while another stream was stderr (an
    earlier main() under a test's capture, or in a notebook) must not write there later."""
    import io

    from tpetune.cli import main as cli

    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    cli._setup_logging()
    monkeypatch.setattr(sys, "stderr", second)
    cli.log.warning("warning: where does this go")
    assert "where does this go" in second.getvalue() and first.getvalue() == ""


def test_workers_flags_recycle_as_the_bundled_default_and_drop_the_spare(
    objective_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``stock --workers N`` replaces each worker as often as the bundled default does
    (TensorFlow's memory), where ``run FILE --workers N`` keeps the library's default;
    ``--no-spare`` reaches ``Workers(spare=False)`` on both, and alone on a bundled study."""
    from tpetune.bundled import RECYCLE_AFTER
    from tpetune.cli import main as cli
    from tpetune.engine.options import Workers

    seen: dict[str, object] = {}

    def bundled(bundle: object, **kw: object) -> tuple[None, None]:
        seen["stock"] = kw["executor"]
        raise SystemExit(0)

    def tune(objective: object, space: object, **kw: object) -> None:
        seen["run"] = kw["executor"]
        raise SystemExit(0)

    monkeypatch.setattr(cli, "run_bundled", bundled)
    monkeypatch.setattr(cli, "tune", tune)
    for argv in (
        ["stock", "--workers", "2", "--study-dir", str(tmp_path / "s")],
        ["run", str(objective_file), "--workers", "2", "--study-dir", str(tmp_path / "r")],
    ):
        with pytest.raises(SystemExit):
            main(argv)
    assert seen["stock"] == Workers(2, recycle_after=RECYCLE_AFTER)
    assert seen["run"] == Workers(2)
    for argv in (
        ["stock", "--workers", "2", "--no-spare", "--study-dir", str(tmp_path / "s")],
        ["run", str(objective_file), "--workers", "2", "--no-spare"],
    ):
        with pytest.raises(SystemExit):
            main(argv)
    assert seen["stock"] == Workers(2, recycle_after=RECYCLE_AFTER, spare=False)
    assert seen["run"] == Workers(2, spare=False)
    # Without --workers: the bundled default's workers, as many as the study's lag
    # (Workers() resolves that number, tests/test_bundled.py); run's needs --workers N.
    for argv in (
        ["stock", "--no-spare", "--study-dir", str(tmp_path / "s")],
        ["run", str(objective_file), "--trial-timeout", "9"],
    ):
        with pytest.raises(SystemExit):
            main(argv)
    assert seen["stock"] == Workers(recycle_after=RECYCLE_AFTER, spare=False)
    assert seen["run"] == Workers(trial_timeout=9)
    assert Workers().recycle_after > RECYCLE_AFTER
