"""The reproducibility record: its fields, git and hashes, storage on create/resume, the warning."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tpetune
from tpetune.cli.main import main
from tpetune.study import provenance
from tpetune.study.store import Store

SPACE_FILE = """
from hyperopt import hp

space = {"x": hp.uniform("x", -3, 3), "k": hp.choice("k", ["a", "b"])}


def objective(p):
    return (p["x"] - 1) ** 2 + (0.1 if p["k"] == "a" else 0.0)
"""


def test_record_fields(tmp_path: Path) -> None:
    data = tmp_path / "prices.csv"
    data.write_text("a,b\n1,2\n")
    space = tmp_path / "space.py"
    space.write_text(SPACE_FILE)
    rec = provenance.record(space, data_files=[data])
    assert rec["event"] == "create"
    assert rec["python"]["version"] == platform.python_version()
    assert rec["os"]["system"] == platform.system() and rec["cpu"]["count"] == os.cpu_count()
    assert set(rec["packages"]) == {"tpetune", "hyperopt", "numpy", "tensorflow", "keras"}
    assert rec["packages"]["tpetune"] == tpetune.__version__
    assert rec["space_file"]["path"] == str(space.resolve())
    assert rec["space_file"]["sha256"] == provenance.file_hash(space)
    assert rec["data_files"] == [
        {"path": str(data.resolve()), "sha256": provenance.file_hash(data)}
    ]
    assert set(rec["determinism"]) >= {"env", "op_determinism", "tensorflow_imported"}
    json.dumps(rec)  # stored as JSON


def test_record_imports_no_tensorflow() -> None:
    code = (
        "import sys, tpetune.study.provenance as p; r = p.record('x.py'); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'; "
        "print(r['determinism']['op_determinism'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def test_determinism_env_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_DETERMINISTIC_OPS", "1")
    assert provenance.determinism()["env"]["TF_DETERMINISTIC_OPS"] == "1"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_of_the_space_file(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    space = repo / "space.py"
    space.write_text(SPACE_FILE)
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "space.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "space"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    entry = provenance.file_entry(space, with_git=True)
    assert entry is not None
    assert entry["git_commit"] == head and entry["git_modified"] is False
    space.write_text(SPACE_FILE + "\n# edited\n")
    entry = provenance.file_entry(space, with_git=True)
    assert entry is not None and entry["git_modified"] is True


def test_no_git_no_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    space = tmp_path / "space.py"
    space.write_text(SPACE_FILE)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git to be found
    entry = provenance.file_entry(space, with_git=True)
    assert entry is not None and "git_commit" not in entry and entry["sha256"]


def test_compare_names_changed_versions() -> None:
    old = provenance.record()
    new = json.loads(json.dumps(old))
    new["packages"]["numpy"] = "0.0.1"
    new["packages"]["keras"] = None
    assert provenance.compare(old, new) == [
        f"numpy {old['packages']['numpy']} -> 0.0.1",
        f"keras {old['packages']['keras']} -> absent",
    ]
    assert provenance.compare(old, old) == []


def test_stored_on_create_and_each_resume_with_a_one_line_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "space.py"
    space.write_text(SPACE_FILE)
    study_dir = tmp_path / "study"
    run = ["run", str(space), "--study-dir", str(study_dir), "--quiet", "--no-plots"]
    assert main([*run, "--max-evals", "3"]) == 0
    assert main([*run, "--max-evals", "4"]) == 0
    records = tpetune.load_study(study_dir).meta["provenance"]
    assert [r["event"] for r in records] == ["create", "resume"]
    assert records[0]["space_file"]["sha256"] == provenance.file_hash(space)
    # the last run was made under another hyperopt: a resume warns, and goes on
    store = Store.open(study_dir, readonly=False)
    records[-1]["packages"]["hyperopt"] = "0.1.0"
    store.set_meta(provenance=records)
    store.close()
    capsys.readouterr()
    assert main([*run, "--max-evals", "5"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "other versions" in line]
    assert len(warnings) == 1 and "(hyperopt 0.1.0 -> " in warnings[0]
    assert main(["show", str(study_dir), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [r["event"] for r in shown["provenance"]] == ["create", "resume", "resume"]
    assert len(tpetune.load_study(study_dir).records) == 5


def test_data_files_in_objective_settings(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("x\n")
    found = provenance.data_files_in({"csv": str(data), "data": "bundled:sp500", "epochs": 3})
    assert found[0] == str(data) and found[1].endswith("sp500.csv.gz") and len(found) == 2


def test_space_file_changed(tmp_path: Path) -> None:
    space = tmp_path / "space.py"
    space.write_text(SPACE_FILE)
    meta = {"provenance": [provenance.record(space)]}
    assert provenance.space_file_changed(meta, space) is None
    space.write_text(SPACE_FILE + "# edit\n")
    assert "changed since the study recorded it" in str(provenance.space_file_changed(meta, space))
    assert "recorded no space-file hash" in str(provenance.space_file_changed({}, space))
