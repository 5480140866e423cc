"""Handwritten digit images: load, check, scale, split.

:func:`load_digits_data` is the one door through which images enter the digits study. It
returns a :class:`Digits` whose images are flattened float32 rows scaled to [0, 1] and whose
labels are int64 digits 0-9, or raises a one-line :class:`~tpetune.errors.DataError` naming the
problem and the fix. Nothing later re-checks the data.

Two sources:

- default: scikit-learn's 8x8 digits (1,797 images with 16 grey levels, shipped inside
  scikit-learn, no download). A stratified :data:`~tpetune.digits.TEST_FRACTION` of them is
  held out as the test split with the fixed :data:`~tpetune.digits.DATA_SEED`.
- ``mnist``: a ``.npz`` file in Keras' ``mnist.npz`` layout (``x_train, y_train, x_test,
  y_test``; uint8 images of shape ``(n, 28, 28)``); it brings its own test split.

scikit-learn is the optional extra ``tpetune[digits]`` (also for the folds and the final
report); without it every entry point raises :class:`~tpetune.errors.MissingDependencyError`.
This module imports only numpy (scikit-learn lazily, no TensorFlow), so data errors surface
before any model is built.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tpetune.digits import DATA_SEED, TEST_FRACTION
from tpetune.errors import ConfigError, DataError, MissingDependencyError

__all__ = [
    "MNIST_KEYS",
    "N_CLASSES",
    "SKLEARN_SOURCE",
    "Digits",
    "load_digits_data",
    "load_mnist",
    "load_sklearn_digits",
    "require_sklearn",
    "stratified_folds",
]

#: Arrays a Keras-layout MNIST file must hold.
MNIST_KEYS: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test")
#: Digits 0-9.
N_CLASSES = 10
#: The data identity of scikit-learn's bundled digits (stored with a study).
SKLEARN_SOURCE = "sklearn:digits"

# Grey levels: scikit-learn's digits count 0-16, MNIST bytes 0-255; dividing by the scale's
# maximum (not the sample's) keeps a faint image faint.
_SKLEARN_MAX = 16.0
_MNIST_MAX = 255.0
_LAYOUT_HINT = "give a Keras-layout mnist.npz (keys x_train, y_train, x_test, y_test)"


@dataclass(frozen=True, eq=False)
class Digits:
    """Images as the objective uses them.

    Attributes:
        x_train, x_test: float32 arrays ``(n, height * width)`` in [0, 1].
        y_train, y_test: int64 arrays ``(n,)`` of digits 0-9.
        source: the data identity, stored with a study (``sklearn:digits`` or
            ``NAME.npz:SHA256-PREFIX``); a subset adds ``:limit=N``.
        image_shape: ``(height, width)`` of one image before flattening.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    image_shape: tuple[int, int]

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def limited(self, limit: int | None, *, seed: int = DATA_SEED) -> Digits:
        """A stratified subset of ``limit`` training images (the test split is kept whole).

        Raises:
            ConfigError: ``limit`` is below one image per class.
        """
        if limit is None or limit >= len(self.y_train):
            return self
        if limit < N_CLASSES:
            raise ConfigError(f"limit must be >= {N_CLASSES} (one image per class); got {limit}")
        require_sklearn()
        from sklearn.model_selection import train_test_split

        x, _, y, _ = train_test_split(
            self.x_train, self.y_train, train_size=limit, stratify=self.y_train, random_state=seed
        )
        return replace(self, x_train=x, y_train=y, source=f"{self.source}:limit={limit}")


def require_sklearn() -> None:
    """Raise the one-line install hint when scikit-learn is missing.

    Raises:
        MissingDependencyError: scikit-learn cannot be imported.
    """
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "the digits study needs scikit-learn: run `pip install tpetune[digits]`"
        ) from None


def load_digits_data(
    mnist: str | Path | None = None,
    *,
    limit: int | None = None,
    seed: int = DATA_SEED,
    test_fraction: float = TEST_FRACTION,
) -> Digits:
    """Load scikit-learn's digits (default) or an MNIST ``.npz``, optionally a subset.

    Args:
        mnist: a Keras-layout ``mnist.npz``; ``None`` uses scikit-learn's 8x8 digits.
        limit: keep a stratified subset of this many training images (quick runs, tests).
        seed: seed of the sklearn test split and of the subset.
        test_fraction: share of sklearn's digits held out for the test split.

    Raises:
        MissingDependencyError: scikit-learn is not installed.
        DataError: the MNIST file is missing or malformed (see :func:`load_mnist`).
        ConfigError: ``limit`` below 10.
    """
    data = (
        load_sklearn_digits(seed=seed, test_fraction=test_fraction)
        if mnist is None
        else load_mnist(mnist)
    )
    return data.limited(limit, seed=seed)


