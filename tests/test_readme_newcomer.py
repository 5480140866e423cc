"""What a newcomer reads (issue 26, item 18): one expected time for the same job, commands
that each do something, a not-found error naming ./spaces/, and how to run the Spark tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_stock_job_has_one_expected_time() -> None:
    intro = re.search(r"Expect about ([\d.]+) min(?:utes)? for the job", README)
    table = re.search(r"\| `python -m tpetune stock` \| about ([\d.]+) min", README)
    assert intro and table, "README: the intro and the Expected time table both give the time"
    assert intro.group(1) == table.group(1)
    assert "about 5 minutes" not in README


def test_each_command_of_the_own_model_block_does_something() -> None:
    runs = re.findall(r"^tpetune run my_model --max-evals (\d+)", README, re.M)
    assert len(runs) == 2 and int(runs[1]) > int(runs[0]), runs  # max_evals is the total


def test_a_name_not_found_says_names_are_looked_up_in_spaces(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tpetune", "run", "my_modle"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "./spaces/my_modle.py" in lines[0], lines


def test_readme_says_how_to_run_the_spark_tests() -> None:
    assert "TPETUNE_SPARK_MASTER=start python -m pytest tests/executors/test_spark.py" in README
    fixture = (ROOT / "tests" / "conftest.py").read_text()  # the spark_master fixture
    assert 'if url != "start"' in fixture  # the value the README shows is the one it honours
