"""CSV export and ``show`` with hostile labels and values (issue 26, item 17): integer params
stay integers, spreadsheet formulas are neutralised, control characters are escaped."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hyperopt import hp

from tpetune.cli.main import main
from tpetune.search.space import Space
from tpetune.study.store import Store, TrialRecord, TrialState

SPACE = Space(
    {
        "lr": hp.uniform("lr", -1, 1),
        "net": hp.choice(
            "net",
            [{"dense2_nodes": hp.quniform("dense2_nodes", 8, 64, 8)}, {"kind": "flat"}],
        ),
        "act": hp.choice("act", ["=1+2", "@SUM(A1)", "-2+3", "+cmd", "relu", "-5"]),
        "x": hp.uniform("evil\nlabel\there", 0, 1),
    }
)


def _study(path: Path) -> Path:
    store = Store.create(path, {"space": SPACE.describe(), "seed": 0, "max_evals": 6})
    for tid in range(6):
        vals = {"lr": -0.5, "net": tid % 2, "act": tid, "evil\nlabel\there": 0.5}
        if tid % 2 == 0:
            vals["dense2_nodes"] = 24.0
        rec = TrialRecord(
            tid=tid,
            state=TrialState.FAIL if tid == 5 else TrialState.OK,
            loss=None if tid == 5 else -1.5,
            params=SPACE.params(vals),
            vals=vals,
            args=SPACE.evaluate(vals),
            error='=HYPERLINK("http://x")' if tid == 5 else None,
            started=1.0,
            finished=2.0,
            duration_s=1.0,
        )
        store.begin_trial(rec)
        store.finish_trial(rec)
    store.close()
    return path


def test_csv_keeps_integers_and_neutralises_formulas_but_not_negative_numbers(
    tmp_path: Path,
) -> None:
    study_dir = _study(tmp_path / "s")
    out = tmp_path / "t.csv"
    assert main(["export", str(study_dir), "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["dense2_nodes"] for r in rows] == ["24", "", "24", "", "24", ""]
    assert [r["act"] for r in rows] == ["'=1+2", "'@SUM(A1)", "'-2+3", "'+cmd", "relu", "-5"]
    assert rows[0]["lr"] == "-0.5" and rows[0]["loss"] == "-1.5"  # real numbers untouched
    assert rows[5]["error"] == '\'=HYPERLINK("http://x")'
    assert "evil\nlabel\there" in rows[0]  # the header is data too: quoted, not executed


def test_show_escapes_newlines_and_tabs_in_labels_and_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_dir = _study(tmp_path / "s")
    assert main(["show", str(study_dir), "--all"]) == 0
    out = capsys.readouterr().out
    assert "evil\\nlabel\\there" in out and "evil\nlabel" not in out
    assert "\t" not in out