def load_sklearn_digits(*, seed: int = DATA_SEED, test_fraction: float = TEST_FRACTION) -> Digits:
    """scikit-learn's 1,797 8x8 digits, scaled, with a stratified held-out test split.

    Raises:
        MissingDependencyError: scikit-learn is not installed.
        ConfigError: ``test_fraction`` outside (0, 1).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must lie in (0, 1); got {test_fraction}")
    require_sklearn()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / _SKLEARN_MAX).astype(np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    return Digits(x_train, y_train, x_test, y_test, SKLEARN_SOURCE, (8, 8))


def load_mnist(path: str | Path) -> Digits:
    """Load and check a ``.npz`` in Keras' ``mnist.npz`` layout.

    Raises:
        MissingDependencyError: scikit-learn is not installed (needed for the folds anyway,
            so it is checked before the file is read).
        DataError: the file is missing or not an ``.npz``; a key of :data:`MNIST_KEYS` is
            missing; an array has the wrong shape or type; a label lies outside 0-9; a
            pixel lies outside 0-255.
    """
    require_sklearn()
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"MNIST file {path} not found: give the path to a Keras-layout mnist.npz "
            f"(keys {', '.join(MNIST_KEYS)})"
        )
    arrays = _read_npz(path)
    missing = [k for k in MNIST_KEYS if k not in arrays]
    if missing:
        raise DataError(
            f"{path} lacks {', '.join(missing)}: an MNIST .npz needs the arrays "
            f"{', '.join(MNIST_KEYS)} (Keras' mnist.npz layout)"
        )
    x_train = _images(path, "x_train", arrays["x_train"])
    x_test = _images(path, "x_test", arrays["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{path}: x_train images are {x_train.shape[1:]} but x_test images are "
            f"{x_test.shape[1:]}: both splits need images of one size"
        )
    y_train = _labels(path, "y_train", arrays["y_train"], len(x_train))
    y_test = _labels(path, "y_test", arrays["y_test"], len(x_test))
    height, width = int(x_train.shape[1]), int(x_train.shape[2])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return Digits(
        _scale(x_train), y_train, _scale(x_test), y_test, f"{path.name}:{digest}", (height, width)
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        # allow_pickle=False: an .npz from the internet must not run code when loaded.
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path} is not a readable .npz file ({reason}): {_LAYOUT_HINT}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single .npy array, not an .npz: {_LAYOUT_HINT}")
    try:
        return {k: loaded[k] for k in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # A truncated download opens fine and fails on the first array read.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path} is a damaged .npz file ({reason}): {_LAYOUT_HINT}") from None
    finally:
        loaded.close()


def _images(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    if x.ndim != 3 or x.shape[0] == 0 or 0 in x.shape[1:]:
        raise DataError(
            f"{path}: {key} has shape {x.shape}; expected (n, height, width) images such as "
            "(60000, 28, 28) in Keras' mnist.npz"
        )
    if x.dtype.kind not in "uif":
        raise DataError(f"{path}: {key} holds {x.dtype} values; expected numeric pixels 0-255")
    low, high = float(x.min()), float(x.max())
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > _MNIST_MAX:
        raise DataError(
            f"{path}: {key} pixels span {low:g}..{high:g}; expected grey levels 0-255 "
            "(uint8, as in Keras' mnist.npz)"
        )
    return x


def _labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: {key} has shape {y.shape}; expected one label per image, ({n},)")
    if y.dtype.kind not in "uif" or (y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0)):
        raise DataError(f"{path}: {key} holds {y.dtype} values; expected whole digits 0-9")
    bad = y[(y < 0) | (y >= N_CLASSES)]
    if len(bad):
        raise DataError(
            f"{path}: {key} holds {len(bad)} label(s) outside 0-9 (e.g. {bad[0]:g}): "
            "labels must be the digits 0-9"
        )
    return y.astype(np.int64)


def _scale(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1).astype(np.float32)
    flat /= np.float32(_MNIST_MAX)
    return flat


def stratified_folds(
    y: np.ndarray, folds: int, *, seed: int = DATA_SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_idx, val_idx)`` per fold, each fold with the class proportions of ``y``.

    Raises:
        MissingDependencyError: scikit-learn is not installed.
        ConfigError: ``folds`` < 2.
        DataError: a class has fewer images than ``folds``.
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(
            f"folds must be an integer >= 2 for cross-validation (--folds); got {folds!r}"
        )
    require_sklearn()
    from sklearn.model_selection import StratifiedKFold

    labels, counts = np.unique(y, return_counts=True)
    if counts.min() < folds:
        rare = labels[int(np.argmin(counts))]
        raise DataError(
            f"digit {rare} has only {counts.min()} training image(s), fewer than the {folds} "
            "folds: use fewer --folds or more data (a larger limit)"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    dummy: Any = np.zeros(len(y))
    return [(train, val) for train, val in splitter.split(dummy, y)]
