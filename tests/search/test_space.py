"""Space files, fingerprints and value decoding."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hyperopt import hp, pyll
from hyperopt.pyll import scope

from tpetune.errors import SpaceError
from tpetune.search.space import Space, bundled_spaces, load_file, resolve_space_file

SPACES_DIR = Path(__file__).resolve().parents[2] / "spaces"

NESTED = {
    "lr": hp.loguniform("lr", -9, -2),
    "batch_size": hp.choice("batch_size", [32, 64]),
    "lstm_layers": hp.choice(
        "lstm_layers",
        [
            {"layers": 1},
            {
                "layers": 2,
                "lstm2_nodes": scope.int(hp.quniform("lstm2_nodes", 8, 64, 8)),
                "lstm2_dropout": hp.uniform("lstm2_dropout", 0.0, 0.5),
            },
        ],
    ),
    "optimizer": hp.choice(
        "optimizer",
        [{"name": "sgd", "nesterov": hp.choice("nesterov", [False, True])}, {"name": "adam"}],
    ),
}


@pytest.mark.parametrize("path", sorted(SPACES_DIR.glob("[!_]*.py")), ids=lambda p: p.stem)
def test_every_file_in_spaces_loads_and_samples(path: Path) -> None:
    space, _ = Space.from_file(path)
    assert space.labels
    sample = pyll.stochastic.sample(space.expr, rng=__import__("numpy").random.default_rng(0))
    assert sample is not None
    assert path.stem in bundled_spaces()  # shipped as package data under the same name


def test_params_are_values_and_inactive_labels_are_left_out() -> None:
    space = Space(NESTED)
    one_layer = {"lr": 0.001, "batch_size": 1, "lstm_layers": 0, "optimizer": 1}
    assert space.params(one_layer) == {
        "lr": 0.001,
        "batch_size": 64,
        "lstm_layers": 1,
        "optimizer": "adam",
    }
    two = {
        "lr": 0.01,
        "batch_size": 0,
        "lstm_layers": 1,
        "lstm2_nodes": 16.0,
        "lstm2_dropout": 0.25,
        "optimizer": 0,
        "nesterov": 1,
    }
    params = space.params(two)
    assert params["lstm_layers"] == 2 and params["lstm2_nodes"] == 16
    assert isinstance(params["lstm2_nodes"], int)
    assert params["optimizer"] == "sgd" and params["nesterov"] is True
    nested = space.evaluate(two)
    assert nested["lstm_layers"] == {"layers": 2, "lstm2_nodes": 16, "lstm2_dropout": 0.25}
    assert nested["optimizer"] == {"name": "sgd", "nesterov": True}


def test_vals_from_params_inverts_params() -> None:
    space = Space(NESTED)
    vals = {
        "lr": 0.01,
        "batch_size": 0,
        "lstm_layers": 1,
        "lstm2_nodes": 16.0,
        "lstm2_dropout": 0.25,
        "optimizer": 0,
        "nesterov": 1,
    }
    assert space.vals_from_params(space.params(vals)) == vals
    with pytest.raises(SpaceError, match="batch_size=48 is not one of its options"):
        space.vals_from_params({"batch_size": 48})
    with pytest.raises(SpaceError, match="unknown hyperparameter"):
        space.vals_from_params({"momentum": 0.9})


def test_a_point_missing_an_active_value_is_one_error_and_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    space = Space(NESTED)
    with pytest.raises(SpaceError, match="gives no value to a hyperparameter"):
        space.vals_from_params({"lr": 0.01})
    assert capsys.readouterr().out == ""  # not hyperopt's dump of the graph


def test_fingerprint_is_stable_across_processes_and_sees_changes() -> None:
    code = (
        "from hyperopt import hp; from tpetune.search.space import Space;"
        "print(Space({'f': hp.choice('f', [len, 'x']), 'y': hp.uniform('y', 0, 1)}).fingerprint)"
    )
    runs = {subprocess.check_output([sys.executable, "-c", code], text=True) for _ in range(2)}
    assert len(runs) == 1
    a = Space({"y": hp.uniform("y", 0, 1)})
    b = Space({"y": hp.uniform("y", 0, 2)})
    assert a.fingerprint != b.fingerprint
    assert b.diff(a.describe()) == "changed y (uniform(0, 1) -> uniform(0, 2))"
    c = Space({"z": hp.uniform("z", 0, 1)})
    assert c.diff(a.describe()) == "added z; removed y"


def test_duplicate_labels_are_refused_with_the_label() -> None:
    with pytest.raises(SpaceError, match="label x is used twice"):
        Space({"a": hp.uniform("x", 0, 1), "b": hp.uniform("x", 0, 2)})


def test_space_without_hyperparameters_is_refused() -> None:
    with pytest.raises(SpaceError, match="no hp"):
        Space({"a": 1})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("space = {", "syntax error"),
        ("raise RuntimeError('boom')", "failed to load: RuntimeError: boom"),
        ("import sys\nsys.exit(3)", r"called sys.exit\(3\) while loading .*__main__"),
        ("x = 1", "defines no `space`"),
        (
            "from hyperopt import hp\nspace = hp.uniform('x', 0, 1)",
            "defines no callable `objective`",
        ),
    ],
)
def test_broken_files_give_one_line_errors(tmp_path: Path, source: str, message: str) -> None:
    path = tmp_path / "s.py"
    path.write_text(source)
    with pytest.raises(SpaceError, match=message) as info:
        load_file(path, need_objective=True)
    assert "\n" not in str(info.value)


def test_names_resolve_to_local_spaces_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_space_file("quadratic").name == "quadratic.py"
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "quadratic.py").write_text("space = 1")
    monkeypatch.chdir(tmp_path)
    assert resolve_space_file("quadratic") == Path("spaces") / "quadratic.py"
    with pytest.raises(SpaceError, match="not found.*bundled names"):
        resolve_space_file("nope")


def test_every_subpackage_ships_in_the_wheel() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(p.parent.relative_to(root).parts) for p in (root / "tpetune").rglob("__init__.py")
    }
    from setuptools import find_packages

    # pyproject discovers packages; what ships is what setuptools finds with its settings
    shipped = set(find_packages(str(root), include=config["packages"]["find"]["include"]))
    assert on_disk <= shipped, "add new subpackages to pyproject's packages list"


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (hp.uniform("x", 1, 0), "low end above its high end"),
        (hp.loguniform("x", 0, -1), "low end above its high end"),
        (hp.choice("x", []), "has no options"),
        (hp.randint("x", 5, 5), "has no values"),
        (hp.quniform("x", 0, 5, 0), "needs a step q > 0"),
    ],
)
def test_a_hyperparameter_no_value_can_be_drawn_from_is_refused(node: Any, message: str) -> None:
    with pytest.raises(SpaceError, match=f"space.py: x: .*{message}"):
        Space({"x": node}, source="space.py")


def test_a_point_off_a_quantised_grid_is_refused_naming_its_neighbours() -> None:
    space = Space({"d": hp.quniform("d", 2, 5, 1), "l": hp.qloguniform("l", 0, 3, 0.5)})
    assert space.vals_from_params({"d": 3, "l": 1.5}) == {"d": 3.0, "l": 1.5}
    with pytest.raises(SpaceError, match=r"d=2.6 is not a value quniform\(2, 5, 1\) takes.*2 or 3"):
        space.vals_from_params({"d": 2.6, "l": 1.5})
    # hyperopt.fmin evaluates any point it is given: tpetune.fmin's spaces do too
    loose = Space({"d": hp.quniform("d", 2, 5, 1)}, point_bounds=False)
    assert loose.vals_from_params({"d": 2.6}) == {"d": 2.6}
