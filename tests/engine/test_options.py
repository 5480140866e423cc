"""Option objects validate themselves once and name their own arguments; the CLI maps those
names to its flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tpetune import ConfigError, Search, Serial, Spark, StopRules, Workers
from tpetune.cli.main import build_parser
from tpetune.cli.search import for_cli
from tpetune.search.algos import ALGO_TABLE, resolve, tpe_startup


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Search(algo="bayes"), r"unknown Search\(algo='bayes'\)"),
        (lambda: Search(algo="rand", options={"gamma": 0.2}), "apply to Search\\(algo='tpe'\\)"),
        (lambda: Search(options={"gama": 0.2}), "unknown TPE option"),
        (lambda: Search(options={"gamma": 2}), "gamma must lie in"),
        (lambda: Search(seed="1"), r"Search\(seed=...\) must be an integer"),
        (lambda: Search(points={"x": 1}), r"Search\(points=...\) must be a list"),
        (lambda: StopRules(timeout=0), r"StopRules\(timeout=...\) must be a positive"),
        (lambda: StopRules(loss_threshold=float("nan")), "loss_threshold=...\\) must be a finite"),
        (lambda: StopRules(max_failures=0), r"StopRules\(max_failures=...\)"),
        (lambda: Workers(0), r"Workers\(workers=...\) must be a positive integer"),
        (lambda: Workers(2, trial_timeout=-1), r"Workers\(trial_timeout=...\)"),
        (lambda: Workers(2, spare="no"), r"Workers\(spare=...\) must be True or False"),
        (lambda: Spark(""), r"Spark\(master=...\) must be a master URL"),
    ],
)
def test_bad_options_are_refused_when_made(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]


def test_defaults_are_written_once_and_the_cli_help_reads_them() -> None:
    assert Serial().workers == 1 and Workers().workers is None  # None: the study's lag
    assert [Workers().for_lag(lag).workers for lag in (None, 1, 3)] == [1, 1, 3]
    assert Workers(2, spare=False).for_lag(3) == Workers(2, spare=False)
    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    assert f"(default: {StopRules().max_failures})" in help_text
    assert "--prune {none,median,asha,freeze-thaw}" in help_text


def test_algorithms_come_from_one_table() -> None:
    assert set(ALGO_TABLE) == {"tpe", "rand", "anneal", "atpe", "grid", "mix"}
    assert resolve("rand").__module__ == "hyperopt.rand"
    # mix (hyperopt's mix.suggest, for tpetune.fmin) takes its algorithms as names and knobs
    mix = resolve("mix", {"p_suggest": [[0.25, "rand", {}], [0.75, "tpe", {"gamma": 0.3}]]})
    assert [p for p, _ in mix.keywords["p_suggest"]] == [0.25, 0.75]
    with pytest.raises(ConfigError, match="sum to 1"):
        resolve("mix", {"p_suggest": [[0.5, "rand", {}]]})


def test_tpe_startup_scales_with_the_budget() -> None:
    assert [tpe_startup(n) for n in (6, 10, 30, 40, 100, 1000)] == [5, 5, 15, 20, 20, 20]


def test_library_names_become_flags_on_the_cli() -> None:
    message = (
        "study S was made with seed 0, not 7: leave Search(seed=...) unset to resume it, "
        "or use fresh=True or another study_dir"
    )
    assert for_cli(message) == (
        "study S was made with seed 0, not 7: drop --seed to resume it, "
        "or use --fresh or another --study-dir"
    )


def test_a_bad_pruner_knob_names_its_flag() -> None:
    assert for_cli("reduction_factor must be an integer >= 2; got 1") == (
        "--prune-reduction-factor must be an integer >= 2; got 1"
    )
    message = "prune_below must be at most pause_below (0.5 > 0.1): a trial is paused first"
    assert for_cli(message) == (
        "--prune-below must be at most --pause-below (0.5 > 0.1): a trial is paused first"
    )
    message = (
        "study S was made with FreezeThawPruner.pause_below=0.1 (not 0.2), "
        "FreezeThawPruner.min_steps=4 (not 2): leave pruner unset to resume it"
    )
    assert for_cli(message) == (  # min_steps is ASHA's --prune-min-epochs, not freeze-thaw's
        "study S was made with --pause-below 0.1 (not 0.2), "
        "FreezeThawPruner.min_steps=4 (not 2): drop --prune to resume it"
    )
    message = "study S was made with pruner MedianPruner, not ASHAPruner: leave pruner unset"
    assert (
        for_cli(message) == "study S was made with --prune median, not --prune asha: drop --prune"
    )
    label = "warmup_steps=2.5 is not a value quniform(1, 9, 1) takes; warmup_steps (uniform)"
    assert for_cli(label) == label  # a hyperparameter named like a knob stays as it is


def test_a_seed_mismatch_on_the_cli_names_the_flags(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "tpetune", "run", "quadratic", "--study-dir", str(tmp_path)]
    base += ["--quiet", "--no-plots", "--max-evals", "2"]
    assert subprocess.run(base, capture_output=True, timeout=120).returncode == 0
    again = subprocess.run([*base, "--seed", "7"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 2
    assert "drop --seed to resume it, or use --fresh or another --study-dir" in again.stderr
    nan = subprocess.run(
        [*base, "--loss-threshold", "nan"], capture_output=True, text=True, timeout=120
    )
    assert nan.returncode == 2 and "must be a finite number" in nan.stderr
