"""Digit images: scikit-learn's digits, MNIST .npz checks (one DataError per bad case), folds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tpetune.digits import TEST_FRACTION
from tpetune.digits.data import (
    SKLEARN_SOURCE,
    load_digits_data,
    load_mnist,
    load_sklearn_digits,
    stratified_folds,
)
from tpetune.errors import ConfigError, DataError, MissingDependencyError


def fake_mnist(n_train: int = 60, n_test: int = 20, side: int = 28, seed: int = 0) -> dict:
    """Arrays in Keras' mnist.npz layout: uint8 images, every digit present."""
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.uint8) % 10,
    }


def write_npz(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


def test_sklearn_digits_are_scaled_flat_and_split_stratified() -> None:
    data = load_sklearn_digits()
    assert data.x_train.shape == (1437, 64) and data.x_test.shape == (360, 64)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0  # 16 grey levels / 16
    assert data.source == SKLEARN_SOURCE and data.image_shape == (8, 8)
    assert data.n_features == 64
    assert len(data.y_test) / (len(data.y_train) + len(data.y_test)) == pytest.approx(
        TEST_FRACTION, abs=0.001
    )
    # Stratified: each digit's share of the test split is its share of the whole set.
    whole = np.bincount(np.concatenate([data.y_train, data.y_test])) / 1797
    np.testing.assert_allclose(np.bincount(data.y_test) / 360, whole, atol=0.01)
    again = load_sklearn_digits()
    np.testing.assert_array_equal(again.y_test, data.y_test)  # fixed seed: the same split


def test_limit_keeps_a_stratified_subset_of_the_training_images() -> None:
    data = load_digits_data(limit=200)
    assert data.x_train.shape == (200, 64)
    assert np.bincount(data.y_train).min() >= 19  # about 20 of each digit
    assert len(data.y_test) == 360  # the test split is kept whole
    assert data.source == f"{SKLEARN_SOURCE}:limit=200"
    assert data.limited(None) is data and data.limited(10_000) is data
    with pytest.raises(ConfigError, match="limit must be >= 10"):
        data.limited(5)


def test_mnist_layout_loads_scaled_by_255_and_flattened(tmp_path: Path) -> None:
    arrays = fake_mnist()
    data = load_mnist(write_npz(tmp_path / "mnist.npz", **arrays))
    assert data.x_train.shape == (60, 784) and data.x_test.shape == (20, 784)
    np.testing.assert_allclose(data.x_train[0], arrays["x_train"][0].reshape(-1) / 255.0)
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])
    assert data.image_shape == (28, 28)
    assert data.source.startswith("mnist.npz:") and len(data.source) == len("mnist.npz:") + 16


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x_test": None, "y_test": None}, r"lacks x_test, y_test: an MNIST \.npz needs"),
        ({"x_train": np.zeros((60, 784), np.uint8)}, r"x_train has shape \(60, 784\)"),
        ({"x_test": np.zeros((20, 20, 20), np.uint8)}, "both splits need images of one size"),
        ({"y_train": np.zeros(59, np.uint8)}, r"y_train has shape \(59,\); expected one label"),
        ({"y_test": np.full(20, 10)}, "y_test holds 20 label.s. outside 0-9 .e.g. 10."),
        ({"y_train": np.full(60, -1)}, "outside 0-9"),
        ({"y_train": np.full(60, 0.5)}, "expected whole digits 0-9"),
        ({"x_train": np.full((60, 28, 28), 300.0)}, "pixels span 300..300; expected grey"),
        ({"x_train": np.full((60, 28, 28), "a")}, "expected numeric pixels"),
    ],
)
def test_bad_mnist_files_raise_one_line_data_errors(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    arrays = {k: v for k, v in {**fake_mnist(), **change}.items() if v is not None}
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as info:
        load_mnist(path)
    assert "\n" not in str(info.value)


def test_missing_or_foreign_files_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="MNIST file .*nope.npz not found"):
        load_mnist(tmp_path / "nope.npz")
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(DataError, match="is not a readable .npz file"):
        load_mnist(text)
    single = tmp_path / "one.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DataError, match="single .npy array, not an .npz"):
        load_mnist(single)


def test_folds_keep_the_class_proportions() -> None:
    y = load_sklearn_digits().y_train
    folds = stratified_folds(y, 3, seed=0)
    assert len(folds) == 3
    whole = np.bincount(y) / len(y)
    seen = np.concatenate([val for _, val in folds])
    assert sorted(seen.tolist()) == list(range(len(y)))  # each image validates exactly once
    for train, val in folds:
        assert not set(train) & set(val)
        np.testing.assert_allclose(np.bincount(y[val], minlength=10) / len(val), whole, atol=0.01)
    np.testing.assert_array_equal(stratified_folds(y, 3, seed=0)[1][1], folds[1][1])


def test_bad_folds_are_refused() -> None:
    y = np.arange(30) % 10
    with pytest.raises(ConfigError, match="folds must be an integer >= 2"):
        stratified_folds(y, 1)
    with pytest.raises(DataError, match="digit 0 has only 3 training image.s., fewer than the 4"):
        stratified_folds(y, 4)


def test_missing_scikit_learn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    with pytest.raises(MissingDependencyError, match=r"pip install tpetune\[digits\]"):
        load_digits_data()


def test_the_package_and_the_data_module_import_no_tensorflow() -> None:
    # The CLI shows the defaults in --help, and data errors must surface in milliseconds.
    code = (
        "import sys, tpetune.digits, tpetune.digits.data, tpetune.digits.study; "
        "heavy = {'tensorflow', 'keras', 'sklearn', 'matplotlib'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
